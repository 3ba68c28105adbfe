//! Pretraining as several processes (`mpirun -np 2 bert-train ...`, the `mpi` feature), on
//! this machine's CPU: the same update as one process running the same ranks (`--gpus 0,1`),
//! a control showing that the comparison fails without the gradient sum, resume under MPI,
//! and the wrong set-ups that must be clear errors.

use std::path::{Path, PathBuf};
use std::process::Output;

use test_support::{expect_error, mpirun, stderr};

use crate::common::{Tensors, bert_train};
use crate::pretrain_common::{build_shards, tiny_model_dir};

const BIN: &str = env!("CARGO_BIN_EXE_bert-train");

/// A tiny BERT and shards of four or more shards (each of two ranks needs its own).
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    shards: PathBuf,
    model: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let shards = build_shards(&root, 40_000, 64, 40);
    let model = tiny_model_dir(&root, 32, 2, 2, 0.1, 64);
    Setup {
        _dir: dir,
        root,
        shards,
        model,
    }
}

/// The pretraining flags of every run here, with `--dropout`, into `ckpt`.
fn args(s: &Setup, ckpt: &Path, steps: u64, dropout: &str) -> Vec<String> {
    [
        "--shards",
        s.shards.to_str().unwrap(),
        "--model",
        s.model.to_str().unwrap(),
        "--batch-size",
        "4",
        "--num-steps",
        &steps.to_string(),
        "--lr",
        "1e-3",
        "--warmup-ratio",
        "0",
        "--log-interval",
        "1",
        "--ckpt-interval",
        "3",
        "--seed",
        "7",
        "--backend",
        "cpu",
        "--dropout",
        dropout,
        "--ckpt-dir",
        ckpt.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn one_process(s: &Setup, ckpt: &Path, steps: u64, dropout: &str) -> Output {
    let mut a = args(s, ckpt, steps, dropout);
    a.extend(["--gpus".into(), "0,1".into()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    bert_train(&a)
}

fn two_processes(
    s: &Setup,
    ckpt: &Path,
    steps: u64,
    dropout: &str,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = mpirun(2);
    for (k, v) in env {
        cmd.args(["-x", &format!("{k}={v}")]);
    }
    cmd.arg(BIN).args(args(s, ckpt, steps, dropout));
    cmd.output().expect("running mpirun")
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "failed:\n{}", stderr(&out));
    out
}

/// Every tensor of `dir/final/model.safetensors`, by name.
fn final_weights(ckpt: &Path) -> Vec<(String, Vec<f32>)> {
    let tensors = Tensors::read(&ckpt.join("final/model.safetensors"));
    tensors
        .names()
        .into_iter()
        .map(|name| {
            let values = tensors.f32(&name);
            (name, values)
        })
        .collect()
}

/// The largest |a − b| / (|b| + 1e-3) over every weight.
fn largest_relative_difference(a: &Path, b: &Path) -> f64 {
    let (a, b) = (final_weights(a), final_weights(b));
    assert_eq!(a.len(), b.len());
    let mut worst = 0.0f64;
    for ((name_a, a), (name_b, b)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        for (x, y) in a.iter().zip(b) {
            let d = f64::from((x - y).abs()) / (f64::from(y.abs()) + 1e-3);
            worst = worst.max(d);
        }
    }
    worst
}

/// `metrics.jsonl`'s MLM losses, step by step.
fn mlm_losses(ckpt: &Path) -> Vec<f64> {
    std::fs::read_to_string(ckpt.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["mlm_loss"].as_f64())
        .collect()
}

#[test]
fn two_processes_make_the_update_of_one_process_with_both_ranks() {
    let s = setup();
    let (one, two, unsummed) = (s.root.join("one"), s.root.join("two"), s.root.join("off"));
    ok(one_process(&s, &one, 6, "0"));
    let out = ok(two_processes(&s, &two, 6, "0", &[]));
    let worst = largest_relative_difference(&two, &one);
    eprintln!(
        "mpirun -np 2 vs one process with --gpus 0,1: largest relative difference {worst:.2e}"
    );
    assert!(worst < 1e-5, "relative difference {worst}");
    // Only process 0 logs; the whole job's figures.
    let log = stderr(&out);
    assert_eq!(log.matches("step 6/6").count(), 1, "{log}");
    assert_eq!(mlm_losses(&two).len(), 6);

    // The control: without the gradient sum each process follows its own half of the data.
    // The processes' parameters drift apart (an error at the end), and the weights of
    // process 0 are not the one-process ones.
    let out = two_processes(
        &s,
        &unsummed,
        6,
        "0",
        &[("BERT_TRAIN_TEST_SKIP_GRADIENT_SUM", "1")],
    );
    expect_error(&out, &["at the end", "differ from process 0"]);
}

#[test]
fn with_dropout_two_processes_follow_one_process() {
    let s = setup();
    let (one, two) = (s.root.join("one"), s.root.join("two"));
    ok(one_process(&s, &one, 24, "0.1"));
    ok(two_processes(&s, &two, 24, "0.1", &[]));
    let (a, b) = (mlm_losses(&one), mlm_losses(&two));
    assert_eq!(a.len(), 24);
    assert_eq!(b.len(), 24);
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-3 * x.abs(),
            "step {}: MLM loss {x} in one process, {y} in two",
            step + 1
        );
    }
}

#[test]
fn a_job_resumed_from_its_checkpoint_ends_where_a_straight_job_ends() {
    let s = setup();
    let (straight, resumed) = (s.root.join("straight"), s.root.join("resumed"));
    ok(two_processes(&s, &straight, 6, "0.1", &[]));
    // Stop after step 3 as a kill would: remove what came after the checkpoint of step 3.
    ok(two_processes(&s, &resumed, 6, "0.1", &[]));
    std::fs::remove_dir_all(resumed.join("step-00000006")).unwrap();
    std::fs::remove_dir_all(resumed.join("final")).unwrap();
    let out = ok(two_processes(&s, &resumed, 6, "0.1", &[]));
    assert!(stderr(&out).contains("resuming from"), "{}", stderr(&out));
    assert_eq!(largest_relative_difference(&resumed, &straight), 0.0);

    // Another number of ranks on resume is refused.
    std::fs::remove_dir_all(resumed.join("final")).unwrap();
    let a = args(&s, &resumed, 9, "0.1");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = bert_train(&a);
    expect_error(&out, &["other settings", "ranks"]);
}

#[test]
fn processes_with_other_shards_are_refused() {
    let s = setup();
    let other_root = s.root.join("other");
    std::fs::create_dir_all(&other_root).unwrap();
    // Other data: a longer cut of the corpus.
    let other = build_shards(&other_root, 60_000, 64, 40);
    let ckpt = s.root.join("ckpt");
    let mine = args(&s, &ckpt, 2, "0");
    let theirs: Vec<String> = mine
        .iter()
        .map(|a| {
            if a == s.shards.to_str().unwrap() {
                other.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    // MPMD: process 0 and process 1 with different --shards.
    let mut cmd = mpirun(1);
    cmd.arg(BIN)
        .args(&mine)
        .args([":", "-np", "1", BIN])
        .args(&theirs);
    let out = cmd.output().unwrap();
    expect_error(&out, &["other data than process 0"]);
    assert!(!ckpt.join("final").exists());
}

/// The pid of process `rank` of the job that `mpirun` (pid `launcher`) started: a child of
/// the launcher whose environment says it is that rank.
fn pid_of_rank(launcher: u32, rank: usize) -> Option<u32> {
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces, so count from its ')'.
        stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent(pid) == Some(launcher))
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == wanted.as_bytes()))
        })
}

#[test]
fn a_process_killed_with_sigkill_ends_the_job_and_the_same_command_resumes_exactly() {
    let s = setup();
    let (straight, killed) = (s.root.join("straight"), s.root.join("killed"));
    let steps = 120;
    ok(two_processes(&s, &straight, steps, "0.1", &[]));

    let mut cmd = mpirun(2);
    cmd.arg(BIN)
        .args(args(&s, &killed, steps, "0.1"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut job = cmd.spawn().unwrap();
    // Kill process 1 once the first checkpoint is complete.
    let started = std::time::Instant::now();
    while !killed.join("step-00000003/state.json").is_file() {
        assert!(started.elapsed().as_secs() < 120, "no checkpoint appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let victim = pid_of_rank(job.id(), 1).expect("process 1 of the job");
    let status = std::process::Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = job.wait().unwrap();
    assert!(!status.success(), "the job ended with {status}");
    assert!(
        !killed.join("final").exists(),
        "the job was killed before its end (make it longer)"
    );

    let out = ok(two_processes(&s, &killed, steps, "0.1", &[]));
    assert!(stderr(&out).contains("resuming from"), "{}", stderr(&out));
    assert_eq!(largest_relative_difference(&killed, &straight), 0.0);
}
