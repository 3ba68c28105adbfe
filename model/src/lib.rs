//! The BERT encoder in burn: one implementation for the trainers, the embedding tools and the
//! browser.
//!
//! - [`modules`]: `BertConfig` (HF `config.json`, the model zoo's shapes) and the burn modules,
//!   one per module of HF's BERT so that parameter paths are the checkpoint's keys.
//! - [`mask`]: the padding mask that the modules and the kernels share.
//! - [`kernels`]: WGSL projections and attention for wgpu devices without matrix cores.
//! - [`checkpoint`]: HF safetensors in (from bytes or files, with or without `bert.`,
//!   `gamma`/`beta` or `weight`/`bias`), out in HF's layout, and re-encoded in another precision.
//! - [`embed`]: `BertEmbedding` (from bytes or a model directory), pooling, GluonNLP's
//!   `oov_way`, sentence-transformers' defaults.
//! - [`classify`]: a fine-tuned sequence classifier (with its tokenizer and labels) for
//!   inference, as a server's `/predict` runs it.
//! - [`backend`]: `--backend auto|cpu|wgpu|vulkan|cuda` at run time.
//! - [`precision`]: `--dtype float32|float16|bfloat16`, the cast of a model to it.
//! - [`kernel_cache`]: where GPU kernels and autotune results are kept between runs.
//! - [`error`]: what can be wrong with a checkpoint, a config or an input.
//!
//! The crate builds for `wasm32-unknown-unknown` as well as natively. What needs an operating
//! system (files, threads, a synchronous wgpu start) is native-only by target, not by feature:
//! the browser has no file system, so there a model comes from bytes.

extern crate alloc;

pub mod backend;
pub mod checkpoint;
#[cfg(not(target_arch = "wasm32"))]
pub mod classify;
pub mod embed;
pub mod error;
#[cfg(not(target_arch = "wasm32"))]
pub mod kernel_cache;
pub mod kernels;
pub mod mask;
pub mod modules;
pub mod precision;

pub use backend::BackendKind;
pub use embed::{BertEmbedding, EmbedOptions, SentenceEmbedding};
pub use error::{BertError, TensorProblem};
pub use mask::PaddingMask;
pub use modules::{BertConfig, BertForPreTraining, BertInput, BertModel, BertModelOutput};
pub use precision::Precision;
