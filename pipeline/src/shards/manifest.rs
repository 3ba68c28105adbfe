//! `manifest.json`: what a shard directory holds and how it was made.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use super::schema::TokenIdType;
use crate::config::{BuildConfig, ReadStats};

pub const FORMAT_NAME: &str = "bert-pipeline-shards";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
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
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
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
pub struct Bucket {
    pub index: usize,
    pub min_length: usize,
    pub max_length: usize,
    pub instances: u64,
    pub shards: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
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
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text)
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
        Ok(manifest)
    }

    /// Writes atomically: a temp file renamed into place, so a reader never sees half of it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        bert_core::fsutil::write_atomic(path, json.as_bytes())
    }
}
