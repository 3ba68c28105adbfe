//! Load HuggingFace safetensors weights into the burn modules.
//!
//! burn-store reads the container and applies tensors by path (`ModuleSnapshot::apply`); we
//! rename HF keys to burn paths first (`keys`), let burn-store's `PyTorchToBurnAdapter`
//! transpose the linear weights, and turn its report into an error that names, in HF terms,
//! every tensor that is missing or mis-shaped.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyError, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::DType;

use super::keys::{KeyAction, Layout, burn_path_to_hf_name, hf_to_burn};
use crate::error::{BertError, TensorProblem};
use crate::modules::{
    BertConfig, BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification,
    BertModel,
};

/// What loading did besides filling the model, for the caller to log.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Tensors in the file that no parameter of the model wanted (HF warns about these too).
    pub unused: Vec<String>,
    /// Known tensors deliberately skipped (position ids, tied decoder, unused heads), with why.
    pub ignored: Vec<(String, &'static str)>,
    /// Whether the checkpoint had a pooler (without one, `pooler_output` is `None`).
    pub has_pooler: bool,
}

/// The tensors of a safetensors container, by HF key.
pub struct HfTensors {
    /// Where they came from, for messages.
    pub source_name: String,
    tensors: BTreeMap<String, PackTensor>,
}

impl HfTensors {
    /// Parse a safetensors container held in memory (the browser's path: no file system).
    pub fn from_bytes(bytes: Vec<u8>, source_name: &str) -> Result<Self, BertError> {
        Self::from_store(SafetensorsStore::from_bytes(Some(bytes)), source_name)
    }

    /// Memory-map a safetensors file (tensors are read only when applied), or read a PyTorch
    /// checkpoint (`pytorch_model.bin`, `.pt`, `.pth`: the same tensors in pickle form).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_file(path: &std::path::Path) -> Result<Self, BertError> {
        if !path.is_file() {
            return Err(BertError::Format {
                source_name: path.display().to_string(),
                message: "no such file".into(),
            });
        }
        let name = path.display().to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("bin" | "pt" | "pth") => {
                Self::from_store(burn::store::PytorchStore::from_file(path), &name)
            }
            _ => Self::from_store(SafetensorsStore::from_file(path), &name),
        }
    }

    fn from_store<S: burn::store::ModuleStore>(
        mut store: S,
        source_name: &str,
    ) -> Result<Self, BertError> {
        let tensors = store
            .get_all_tensors()
            .map_err(|e| BertError::Format {
                source_name: source_name.to_string(),
                message: e.to_string(),
            })?
            .clone();
        Ok(Self {
            source_name: source_name.to_string(),
            tensors,
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Shape of a tensor by HF key, with or without the `bert.` prefix.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors
            .get(key)
            .or_else(|| self.tensors.get(&alloc::format!("bert.{key}")))
            .map(|t| t.shape.to_vec())
    }

    /// Whether the file holds a fine-tuning head (`classifier.*` or `qa_outputs.*`).
    pub fn task_head(&self) -> Option<&'static str> {
        super::keys::TASK_HEAD_PREFIXES.into_iter().find(|p| {
            self.keys()
                .any(|k| k.strip_prefix("bert.").unwrap_or(k).starts_with(p))
        })
    }

    /// The number of outputs of the `classifier.*` head, if the file has one.
    pub fn classifier_outputs(&self) -> Option<usize> {
        self.shape("classifier.weight")
            .and_then(|s| s.first().copied())
    }

    fn has_pooler(&self) -> bool {
        self.keys()
            .any(|k| k.starts_with("pooler.") || k.starts_with("bert.pooler."))
    }

    /// Check the sizes `config.json` states against the weights, to say *why* shapes differ
    /// (one line instead of a hundred mismatches).
    pub fn config_disagreement(&self, config: &BertConfig) -> Option<String> {
        let mut notes = Vec::new();
        if let Some([vocab, hidden]) = self
            .shape("embeddings.word_embeddings.weight")
            .and_then(|s| <[usize; 2]>::try_from(s).ok())
        {
            if vocab != config.vocab_size {
                notes.push(alloc::format!(
                    "vocab_size {} vs {vocab}",
                    config.vocab_size
                ));
            }
            if hidden != config.hidden_size {
                notes.push(alloc::format!(
                    "hidden_size {} vs {hidden}",
                    config.hidden_size
                ));
            }
        }
        if let Some([inter, _]) = self
            .shape("encoder.layer.0.intermediate.dense.weight")
            .and_then(|s| <[usize; 2]>::try_from(s).ok())
            && inter != config.intermediate_size
        {
            notes.push(alloc::format!(
                "intermediate_size {} vs {inter}",
                config.intermediate_size
            ));
        }
        if let Some([positions, _]) = self
            .shape("embeddings.position_embeddings.weight")
            .and_then(|s| <[usize; 2]>::try_from(s).ok())
            && positions != config.max_position_embeddings
        {
            notes.push(alloc::format!(
                "max_position_embeddings {} vs {positions}",
                config.max_position_embeddings
            ));
        }
        let layers = self
            .keys()
            .filter_map(|k| {
                k.strip_prefix("bert.")
                    .unwrap_or(k)
                    .strip_prefix("encoder.layer.")
            })
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .max()
            .map(|max| max + 1);
        if let Some(layers) = layers
            && layers != config.num_hidden_layers
        {
            notes.push(alloc::format!(
                "num_hidden_layers {} vs {layers}",
                config.num_hidden_layers
            ));
        }
        (!notes.is_empty()).then(|| {
            alloc::format!(
                "config.json disagrees with the weights (config vs weights): {}",
                notes.join(", ")
            )
        })
    }
}

