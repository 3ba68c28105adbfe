//! What the data pipeline (`bert-pipeline`) and the encoder (`bert-model`) both stand on, so
//! that neither imports the other:
//!
//! - [`vocab`]: the seed's bundled WordPiece vocabularies, `vocab.txt` / `tokenizer.json` files,
//!   and the HuggingFace `tokenizers` pipeline built from them (ids equal HuggingFace's).
//! - [`rng`]: deterministic random streams and seed mixing (SplitMix64), so results depend on
//!   the seed and the unit of work, not on threads or resumption.
//! - [`fsutil`]: atomic file writes (temp file, sync, rename).
//! - [`settings`]: which settings differ between two records of them, for refusals that name them.

mod ascii_wordpiece;
pub mod fsutil;
pub mod rng;
pub mod settings;
pub mod vocab;

pub use vocab::{Vocab, sha256_hex};
