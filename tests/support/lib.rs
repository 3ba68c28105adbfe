//! What every crate's tests share: the workspace root, the Python that runs the reference
//! checkers (tests/python/, train/scripts/), fixtures, comparisons, and running binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root: the nearest directory with `Cargo.lock` above the tested crate.
/// `cargo test` gives the tested crate's directory at run time; that is preferred to this
/// crate's compile-time directory, which a build reused from another checkout (one shared
/// target directory) would still point at.
pub fn repo_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .expect("the tests run inside the workspace")
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

pub mod hub_mock;

/// sentence-transformers' all-MiniLM-L6-v2: $BERT_MINILM_DIR, else models/all-MiniLM-L6-v2
/// (`train/scripts/fetch_minilm.sh` puts it there). The tests that need it fail (not skip)
/// without it, saying how to get it.
pub fn minilm_dir() -> PathBuf {
    let dir = std::env::var_os("BERT_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("models/all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no all-MiniLM-L6-v2; run train/scripts/fetch_minilm.sh",
        dir.display()
    );
    dir
}

/// A commit id for the mock hub's all-MiniLM-L6-v2 (one of the real repository's).
pub const MINILM_COMMIT: &str = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";

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

/// Run the binary at `path` (`env!("CARGO_BIN_EXE_...")`) with `args`, capturing its output.
pub fn run_bin(path: &str, args: &[&str]) -> Output {
    Command::new(path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"))
}

/// A binary's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run failed, cleanly (no panic), saying each of `needles`.
pub fn expect_error(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "the binary panicked:\n{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in stderr:\n{err}");
    }
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The largest absolute difference between two vectors of the same length.
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `mpirun -np N` (Open MPI) for running a binary as N processes on this machine: as root
/// too, more processes than cores allowed, output passed through. Fails, saying what to
/// install, where there is no `mpirun`.
pub fn mpirun(np: usize) -> Command {
    let found = Command::new("mpirun")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "mpirun not found: the MPI tests need Open MPI (apt-get install openmpi-bin \
         libopenmpi-dev; .ci/run installs it)"
    );
    let mut cmd = Command::new("mpirun");
    cmd.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &np.to_string(),
    ])
    // Containers often forbid the cross-memory attach that shared memory uses by default.
    .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    cmd
}
