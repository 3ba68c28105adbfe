//! BERT pretraining: masked-LM + next-sentence prediction on `bert-pipeline` shards, as
//! GluonNLP's `run_pretraining.py`.
//!
//! - [`config`]: every flag of `bert-train`, and the fingerprint a checkpoint must match.
//! - [`schedule`]: linear warmup, then linear decay to zero.
//! - [`loss`]: a loader `Batch` as tensors, and the MLM + NSP losses and accuracies.
//! - [`optim`]: BERTAdam / AdamW with weight-decay groups, global-norm gradient clipping.
//! - [`precision`]: `--dtype`: half-precision compute, float32 master weights, loss scaling.
//! - [`init`]: BERT's initialisation for training from scratch.
//! - [`step`]: one optimizer step over accumulated micro-batches.
//! - [`state`]: checkpoints (model, optimizer, step, data position), atomic, last K kept.
//! - [`metrics`]: the log line and `metrics.jsonl`; [`plot`]: `metrics.svg` of the curves.
//! - [`progress`]: a progress bar on a terminal, plain lines otherwise.
//! - [`eval`]: accuracy and loss over every instance of a shard directory.
//! - [`trainer`]: the loop that ties them together.

pub mod config;
pub mod eval;
pub mod init;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod precision;
pub mod progress;
pub mod schedule;
pub mod state;
pub mod step;
pub mod trainer;

pub use config::{ModelSource, PretrainConfig};
pub use eval::{EvalResult, evaluate};
pub use optim::OptimizerKind;
pub use precision::Precision;
pub use trainer::{RunOptions, Summary, train};
