//! `bert-train` end to end: a tiny CPU run that logs, checkpoints, writes the HuggingFace
//! directory and resumes; and clear errors (never panics) for bad input.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::common::{bert_train, expect_error, stderr};
use crate::pretrain_common::*;

fn expect_success(out: &Output) -> String {
    let err = stderr(out);
    assert!(out.status.success(), "bert-train failed:\n{err}");
    err
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Flags of a 20-step run of a tiny model.
fn tiny_run(shards: &Path, model: &Path, ckpt: &Path) -> Vec<String> {
    [
        "--shards",
        &s(shards),
        "--model",
        &s(model),
        "--ckpt-dir",
        &s(ckpt),
        "--batch-size",
        "8",
        "--num-steps",
        "20",
        "--log-interval",
        "5",
        "--ckpt-interval",
        "10",
        "--lr",
        "5e-3",
        "--seed",
        "3",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// Replace the value of `flag` in `run`.
fn set(run: &mut [String], flag: &str, value: &str) {
    let i = run.iter().position(|a| a == flag).expect("flag in the run");
    run[i + 1] = value.to_string();
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn help_has_an_example_the_flags_and_the_subcommands() {
    let _turn = crate::common::rng_turn();
    let out = bert_train(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "Example:",
        "--shards",
        "--model",
        "--pretrained",
        "--batch-size",
        "--accumulate",
        "--lr",
        "--warmup-ratio",
        "--num-steps",
        "--optimizer",
        "lamb: layer-wise",
        "--gpus",
        "--dtype",
        "--use-avg-len",
        "--dynamic-masking",
        "--drop-remainder",
        "--data-eval",
        "--ckpt-dir",
        "--ckpt-interval",
        "--log-interval",
        "--seed",
        "--backend",
        "--num-buckets N",
    ] {
        assert!(help.contains(needle), "{needle:?} not in --help:\n{help}");
    }
    // Pretraining stays the default action; the subcommands are the fine-tuning ones.
    for command in [
        "finetune-classifier",
        "finetune-squad",
        "evaluate-squad",
        "export",
    ] {
        assert!(help.contains(command), "{command} not in --help:\n{help}");
    }
}

#[test]
fn trains_logs_checkpoints_exports_and_resumes() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let shards = build_shards(tmp.path(), 12_000, 32, 1000);
    let model = tiny_model_dir(tmp.path(), 32, 1, 2, 0.1, 32);
    let ckpt = tmp.path().join("ckpt");
    let run = tiny_run(&shards, &model, &ckpt);

    let err = expect_success(&bert_train(&args(&run)));
    assert!(
        err.contains("step 5/20") && err.contains("step 20/20"),
        "{err}"
    );
    assert!(err.contains("seq/s") && err.contains("tok/s"), "{err}");
    let rows: Vec<serde_json::Value> = fs::read_to_string(ckpt.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    for key in [
        "step",
        "lr",
        "mlm_loss",
        "nsp_loss",
        "mlm_acc",
        "nsp_acc",
        "seq_per_s",
        "tokens_per_s",
    ] {
        assert!(rows[3][key].is_number(), "{key} missing in {}", rows[3]);
    }
    // Scratch training starts near ln(30522) = 10.3.
    let first_loss = rows[0]["mlm_loss"].as_f64().unwrap();
    assert!((9.0..11.0).contains(&first_loss), "{first_loss}");
    for file in ["config.json", "model.safetensors", "vocab.txt"] {
        assert!(
            ckpt.join("final").join(file).is_file(),
            "final/{file} missing"
        );
    }
    assert!(ckpt.join("step-00000020/state.json").is_file());

    // The same command again: continues from step 20, which is the end.
    let err = expect_success(&bert_train(&args(&run)));
    assert!(err.contains("resuming from"), "{err}");
    assert_eq!(
        fs::read_to_string(ckpt.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        4
    );

    // Other settings on the same checkpoint directory: refused, nothing touched.
    let mut other = run.clone();
    set(&mut other, "--lr", "2e-3");
    expect_error(&bert_train(&args(&other)), &["other settings", "lr"]);

    // Shards rebuilt from an edited corpus, with the same counts: other data, refused.
    let edited = tmp.path().join("edited");
    fs::create_dir_all(&edited).unwrap();
    let corpus = fs::read_to_string(tmp.path().join("corpus.txt")).unwrap();
    fs::write(edited.join("corpus.txt"), corpus.replace(" she ", " him ")).unwrap();
    let config = bert_pipeline::config::BuildConfig {
        dupe_factor: 1,
        max_seq_length: 32,
        shard_size: 1000,
        ..Default::default()
    };
    let options = bert_pipeline::build::BuildOptions {
        output: edited.join("shards"),
        overwrite: false,
        threads: Some(1),
        progress: false,
        cancel: None,
    };
    let rebuilt =
        bert_pipeline::build::build(&config, &[s(&edited.join("corpus.txt"))], &options).unwrap();
    let original = bert_pipeline::ShardSet::open(&shards).unwrap();
    assert_eq!(rebuilt.totals, original.manifest().totals, "same counts");
    let mut other = run.clone();
    set(&mut other, "--shards", &s(&edited.join("shards")));
    expect_error(&bert_train(&args(&other)), &["trained on other shards"]);

    // --pretrained starts from the exported weights: the first loss is near the last one.
    let last_loss = rows[3]["mlm_loss"].as_f64().unwrap();
    assert!(last_loss < first_loss - 1.0, "{first_loss} -> {last_loss}");
    let from_final = tmp.path().join("from-final");
    let mut pre = tiny_run(&shards, &ckpt.join("final"), &from_final);
    pre.push("--pretrained".into());
    expect_success(&bert_train(&args(&pre)));
    let row: serde_json::Value = serde_json::from_str(
        fs::read_to_string(from_final.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let resumed_loss = row["mlm_loss"].as_f64().unwrap();
    assert!(
        resumed_loss < first_loss - 1.0,
        "{first_loss} -> {last_loss}, then {resumed_loss}"
    );

    // --use-avg-len: batches by a token budget (64 tokens: 2 to 8 rows here).
    let by_tokens = tmp.path().join("by-tokens");
    let mut r = tiny_run(&shards, &model, &by_tokens);
    set(&mut r, "--batch-size", "64");
    set(&mut r, "--num-steps", "4");
    r.push("--use-avg-len".into());
    expect_success(&bert_train(&args(&r)));
    assert!(by_tokens.join("final/model.safetensors").is_file());
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let shards = build_shards(tmp.path(), 12_000, 32, 20);
    let model = tiny_model_dir(tmp.path(), 32, 1, 2, 0.0, 32);
    let ckpt = tmp.path().join("ckpt");
    let run = tiny_run(&shards, &model, &ckpt);

    let missing = tmp.path().join("no-such-shards");
    let mut r = run.clone();
    r[1] = s(&missing);
    expect_error(&bert_train(&args(&r)), &["no manifest.json"]);

    let mut r = run.clone();
    r.extend(["--dtype".into(), "int8".into()]);
    expect_error(
        &bert_train(&args(&r)),
        &["int8", "float32, float16 or bfloat16"],
    );

    let mut r = run.clone();
    r.extend(["--gpus".into(), "0,1,2,3,4,5,6,7".into()]);
    expect_error(
        &bert_train(&args(&r)),
        &["fewer than the job's 8 data-parallel ranks"],
    );

    let mut r = run.clone();
    r[3] = "bert_3_3_3".into();
    expect_error(&bert_train(&args(&r)), &["bert_12_768_12"]);

    // A model whose vocabulary is not the shards'.
    let small_vocab = tmp.path().join("small-vocab");
    fs::create_dir_all(&small_vocab).unwrap();
    fs::write(
        small_vocab.join("config.json"),
        r#"{"vocab_size": 1000, "hidden_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 32}"#,
    )
    .unwrap();
    let mut r = run.clone();
    r[3] = s(&small_vocab);
    expect_error(
        &bert_train(&args(&r)),
        &["vocabulary of 1000 tokens", "30522"],
    );

    // Sequences longer than the model's positions.
    let short = tiny_model_dir(&tmp.path().join("short"), 32, 1, 2, 0.0, 16);
    let mut r = run.clone();
    r[3] = s(&short);
    expect_error(&bert_train(&args(&r)), &["positions"]);
    assert!(!ckpt.exists(), "a refused run created {}", ckpt.display());

    // A manifest of another format version.
    let manifest_path = shards.join("manifest.json");
    let original = fs::read_to_string(&manifest_path).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&original).unwrap();
    manifest["format_version"] = 99.into();
    fs::write(&manifest_path, manifest.to_string()).unwrap();
    expect_error(&bert_train(&args(&run)), &["version"]);
    fs::write(&manifest_path, &original).unwrap();

    // A truncated shard: the error names it, and no checkpoint is written.
    let first_shard = shards.join(
        serde_json::from_str::<serde_json::Value>(&original).unwrap()["shards"][0]["file"]
            .as_str()
            .unwrap(),
    );
    let bytes = fs::read(&first_shard).unwrap();
    fs::write(&first_shard, &bytes[..bytes.len() / 2]).unwrap();
    let mut r = run.clone();
    set(&mut r, "--num-steps", "40");
    expect_error(
        &bert_train(&args(&r)),
        &[&first_shard.file_name().unwrap().to_string_lossy()],
    );
    // Flipped bytes anywhere in a shard: the loader's own error (shard, both hashes), a
    // non-zero exit, no panic, nothing trained on them.
    for at in (0..bytes.len()).step_by(bytes.len() / 5) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0xFF;
        fs::write(&first_shard, &damaged).unwrap();
        expect_error(
            &bert_train(&args(&r)),
            &[
                &format!("{} is damaged", first_shard.display()),
                "the manifest says",
            ],
        );
    }
    fs::write(&first_shard, &bytes).unwrap();

    // A diverging run stops at the first non-finite loss with a hint, keeping the checkpoints.
    let nan_ckpt = tmp.path().join("nan");
    let mut r = tiny_run(&shards, &model, &nan_ckpt);
    set(&mut r, "--lr", "1e30");
    set(&mut r, "--ckpt-interval", "1");
    set(&mut r, "--num-steps", "20");
    expect_error(
        &bert_train(&args(&r)),
        &["stopped without saving", "not finite", "--lr"],
    );
}

/// Rows of `metrics.jsonl` without their timing columns.
fn loss_rows(ckpt: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(ckpt.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut row: serde_json::Value = serde_json::from_str(l).unwrap();
            let obj = row.as_object_mut().unwrap();
            obj.remove("seq_per_s");
            obj.remove("tokens_per_s");
            row
        })
        .collect()
}

#[test]
fn killed_with_sigkill_and_rerun_ends_with_the_uninterrupted_weights() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let shards = build_shards(tmp.path(), 24_000, 32, 16);
    let model = tiny_model_dir(tmp.path(), 32, 2, 2, 0.1, 32);
    let run = |ckpt: &Path| {
        let mut r = tiny_run(&shards, &model, ckpt);
        set(&mut r, "--num-steps", "60");
        set(&mut r, "--ckpt-interval", "3");
        set(&mut r, "--log-interval", "1");
        set(&mut r, "--lr", "1e-3");
        r.extend(["--accumulate", "2", "--dynamic-masking"].map(String::from));
        r
    };
    let whole = tmp.path().join("whole");
    expect_success(&bert_train(&args(&run(&whole))));

    // Kill the second run (SIGKILL: no cleanup) once it has written a checkpoint or two; it may
    // be in the middle of a step or of writing the next checkpoint.
    let killed = tmp.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bert-train"))
        .args(args(&run(&killed)))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !killed.join("step-00000006").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !killed.join("final").exists(),
        "the run finished before it was killed: the test proves nothing"
    );

    let err = expect_success(&bert_train(&args(&run(&killed))));
    assert!(err.contains("resuming from"), "{err}");
    assert!(
        fs::read(whole.join("final/model.safetensors")).unwrap()
            == fs::read(killed.join("final/model.safetensors")).unwrap(),
        "the killed and rerun training ended with other weights than the uninterrupted one"
    );
    assert_eq!(loss_rows(&whole), loss_rows(&killed));
    assert_eq!(loss_rows(&killed).len(), 60);
}
