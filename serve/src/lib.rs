//! `bert-serve`: a BERT encoder behind HTTP, in the shapes of HuggingFace's
//! text-embeddings-inference and OpenAI's embeddings API.
//!
//! Three parts with one job each, as in text-embeddings-inference: the routes ([`api`]: check,
//! tokenize, shape answers), the queue ([`batcher`]: one worker thread owns the model and packs
//! waiting requests into batches under a token budget) and the model itself
//! (`bert_model::BertEmbedding`, the same one `bert-embed` and the browser use, or
//! `bert_model::classify::SequenceClassifier` for a fine-tuned classifier's `/predict`).

pub mod api;
pub mod batcher;
pub mod metrics;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use bert_model::classify::SequenceClassifier;
use bert_model::{BertEmbedding, Precision};
use burn::tensor::Device;

pub use api::Limits;
pub use batcher::Model;

/// How a model is loaded for serving.
#[derive(Debug, Clone, Copy)]
pub struct ModelOptions {
    /// Inputs are cut (or, without `truncate`, refused) at this many tokens; `None`: the
    /// model's own limit.
    pub max_input_length: Option<usize>,
    /// What the encoder computes in (`--dtype`).
    pub precision: Precision,
    /// Embedding batches are padded to a multiple of this many tokens (GPU backends: 32).
    pub pad_multiple: usize,
}

impl Model {
    /// A model directory on `device`: a fine-tuned classifier where the weights have a
    /// classification head, else an encoder served for embeddings.
    pub fn load(dir: &Path, device: &Device, options: ModelOptions) -> Result<Self> {
        Ok(if SequenceClassifier::is_classifier_dir(dir) {
            let classifier = SequenceClassifier::from_dir(dir, device)?;
            let n = options
                .max_input_length
                .unwrap_or(classifier.max_seq_length());
            let classifier = classifier
                .with_max_seq_length(n)?
                .with_precision(options.precision)?;
            Self::Classifier(Arc::new(classifier))
        } else {
            let embedder = BertEmbedding::from_dir(dir, device)?.0;
            let n = options
                .max_input_length
                .unwrap_or(embedder.max_seq_length());
            let embedder = embedder
                .with_max_seq_length(n)?
                .with_precision(options.precision)?
                .with_pad_multiple(options.pad_multiple)?;
            Self::Embedding(Arc::new(embedder))
        })
    }

    /// What the encoder computes in.
    pub fn precision(&self) -> Precision {
        match self {
            Self::Embedding(e) => e.precision(),
            Self::Classifier(c) => c.precision(),
        }
    }

    /// The longest input served, in tokens.
    pub fn max_seq_length(&self) -> usize {
        match self {
            Self::Embedding(e) => e.max_seq_length(),
            Self::Classifier(c) => c.max_seq_length(),
        }
    }
}

/// A server bound to its listener, ready to run.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: axum::Router,
    worker: std::thread::JoinHandle<()>,
}

impl Server {
    /// Start the batcher for `model` and bind `address` (`127.0.0.1:0`: any free port).
    pub async fn bind(
        model: Model,
        model_id: String,
        backend: String,
        limits: Limits,
        address: &str,
    ) -> Result<Self> {
        let metrics = Arc::new(metrics::Metrics::default());
        let (batcher, worker) = batcher::Batcher::start(model.clone(), &limits, metrics.clone());
        let state = Arc::new(api::AppState {
            model,
            batcher,
            metrics,
            limits,
            model_id,
            backend,
        });
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        Ok(Self {
            listener,
            app: api::router(state),
            worker,
        })
    }

    pub fn local_addr(&self) -> Result<std::net::SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serve until `shutdown` resolves, then finish the requests in flight and stop the worker.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the HTTP server failed")?;
        // The router (and with it every queue sender) is gone: the worker drains and ends.
        let worker = self.worker;
        tokio::task::spawn_blocking(move || worker.join())
            .await
            .ok();
        Ok(())
    }
}
