//! The wasm-bindgen surface. `js/embedder.js` wraps it: it fetches the model files, checks
//! `navigator.gpu` before asking for WebGPU (without it wgpu would abort the whole module),
//! and exposes `Embedder.load` / `embed`.

use bert_model::BertEmbedding;
use bert_model::embed::{EmbedOptions, Pooling};
use burn::tensor::Device;
use js_sys::{Array, Float32Array, Uint32Array};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// With `panic = "abort"` a panic ends the module; print why first.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| console_error(&info.to_string())));
}

/// The backends this build has, by cargo feature (`webgpu`, `cpu`): `embedder.js` picks among them.
#[wasm_bindgen]
pub fn backends() -> Vec<String> {
    let mut built = Vec::new();
    if cfg!(feature = "webgpu") {
        built.push("webgpu".to_string());
    }
    if cfg!(feature = "cpu") {
        built.push("cpu".to_string());
    }
    built
}

fn js_error(e: anyhow::Error) -> JsError {
    JsError::new(&format!("{e:#}"))
}

/// The loaded model, on `backend` ("webgpu" or "cpu").
#[wasm_bindgen(js_name = WasmEmbedder)]
pub struct WasmEmbedder {
    inner: BertEmbedding,
    backend: String,
}

#[wasm_bindgen(js_class = WasmEmbedder)]
impl WasmEmbedder {
    /// `backend` is "webgpu" or "cpu"; the caller has checked that WebGPU exists.
    pub async fn create(
        weights: Vec<u8>,
        config_json: String,
        tokenizer_json: Vec<u8>,
        backend: String,
        max_length: Option<u32>,
    ) -> Result<WasmEmbedder, JsError> {
        let device = match backend.as_str() {
            #[cfg(feature = "webgpu")]
            "webgpu" => Device::wgpu_options()
                .init_async()
                .await
                .map_err(|e| JsError::new(&format!("WebGPU initialisation failed: {e}")))?,
            #[cfg(feature = "cpu")]
            "cpu" => Device::flex(),
            other => {
                return Err(JsError::new(&format!(
                    "backend {other:?} is not in this build of wasm-embed (it has: {})",
                    backends().join(", ")
                )));
            }
        };
        let inner = BertEmbedding::from_bytes(
            weights,
            &config_json,
            &tokenizer_json,
            max_length.map(|n| n as usize),
            &device,
        )
        .map_err(js_error)?;
        Ok(Self { inner, backend })
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> u32 {
        self.inner.dim() as u32
    }

    #[wasm_bindgen(getter, js_name = maxLength)]
    pub fn max_length(&self) -> u32 {
        self.inner.max_seq_length() as u32
    }

    /// One `Uint32Array` of token ids per sentence.
    pub fn tokenize(&self, sentences: Vec<String>) -> Result<Array, JsError> {
        let ids = self.inner.tokenize(&sentences).map_err(js_error)?;
        Ok(ids.iter().map(|s| Uint32Array::from(&s[..])).collect())
    }

    /// One `Float32Array` per sentence. `pooling` is "mean" or "cls".
    pub async fn embed(
        &self,
        sentences: Vec<String>,
        pooling: String,
        normalize: bool,
        batch_size: u32,
    ) -> Result<Array, JsError> {
        let pooling: Pooling = pooling.parse().map_err(|e| JsError::new(&format!("{e}")))?;
        let options = EmbedOptions {
            pooling,
            normalize,
            batch_size: batch_size as usize,
        };
        let vectors = self
            .inner
            .embed_async(&sentences, options)
            .await
            .map_err(js_error)?;
        Ok(vectors.iter().map(|v| Float32Array::from(&v[..])).collect())
    }
}
