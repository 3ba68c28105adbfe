//! Models by name: `bert-embed`, `bert-train export` and `bert-train zoo` against a loopback
//! mock of the HuggingFace Hub (test-support's `hub_mock`) serving the real all-MiniLM-L6-v2,
//! with an empty hub cache in a temporary directory.

use std::path::Path;
use std::process::{Command, Output};

use bert_model::checkpoint::weights_path;
use safetensors::SafeTensors;
use test_support::MINILM_COMMIT;
use test_support::hub_mock::{HubMock, MockRepo};

use crate::common::{expect_error, minilm_dir, stderr};

const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// A binary with the hub at `endpoint` and its cache in `cache` (nothing from the user's).
fn with_hub(bin: &str, endpoint: &str, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", cache.join("home"))
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN");
    cmd
}

fn output(mut cmd: Command) -> Output {
    cmd.output().expect("running the binary")
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "failed:\n{}", stderr(&out));
    out
}

fn embed_json(endpoint: &str, cache: &Path, model: &str) -> serde_json::Value {
    let bin = env!("CARGO_BIN_EXE_bert-embed");
    let args = [
        "--model",
        model,
        "--sentences",
        "A man is eating.",
        "Someone eats food.",
        "--no-token-embeddings",
    ];
    let out = ok(output(with_hub(bin, endpoint, cache, &args)));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("bert-embed prints JSON lines"))
        .collect();
    assert_eq!(rows.len(), 2);
    serde_json::Value::Array(rows)
}

