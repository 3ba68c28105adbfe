//! Sentence and token embeddings, what GluonNLP's `BertEmbedding` does: tokens, per-token
//! vectors and a sentence vector per input sentence. One embedder serves the native API (a
//! model directory, synchronous) and the browser (bytes, asynchronous read-back).

mod embedder;
pub mod oov;
pub mod pooling;
pub mod st_config;

pub use embedder::{BertEmbedding, EmbedOptions, InputVectors, SentenceEmbedding};
pub use oov::{OovWay, fold_pieces};
pub use pooling::{Pooling, l2_normalize, pool};
pub use st_config::SentenceTransformersDefaults;
