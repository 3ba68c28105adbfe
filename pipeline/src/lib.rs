//! BERT pretraining data: corpora in, masked-LM + next-sentence instances out, as
//! length-bucketed, balanced Arrow IPC shards with a manifest.
//!
//! The binary `bert-pipeline` is a thin CLI over [`build::build`], [`inspect::inspect`] and
//! [`merge::merge`]; [`shards::ShardSet`] is the reader every consumer uses.

pub mod build;
pub mod config;
pub mod input;
pub mod inspect;
pub mod instances;
pub mod loader;
pub mod masking;
pub mod merge;
mod panics;
pub mod shards;
pub mod splitter;

pub use shards::{Instance, ShardSet};
