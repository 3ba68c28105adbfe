//! `bert-train export`: a model with its task head as a self-contained HuggingFace directory
//! (config with the head, `model.safetensors`, `vocab.txt` + `tokenizer.json`), as GluonNLP's
//! `export.py` makes a deployable model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::model_args::WeightsArgs;
use crate::finetune::model_io::{Head, ModelFiles};
use crate::tasks::glue::Task;
use crate::training::init::init_from_scratch;
use bert_core::rng::{HEAD_SEED_SALT, mix};
use bert_model::checkpoint::ModelSource;
use bert_model::checkpoint::{
    HfTensors, load_bert_for_question_answering, load_bert_for_sequence_classification,
    load_bert_model, save_hf_model, weights_path,
};
use bert_model::modules::{BertForQuestionAnswering, BertForSequenceClassification, ZOO_NAMES};

pub const AFTER_HELP: &str = "\
Examples:
  # the best epoch of a fine-tuning run, for PyTorch's AutoModelForSequenceClassification
  bert-train export --task classification --model-parameters out/rte/best \\
      --output-dir export/rte --seq-length 128
  # randomly initialised weights (no --model-parameters), a model-zoo shape
  bert-train export --task question_answering --model bert_12_768_12 \\
      --bert-dataset book_corpus_wiki_en_uncased --output-dir export/qa --seq-length 384

--model-parameters is a HuggingFace directory (or its model.safetensors, with --model naming
the architecture) holding the task's head: classifier.* for classification and regression,
qa_outputs.* for question_answering; a checkpoint without it, or with another number of
labels, is refused. The output loads with transformers' AutoModelFor... classes, with
bert-embed (which skips the head), and with --only-inference. --seq-length becomes the
tokenizer's model_max_length and truncation length.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportTask {
    Classification,
    Regression,
    /// The seed's spelling; `question-answering` is accepted too.
    #[value(name = "question_answering", alias = "question-answering")]
    QuestionAnswering,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The head: classification, regression or question_answering.
    #[arg(long)]
    pub task: ExportTask,
    /// Fine-tuned weights: a HuggingFace directory or a .safetensors file. Without it, the
    /// --model's pretrained encoder with a new head (drawn from --seed), or with
    /// --from-scratch, random weights throughout.
    #[arg(long, alias = "model_parameters")]
    pub model_parameters: Option<PathBuf>,
    /// Where the HuggingFace directory is written.
    #[arg(long, alias = "output_dir")]
    pub output_dir: PathBuf,
    /// Longest input the deployed tokenizer produces (model_max_length).
    #[arg(long, alias = "seq_length", default_value_t = 384)]
    pub seq_length: usize,
    /// The architecture and tokenizer: a model-zoo name (its pretrained checkpoint on
    /// --bert-dataset), a HuggingFace Hub id or directory. Default: the --model-parameters
    /// directory, else bert_12_768_12.
    #[arg(long)]
    pub model: Option<String>,
    /// The zoo checkpoint's pretraining dataset; with --from-scratch or a --model-parameters
    /// file, the vocabulary (bundled name or vocab.txt / tokenizer.json path).
    #[arg(
        long,
        alias = "bert_dataset",
        default_value = "book_corpus_wiki_en_uncased"
    )]
    pub bert_dataset: String,
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Classes of a classification head (default: the checkpoint's, else the task's, else 2).
    #[arg(long, alias = "num_labels")]
    pub num_labels: Option<usize>,
    /// A GLUE/XNLI task whose label names go into config.json (id2label).
    #[arg(long, alias = "task_name")]
    pub task_name: Option<String>,
    /// Seed of random weights (without --model-parameters).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The class names: the task's, else the checkpoint's id2label, else LABEL_0.. (HF's names).
fn class_names(
    args: &ExportArgs,
    task: Option<Task>,
    files: &ModelFiles,
    weights: Option<&HfTensors>,
) -> Result<Vec<String>> {
    let from_task: Option<Vec<String>> =
        task.map(|t| t.labels().iter().map(|l| l.to_string()).collect());
    let from_config: Option<Vec<String>> = files
        .config
        .extra
        .get("id2label")
        .and_then(|v| v.as_object())
        .map(|m| {
            let mut pairs: Vec<(usize, String)> = m
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
                .collect();
            pairs.sort();
            pairs.into_iter().map(|(_, v)| v).collect()
        });
    let in_weights = weights.and_then(HfTensors::classifier_outputs);
    let n = args
        .num_labels
        .or(from_task.as_ref().map(Vec::len))
        .or(in_weights)
        .or(from_config.as_ref().map(Vec::len))
        .unwrap_or(2);
    if n < 2 {
        bail!("a classification head needs at least 2 labels (one output is --task regression)");
    }
    Ok(from_task
        .filter(|l| l.len() == n)
        .or(from_config.filter(|l| l.len() == n))
        .unwrap_or_else(|| (0..n).map(|i| format!("LABEL_{i}")).collect()))
}

