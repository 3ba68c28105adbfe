//! End-to-end tests live beside this file (`end_to_end.rs` lists them); the Python checkers
//! they share with the crates' own tests are in `python/`.

pub use test_support::{reference_python, repo_root};
