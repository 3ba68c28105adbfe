//! BERT in burn: the encoder, HuggingFace checkpoints, and sentence/token embeddings.
//!
//! - [`model`]: `BertConfig` (HF `config.json`, model zoo) and the burn modules, one per module
//!   of HF's BERT so that parameter paths are the checkpoint's keys.
//! - [`checkpoint`]: load HF safetensors (with or without `bert.`, `gamma`/`beta` or
//!   `weight`/`bias`) and write them back in HF's layout.
//! - [`embed`]: `BertEmbedding`, pooling and GluonNLP's `oov_way`.
//! - [`backend`]: `--backend cpu|wgpu|cuda` at run time.
//! - [`kernels`]: WGSL projections and attention for wgpu devices without matrix cores.
//! - [`pretrain`]: MLM + NSP pretraining on `bert-pipeline` shards.
//! - [`tasks`]: GLUE/XNLI readers, their metrics, and SQuAD's official evaluation.
//! - [`finetune`]: fine-tuning sentence(-pair) classifiers and regressors (GLUE, XNLI).
//! - [`cli`]: the subcommands of `bert-train` (fine-tuning, SQuAD evaluation, export).
//!
//! Without the `std` feature the crate builds for `wasm32-unknown-unknown`: the model, config,
//! pooling and loading weights from bytes are there; files, the HF tokenizer and the CLI are not.

extern crate alloc;

pub mod backend;
pub mod checkpoint;
#[cfg(feature = "std")]
pub mod cli;
pub mod embed;
pub mod error;
#[cfg(feature = "std")]
pub mod finetune;
pub mod kernels;
pub mod model;
#[cfg(feature = "std")]
pub mod pretrain;
#[cfg(feature = "std")]
pub mod tasks;

pub use backend::BackendKind;
#[cfg(feature = "std")]
pub use embed::{BertEmbedding, SentenceEmbedding};
pub use error::{BertError, TensorProblem};
pub use model::{BertConfig, BertForPreTraining, BertInput, BertModel, BertModelOutput};
