//! Fine-tuning BERT on sentence(-pair) tasks (GLUE, XNLI), as GluonNLP's
//! `finetune_classifier.py` with HF's model layout.
//!
//! - [`config`]: every flag of `bert-train finetune-classifier`, checked up front.
//! - [`features`]: examples → token ids (pair encoding truncated like HF's `longest_first`) →
//!   batches padded to their own longest row.
//! - [`model_io`]: the model from a zoo name or a HF directory (with or without a head), the
//!   tokenizer beside it, and HF directories with the task keys in `config.json`.
//! - [`evaluate`]: predictions over a split, its metrics, GLUE submission files.
//! - [`classifier`]: the task on the training core (`crate::training`): loss, epochs, dev
//!   evaluation, the best model.
//! - [`squad`]: question answering on SQuAD 1.1 / 2.0.

pub mod classifier;
pub mod config;
pub mod evaluate;
pub mod features;
pub mod model_io;
pub mod squad;

pub use classifier::{ClassifierSummary, run_classifier};
pub use config::ClassifierConfig;
