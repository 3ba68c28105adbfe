//! `manifest.json`: what a shard directory holds and how it was made.

use std::path::{Component, Path};

use anyhow::{Context, Result, bail, ensure};
use bert_core::vocab::sha256_hex;
use serde::{Deserialize, Serialize};

use super::schema::TokenIdType;
use crate::config::{BuildConfig, ReadStats};

pub const FORMAT_NAME: &str = "bert-pipeline-shards";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub created_by: String,
    /// Every flag the shards were built with.
    pub config: BuildConfig,
    pub inputs: Vec<InputFile>,
    pub vocab: VocabInfo,
    pub token_id_type: TokenIdType,
    pub buckets: Vec<Bucket>,
    pub shards: Vec<Shard>,
    pub totals: Totals,
    /// sha256 of this manifest serialised compactly without this field: a damaged manifest
    /// is refused instead of read. Absent in manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VocabInfo {
    pub name: String,
    pub sha256: String,
    pub size: usize,
    pub lowercase: bool,
    pub pad_id: u32,
    pub unk_id: u32,
    pub cls_id: u32,
    pub sep_id: u32,
    pub mask_id: u32,
}

/// Instances whose `valid_length` lies in `min_length..=max_length`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub index: usize,
    pub min_length: usize,
    pub max_length: usize,
    pub instances: u64,
    pub shards: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// Path relative to the manifest's directory.
    pub file: String,
    pub bucket: usize,
    /// Which `--worker` wrote it (0 when there was one).
    pub worker: usize,
    /// The bucket's range (every row lies inside it).
    pub min_length: usize,
    pub max_length: usize,
    pub instances: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub documents: u64,
    pub sentences: u64,
    pub tokens: u64,
    pub instances: u64,
    /// Non-special tokens over all instances (what masking draws from).
    pub instance_tokens: u64,
    pub masked_tokens: u64,
    pub random_next: u64,
    pub read: ReadStats,
}

impl Totals {
    pub fn add(&mut self, other: &Totals) {
        self.documents += other.documents;
        self.sentences += other.sentences;
        self.tokens += other.tokens;
        self.instances += other.instances;
        self.instance_tokens += other.instance_tokens;
        self.masked_tokens += other.masked_tokens;
        self.random_next += other.random_next;
        self.read.add(&other.read);
    }
}

