//! The shard format: the contract between `bert-pipeline` and `bert-train`. It depends on
//! Arrow and on the plain data of `config`, never on the builder.
//! See `shards/README.md` at the top of the repository for the format itself.

mod instance;
pub mod manifest;
pub mod reader;
pub mod schema;
pub mod writer;

pub use instance::Instance;
pub use manifest::{Bucket, Manifest, Shard};
pub use reader::ShardSet;
