//! The shard format: the contract between `bert-pipeline` and `bert-train`.
//! See `shards/README.md` at the top of the repository for the format itself.

pub mod manifest;
pub mod reader;
pub mod schema;
pub mod writer;

pub use manifest::{Bucket, Manifest, Shard};
pub use reader::ShardSet;