/// Build a `BertModel` for `config` on `device` and load `weights` into it.
pub fn load_bert_model(
    config: &BertConfig,
    weights: &HfTensors,
    device: &Device,
) -> Result<(BertModel, LoadReport), BertError> {
    config.validate()?;
    let mut model = BertModel::new(config, device);
    if !weights.has_pooler() {
        model = model.without_pooler();
    }
    let mut report = apply_hf_tensors(&mut model, weights, config, Layout::Encoder)?;
    report.has_pooler = model.pooler.is_some();
    Ok((model, report))
}

/// Build a `BertForPreTraining` and load `weights` (which must include the `cls.*` heads).
pub fn load_bert_for_pretraining(
    config: &BertConfig,
    weights: &HfTensors,
    device: &Device,
) -> Result<(BertForPreTraining, LoadReport), BertError> {
    config.validate()?;
    let mut model = BertForPreTraining::new(config, device);
    let mut report = apply_hf_tensors(&mut model, weights, config, Layout::PreTraining)?;
    report.has_pooler = true;
    Ok((model, report))
}

/// Build a `BertForSequenceClassification` with `num_labels` outputs and load `weights`, which
/// must hold that head (`classifier.*`): a head of another size is an error that says so.
pub fn load_bert_for_sequence_classification(
    config: &BertConfig,
    num_labels: usize,
    weights: &HfTensors,
    device: &Device,
) -> Result<(BertForSequenceClassification, LoadReport), BertError> {
    config.validate()?;
    let mut model = BertForSequenceClassification::new(config, num_labels, device);
    if !weights.has_pooler() {
        // HF initialises a missing pooler at random; a fine-tuned head without its pooler
        // would compute something else than it was trained with.
        return Err(BertError::Weights {
            source_name: weights.source_name.clone(),
            problems: alloc::vec![TensorProblem::Missing("bert.pooler.dense.weight".into())],
            hint: Some("a sequence classifier needs the pooler it was trained with".into()),
        });
    }
    let mut report = apply_hf_tensors(&mut model, weights, config, Layout::TaskHead)
        .map_err(|e| with_head_hint(e, weights, num_labels))?;
    report.has_pooler = true;
    Ok((model, report))
}

/// Say in one line when the checkpoint's head is for another task than the model asked for.
fn with_head_hint(error: BertError, weights: &HfTensors, num_labels: usize) -> BertError {
    let BertError::Weights {
        source_name,
        problems,
        hint,
    } = error
    else {
        return error;
    };
    let head_hint = match (weights.task_head(), weights.classifier_outputs()) {
        (None, _) => Some("the checkpoint has no fine-tuning head (classifier.*)".to_string()),
        (Some("qa_outputs."), _) => {
            Some("the checkpoint's head is a question-answering head (qa_outputs.*)".into())
        }
        (_, Some(found)) if found != num_labels => Some(alloc::format!(
            "the checkpoint's classifier has {found} output(s), the task needs {num_labels}"
        )),
        _ => None,
    };
    let hint = match (head_hint, hint) {
        (Some(a), Some(b)) => Some(alloc::format!("{a}\n{b}")),
        (a, b) => a.or(b),
    };
    BertError::Weights {
        source_name,
        problems,
        hint,
    }
}