#[test]
fn bert_embed_downloads_a_hub_id_then_runs_from_the_cache_and_offline_fails_cleanly() {
    let mut mock = HubMock::start(vec![MockRepo::from_dir(
        MINILM,
        MINILM_COMMIT,
        &minilm_dir(),
    )]);
    let cache = tempfile::tempdir().unwrap();
    let local = minilm_dir();
    let from_dir = embed_json(mock.url(), cache.path(), local.to_str().unwrap());
    assert!(
        cache.path().read_dir().unwrap().next().is_none(),
        "a directory needs no hub"
    );

    let from_hub = embed_json(mock.url(), cache.path(), MINILM);
    assert_eq!(from_hub, from_dir, "the same files, the same vectors");
    let snapshot = cache
        .path()
        .join("models--sentence-transformers--all-MiniLM-L6-v2/snapshots")
        .join(MINILM_COMMIT);
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        assert!(snapshot.join(file).is_file(), "{file} cached");
    }

    // The hub gone: the same command is served by the cache.
    mock.stop();
    assert_eq!(embed_json(mock.url(), cache.path(), MINILM), from_dir);

    // Offline with an empty cache: a clear error naming the repository and file, exit code 1,
    // nothing written (neither the cache nor --output).
    let empty = tempfile::tempdir().unwrap();
    let out_file = empty.path().join("out.json");
    let mut cmd = with_hub(
        env!("CARGO_BIN_EXE_bert-embed"),
        mock.url(),
        &empty.path().join("cache"),
        &[
            "--model",
            MINILM,
            "--sentences",
            "x",
            "--output",
            out_file.to_str().unwrap(),
        ],
    );
    cmd.env("HF_HUB_OFFLINE", "1");
    let out = output(cmd);
    expect_error(&out, &["HF_HUB_OFFLINE", MINILM, "config.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out_file.exists());
    assert!(
        !empty.path().join("cache").exists(),
        "offline writes nothing into the cache"
    );
}

#[test]
fn a_zoo_checkpoint_whose_config_is_not_the_zoo_shape_is_refused_naming_both() {
    // The hub serves 6-layer, 384-wide weights where BERT-BASE should be.
    let mock = HubMock::start(vec![MockRepo::from_dir(
        "google-bert/bert-base-uncased",
        "86b5e0934494bd15c9632b12f734a8a67f723594",
        &minilm_dir(),
    )]);
    let cache = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_bert-embed");
    // No --model: GluonNLP's default, bert_12_768_12 on book_corpus_wiki_en_uncased.
    let out = output(with_hub(
        bin,
        mock.url(),
        cache.path(),
        &["--sentences", "x"],
    ));
    expect_error(
        &out,
        &[
            "google-bert/bert-base-uncased",
            "6 layers, hidden 384, 12 heads, vocabulary 30522",
            "bert_12_768_12 + book_corpus_wiki_en_uncased is 12 layers, hidden 768, 12 heads",
        ],
    );
}

#[test]
fn zoo_names_mean_pretrained_weights_and_random_ones_need_a_flag() {
    let cache = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_bert-train");
    // A shape GluonNLP never pretrained: the error lists the checkpoints there are.
    let out = output(with_hub(
        bin,
        "http://127.0.0.1:9",
        cache.path(),
        &[
            "finetune-classifier",
            "--task-name",
            "RTE",
            "--model",
            "bert_2_128_2",
        ],
    ));
    expect_error(
        &out,
        &[
            "no pretrained bert_2_128_2",
            "bert_12_768_12 + wiki_cn_cased",
            "--from-scratch",
        ],
    );
    let out = output(with_hub(
        bin,
        "http://127.0.0.1:9",
        cache.path(),
        &[
            "export",
            "--task",
            "classification",
            "--model",
            "bert_24_1024_16",
            "--bert-dataset",
            "wiki_multilingual_cased",
            "--output-dir",
            "unused",
        ],
    ));
    expect_error(
        &out,
        &["no pretrained bert_24_1024_16 on wiki_multilingual_cased"],
    );
}

#[test]
fn export_and_convert_of_a_hub_id_keep_the_pretrained_encoder() {
    let mock = HubMock::start(vec![MockRepo::from_dir(
        MINILM,
        MINILM_COMMIT,
        &minilm_dir(),
    )]);
    let cache = tempfile::tempdir().unwrap();
    let out_dir = cache.path().join("export");
    let bin = env!("CARGO_BIN_EXE_bert-train");
    let args = [
        "export",
        "--task",
        "classification",
        "--model",
        MINILM,
        "--num-labels",
        "2",
        "--seq-length",
        "128",
        "--output-dir",
        out_dir.to_str().unwrap(),
    ];
    ok(output(with_hub(bin, mock.url(), cache.path(), &args)));
    let exported = std::fs::read(weights_path(&out_dir).unwrap()).unwrap();
    let original = std::fs::read(weights_path(&minilm_dir()).unwrap()).unwrap();
    let (exported, original) = (
        SafeTensors::deserialize(&exported).unwrap(),
        SafeTensors::deserialize(&original).unwrap(),
    );
    let data = |st: &SafeTensors, key: &str| {
        st.tensor(key)
            .or_else(|_| st.tensor(&format!("bert.{key}")))
            .unwrap_or_else(|e| panic!("{key}: {e}"))
            .data()
            .to_vec()
    };
    for key in [
        "encoder.layer.5.output.dense.weight",
        "embeddings.word_embeddings.weight",
    ] {
        assert!(
            data(&exported, key) == data(&original, key),
            "{key} differs"
        );
    }

    // convert reads the same cached snapshot (float32 → float32 keeps every bit).
    let converted_dir = cache.path().join("converted");
    let args = [
        "convert",
        "--model",
        MINILM,
        "--dtype",
        "float32",
        "--output-dir",
        converted_dir.to_str().unwrap(),
    ];
    ok(output(with_hub(bin, mock.url(), cache.path(), &args)));
    let converted = std::fs::read(converted_dir.join("model.safetensors")).unwrap();
    let converted = SafeTensors::deserialize(&converted).unwrap();
    let key = "encoder.layer.5.output.dense.weight";
    assert!(data(&converted, key) == data(&original, key));
    assert!(converted_dir.join("tokenizer.json").is_file());
}

#[test]
fn the_zoo_listing_names_every_checkpoint_and_finds_an_old_cache() {
    let cache = tempfile::tempdir().unwrap();
    // A cache transformers wrote before the hub's rename (`bert-base-uncased`), at the pin.
    let snapshot = cache
        .path()
        .join("models--bert-base-uncased/snapshots/86b5e0934494bd15c9632b12f734a8a67f723594");
    std::fs::create_dir_all(&snapshot).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::write(snapshot.join(file), b"{}").unwrap();
    }
    let out = ok(output(with_hub(
        env!("CARGO_BIN_EXE_bert-train"),
        "http://127.0.0.1:9",
        cache.path(),
        &["zoo"],
    )));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("bert_")).collect();
    assert_eq!(rows.len(), 7, "{text}");
    let base = rows
        .iter()
        .find(|r| r.contains("google-bert/bert-base-uncased "))
        .unwrap();
    assert!(base.contains("440 MB") && base.ends_with("yes"), "{base}");
    assert!(
        rows.iter().filter(|r| r.ends_with("no")).count() == 6,
        "{text}"
    );
    assert!(text.contains(&cache.path().display().to_string()), "{text}");
}

#[test]
fn a_repository_with_only_pytorch_model_bin_is_read_through_burn_store() {
    // all-MiniLM-L6-v2 as older repositories hold it: the weights pickled by torch.save.
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("pytorch_model.bin");
    let script = "import sys, torch, safetensors.torch as st; \
                  torch.save(st.load_file(sys.argv[1]), sys.argv[2])";
    ok(Command::new(crate::common::reference_python())
        .args(["-c", script])
        .arg(minilm_dir().join("model.safetensors"))
        .arg(&bin)
        .output()
        .unwrap());
    let mut repo = MockRepo::from_dir("org/minilm-pytorch", MINILM_COMMIT, &minilm_dir());
    repo.files.retain(|(path, _)| path != "model.safetensors");
    repo.files
        .push(("pytorch_model.bin".into(), std::fs::read(&bin).unwrap()));
    let mock = HubMock::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let want = embed_json(mock.url(), cache.path(), minilm_dir().to_str().unwrap());
    assert_eq!(
        embed_json(mock.url(), cache.path(), "org/minilm-pytorch"),
        want
    );
}
