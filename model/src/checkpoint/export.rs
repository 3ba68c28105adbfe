//! Write a model back in HuggingFace's layout: `config.json` + `model.safetensors` (+ the
//! tokenizer files), loadable by `transformers.AutoModel.from_pretrained`.
//!
//! Every file is written to a temporary sibling and renamed into place, so a crash never leaves
//! a half-written checkpoint.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};

use super::keys::burn_to_hf;
use crate::modules::{BertConfig, BertForPreTraining, BertModel};

use bert_core::fsutil::write_atomic;

/// The module's tensors as a safetensors container with HF keys and layouts.
pub fn to_hf_safetensors<M: ModuleSnapshot>(module: &M) -> Result<Vec<u8>> {
    let tensors = module.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    let mut named = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let key = burn_to_hf(&tensor.name);
        let shape = tensor.shape.to_vec();
        let dtype = match tensor.dtype {
            burn::tensor::DType::F32 => safetensors::Dtype::F32,
            burn::tensor::DType::F16 => safetensors::Dtype::F16,
            burn::tensor::DType::BF16 => safetensors::Dtype::BF16,
            other => {
                anyhow::bail!("tensor {key} has dtype {other:?}, which export does not handle")
            }
        };
        let bytes = tensor
            .to_bytes()
            .map_err(|e| anyhow::anyhow!("cannot read tensor {key}: {e:?}"))?
            .to_vec();
        named.push((key, dtype, shape, bytes));
    }
    // transformers refuses safetensors files whose metadata does not say format=pt.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    serialize_safetensors(&named, Some(metadata))
}

/// A tensor to write: name, dtype, shape, little-endian bytes.
pub type NamedTensor = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

/// `tensors` as one safetensors container.
pub fn serialize_safetensors(
    tensors: &[NamedTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .with_context(|| format!("tensor {name}"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, metadata)?)
}

/// Write `config.json` with the given HF class in `architectures`.
fn write_config(dir: &Path, config: &BertConfig, architecture: &str) -> Result<()> {
    let mut config = config.clone();
    config
        .extra
        .insert("architectures".into(), serde_json::json!([architecture]));
    write_atomic(&dir.join("config.json"), config.to_json_string().as_bytes())
}

/// Write `vocab.txt`: one token per line, line number = id.
pub fn write_vocab_txt<S: AsRef<str>>(dir: &Path, tokens: &[S]) -> Result<()> {
    let mut text = tokens
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    write_atomic(&dir.join("vocab.txt"), text.as_bytes())
}

/// HF's `tokenizer_config.json` for a BERT WordPiece vocabulary.
pub fn bert_tokenizer_config(lowercase: bool, model_max_length: usize) -> serde_json::Value {
    serde_json::json!({
        "do_lower_case": lowercase,
        "tokenizer_class": "BertTokenizer",
        "model_max_length": model_max_length,
    })
}

/// Copy the tokenizer files of `source_dir` (if any) next to the weights.
pub fn copy_tokenizer_files(source_dir: &Path, dir: &Path) -> Result<()> {
    for name in [
        "vocab.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        let from = source_dir.join(name);
        if from.is_file() {
            let bytes =
                std::fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
            write_atomic(&dir.join(name), &bytes)?;
        }
    }
    Ok(())
}

/// Save a module that mirrors a HF class (`architecture`, e.g. `BertForSequenceClassification`)
/// as that class's directory. Task keys of `config.json` (`id2label`, `problem_type`) are the
/// caller's, in `config.extra`.
pub fn save_hf_model<M: ModuleSnapshot>(
    module: &M,
    config: &BertConfig,
    architecture: &str,
    dir: &Path,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(&dir.join("model.safetensors"), &to_hf_safetensors(module)?)?;
    write_config(dir, config, architecture)
}

/// Save a `BertModel` as a HF `BertModel` directory.
pub fn save_bert_model(model: &BertModel, config: &BertConfig, dir: &Path) -> Result<()> {
    save_hf_model(model, config, "BertModel", dir)
}

/// Save a `BertForPreTraining` as a HF `BertForPreTraining` directory (`bert.*` + `cls.*`).
pub fn save_bert_for_pretraining(
    model: &BertForPreTraining,
    config: &BertConfig,
    dir: &Path,
) -> Result<()> {
    save_hf_model(model, config, "BertForPreTraining", dir)
}
