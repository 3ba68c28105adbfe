//! Models with a task head in and out of HuggingFace directories: which weights a run starts
//! from (a zoo shape at random, a pretrained encoder with a fresh head, or a fine-tuned
//! directory with its head), the tokenizer beside them, and the task keys of `config.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bert_core::rng::{HEAD_SEED_SALT, mix};
use bert_core::vocab::Vocab;
use burn::prelude::*;
use tokenizers::{Tokenizer, TruncationParams};

use crate::training::init::init_from_scratch;
use bert_core::fsutil::write_atomic;
use bert_model::checkpoint::ModelSource;
use bert_model::checkpoint::{
    HfTensors, bert_tokenizer_config, copy_tokenizer_files, load_bert_for_sequence_classification,
    load_bert_model, load_tokenizer, read_config, weights_path, write_vocab_txt,
};
use bert_model::modules::{BertConfig, BertForSequenceClassification, BertModel};

/// The head a directory is written with, which decides its `config.json` task keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// Class names in label-id order.
    Classification(Vec<String>),
    /// One output, mean-squared error (`problem_type: regression`).
    Regression,
    /// Start and end logits (`BertForQuestionAnswering`).
    QuestionAnswering,
}

impl Head {
    /// The HF class that loads it (`architectures` in `config.json`).
    pub fn architecture(&self) -> &'static str {
        match self {
            Self::Classification(_) | Self::Regression => "BertForSequenceClassification",
            Self::QuestionAnswering => "BertForQuestionAnswering",
        }
    }

    pub fn num_labels(&self) -> usize {
        match self {
            Self::Classification(labels) => labels.len(),
            Self::Regression => 1,
            Self::QuestionAnswering => 2,
        }
    }

    /// `config` with HF's task keys for this head: `id2label`/`label2id` (HF counts
    /// `num_labels` from them), `problem_type`, and `finetuning_task` when given.
    pub fn config_for(&self, config: &BertConfig, finetuning_task: Option<&str>) -> BertConfig {
        let mut config = config.clone();
        for key in [
            "id2label",
            "label2id",
            "num_labels",
            "problem_type",
            "finetuning_task",
        ] {
            config.extra.remove(key);
        }
        let labels: Vec<String> = match self {
            Self::Classification(labels) => labels.clone(),
            Self::Regression => vec!["LABEL_0".into()],
            Self::QuestionAnswering => vec![],
        };
        if !labels.is_empty() {
            let id2label: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| (i.to_string(), l.clone().into()))
                .collect();
            let label2id: serde_json::Map<String, serde_json::Value> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.clone(), i.into()))
                .collect();
            config.extra.insert("id2label".into(), id2label.into());
            config.extra.insert("label2id".into(), label2id.into());
        }
        match self {
            Self::Classification(_) => {
                config
                    .extra
                    .insert("problem_type".into(), "single_label_classification".into());
            }
            Self::Regression => {
                config
                    .extra
                    .insert("problem_type".into(), "regression".into());
            }
            Self::QuestionAnswering => {}
        }
        if let Some(task) = finetuning_task {
            config.extra.insert("finetuning_task".into(), task.into());
        }
        config
    }
}

/// Where the model's tokenizer and architecture come from.
pub struct ModelFiles {
    pub config: BertConfig,
    /// Truncating to the requested length, without padding.
    pub tokenizer: Tokenizer,
    /// The HF directory, when the model is one (its tokenizer files are copied on save).
    pub dir: Option<PathBuf>,
    /// Whether the tokenizer lower-cases (for a `tokenizer_config.json` we write ourselves).
    pub lowercase: bool,
}

impl ModelFiles {
    /// A zoo name takes `bert_dataset`'s vocabulary (a bundled name, vocab.txt or
    /// tokenizer.json); a directory its own `config.json` and tokenizer.
    pub fn open(model: &ModelSource, bert_dataset: Option<&str>, max_len: usize) -> Result<Self> {
        match model {
            ModelSource::Zoo(name) => {
                let spec = bert_dataset.with_context(|| {
                    format!(
                        "--model {name} is a model-zoo shape without weights or vocabulary: \
                         give its vocabulary with --bert-dataset (e.g. \
                         book_corpus_wiki_en_uncased), or --model DIR for a pretrained model"
                    )
                })?;
                let vocab = Vocab::load(spec, None)?;
                let config = BertConfig::zoo(name)?.with_vocab_size(vocab.size());
                let mut tokenizer = vocab.tokenizer.clone();
                truncate(&mut tokenizer, max_len)?;
                Ok(Self {
                    config,
                    tokenizer,
                    dir: None,
                    lowercase: vocab.lowercase,
                })
            }
            ModelSource::Dir(dir) => {
                let config = read_config(dir)?;
                let tokenizer = load_tokenizer(dir, max_len, None)?;
                let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .and_then(|v| v["do_lower_case"].as_bool())
                    .unwrap_or(true);
                Ok(Self {
                    config,
                    tokenizer,
                    dir: Some(dir.clone()),
                    lowercase,
                })
            }
        }
    }