impl Manifest {
    /// Reads and checks a manifest: its own checksum, then that it is consistent with itself
    /// ([`Manifest::validate`]), before anything is allocated from what it says.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a bert-pipeline manifest", path.display()))?;
        ensure!(
            manifest.format == FORMAT_NAME,
            "{}: format `{}` is not `{FORMAT_NAME}`",
            path.display(),
            manifest.format
        );
        ensure!(
            manifest.format_version == FORMAT_VERSION,
            "{}: shard format version {} is not supported (this build reads version {FORMAT_VERSION})",
            path.display(),
            manifest.format_version
        );
        if let Some(saved) = &manifest.checksum {
            let now = manifest.compute_checksum()?;
            ensure!(
                *saved == now,
                "{} is damaged or was edited: its contents hash to {now}, its checksum says \
                 {saved}; rebuild the shards (or, after an intended edit, remove the \
                 `checksum` field)",
                path.display()
            );
        }
        manifest
            .validate()
            .with_context(|| format!("{} is inconsistent", path.display()))?;
        Ok(manifest)
    }

    /// Seals the manifest with a fresh checksum and writes it atomically (a temp file renamed
    /// into place, so a reader never sees half of it).
    pub fn write(&mut self, path: &Path) -> Result<()> {
        self.checksum = Some(self.compute_checksum()?);
        let json = serde_json::to_string_pretty(self)?;
        bert_core::fsutil::write_atomic(path, json.as_bytes())
    }

    fn compute_checksum(&self) -> Result<String> {
        let unsealed = Manifest {
            checksum: None,
            ..self.clone()
        };
        Ok(sha256_hex(&serde_json::to_vec(&unsealed)?))
    }

    /// Everything a reader relies on, checked against the manifest itself: bucket ids and
    /// ranges, per-bucket and total counts, shard names inside the directory, hash syntax,
    /// special ids inside the vocabulary.
    pub fn validate(&self) -> Result<()> {
        let max_len = self.config.max_seq_length;
        ensure!(
            (1..=u16::MAX as usize).contains(&max_len),
            "config.max_seq_length {max_len} is out of range"
        );
        ensure!(
            !self.buckets.is_empty() && self.buckets.len() <= max_len,
            "{} buckets for sequences of up to {max_len} tokens",
            self.buckets.len()
        );
        let v = &self.vocab;
        ensure!(v.size >= 1, "vocab.size is 0");
        ensure!(
            self.token_id_type == super::schema::TokenIdType::Uint32 || v.size <= 1 << 16,
            "a vocabulary of {} tokens does not fit uint16 token ids",
            v.size
        );
        for (name, id) in [
            ("pad_id", v.pad_id),
            ("unk_id", v.unk_id),
            ("cls_id", v.cls_id),
            ("sep_id", v.sep_id),
            ("mask_id", v.mask_id),
        ] {
            ensure!(
                (id as usize) < v.size,
                "vocab.{name} {id} is outside the vocabulary ({} tokens)",
                v.size
            );
        }
        check_sha256(&v.sha256).context("vocab.sha256")?;
        for (i, b) in self.buckets.iter().enumerate() {
            ensure!(b.index == i, "buckets[{i}] has index {}", b.index);
            ensure!(
                1 <= b.min_length && b.min_length <= b.max_length && b.max_length <= max_len,
                "bucket {i}: lengths {}..={} are not inside 1..={max_len}",
                b.min_length,
                b.max_length
            );
        }
        let mut per_bucket = vec![(0u64, 0usize); self.buckets.len()];
        let mut files = std::collections::HashSet::new();
        for (i, s) in self.shards.iter().enumerate() {
            let at = || format!("shards[{i}] ({})", s.file);
            check_file_name(&s.file).with_context(at)?;
            ensure!(files.insert(&s.file), "{}: listed twice", at());
            check_sha256(&s.sha256).with_context(at)?;
            let Some(bucket) = self.buckets.get(s.bucket) else {
                bail!(
                    "{}: bucket {} does not exist ({} buckets)",
                    at(),
                    s.bucket,
                    self.buckets.len()
                );
            };
            ensure!(
                (s.min_length, s.max_length) == (bucket.min_length, bucket.max_length),
                "{}: lengths {}..={} differ from its bucket's {}..={}",
                at(),
                s.min_length,
                s.max_length,
                bucket.min_length,
                bucket.max_length
            );
            ensure!(
                s.worker < self.config.worker_count.max(1),
                "{}: worker {} of {}",
                at(),
                s.worker,
                self.config.worker_count
            );
            // A row takes several bytes even compressed; this bounds what a reader allocates.
            ensure!(
                s.instances >= 1 && s.instances <= s.bytes,
                "{}: {} instances in {} bytes",
                at(),
                s.instances,
                s.bytes
            );
            let count = &mut per_bucket[s.bucket];
            count.0 += s.instances;
            count.1 += 1;
        }
        for (b, &(instances, shards)) in self.buckets.iter().zip(&per_bucket) {
            ensure!(
                (b.instances, b.shards) == (instances, shards),
                "bucket {} says {} instances in {} shards, its shards hold {instances} in {shards}",
                b.index,
                b.instances,
                b.shards
            );
        }
        let instances: u64 = per_bucket.iter().map(|c| c.0).sum();
        ensure!(
            self.totals.instances == instances,
            "totals.instances is {}, the shards hold {instances}",
            self.totals.instances
        );
        Ok(())
    }
}

/// A shard's name must stay inside the manifest's directory: relative, no `..`, no root.
pub fn check_file_name(file: &str) -> Result<()> {
    let path = Path::new(file);
    ensure!(
        !file.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_))),
        "file name {file:?} leaves the shard directory (absolute, `..` or empty)"
    );
    Ok(())
}

fn check_sha256(hash: &str) -> Result<()> {
    ensure!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash:?} is not a sha256 (64 hex digits)"
    );
    Ok(())
}
