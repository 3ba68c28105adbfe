//! What a fine-tuning run is: every flag of `bert-train finetune-classifier`, checked before
//! anything is loaded.

use std::path::PathBuf;

use anyhow::{Result, ensure};

use crate::tasks::glue::Task;
use crate::training::{OptimizerKind, Precision};
use bert_model::backend::BackendKind;
use bert_model::checkpoint::ModelSource;

#[derive(Debug, Clone)]
pub struct ClassifierConfig {
    pub task: Task,
    /// `glue_data/<TASK>/` (train.tsv, dev.tsv, test.tsv; MNLI: dev_matched.tsv, ...).
    pub data_dir: PathBuf,
    /// A zoo name (random weights, `bert_dataset`'s vocabulary) or a HF directory.
    pub model: ModelSource,
    /// The vocabulary of a zoo model: a bundled name or a vocab.txt / tokenizer.json path.
    pub bert_dataset: Option<String>,
    pub batch_size: usize,
    pub dev_batch_size: usize,
    pub accumulate: usize,
    pub epochs: usize,
    pub lr: f64,
    pub epsilon: f64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub optimizer: OptimizerKind,
    /// Tokens per sequence, `[CLS]` and `[SEP]`s included.
    pub max_len: usize,
    /// Pad each batch to a multiple of this many tokens (up to `max_len`); 1: to its longest row.
    /// `None`: the backend's default ([`BackendKind::default_pad_multiple`]).
    pub pad_to_multiple_of: Option<usize>,
    pub seed: u64,
    pub log_interval: usize,
    pub output_dir: PathBuf,
    /// Load a fine-tuned directory, evaluate dev and predict test; no training.
    pub only_inference: bool,
    /// Replace what `output_dir` holds (a finished run's outputs, old checkpoints).
    pub overwrite: bool,
    pub backend: BackendKind,
    /// `--dtype`: the precision of forward and backward (and of evaluation); the weights, the
    /// optimizer and the saved model stay float32.
    pub dtype: Precision,
    /// Use only the first N training examples (quick experiments, tests).
    pub max_train_examples: Option<usize>,
    /// Data-parallel ranks: device indices of `backend` (`--gpus 0,1`); each takes
    /// `accumulate` micro-batches of every optimizer step, gradients are summed on the first.
    pub gpus: Vec<usize>,
    /// Also checkpoint every N optimizer steps within an epoch (0: at epoch ends only).
    pub ckpt_interval: u64,
    /// Checkpoints kept in OUTPUT_DIR/checkpoints (the newest).
    pub keep_checkpoints: usize,
    /// Resume from the newest intact checkpoint, skipping damaged newer ones.
    pub skip_damaged_checkpoints: bool,
    /// Print log lines and notes on stderr.
    pub print: bool,
}

impl ClassifierConfig {
    /// GluonNLP `finetune_classifier.py`'s defaults for everything but task, data and model.
    pub fn new(task: Task, data_dir: PathBuf, model: ModelSource) -> Self {
        Self {
            task,
            data_dir,
            model,
            bert_dataset: None,
            batch_size: 32,
            dev_batch_size: 32,
            accumulate: 1,
            epochs: 3,
            lr: 5e-5,
            epsilon: 1e-6,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            optimizer: OptimizerKind::BertAdam,
            max_len: 128,
            pad_to_multiple_of: None,
            seed: 2,
            log_interval: 10,
            output_dir: PathBuf::from("./output_dir"),
            only_inference: false,
            overwrite: false,
            backend: BackendKind::Cpu,
            dtype: Precision::Float32,
            max_train_examples: None,
            gpus: vec![0],
            ckpt_interval: 0,
            keep_checkpoints: 1,
            skip_damaged_checkpoints: false,
            print: true,
        }
    }

    /// Reject flag values no run can use, naming the flag.
    /// `--pad-to-multiple-of`, or the backend's default.
    pub fn pad_multiple(&self) -> usize {
        self.backend.pad_multiple(self.pad_to_multiple_of)
    }

    /// The settings that decide the trajectory: a checkpoint continues only a run with the
    /// same ones.
    pub fn trajectory_fingerprint(&self) -> serde_json::Value {
        serde_json::json!({
            "task": self.task.dir_name(),
            "model": format!("{:?}", self.model),
            "bert_dataset": self.bert_dataset,
            "batch_size": self.batch_size,
            "accumulate": self.accumulate,
            "ranks": self.gpus.len(),
            "epochs": self.epochs,
            "lr": self.lr,
            "epsilon": self.epsilon,
            "warmup_ratio": self.warmup_ratio,
            "weight_decay": self.weight_decay,
            "max_grad_norm": self.max_grad_norm,
            "optimizer": self.optimizer,
            "max_len": self.max_len,
            "pad_multiple": self.pad_multiple(),
            "seed": self.seed,
            "dtype": self.dtype,
            "max_train_examples": self.max_train_examples,
        })
    }

    pub fn validate(&self) -> Result<()> {
        for (flag, value) in [
            ("--batch-size", self.batch_size),
            ("--dev-batch-size", self.dev_batch_size),
            ("--accumulate", self.accumulate),
            ("--epochs", self.epochs),
            ("--log-interval", self.log_interval),
            ("--pad-to-multiple-of", self.pad_multiple()),
            ("--keep-checkpoints", self.keep_checkpoints),
            ("--gpus (a list)", self.gpus.len()),
        ] {
            ensure!(value >= 1, "{flag} must be at least 1");
        }
        ensure!(
            self.max_len >= 3,
            "--max-len must leave room for [CLS], [SEP] and a token (at least 3), got {}",
            self.max_len
        );
        ensure!(
            self.lr.is_finite() && self.lr > 0.0,
            "--lr must be a positive number, got {}",
            self.lr
        );
        ensure!(
            self.epsilon.is_finite() && self.epsilon > 0.0,
            "--epsilon must be a positive number, got {}",
            self.epsilon
        );
        ensure!(
            (0.0..=1.0).contains(&self.warmup_ratio),
            "--warmup-ratio must be in [0, 1], got {}",
            self.warmup_ratio
        );
        if let Some(n) = self.max_train_examples {
            ensure!(n >= 1, "--max-train-examples must be at least 1");
        }
        if self.only_inference {
            ensure!(
                matches!(self.model, ModelSource::Dir(_)),
                "--only-inference needs --model DIR: a fine-tuned directory (e.g. OUTPUT_DIR/best)"
            );
        }
        Ok(())
    }
}
