//! BERT pretraining: masked-LM + next-sentence prediction on `bert-pipeline` shards, as
//! GluonNLP's `run_pretraining.py`.
//!
//! - [`config`]: every flag of `bert-train`, and the fingerprint a checkpoint must match.
//! - [`loss`]: a loader `Batch` as tensors, and the MLM + NSP losses and accuracies.
//! - [`step`]: pretraining as a task of the training core's step (`crate::training`).
//! - [`metrics`]: the log line and `metrics.jsonl`; [`plot`]: `metrics.svg` of the curves.
//! - [`eval`]: accuracy and loss over every instance of a shard directory.
//! - [`trainer`]: the loop that ties them together.

pub mod config;
pub mod eval;
pub mod loss;
pub mod metrics;
pub mod plot;
pub mod step;
pub mod trainer;

pub use config::PretrainConfig;
pub use eval::{EvalResult, evaluate};
pub use trainer::{RunOptions, Summary, train, train_in};
