//! Where a model comes from, as `--model` names it. In this order:
//! 1. an existing local directory (a HuggingFace model directory);
//! 2. a model-zoo name (`bert_12_768_12`): its pretrained checkpoint for `--dataset-name`, from
//!    the hub cache or downloaded into it — or, asked for random weights, just the shape;
//! 3. a HuggingFace Hub id (`sentence-transformers/all-MiniLM-L6-v2`) at `--revision`.
//!
//! Checkpoints from the hub become directories of the hub cache (`snapshots/{commit}/`), so
//! everything downstream loads a directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bert_hub::{Hub, RepoRef, Unreachable};
use serde::{Deserialize, Serialize};

use super::zoo::{self, DEFAULT_DATASET, Pretrained};
use crate::modules::{BertConfig, ZOO_NAMES};

/// A model to build: random weights in a zoo shape, or a directory with weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    /// A model-zoo shape with fresh, random weights.
    Zoo(String),
    /// A HuggingFace model directory (local, or a snapshot of the hub cache).
    Dir(PathBuf),
}

/// What `--model` and its companion flags say.
#[derive(Debug, Clone, Default)]
pub struct ModelRequest {
    /// `--model`: a directory, a zoo name or a hub id.
    pub model: String,
    /// `--dataset-name` for a zoo name (default `book_corpus_wiki_en_uncased`).
    pub dataset: Option<String>,
    /// `--revision` for a hub id (a branch, tag or commit; default `main`), or to override a
    /// zoo entry's pinned commit.
    pub revision: Option<String>,
    /// Random weights in a zoo shape instead of a pretrained checkpoint.
    pub random_weights: bool,
}

impl ModelRequest {
    pub fn pretrained(model: &str) -> Self {
        Self {
            model: model.into(),
            ..Self::default()
        }
    }
}

/// The files a model load reads. Optional ones may be absent from a repository.
const REQUIRED: [&str; 2] = ["config.json", "model.safetensors"];
/// The weights of repositories that have no safetensors (older ones).
const PYTORCH_WEIGHTS: &str = "pytorch_model.bin";
const OPTIONAL: [&str; 6] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "special_tokens_map.json",
];

impl ModelSource {
    /// Resolve `request` with the hub settings of the environment (`HF_ENDPOINT`,
    /// `HF_HUB_CACHE`, `HF_TOKEN`, `HF_HUB_OFFLINE`, ...).
    pub fn resolve(request: &ModelRequest) -> Result<Self> {
        Self::resolve_with(request, &Hub::from_env())
    }

    /// The directory of `model`'s pretrained weights (a directory, a zoo name's checkpoint on
    /// `dataset`, or a hub id at `revision`): what the inference commands load.
    pub fn pretrained_dir(model: &str, dataset: &str, revision: Option<String>) -> Result<PathBuf> {
        let request = ModelRequest {
            model: model.to_string(),
            dataset: Some(dataset.to_string()),
            revision,
            random_weights: false,
        };
        match Self::resolve(&request)? {
            Self::Dir(dir) => Ok(dir),
            Self::Zoo(name) => bail!("{name} resolved to random weights, not a checkpoint"),
        }
    }

    pub fn resolve_with(request: &ModelRequest, hub: &Hub) -> Result<Self> {
        let spec = request.model.as_str();
        let dir = Path::new(spec);
        if dir.is_dir() {
            if request.random_weights {
                bail!(
                    "random weights take a model-zoo shape ({}), not a directory",
                    ZOO_NAMES.join(", ")
                );
            }
            if !dir.join("config.json").is_file() {
                bail!(
                    "--model {spec:?} is a directory without config.json (not a HuggingFace model directory)"
                );
            }
            return Ok(Self::Dir(dir.to_path_buf()));
        }
        if ZOO_NAMES.contains(&spec) {
            if request.random_weights {
                return Ok(Self::Zoo(spec.to_string()));
            }
            let dataset = request.dataset.as_deref().unwrap_or(DEFAULT_DATASET);
            let entry = zoo::pretrained(spec, dataset)?;
            let revision = request.revision.as_deref().unwrap_or(entry.revision);
            let repo = RepoRef::new(entry.repo, revision).with_aliases(&[entry.legacy_id]);
            let dir = download_model(hub, &repo)?;
            entry.check(&super::read_config(&dir)?)?;
            return Ok(Self::Dir(dir));
        }
        if request.random_weights {
            bail!(
                "random weights take a model-zoo shape ({}), not {spec:?}",
                ZOO_NAMES.join(", ")
            );
        }
        if !is_hub_id(spec) {
            bail!(
                "--model {spec:?} is not a local model directory (with config.json), a \
                 model-zoo name ({}) or a HuggingFace Hub id (org/name)",
                ZOO_NAMES.join(", ")
            );
        }
        let repo = RepoRef::new(spec, request.revision.as_deref().unwrap_or("main"));
        let dir = download_model(hub, &repo).with_context(|| {
            format!("--model {spec:?}: no such local directory, so it was taken as a hub id")
        })?;
        Ok(Self::Dir(dir))
    }

