//! BERT training in burn, on the encoder of `bert-model` and the shards of `bert-pipeline`.
//!
//! - [`pretrain`]: MLM + NSP pretraining on `bert-pipeline` shards, as GluonNLP's
//!   `run_pretraining.py`.
//! - [`training`]: the training core every task runs on: the optimizer step (data
//!   parallelism, accumulation, mixed precision, clipping), optimizers, schedule, progress.
//! - [`tasks`]: GLUE/XNLI readers, their metrics, and SQuAD's official evaluation.
//! - [`finetune`]: fine-tuning sentence(-pair) classifiers and regressors (GLUE, XNLI) and
//!   question answering (SQuAD 1.1 / 2.0).
//! - [`cli`]: the subcommands of `bert-train` (fine-tuning, SQuAD evaluation, export, convert).
//! - [`embed_output`]: `bert-embed`'s output formats.

pub mod cli;
pub mod embed_output;
pub mod finetune;
pub mod pretrain;
pub mod tasks;
pub mod training;