pub fn run(args: ExportArgs) -> Result<()> {
    let task = args
        .task_name
        .as_deref()
        .map(str::parse::<Task>)
        .transpose()?;
    if let Some(t) = task {
        let wants_regression = args.task == ExportTask::Regression;
        if t.is_regression() != wants_regression {
            bail!(
                "--task-name {t} is a {} task, not --task {:?}",
                if t.is_regression() {
                    "regression"
                } else {
                    "classification"
                },
                args.task
            );
        }
    }
    let params_dir = args
        .model_parameters
        .as_deref()
        .filter(|p| p.is_dir())
        .map(Path::to_path_buf);
    let model_spec = match (&args.model, &params_dir) {
        (Some(m), _) => m.clone(),
        (None, Some(dir)) => dir.display().to_string(),
        (None, None) => "bert_12_768_12".into(),
    };
    // --model-parameters brings the weights: a zoo name then gives the shape alone.
    let shape_only = args.weights.from_scratch
        || (args.model_parameters.is_some() && ZOO_NAMES.contains(&model_spec.as_str()));
    let weights_args = WeightsArgs {
        from_scratch: shape_only,
        ..args.weights.clone()
    };
    let source = weights_args.resolve(&model_spec, &args.bert_dataset)?;
    let files = ModelFiles::open(&source, Some(&args.bert_dataset), args.seq_length)?;
    files.check_max_len(args.seq_length, "--seq-length")?;
    let weights = match &args.model_parameters {
        Some(path) => {
            let file = if path.is_dir() {
                weights_path(path)?
            } else {
                path.clone()
            };
            Some(HfTensors::from_file(&file)?)
        }
        None => None,
    };
    // Without --model-parameters, a directory's (or hub checkpoint's) encoder is kept and
    // only the head is new; a zoo shape (--from-scratch) is random throughout.
    let encoder_weights = match (&weights, &source) {
        (None, ModelSource::Dir(dir)) => Some(HfTensors::from_file(&weights_path(dir)?)?),
        _ => None,
    };
    let head = match args.task {
        ExportTask::Classification => {
            Head::Classification(class_names(&args, task, &files, weights.as_ref())?)
        }
        ExportTask::Regression => Head::Regression,
        ExportTask::QuestionAnswering => Head::QuestionAnswering,
    };
    // Export is a copy, not a computation: the CPU backend is always there.
    let device = bert_model::BackendKind::Cpu.device()?;
    let config = &files.config;
    let task_name = task.map(|t| t.dir_name());
    let hf_config = head.config_for(config, task_name);
    let out = &args.output_dir;
    let context = || {
        format!(
            "--model-parameters {} cannot be exported as {:?}",
            args.model_parameters
                .as_deref()
                .unwrap_or(Path::new(""))
                .display(),
            args.task
        )
    };
    let encoder = |pretrained: Option<&HfTensors>| -> Result<_> {
        Ok(match pretrained {
            Some(w) => load_bert_model(config, w, &device)?.0,
            None => init_from_scratch(config, args.seed, &device).bert,
        })
    };
    match (&head, &weights) {
        (Head::QuestionAnswering, Some(w)) => {
            let (model, _) =
                load_bert_for_question_answering(config, w, &device).with_context(context)?;
            save_hf_model(&model, &hf_config, head.architecture(), out)?;
        }
        (Head::QuestionAnswering, None) => {
            let encoder = encoder(encoder_weights.as_ref())?;
            device.seed(mix(args.seed, HEAD_SEED_SALT, 0));
            let model = BertForQuestionAnswering::with_encoder(encoder, config, &device);
            save_hf_model(&model, &hf_config, head.architecture(), out)?;
        }
        (_, Some(w)) => {
            let (model, _) =
                load_bert_for_sequence_classification(config, head.num_labels(), w, &device)
                    .with_context(context)?;
            save_hf_model(&model, &hf_config, head.architecture(), out)?;
        }
        (_, None) => {
            let encoder = encoder(encoder_weights.as_ref())?;
            device.seed(mix(args.seed, HEAD_SEED_SALT, 0));
            let model = BertForSequenceClassification::with_encoder(
                encoder,
                config,
                head.num_labels(),
                &device,
            );
            save_hf_model(&model, &hf_config, head.architecture(), out)?;
        }
    }
    files.write_tokenizer(out, Some(args.seq_length))?;
    eprintln!(
        "exported {} ({} label(s)){} to {}",
        head.architecture(),
        head.num_labels(),
        match (&weights, &encoder_weights) {
            (Some(_), _) => "",
            (None, Some(_)) => ", pretrained encoder and a new head",
            (None, None) => ", randomly initialised",
        },
        out.display()
    );
    Ok(())
}
