//! The training core under `finetune-classifier`: a run killed with SIGKILL continues, when
//! the same command runs again, to the model, metrics and predictions of an uninterrupted
//! run; `--gpus 0,1` (two ranks, on the CPU taking turns) equals one rank accumulating two
//! micro-batches; metrics.svg is drawn.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::stderr;

/// The first `n` rows of each split of the shared RTE data.
fn rte(dir: &Path, train: usize) -> PathBuf {
    let out = dir.join("RTE");
    std::fs::create_dir_all(&out).unwrap();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/glue/RTE");
    for (split, n) in [("train", train), ("dev", 8), ("test", 4)] {
        let text = std::fs::read_to_string(shared.join(format!("{split}.tsv"))).unwrap();
        let lines: Vec<&str> = text.lines().take(n + 1).collect();
        std::fs::write(out.join(format!("{split}.tsv")), lines.join("\n") + "\n").unwrap();
    }
    out
}

/// `finetune-classifier` of a tiny random BERT (the zoo's bert_2_128_2) on `data` into `out`.
fn command(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bert-train"));
    command
        .args([
            "finetune-classifier",
            "--task-name",
            "RTE",
            "--model",
            "bert_2_128_2",
            "--from-scratch",
        ])
        .args([
            "--batch-size",
            "4",
            "--max-len",
            "32",
            "--lr",
            "1e-3",
            "--seed",
            "5",
        ])
        .arg("--data-dir")
        .arg(data)
        .arg("--output-dir")
        .arg(out)
        .args(extra);
    command
}

fn run_ok(mut command: Command) -> String {
    let out = command.output().expect("run bert-train");
    let err = stderr(&out);
    assert!(out.status.success(), "bert-train failed:\n{err}");
    err
}

/// metrics.jsonl without the wall-clock seconds.
fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut row: serde_json::Value = serde_json::from_str(l).unwrap();
            row.as_object_mut().unwrap().remove("seconds");
            row
        })
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_same_run(a: &Path, b: &Path) {
    assert_eq!(metrics(a), metrics(b));
    assert!(
        read(&a.join("best/model.safetensors")) == read(&b.join("best/model.safetensors")),
        "the best models differ"
    );
    assert_eq!(read(&a.join("RTE.tsv")), read(&b.join("RTE.tsv")));
}

#[test]
fn a_killed_fine_tuning_run_resumes_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    // 160 rows in batches of 4: 40 steps an epoch, two epochs.
    let data = rte(tmp.path(), 160);
    let extra = [
        "--epochs",
        "2",
        "--ckpt-interval",
        "3",
        "--keep-checkpoints",
        "2",
    ];

    let whole = tmp.path().join("whole");
    run_ok(command(&data, &whole, &extra));
    let svg = std::fs::read_to_string(whole.join("metrics.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("accuracy"), "{svg}");

    // Killed as soon as the checkpoint of step 6 is complete, well before the end (step 80).
    let killed = tmp.path().join("killed");
    let mut child = command(&data, &killed, &extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = killed.join("checkpoints/step-00000006/state.json");
    let started = Instant::now();
    while !checkpoint.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint of step 6"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed before the end: {status}");
    assert!(!killed.join("RTE.tsv").exists(), "killed before predicting");

    let log = run_ok(command(&data, &killed, &extra));
    assert!(log.contains("resuming from"), "{log}");
    assert_same_run(&whole, &killed);

    // A different run in the same directory is refused, naming the setting.
    let out = command(&data, &killed, &["--epochs", "3"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success() && err.contains("epochs"), "{err}");
}

#[test]
fn two_ranks_equal_one_rank_accumulating_two_micro_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = rte(tmp.path(), 24);
    let accumulated = tmp.path().join("accumulated");
    run_ok(command(
        &data,
        &accumulated,
        &["--epochs", "2", "--accumulate", "2"],
    ));
    let ranks = tmp.path().join("ranks");
    let log = run_ok(command(&data, &ranks, &["--epochs", "2", "--gpus", "0,1"]));
    assert!(log.contains("x 2 ranks"), "{log}");
    assert_same_run(&accumulated, &ranks);
}

/// `finetune-squad` of bert_2_128_2 on the hand-written SQuAD 2.0 fixture into `out`.
fn squad(out: &Path, extra: &[&str]) -> Command {
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/squad/tiny_train_v2.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_bert-train"));
    command
        .args([
            "finetune-squad",
            "--model",
            "bert_2_128_2",
            "--from-scratch",
            "--epochs",
            "2",
        ])
        .args([
            "--max-seq-length",
            "48",
            "--doc-stride",
            "16",
            "--max-query-length",
            "16",
        ])
        .args(["--batch-size", "2", "--lr", "1e-3", "--seed", "4"])
        .arg("--train-file")
        .arg(&data)
        .arg("--predict-file")
        .arg(&data)
        .arg("--output-dir")
        .arg(out)
        .args(extra);
    command
}

#[test]
fn squad_runs_on_the_same_core_ranks_checkpoints_and_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let accumulated = tmp.path().join("accumulated");
    run_ok(squad(&accumulated, &["--accumulate", "2"]));
    let ranks = tmp.path().join("ranks");
    run_ok(squad(&ranks, &["--gpus", "0,1"]));
    assert_eq!(metrics(&accumulated), metrics(&ranks));
    assert_eq!(metrics(&ranks).len(), 2, "one row per epoch");
    for file in [
        "model/model.safetensors",
        "predictions.json",
        "null_odds.json",
    ] {
        assert!(
            read(&accumulated.join(file)) == read(&ranks.join(file)),
            "{file} differs"
        );
    }
    assert!(ranks.join("metrics.svg").is_file());
    let checkpoints = std::fs::read_dir(ranks.join("checkpoints"))
        .unwrap()
        .count();
    assert_eq!(checkpoints, 1, "the newest checkpoint is kept");

    // Run again, the same command continues from the final checkpoint: nothing to train, the
    // same model and predictions.
    let before = read(&ranks.join("predictions.json"));
    let log = run_ok(squad(&ranks, &["--gpus", "0,1"]));
    assert!(log.contains("resuming from"), "{log}");
    assert!(read(&ranks.join("predictions.json")) == before);
}
