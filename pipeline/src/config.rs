//! What a build is asked to do and what it read: plain data that the builder, the input
//! reader and the shard format's manifest share, so that the format never imports the builder.

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

/// How input text is laid out.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// BERT's format: one sentence per line, a blank line between documents.
    Sentences,
    /// Ordinary prose: paragraphs of wrapped lines, split into sentences for you; each file
    /// is a document.
    Raw,
}

/// What to do with a line that is not valid UTF-8.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalidUtf8 {
    /// Stop with the file and line number.
    Fail,
    /// Skip the line and count it.
    Skip,
}

/// Counters a reader keeps while streaming.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadStats {
    pub files: u64,
    pub lines: u64,
    pub invalid_utf8_lines_skipped: u64,
    pub documents_split_for_size: u64,
}

impl ReadStats {
    /// Adds another reader's counts (merging workers' manifests).
    pub fn add(&mut self, other: &ReadStats) {
        self.files += other.files;
        self.lines += other.lines;
        self.invalid_utf8_lines_skipped += other.invalid_utf8_lines_skipped;
        self.documents_split_for_size += other.documents_split_for_size;
    }
}

/// `--dupe-factor` above this is surely a typo (the reference uses 10; RoBERTa-style
/// re-masking is `bert-train --dynamic-masking`).
pub const MAX_DUPE_FACTOR: u64 = 1000;

/// Everything that decides the output; recorded in the manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    pub vocab: String,
    /// `None`: follow the vocabulary.
    pub do_lower_case: Option<bool>,
    pub max_seq_length: usize,
    pub max_predictions_per_seq: usize,
    pub masked_lm_prob: f64,
    pub short_seq_prob: f64,
    pub dupe_factor: usize,
    pub random_seed: u64,
    pub whole_word_mask: bool,
    pub num_buckets: usize,
    pub shard_size: u64,
    pub input_format: InputFormat,
    pub on_invalid_utf8: OnInvalidUtf8,
    pub pool_size_mib: usize,
    pub worker_index: usize,
    pub worker_count: usize,
}

impl Default for BuildConfig {
    /// The reference script's defaults.
    fn default() -> Self {
        Self {
            vocab: "book_corpus_wiki_en_uncased".into(),
            do_lower_case: None,
            max_seq_length: 128,
            max_predictions_per_seq: 20,
            masked_lm_prob: 0.15,
            short_seq_prob: 0.1,
            dupe_factor: 10,
            random_seed: 12345,
            whole_word_mask: false,
            num_buckets: 4,
            shard_size: 16384,
            input_format: InputFormat::Sentences,
            on_invalid_utf8: OnInvalidUtf8::Fail,
            pool_size_mib: 16,
            worker_index: 0,
            worker_count: 1,
        }
    }
}

impl BuildConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            (8..=65535).contains(&self.max_seq_length),
            "--max-seq-length must be between 8 and 65535, got {}",
            self.max_seq_length
        );
        for (flag, p) in [
            ("--masked-lm-prob", self.masked_lm_prob),
            ("--short-seq-prob", self.short_seq_prob),
        ] {
            ensure!(
                (0.0..=1.0).contains(&p),
                "{flag} must be a probability in [0, 1], got {p}"
            );
        }
        ensure!(
            self.max_predictions_per_seq >= 1,
            "--max-predictions-per-seq must be at least 1"
        );
        ensure!(
            self.max_predictions_per_seq <= self.max_seq_length,
            "--max-predictions-per-seq {} is more than --max-seq-length {}",
            self.max_predictions_per_seq,
            self.max_seq_length
        );
        // Upper bounds: a typo must be an error, not a build that never ends.
        for (flag, value, max) in [
            ("--dupe-factor", self.dupe_factor as u64, MAX_DUPE_FACTOR),
            ("--shard-size", self.shard_size, 1 << 32),
            ("--pool-size", self.pool_size_mib as u64, 1 << 16),
            ("--worker (N)", self.worker_count as u64, 1 << 16),
        ] {
            ensure!(
                (1..=max).contains(&value),
                "{flag} must be between 1 and {max}, got {value}"
            );
        }
        let m = self.max_seq_length;
        let fits = |n: usize| n >= 1 && n <= m && (n - 1) * m.div_ceil(n) < m;
        if !fits(self.num_buckets) {
            let below = (1..self.num_buckets.min(m))
                .rev()
                .find(|&n| fits(n))
                .unwrap_or(1);
            bail!(
                "--num-buckets {} does not split lengths 1..={m} into non-empty ranges of equal \
                 width; use at most {below} (or {m}, one length each)",
                self.num_buckets
            );
        }
        ensure!(
            self.worker_count >= 1 && self.worker_index < self.worker_count,
            "--worker must be I/N with 0 <= I < N, got {}/{}",
            self.worker_index,
            self.worker_count
        );
        Ok(())
    }

    /// File-name prefix of this worker's shards and manifest (empty for a single worker).
    pub fn worker_prefix(&self) -> String {
        if self.worker_count == 1 {
            String::new()
        } else {
            format!("w{:03}-of-{:03}-", self.worker_index, self.worker_count)
        }
    }

    pub fn manifest_name(&self) -> String {
        if self.worker_count == 1 {
            "manifest.json".into()
        } else {
            format!(
                "manifest-{}.json",
                self.worker_prefix().trim_end_matches('-')
            )
        }
    }
}
