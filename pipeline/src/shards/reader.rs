//! The one reader of shard directories: `bert-pipeline inspect` and `bert-train` both use it.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use arrow::ipc::reader::FileReader;

use super::manifest::{Manifest, Shard};
use super::schema::{from_record_batch, shard_schema};
use crate::shards::Instance;

/// A shard directory opened through its manifest.
pub struct ShardSet {
    root: PathBuf,
    manifest: Manifest,
}

impl ShardSet {
    /// Opens `path`: a directory holding `manifest.json`, or a manifest file.
    pub fn open(path: &Path) -> Result<Self> {
        let manifest_path = if path.is_dir() {
            path.join("manifest.json")
        } else {
            path.to_path_buf()
        };
        if !manifest_path.exists() {
            anyhow::bail!(
                "{} has no manifest.json: not a finished bert-pipeline output (a run still going, \
                 killed, or several --worker outputs not yet merged with `bert-pipeline merge`)",
                path.display()
            );
        }
        let manifest = Manifest::read(&manifest_path)?;
        let root = manifest_path
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(Self { root, manifest })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn shards(&self) -> &[Shard] {
        &self.manifest.shards
    }

    pub fn path_of(&self, shard: &Shard) -> PathBuf {
        self.root.join(&shard.file)
    }

    /// The shards data-parallel rank `rank` of `world` reads: within each bucket, every
    /// `world`-th shard, so ranks get equal shares of every length range.
    pub fn shards_for_rank(&self, rank: usize, world: usize) -> Vec<&Shard> {
        assert!(world > 0 && rank < world, "rank {rank} of {world}");
        let buckets = self.manifest.buckets.len().max(1);
        let mut by_bucket: Vec<Vec<&Shard>> = vec![Vec::new(); buckets];
        for shard in &self.manifest.shards {
            by_bucket[shard.bucket.min(buckets - 1)].push(shard);
        }
        by_bucket
            .into_iter()
            .flat_map(|shards| shards.into_iter().skip(rank).step_by(world))
            .collect()
    }

    /// All instances of one shard, checked against the manifest.
    pub fn read_shard(&self, shard: &Shard) -> Result<Vec<Instance>> {
        let path = self.path_of(shard);
        let file =
            File::open(&path).with_context(|| format!("cannot open shard {}", path.display()))?;
        let reader = FileReader::try_new_buffered(file, None)
            .with_context(|| format!("{} is not an Arrow IPC file", path.display()))?;
        let expected = shard_schema(self.manifest.token_id_type);
        ensure!(
            reader.schema().fields() == expected.fields(),
            "{}: schema {:?} differs from the manifest's",
            path.display(),
            reader.schema()
        );
        let mut rows = Vec::with_capacity(shard.instances as usize);
        for batch in reader {
            let batch =
                batch.with_context(|| format!("{}: damaged record batch", path.display()))?;
            rows.extend(
                from_record_batch(&batch).with_context(|| format!("in {}", path.display()))?,
            );
        }
        ensure!(
            rows.len() as u64 == shard.instances,
            "{}: {} rows, the manifest says {}",
            path.display(),
            rows.len(),
            shard.instances
        );
        Ok(rows)
    }

    /// Every instance of every shard, in manifest order (small data sets, tests, `inspect`).
    pub fn iter_instances(&self) -> impl Iterator<Item = Result<Instance>> + '_ {
        self.manifest
            .shards
            .iter()
            .flat_map(move |shard| match self.read_shard(shard) {
                Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
    }
}
