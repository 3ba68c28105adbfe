//! What a pretraining run is: every `bert-train` flag, checked before anything is allocated.

use std::path::PathBuf;

use anyhow::{Result, ensure};

use crate::training::optim::OptimizerKind;
use crate::training::precision::Precision;
use bert_model::backend::BackendKind;
use bert_model::checkpoint::ModelSource;
use bert_model::modules::BertConfig;

/// Everything `bert-train` (pretraining) was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainConfig {
    pub shards: PathBuf,
    pub model: ModelSource,
    /// Start from the weights in the `--model` directory instead of a fresh initialisation.
    pub pretrained: bool,
    /// Sequences per device and micro-batch; with `use_avg_len`, tokens per micro-batch.
    pub batch_size: usize,
    /// Micro-batches whose gradients add up to one optimizer step.
    pub accumulate: usize,
    pub lr: f64,
    pub warmup_ratio: f64,
    /// Optimizer steps.
    pub num_steps: u64,
    pub optimizer: OptimizerKind,
    /// Decoupled weight decay, applied to every parameter but LayerNorm's and the biases.
    pub weight_decay: f64,
    /// Gradients are rescaled to at most this global L2 norm.
    pub max_grad_norm: f64,
    pub use_avg_len: bool,
    pub dynamic_masking: bool,
    /// Pad batches to multiples of this many tokens (and every row to the shards'
    /// `max_predictions_per_seq` prediction slots); `None`: the backend's default
    /// ([`BackendKind::default_pad_multiple`]). Padding is masked, so like the backend it may
    /// change between a run and its resumption.
    pub pad_to_multiple_of: Option<usize>,
    /// Leave out each shard's last, partial batch (`LoaderConfig::drop_remainder`); `None`: on
    /// GPU backends only, where a new row count means new kernels.
    pub drop_remainder: Option<bool>,
    pub ckpt_dir: PathBuf,
    pub ckpt_interval: u64,
    /// Checkpoints kept (the oldest is deleted once a new one is complete).
    pub keep_checkpoints: usize,
    /// Resume from the newest intact checkpoint, skipping damaged newer ones.
    pub skip_damaged_checkpoints: bool,
    pub log_interval: u64,
    pub seed: u64,
    pub backend: BackendKind,
    /// Data-parallel ranks, one per listed device index (`--gpus 0,1`); the first is the main
    /// device, where the optimizer runs. Each rank reads its own share of the shards.
    pub gpus: Vec<usize>,
    /// `--dtype`: the precision of forward and backward (the weights stay float32).
    pub dtype: Precision,
    /// Evaluated at the end of training (`--data-eval`).
    pub data_eval: Option<PathBuf>,
    pub batch_size_eval: usize,
    /// `--dropout`: the hidden and attention dropout, instead of the model config's.
    pub dropout: Option<f64>,
}

impl PretrainConfig {
    /// `--pad-to-multiple-of`, or the backend's default: exact batches on the CPU, a few fixed
    /// shapes on GPU backends (`BatchShape::padded`).
    pub fn pad_multiple(&self) -> usize {
        self.backend.pad_multiple(self.pad_to_multiple_of)
    }

    /// `--drop-remainder`, or the backend's default: yes on GPU backends, no on the CPU.
    pub fn drop_remainder(&self) -> bool {
        self.drop_remainder
            .unwrap_or(self.backend != BackendKind::Cpu)
    }

    /// GluonNLP's defaults for everything but the shards.
    pub fn new(shards: PathBuf) -> Self {
        Self {
            shards,
            model: ModelSource::Zoo("bert_12_768_12".into()),
            pretrained: false,
            batch_size: 8,
            accumulate: 1,
            lr: 1e-4,
            warmup_ratio: 0.01,
            num_steps: 20,
            optimizer: OptimizerKind::BertAdam,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            use_avg_len: false,
            dynamic_masking: false,
            ckpt_dir: PathBuf::from("ckpt_dir"),
            ckpt_interval: 250_000,
            keep_checkpoints: 3,
            skip_damaged_checkpoints: false,
            log_interval: 250,
            seed: 0,
            pad_to_multiple_of: None,
            drop_remainder: None,
            backend: BackendKind::Cpu,
            gpus: vec![0],
            dtype: Precision::Float32,
            data_eval: None,
            batch_size_eval: 8,
            dropout: None,
        }
    }