    /// The architecture; a zoo model takes `zoo_vocab_size` (the vocabulary it will use).
    pub fn bert_config(&self, zoo_vocab_size: usize) -> Result<BertConfig> {
        match self {
            Self::Zoo(name) => Ok(BertConfig::zoo(name)?.with_vocab_size(zoo_vocab_size)),
            Self::Dir(dir) => super::dir::read_config(dir),
        }
    }
}

/// `org/name` or a legacy one-part id, in the hub's alphabet.
fn is_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

/// The model files of `repo` in the hub cache (downloading what is missing); the snapshot
/// directory that holds them.
pub fn download_model(hub: &Hub, repo: &RepoRef) -> Result<PathBuf> {
    let mut found = Vec::new();
    for file in REQUIRED {
        match hub.file(repo, file)? {
            Some(path) => found.push(path),
            None if file == "model.safetensors" => match hub.file(repo, PYTORCH_WEIGHTS)? {
                Some(path) => found.push(path),
                None => bail!("{repo} has neither model.safetensors nor {PYTORCH_WEIGHTS}"),
            },
            None => bail!("{repo} has no {file}: not a model repository"),
        }
    }
    let mut tokenizer = false;
    for file in OPTIONAL {
        if let Some(path) = optional_file(hub, repo, file)? {
            tokenizer |= file == "tokenizer.json";
            found.push(path);
        }
    }
    if !tokenizer {
        match hub.file(repo, "vocab.txt")? {
            Some(path) => found.push(path),
            None => bail!("{repo} has neither tokenizer.json nor vocab.txt"),
        }
    }
    // Everything from one snapshot (an old id's cache folder serves all files or none).
    let dir = found[0]
        .parent()
        .expect("a snapshot file has a directory")
        .to_path_buf();
    if let Some(stray) = found.iter().find(|p| !p.starts_with(&dir)) {
        return Err(anyhow!(
            "{repo}: the hub cache holds its files in two places ({} and {}); \
             remove one of them",
            dir.display(),
            stray.display()
        ));
    }
    Ok(dir)
}

/// An optional file: absent when the repository lacks it, and also when the cache does not
/// know and the hub cannot be asked (offline, or unreachable).
fn optional_file(hub: &Hub, repo: &RepoRef, file: &str) -> Result<Option<PathBuf>> {
    if hub.settings().offline {
        return Ok(hub.cached_file(repo, file).flatten());
    }
    match hub.file(repo, file) {
        Err(e) if e.is::<Unreachable>() || e.chain().any(|c| c.is::<Unreachable>()) => Ok(None),
        other => other,
    }
}

/// Which pretrained checkpoints are in the cache: (entry, cached).
pub fn zoo_cache_status(hub: &Hub) -> Vec<(&'static Pretrained, bool)> {
    zoo::PRETRAINED
        .iter()
        .map(|entry| {
            let repo = RepoRef::new(entry.repo, entry.revision).with_aliases(&[entry.legacy_id]);
            let has = |f: &str| matches!(hub.cached_file(&repo, f), Some(Some(_)));
            let cached = has("config.json") && (has("model.safetensors") || has(PYTORCH_WEIGHTS));
            (entry, cached)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_org_slash_name_or_one_legacy_part() {
        for id in [
            "sentence-transformers/all-MiniLM-L6-v2",
            "bert-base-uncased",
            "a/b.c_d",
        ] {
            assert!(is_hub_id(id), "{id}");
        }
        for not in ["", "a/b/c", "./x", "../x", "/abs", "a b", "a//b"] {
            assert!(!is_hub_id(not), "{not}");
        }
    }
}
