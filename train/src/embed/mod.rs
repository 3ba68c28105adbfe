//! Sentence and token embeddings, what GluonNLP's `BertEmbedding` does: tokens, per-token
//! vectors and a sentence vector per input sentence.

pub mod oov;
pub mod pooling;
#[cfg(feature = "std")]
mod embedder;
#[cfg(feature = "std")]
pub mod output;
#[cfg(feature = "std")]
pub mod st_config;

pub use oov::{OovWay, fold_pieces};
pub use pooling::{Pooling, l2_normalize, pool};
#[cfg(feature = "std")]
pub use embedder::{BertEmbedding, SentenceEmbedding};
#[cfg(feature = "std")]
pub use st_config::SentenceTransformersDefaults;