    /// Reject flag values no run can use, naming the flag.
    pub fn validate(&self) -> Result<()> {
        for (flag, value) in [
            ("--batch-size", self.batch_size as u64),
            ("--accumulate", self.accumulate as u64),
            ("--num-steps", self.num_steps),
            ("--ckpt-interval", self.ckpt_interval),
            ("--log-interval", self.log_interval),
            ("--keep-checkpoints", self.keep_checkpoints as u64),
            ("--batch-size-eval", self.batch_size_eval as u64),
            ("--pad-to-multiple-of", self.pad_multiple() as u64),
        ] {
            ensure!(value >= 1, "{flag} must be at least 1");
        }
        ensure!(
            self.lr.is_finite() && self.lr > 0.0,
            "--lr must be a positive number, got {}",
            self.lr
        );
        ensure!(
            (0.0..=1.0).contains(&self.warmup_ratio),
            "--warmup-ratio must be in [0, 1], got {}",
            self.warmup_ratio
        );
        ensure!(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "weight decay must be >= 0, got {}",
            self.weight_decay
        );
        ensure!(
            self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0,
            "the gradient clipping norm must be positive, got {}",
            self.max_grad_norm
        );
        ensure!(
            !self.gpus.is_empty(),
            "--gpus needs at least one device index"
        );
        if self.backend != BackendKind::Cpu {
            for (i, g) in self.gpus.iter().enumerate() {
                ensure!(!self.gpus[..i].contains(g), "--gpus lists device {g} twice");
            }
        }
        if let Some(p) = self.dropout {
            ensure!(
                (0.0..1.0).contains(&p),
                "--dropout must be in [0, 1), got {p}"
            );
        }
        if self.pretrained {
            ensure!(
                matches!(self.model, ModelSource::Dir(_)),
                "--pretrained needs weights: a zoo checkpoint, a hub id or a model directory"
            );
        }
        Ok(())
    }

    /// The settings that decide the training trajectory, as JSON: a checkpoint made under other
    /// values cannot be continued. Logging, checkpointing and the backend may change freely.
    /// `model` with `--dropout` applied, if given.
    pub fn with_dropout(&self, mut model: BertConfig) -> BertConfig {
        if let Some(p) = self.dropout {
            model.hidden_dropout_prob = p;
            model.attention_probs_dropout_prob = p;
        }
        model
    }

    /// What decides the trajectory; `ranks`: the job's data-parallel ranks (processes ×
    /// `--gpus`).
    pub fn trajectory_fingerprint(&self, model: &BertConfig, ranks: usize) -> serde_json::Value {
        serde_json::json!({
            "model": serde_json::to_value(model).unwrap_or_default(),
            "pretrained": self.pretrained,
            "batch_size": self.batch_size,
            "accumulate": self.accumulate,
            "lr": self.lr,
            "warmup_ratio": self.warmup_ratio,
            "num_steps": self.num_steps,
            "optimizer": self.optimizer,
            "weight_decay": self.weight_decay,
            "max_grad_norm": self.max_grad_norm,
            "use_avg_len": self.use_avg_len,
            "dynamic_masking": self.dynamic_masking,
            "seed": self.seed,
            // Each rank reads its own share of the shards: another count is another data order.
            "ranks": ranks,
            "dtype": self.dtype,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_optimizers() {
        assert_eq!(
            "BERTAdam".parse::<OptimizerKind>().unwrap(),
            OptimizerKind::BertAdam
        );
        assert_eq!(
            "adamw".parse::<OptimizerKind>().unwrap(),
            OptimizerKind::AdamW
        );
        assert_eq!(
            "LAMB".parse::<OptimizerKind>().unwrap(),
            OptimizerKind::Lamb
        );
        let err = "sgd".parse::<OptimizerKind>().unwrap_err().to_string();
        assert!(err.contains("bertadam, adamw or lamb"), "{err}");
    }

    #[test]
    fn model_is_a_zoo_name_or_a_config_dir() {
        let random = |model: &str| {
            ModelSource::resolve(&bert_model::checkpoint::ModelRequest {
                model: model.into(),
                random_weights: true,
                ..Default::default()
            })
        };
        assert_eq!(
            random("bert_2_128_2").unwrap(),
            ModelSource::Zoo("bert_2_128_2".into())
        );
        let err = random("/nonexistent/bert").unwrap_err().to_string();
        assert!(err.contains("bert_12_768_12"), "{err}");
        let zoo = ModelSource::Zoo("bert_2_128_2".into());
        assert_eq!(zoo.bert_config(119_547).unwrap().vocab_size, 119_547);
    }

    #[test]
    fn rejects_unusable_flags() {
        let mut c = PretrainConfig::new("shards".into());
        c.validate().unwrap();
        c.accumulate = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("--accumulate")
        );
        c.accumulate = 1;
        c.warmup_ratio = 1.5;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("--warmup-ratio")
        );
        c.warmup_ratio = 0.1;
        c.pretrained = true;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("--pretrained")
        );
    }
}
