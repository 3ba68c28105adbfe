//! The one reader of shard directories: `bert-pipeline inspect` and `bert-train` both use it.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use arrow::ipc::reader::FileReader;
use bert_core::vocab::sha256_hex;

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
        let set = Self { root, manifest };
        set.check_files()?;
        Ok(set)
    }

    /// Every shard the manifest lists is a regular file inside the directory (symbolic links
    /// included) with the size the manifest gives: cheap, so done before any work starts.
    fn check_files(&self) -> Result<()> {
        let root = std::fs::canonicalize(&self.root)
            .with_context(|| format!("cannot resolve {}", self.root.display()))?;
        for shard in &self.manifest.shards {
            let path = self.path_of(shard);
            let real = std::fs::canonicalize(&path)
                .with_context(|| format!("shard {} is missing", path.display()))?;
            ensure!(
                real.starts_with(&root),
                "shard {} resolves to {}, outside the shard directory {}",
                path.display(),
                real.display(),
                root.display()
            );
            let meta = std::fs::metadata(&real)
                .with_context(|| format!("cannot read {}", path.display()))?;
            ensure!(
                meta.is_file(),
                "shard {} is not a regular file",
                path.display()
            );
            ensure!(
                meta.len() == shard.bytes,
                "shard {} has {} bytes, the manifest says {}: truncated, or replaced after the \
                 build",
                path.display(),
                meta.len(),
                shard.bytes
            );
        }
        Ok(())
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

    /// All instances of one shard. The bytes are checked against the manifest's sha256 before
    /// Arrow reads them (and the very bytes hashed are the ones parsed), then every row is
    /// checked against the vocabulary and the shard's length range.
    pub fn read_shard(&self, shard: &Shard) -> Result<Vec<Instance>> {
        let path = self.path_of(shard);
        let bytes = self.read_verified(shard, &path)?;
        let rows = crate::panics::catch_quietly(|| self.parse(shard, bytes))
            .with_context(|| format!("{} holds damaged Arrow data", path.display()))?;
        ensure!(
            rows.len() as u64 == shard.instances,
            "{}: {} rows, the manifest says {}",
            path.display(),
            rows.len(),
            shard.instances
        );
        Ok(rows)
    }

    fn parse(&self, shard: &Shard, bytes: Vec<u8>) -> Result<Vec<Instance>> {
        let reader =
            FileReader::try_new(Cursor::new(bytes), None).context("not an Arrow IPC file")?;
        let expected = shard_schema(self.manifest.token_id_type);
        ensure!(
            reader.schema().fields() == expected.fields(),
            "schema {:?} differs from the manifest's",
            reader.schema()
        );
        // `validate` bounds `instances` by the file's size.
        let mut rows = Vec::with_capacity(shard.instances as usize);
        for batch in reader {
            let batch = batch.context("damaged record batch")?;
            let first = rows.len();
            let batch_rows = from_record_batch(&batch)?;
            for (i, row) in batch_rows.iter().enumerate() {
                self.check_row(shard, row)
                    .with_context(|| format!("row {}", first + i))?;
            }
            rows.extend(batch_rows);
        }
        Ok(rows)
    }

    /// Checks every shard's size and sha256 (`merge`: before a manifest vouches for them).
    pub fn verify_all(&self) -> Result<()> {
        for shard in self.shards() {
            self.read_verified(shard, &self.path_of(shard))?;
        }
        Ok(())
    }

    /// The shard's bytes, if their size and sha256 are the manifest's.
    fn read_verified(&self, shard: &Shard, path: &Path) -> Result<Vec<u8>> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open shard {}", path.display()))?;
        let mut bytes = Vec::with_capacity(shard.bytes as usize);
        file.take(shard.bytes + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read shard {}", path.display()))?;
        ensure!(
            bytes.len() as u64 == shard.bytes,
            "shard {} has {} bytes, the manifest says {}: truncated, or replaced after the build",
            path.display(),
            bytes.len(),
            shard.bytes
        );
        let sha256 = sha256_hex(&bytes);
        if sha256 != shard.sha256 {
            bail!(
                "shard {} is damaged: its sha256 is {sha256}, the manifest says {}; rebuild \
                 the shards (or restore the file)",
                path.display(),
                shard.sha256
            );
        }
        Ok(bytes)
    }

    /// What the trainer relies on beyond the schema: ids inside the vocabulary, segments and
    /// labels 0 or 1, the length inside the shard's bucket.
    fn check_row(&self, shard: &Shard, row: &Instance) -> Result<()> {
        let vocab = self.manifest.vocab.size;
        let n = row.valid_length();
        ensure!(
            (shard.min_length..=shard.max_length).contains(&n),
            "length {n} is outside the shard's range {}..={}",
            shard.min_length,
            shard.max_length
        );
        if let Some(id) = row
            .input_ids
            .iter()
            .chain(&row.masked_lm_ids)
            .find(|&&id| id as usize >= vocab)
        {
            bail!("token id {id} is outside the vocabulary ({vocab} tokens)");
        }
        ensure!(
            row.segment_ids.iter().all(|&s| s <= 1) && row.next_sentence_label <= 1,
            "segment ids or next-sentence label other than 0 and 1"
        );
        Ok(())
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
