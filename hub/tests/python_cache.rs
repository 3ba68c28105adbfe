//! One cache for both ecosystems: Python's `huggingface_hub` (the reference venv) reads what
//! we downloaded, offline, and we read, offline, what it downloaded from the same mock hub.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use test_support::MINILM_COMMIT;

use crate::{MINILM, MODEL_FILES, hub, minilm, minilm_mock};

/// `hf_hub_download` of each file by Python, with `env`; the paths it returns.
fn python_download(cache: &Path, revision: &str, env: &[(&str, &str)]) -> Value {
    let script = r#"
import json, sys
from huggingface_hub import hf_hub_download
repo, revision, files = sys.argv[1], sys.argv[2], sys.argv[3:]
print(json.dumps({f: hf_hub_download(repo, f, revision=revision) for f in files}))
"#;
    let mut cmd = Command::new(test_support::reference_python());
    cmd.arg("-c")
        .arg(script)
        .arg(MINILM)
        .arg(revision)
        .args(MODEL_FILES);
    cmd.env("HF_HUB_CACHE", cache)
        .env("HF_HUB_DISABLE_TELEMETRY", "1");
    cmd.env_remove("HF_TOKEN").env_remove("HF_HUB_OFFLINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the reference Python");
    assert!(
        out.status.success(),
        "huggingface_hub failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn huggingface_hub_reads_our_cache_offline() {
    let mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    let ours = hub(mock.url(), cache.path(), false);
    for file in MODEL_FILES {
        ours.file(&minilm("main"), file).unwrap().unwrap();
    }
    let model = test_support::minilm_dir();
    for revision in ["main", MINILM_COMMIT] {
        let paths = python_download(cache.path(), revision, &[("HF_HUB_OFFLINE", "1")]);
        for file in MODEL_FILES {
            let path = paths[file].as_str().unwrap();
            assert_eq!(
                std::fs::read(path).unwrap(),
                std::fs::read(model.join(file)).unwrap(),
                "{file}"
            );
        }
    }
}

#[test]
fn we_read_huggingface_hubs_cache_offline() {
    let mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    python_download(cache.path(), "main", &[("HF_ENDPOINT", mock.url())]);
    let offline = hub(mock.url(), cache.path(), true);
    let model = test_support::minilm_dir();
    for revision in ["main", MINILM_COMMIT] {
        for file in MODEL_FILES {
            let path = offline.file(&minilm(revision), file).unwrap().expect(file);
            assert_eq!(
                std::fs::read(path).unwrap(),
                std::fs::read(model.join(file)).unwrap(),
                "{file}"
            );
        }
    }
}
