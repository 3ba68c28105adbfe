//! The training core that pretraining and fine-tuning share: a task (`pretrain`,
//! `finetune::classifier`, `finetune::squad`) brings its model, batches, loss and evaluation;
//! everything about *how* it is trained lives here.
//!
//! - [`step`]: one optimizer step — micro-batches over data-parallel ranks (`--gpus`),
//!   gradient accumulation, mixed precision, loss scaling, global-norm clipping, the update;
//!   micro-batch seeds, so dropout replays exactly after a resume.
//! - [`collective`]: the processes of a job (`mpirun -np N`, the `mpi` feature: `mpi.rs`) and
//!   what they exchange — gradient sums in buckets, loss normalisers, parameter checksums.
//! - [`checkpoint`]: checkpoints (model, optimizer, step, the task's data position), written
//!   atomically, the last K kept, and the exact resume they allow.
//! - [`epochs`]: fine-tuning's loop — epochs over a fixed example set, evaluation after each,
//!   `metrics.jsonl` + `metrics.svg`, checkpoints and exact resume; the tasks bring the rest.
//! - [`init`]: BERT's initialisation of a model trained from scratch (HF's `_init_weights`).
//! - [`optim`]: BERTAdam / AdamW / LAMB with BERT's weight-decay groups, global-norm clipping.
//! - [`schedule`]: linear warmup, then linear decay to zero.
//! - [`precision`]: `--dtype`: half-precision compute, float32 master weights, loss scaling.
//! - [`plot`]: `metrics.svg`, the curves of a run.
//! - [`progress`]: a progress bar on a terminal, plain lines otherwise.

pub mod checkpoint;
pub mod collective;
pub mod epochs;
pub mod init;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod optim;
pub mod plot;
pub mod precision;
pub mod progress;
pub mod schedule;
pub mod step;

pub use optim::OptimizerKind;
pub use precision::Precision;
