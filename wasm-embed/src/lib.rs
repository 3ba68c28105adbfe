//! The `bert-train` encoder in the browser.
//!
//! - [`Embedder`] (any target): a model from bytes (safetensors + `config.json` +
//!   `tokenizer.json`), HF tokenization, the encoder of `bert_train::model`, pooling, and an
//!   async read-back (WebGPU cannot read a buffer synchronously).
//! - `web` (wasm32 only): the wasm-bindgen surface that `js/embedder.js` wraps into the public
//!   JS API (`Embedder.load`, `embed`, `backend`, `dim`).
//!
//! The crate builds on the host too, so the workspace's native build and its tests cover it.

#[cfg(not(any(feature = "webgpu", feature = "cpu")))]
compile_error!("wasm-embed needs a backend: enable the `webgpu` or `cpu` feature (or both)");

mod block_on;
mod embedder;
#[cfg(target_arch = "wasm32")]
mod web;

pub use block_on::block_on;
pub use embedder::{EmbedOptions, Embedder};