    /// Check that sequences of `max_len` fit the model's positions.
    pub fn check_max_len(&self, max_len: usize, flag: &str) -> Result<()> {
        if max_len > self.config.max_position_embeddings {
            bail!(
                "{flag} {max_len} is longer than the model's {} positions",
                self.config.max_position_embeddings
            );
        }
        Ok(())
    }

    /// Write the tokenizer next to a saved model: the source directory's files, plus
    /// `tokenizer.json` and `vocab.txt` whichever is missing, and `tokenizer_config.json`.
    /// With `model_max_length`, both tokenizer.json's truncation and tokenizer_config.json say it.
    pub fn write_tokenizer(&self, dir: &Path, model_max_length: Option<usize>) -> Result<()> {
        if let Some(source) = &self.dir {
            copy_tokenizer_files(source, dir)?;
        }
        let json_path = dir.join("tokenizer.json");
        if model_max_length.is_some() || !json_path.is_file() {
            let mut tokenizer = self.tokenizer.clone();
            if let Some(n) = model_max_length {
                truncate(&mut tokenizer, n)?;
            }
            let json = tokenizer
                .to_string(true)
                .map_err(|e| anyhow::anyhow!("cannot serialize the tokenizer: {e}"))?;
            write_atomic(&json_path, json.as_bytes())?;
        }
        if !dir.join("vocab.txt").is_file() {
            let mut vocab: Vec<(String, u32)> =
                self.tokenizer.get_vocab(false).into_iter().collect();
            vocab.sort_by_key(|(_, id)| *id);
            let tokens: Vec<String> = vocab.into_iter().map(|(token, _)| token).collect();
            write_vocab_txt(dir, &tokens)?;
        }
        let config_path = dir.join("tokenizer_config.json");
        let mut tokenizer_config = std::fs::read_to_string(&config_path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| {
                bert_tokenizer_config(self.lowercase, self.config.max_position_embeddings)
            });
        if let Some(n) = model_max_length {
            tokenizer_config["model_max_length"] = n.into();
        }
        write_atomic(
            &config_path,
            serde_json::to_string_pretty(&tokenizer_config)?.as_bytes(),
        )?;
        Ok(())
    }
}

/// Truncate to `max_len` tokens (specials included), longest text first, as HF's default.
fn truncate(tokenizer: &mut Tokenizer, max_len: usize) -> Result<()> {
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..Default::default()
        }))
        .map_err(|e| anyhow::anyhow!("cannot truncate to {max_len} tokens: {e}"))?;
    Ok(())
}

/// How the weights of a run were obtained, for the log.
pub enum Origin {
    /// Everything drawn at random (a zoo shape).
    Random,
    /// A pretrained encoder; the head (and a missing pooler) drawn at random.
    PretrainedEncoder,
    /// A directory that already had this head.
    FineTuned,
}

/// A sequence classifier with `num_labels` outputs for `files`: its fine-tuned head when the
/// directory has one (`require_head`: it must), else a fresh head seeded with `seed`.
pub fn classifier(
    model: &ModelSource,
    files: &ModelFiles,
    num_labels: usize,
    require_head: bool,
    seed: u64,
    device: &Device,
) -> Result<(BertForSequenceClassification, Origin)> {
    let config = &files.config;
    let (encoder, origin): (BertModel, Origin) = match model {
        ModelSource::Zoo(name) => {
            if require_head {
                bail!("--model {name} has no fine-tuned weights: give a fine-tuned directory");
            }
            (init_from_scratch(config, seed, device).bert, Origin::Random)
        }
        ModelSource::Dir(dir) => {
            let weights = HfTensors::from_file(&weights_path(dir)?)?;
            if weights.task_head().is_some() {
                let (model, _) =
                    load_bert_for_sequence_classification(config, num_labels, &weights, device)
                        .with_context(|| {
                            format!("{} does not fit this task's head", dir.display())
                        })?;
                return Ok((model, Origin::FineTuned));
            }
            if require_head {
                bail!(
                    "{} has no fine-tuned head (classifier.*): --only-inference needs a \
                     directory written by `bert-train finetune-classifier` (OUTPUT_DIR/best) or \
                     `bert-train export`",
                    dir.display()
                );
            }
            (
                load_bert_model(config, &weights, device)?.0,
                Origin::PretrainedEncoder,
            )
        }
    };
    // The head is drawn from the seed, after (and independently of) the encoder.
    device.seed(mix(seed, HEAD_SEED_SALT, 0));
    Ok((
        BertForSequenceClassification::with_encoder(encoder, config, num_labels, device),
        origin,
    ))
}
