//! End-to-end tests across the workspace's crates, one module per journey, in one test binary.

mod browser_demo;
mod corpus_to_embeddings;
mod corpus_to_shards;
