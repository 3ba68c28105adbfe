//! What every crate's tests look up: the workspace root, and the Python that runs the
//! reference checkers (tests/python/, train/scripts/).

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
