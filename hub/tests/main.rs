//! bert-hub against a loopback mock of the HuggingFace Hub (test-support's `hub_mock`) serving
//! the real all-MiniLM-L6-v2 files, and against Python's `huggingface_hub` for the cache.

mod download;
mod python_cache;

use std::path::Path;

use bert_hub::{Hub, HubSettings, RepoRef};
use test_support::MINILM_COMMIT;
use test_support::hub_mock::{HubMock, MockRepo};

pub const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The files a model load asks for (those the model has).
pub const MODEL_FILES: [&str; 6] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "modules.json",
    "1_Pooling/config.json",
];

pub fn minilm_mock() -> HubMock {
    HubMock::start(vec![
        MockRepo::from_dir(MINILM, MINILM_COMMIT, &test_support::minilm_dir())
            .alias("all-MiniLM-L6-v2"),
    ])
}

pub fn hub(endpoint: &str, cache: &Path, offline: bool) -> Hub {
    Hub::new(HubSettings {
        endpoint: endpoint.into(),
        cache_dir: cache.to_path_buf(),
        token: None,
        offline,
        progress: false,
    })
}

pub fn minilm(revision: &str) -> RepoRef {
    RepoRef::new(MINILM, revision)
}

/// Every file under `dir`, relative paths, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}
