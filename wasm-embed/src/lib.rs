//! The encoder of `bert-model` in the browser: the wasm-bindgen surface (`web`, wasm32 only)
//! that `js/embedder.js` wraps into the public JS API (`Embedder.load`, `embed`, `backend`,
//! `dim`).
//!
//! Everything else — loading a model from bytes, tokenizing, the encoder, pooling and the
//! asynchronous read-back that WebGPU needs — is `bert_model::BertEmbedding`, the same code
//! that native callers use; its tests (`model/tests/`) run that path on the host.

#[cfg(not(any(feature = "webgpu", feature = "cpu")))]
compile_error!("wasm-embed needs a backend: enable the `webgpu` or `cpu` feature (or both)");

#[cfg(target_arch = "wasm32")]
mod web;