/// Build a `BertForQuestionAnswering` and load `weights` (which must hold `qa_outputs.*`).
pub fn load_bert_for_question_answering(
    config: &BertConfig,
    weights: &HfTensors,
    device: &Device,
) -> Result<(BertForQuestionAnswering, LoadReport), BertError> {
    config.validate()?;
    let mut model = BertForQuestionAnswering::new(config, device);
    let mut report =
        apply_hf_tensors(&mut model, weights, config, Layout::TaskHead).map_err(|e| match e {
            BertError::Weights {
                source_name,
                problems,
                hint,
            } if weights.task_head() != Some("qa_outputs.") => BertError::Weights {
                source_name,
                problems,
                hint: Some(
                    hint.map_or_else(String::new, |h| alloc::format!("{h}\n"))
                        + "the checkpoint has no question-answering head (qa_outputs.*)",
                ),
            },
            other => other,
        })?;
    // HF's BertForQuestionAnswering has no pooler; a checkpoint that has one just carries it.
    report.has_pooler = false;
    Ok((model, report))
}

/// NaN or infinity in a float tensor (a diverged run's weights, a damaged file): said, with
/// where, instead of silently giving `NaN` vectors.
fn non_finite(tensor: &PackTensor) -> Option<String> {
    if !matches!(
        tensor.dtype,
        DType::F64 | DType::F32 | DType::F16 | DType::BF16
    ) {
        return None;
    }
    let data = match burn::store::bridge::to_data(tensor) {
        Ok(data) => data.convert::<f32>(),
        Err(e) => return Some(alloc::format!("unreadable data: {e}")),
    };
    let values = data.as_slice::<f32>().ok()?;
    let count = values.iter().filter(|v| !v.is_finite()).count();
    let first = values.iter().position(|v| !v.is_finite())?;
    Some(alloc::format!(
        "{count} of {} values are NaN or infinite (the first, {}, at flat index {first}): the \
         weights are damaged or come from a diverged run",
        values.len(),
        values[first]
    ))
}

/// Rename, apply, and collect every problem into one error.
fn apply_hf_tensors<M: ModuleSnapshot>(
    module: &mut M,
    weights: &HfTensors,
    config: &BertConfig,
    layout: Layout,
) -> Result<LoadReport, BertError> {
    let mut report = LoadReport::default();
    let mut problems = Vec::new();
    let mut hf_name_of: BTreeMap<String, String> = BTreeMap::new();
    let mut tensors = Vec::with_capacity(weights.tensors.len());
    for (key, tensor) in &weights.tensors {
        match hf_to_burn(key, layout) {
            KeyAction::Ignore(why) => report.ignored.push((key.clone(), why)),
            KeyAction::Load(path) => {
                if let Some(message) = non_finite(tensor) {
                    problems.push(TensorProblem::Other {
                        name: key.clone(),
                        message,
                    });
                }
                let mut tensor = tensor.clone();
                tensor.name = path.clone();
                hf_name_of.insert(path, key.clone());
                tensors.push(tensor);
            }
        }
    }

    // Linear weights are [out, in] in PyTorch and [in, out] in burn; half-precision files are
    // widened to the f32 the model computes in.
    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)));
    let result = module.apply(tensors, None, Some(adapter), false);

    let name = |path: &str| {
        hf_name_of
            .get(path)
            .cloned()
            .unwrap_or_else(|| burn_path_to_hf_name(path))
    };
    problems.extend(
        result
            .missing
            .iter()
            .map(|(path, _)| TensorProblem::Missing(burn_path_to_hf_name(path))),
    );
    for error in &result.errors {
        problems.push(match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => {
                let hf = name(path);
                // Report in the file's layout: linear weights were transposed on the way in.
                let as_in_file = |s: &[usize]| {
                    let mut v = s.to_vec();
                    if v.len() == 2 && !hf.contains("_embeddings.") {
                        v.reverse();
                    }
                    v
                };
                TensorProblem::Shape {
                    expected: as_in_file(expected.as_slice()),
                    found: as_in_file(found.as_slice()),
                    name: hf,
                }
            }
            ApplyError::DTypeMismatch {
                path,
                expected,
                found,
            } => TensorProblem::Other {
                name: name(path),
                message: alloc::format!("dtype {found:?}, the model needs {expected:?}"),
            },
            ApplyError::AdapterError { path, message }
            | ApplyError::LoadError { path, message } => TensorProblem::Other {
                name: name(path),
                message: message.clone(),
            },
        });
    }
    report.unused = result.unused.iter().map(|p| name(p)).collect();

    if problems.is_empty() {
        Ok(report)
    } else {
        Err(BertError::Weights {
            source_name: weights.source_name.clone(),
            problems,
            hint: weights.config_disagreement(config),
        })
    }
}
