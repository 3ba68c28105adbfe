//! Sentence and token embeddings, what GluonNLP's `BertEmbedding` does: tokens, per-token
//! vectors and a sentence vector per input sentence.

#[cfg(feature = "std")]
mod embedder;
pub mod oov;
#[cfg(feature = "std")]
pub mod output;
pub mod pooling;
#[cfg(feature = "std")]
pub mod st_config;

#[cfg(feature = "std")]
pub use embedder::{BertEmbedding, SentenceEmbedding};
pub use oov::{OovWay, fold_pieces};
pub use pooling::{Pooling, l2_normalize, pool};
#[cfg(feature = "std")]
pub use st_config::SentenceTransformersDefaults;
