//! End-to-end tests live beside this file (`corpus_to_shards.rs`, ...); the Python checkers
//! they share with the crates' own tests are in `python/`.

pub use test_support::{reference_python, repo_root};
