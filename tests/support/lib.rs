//! What every crate's tests share: the workspace root, the Python that runs the reference
//! checkers (tests/python/, train/scripts/), fixtures, comparisons, and running binaries.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support sits two levels below the workspace root")
        .to_path_buf()
}

/// The Python with torch, transformers, pyarrow and tokenizers: $BERT_PYTHON, else the venv
/// that tests/python/setup_venv.sh makes under $BERT_CACHE (~/.cache/bert-toolkit), else
/// python3.
pub fn reference_python() -> String {
    if let Ok(python) = std::env::var("BERT_PYTHON") {
        return python;
    }
    let cache = std::env::var("BERT_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/bert-toolkit",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let venv = Path::new(&cache).join("venv/bin/python");
    if venv.exists() {
        venv.display().to_string()
    } else {
        "python3".into()
    }
}

mod block_on;
pub use block_on::block_on;

/// The sentences of `tests/fixtures/browser_minilm.json` and sentence-transformers'
/// all-MiniLM-L6-v2 vectors of them (tests/python/make_browser_fixture.py).
pub fn browser_fixture() -> (Vec<String>, Vec<Vec<f32>>) {
    let path = repo_root().join("tests/fixtures/browser_minilm.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sentences = json["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let vectors = json["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    (sentences, vectors)
}
