//! `bert-train finetune-classifier` and `evaluate-squad` end to end on CPU: a short real
//! fine-tuning run of all-MiniLM-L6-v2 on a few dozen GLUE rows (loss falls, the best epoch is
//! saved in HF layout, --only-inference reproduces its dev score and test predictions), the
//! MNLI/QQP/STS-B paths on tiny data, the SQuAD evaluation against the official scripts'
//! output, and clear errors for bad input.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{bert_train, expect_error, fixture, minilm_dir, stderr};
use safetensors::Dtype;

fn ok(out: Output) -> String {
    let err = stderr(&out);
    assert!(out.status.success(), "bert-train failed:\n{err}");
    err
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn shared_glue(task: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/glue")
        .join(task)
}

/// A glue_data directory with the header and the first `n` rows of each split of `task`.
fn head_of(task: &str, splits: &[(&str, usize)], dir: &Path) -> PathBuf {
    let out = dir.join(task);
    std::fs::create_dir_all(&out).unwrap();
    for (split, n) in splits {
        let text = std::fs::read_to_string(shared_glue(task).join(format!("{split}.tsv"))).unwrap();
        let lines: Vec<&str> = text.lines().take(n + 1).collect();
        std::fs::write(out.join(format!("{split}.tsv")), lines.join("\n") + "\n").unwrap();
    }
    out
}

fn metrics_rows(output: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(output.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A short run: small batches and sequences, a high rate so that a few steps show.
/// `finetune-classifier --task-name TASK --data-dir DATA --model MODEL --output-dir OUT` + `extra`.
fn classifier(task: &str, data: &Path, model: &str, out: &Path, extra: &[&str]) -> Output {
    let (data, out) = (s(data), s(out));
    let mut args = vec![
        "finetune-classifier",
        "--task-name",
        task,
        "--data-dir",
        &data,
        "--model",
        model,
        "--output-dir",
        &out,
    ];
    args.extend(extra);
    bert_train(&args)
}

/// A few quick steps: batch 8, 48 tokens, lr 1e-4, seed 3.
fn short_run(task: &str, data: &Path, out: &Path, model: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--batch-size",
        "8",
        "--max-len",
        "48",
        "--lr",
        "1e-4",
        "--seed",
        "3",
        "--log-interval",
        "2",
    ];
    args.extend(extra);
    classifier(task, data, model, out, &args)
}

#[test]
fn rte_fine_tuning_learns_keeps_the_best_epoch_and_reloads_it() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let data = head_of(
        "RTE",
        &[("train", 32), ("dev", 16), ("test", 8)],
        tmp.path(),
    );
    let out = tmp.path().join("out");
    let minilm = s(&minilm_dir());
    let log = ok(short_run("RTE", &data, &out, &minilm, &["--epochs", "3"]));
    assert!(log.contains("[epoch 1 step 2/4] loss"), "{log}");

    let rows = metrics_rows(&out);
    assert_eq!(rows.len(), 3, "one row per epoch");
    let loss = |i: usize| rows[i]["train_loss"].as_f64().unwrap();
    assert!(loss(2) < loss(0), "training loss did not fall: {rows:?}");
    let best_row = rows.iter().find(|r| r["best"] == true).unwrap();
    let dev = &best_row["dev"][0];
    assert_eq!(dev["split"], "dev");
    assert_eq!(dev["metrics"][0][0], "accuracy");

    let best = out.join("best");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(best.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["id2label"]["0"], "entailment");
    assert_eq!(config["finetuning_task"], "RTE");
    for name in ["model.safetensors", "tokenizer.json", "vocab.txt"] {
        assert!(best.join(name).is_file(), "best/{name}");
    }
    let submission = std::fs::read_to_string(out.join("RTE.tsv")).unwrap();
    let lines: Vec<&str> = submission.lines().collect();
    assert_eq!(lines[0], "index\tprediction");
    assert_eq!(lines.len(), 9);
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.ends_with("\tentailment") || l.ends_with("\tnot_entailment"))
    );

    // The saved best epoch, loaded again, scores and predicts exactly as it did in training.
    let again = tmp.path().join("again");
    ok(classifier(
        "RTE",
        &data,
        &s(&best),
        &again,
        &["--only-inference", "--max-len", "48"],
    ));
    assert_eq!(metrics_rows(&again)[0]["dev"][0], *dev);
    assert_eq!(
        std::fs::read_to_string(again.join("RTE.tsv")).unwrap(),
        submission
    );
    // Padding every batch to 32 tokens (masked) changes neither the score nor a prediction.
    let padded = tmp.path().join("padded");
    ok(classifier(
        "RTE",
        &data,
        &s(&best),
        &padded,
        &[
            "--only-inference",
            "--max-len",
            "48",
            "--pad-to-multiple-of",
            "32",
        ],
    ));
    let padded_dev = &metrics_rows(&padded)[0]["dev"][0];
    assert_eq!(
        padded_dev["metrics"], dev["metrics"],
        "{padded_dev} vs {dev}"
    );
    assert_eq!(
        std::fs::read_to_string(padded.join("RTE.tsv")).unwrap(),
        submission
    );

    // Inference into the training run's directory would replace its metrics: refused
    // without --overwrite, naming what is there.
    let into_out = |extra: &[&str]| {
        let mut flags = vec!["--only-inference", "--max-len", "48"];
        flags.extend(extra);
        classifier("RTE", &data, &s(&best), &out, &flags)
    };
    expect_error(
        &into_out(&[]),
        &[
            "is not empty (RTE.tsv, best, checkpoints, ...)",
            "--overwrite",
        ],
    );
    ok(into_out(&["--overwrite"]));
    assert_eq!(metrics_rows(&out)[0]["dev"][0], *dev);

    // A head for two labels does not fit MNLI's three.
    let mnli = fixture("glue/MNLI");
    let out = classifier(
        "MNLI",
        &mnli,
        &s(&best),
        &tmp.path().join("x"),
        &["--only-inference"],
    );
    expect_error(
        &out,
        &["classifier.weight", "has 2 output(s), the task needs 3"],
    );
}

#[test]
fn mnli_qqp_and_sts_b_run_end_to_end() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let minilm = s(&minilm_dir());

    let out = tmp.path().join("mnli");
    let mnli = fixture("glue/MNLI");
    ok(short_run("MNLI", &mnli, &out, &minilm, &["--epochs", "1"]));
    let dev = &metrics_rows(&out)[0]["dev"];
    assert_eq!(dev[0]["split"], "dev_matched");
    assert_eq!(dev[1]["split"], "dev_mismatched");
    for (name, rows) in [("MNLI-m.tsv", 2), ("MNLI-mm.tsv", 2)] {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert_eq!(text.lines().count(), rows + 1, "{name}");
    }

    let out = tmp.path().join("qqp");
    let qqp = fixture("glue/QQP");
    let extra = ["--epochs", "2", "--accumulate", "2"];
    ok(short_run("QQP", &qqp, &out, &minilm, &extra));
    let metrics = &metrics_rows(&out)[0]["dev"][0]["metrics"];
    assert_eq!(
        (&metrics[0][0], &metrics[1][0]),
        (&"f1".into(), &"accuracy".into())
    );
    // 12 rows in micro-batches of 8 and 4, accumulated: one optimizer step per epoch.
    assert_eq!(metrics_rows(&out)[1]["step"], 2);
    let text = std::fs::read_to_string(out.join("QQP.tsv")).unwrap();
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.ends_with("\t0") || l.ends_with("\t1")),
        "{text}"
    );

    let data = head_of(
        "STS-B",
        &[("train", 16), ("dev", 12), ("test", 4)],
        tmp.path(),
    );
    let out = tmp.path().join("sts");
    ok(short_run("STS-B", &data, &out, &minilm, &["--epochs", "1"]));
    let metrics = &metrics_rows(&out)[0]["dev"][0]["metrics"];
    assert_eq!(
        (&metrics[0][0], &metrics[1][0]),
        (&"pearson".into(), &"spearman".into())
    );
    let config = std::fs::read_to_string(out.join("best/config.json")).unwrap();
    assert!(
        config.contains("\"problem_type\": \"regression\""),
        "{config}"
    );
    let text = std::fs::read_to_string(out.join("STS-B.tsv")).unwrap();
    for line in text.lines().skip(1) {
        let score = line.split('\t').nth(1).unwrap();
        score.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
    }
}

/// Every tensor of a saved model is float32 (none float16 / bfloat16).
fn assert_float32_weights(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut floats = 0;
    for (name, view) in tensors.tensors() {
        assert!(
            !matches!(view.dtype(), Dtype::F16 | Dtype::BF16),
            "{}: {name} is {:?}",
            path.display(),
            view.dtype()
        );
        floats += usize::from(view.dtype() == Dtype::F32);
    }
    assert!(floats > 10, "{}", path.display());
}

#[test]
fn half_precision_fine_tuning_saves_float32_models() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let data = head_of("RTE", &[("train", 16), ("dev", 8), ("test", 4)], tmp.path());
    // A tiny random BERT (the zoo's bert_2_128_2): the precision plumbing, not the accuracy.
    let out = tmp.path().join("fp16");
    let log = ok(short_run(
        "RTE",
        &data,
        &out,
        "bert_2_128_2",
        &["--from-scratch", "--epochs", "1", "--dtype", "float16"],
    ));
    assert!(log.contains("warmup steps, float16, on cpu"), "{log}");
    assert!(log.contains("after epoch 1 (float16, "), "{log}");
    let row = &metrics_rows(&out)[0];
    assert_eq!(row["dtype"], "float16", "{row}");
    assert!(row["train_loss"].as_f64().unwrap().is_finite(), "{row}");
    // Two steps: the scale starts at 65536 and halves once per skipped step.
    let skipped = row["skipped_steps"].as_u64().unwrap();
    assert_eq!(
        row["loss_scale"].as_f64().unwrap(),
        65536.0 / 2f64.powi(skipped as i32),
        "{row}"
    );
    assert_float32_weights(&out.join("best/model.safetensors"));
    assert_eq!(
        std::fs::read_to_string(out.join("RTE.tsv"))
            .unwrap()
            .lines()
            .count(),
        5
    );

    // The float16-trained model evaluated in bfloat16.
    let again = tmp.path().join("bf16");
    ok(classifier(
        "RTE",
        &data,
        &s(&out.join("best")),
        &again,
        &["--only-inference", "--max-len", "48", "--dtype", "bfloat16"],
    ));
    let row = &metrics_rows(&again)[0];
    assert_eq!(row["dtype"], "bfloat16", "{row}");
    let accuracy = row["dev"][0]["metrics"][0][1].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{row}");

    // finetune-squad takes the same --dtype.
    let squad_out = tmp.path().join("squad");
    let data = squad("tiny_train_v2.json");
    let log = ok(bert_train(&[
        "finetune-squad",
        "--model",
        "bert_2_128_2",
        "--from-scratch",
        "--train-file",
        &data,
        "--predict-file",
        &data,
        "--output-dir",
        &s(&squad_out),
        "--max-seq-length",
        "48",
        "--doc-stride",
        "16",
        "--max-query-length",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--dtype",
        "float16",
    ]));
    assert!(
        log.contains("step(s) skipped on overflowing gradients"),
        "{log}"
    );
    assert_float32_weights(&squad_out.join("model/model.safetensors"));
    assert!(squad_out.join("predictions.json").is_file());
}

#[test]
fn bad_input_is_a_clear_error() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let minilm = s(&minilm_dir());
    let out = tmp.path().join("out");
    let run = |task: &str, data: &Path, extra: &[&str]| short_run(task, data, &out, &minilm, extra);
    expect_error(
        &run("GLUE-X", Path::new("x"), &[]),
        &["unknown task", "MRPC", "STS-B", "XNLI"],
    );
    expect_error(
        &run("RTE", &shared_glue("RTE"), &["--dtype", "int8"]),
        &["unknown --dtype \"int8\"", "float16", "bfloat16"],
    );
    expect_error(
        &run("RTE", &tmp.path().join("none"), &[]),
        &["train.tsv not found"],
    );
    let bad = tmp.path().join("RTE");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("train.tsv"),
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tperhaps\n",
    )
    .unwrap();
    std::fs::write(
        bad.join("dev.tsv"),
        "index\tsentence1\tsentence2\tlabel\n0\ta\n",
    )
    .unwrap();
    expect_error(
        &run("RTE", &bad, &[]),
        &["train.tsv:3", "perhaps", "not_entailment"],
    );
    std::fs::write(
        bad.join("train.tsv"),
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n",
    )
    .unwrap();
    expect_error(&run("RTE", &bad, &[]), &["dev.tsv:2", "columns"]);
    // A pretrained encoder has no head to infer with.
    expect_error(
        &run("RTE", &shared_glue("RTE"), &["--only-inference"]),
        &["no fine-tuned head (classifier.*)"],
    );
}

fn squad(name: &str) -> String {
    s(&fixture("squad").join(name))
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixture("squad").join(name)).unwrap()
}

#[test]
fn evaluate_squad_prints_what_the_official_scripts_print() {
    let _turn = crate::common::rng_turn();
    let stdout = |out: Output| {
        let _ = ok(out.clone());
        String::from_utf8(out.stdout).unwrap()
    };
    // SQuAD 2.0 (the data set says v2.0), with and without no-answer probabilities.
    let cases = squad("squad2_cases.json");
    let preds = squad("squad2_preds.json");
    assert_eq!(
        stdout(bert_train(&["evaluate-squad", &cases, &preds])),
        expected("squad2_expected.json")
    );
    let na = squad("squad2_na_probs.json");
    assert_eq!(
        stdout(bert_train(&[
            "evaluate-squad",
            &cases,
            &preds,
            "--na-prob-file",
            &na
        ])),
        expected("squad2_expected_with_na.json")
    );
    // --out-file: evaluate-v2.0.py's json.dump, on one line.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("eval.json");
    let printed = stdout(bert_train(&[
        "evaluate-squad",
        &cases,
        &preds,
        "-n",
        &na,
        "--out-file",
        &s(&file),
    ]));
    assert!(printed.is_empty());
    let written = std::fs::read_to_string(&file).unwrap();
    let indented: serde_json::Value =
        serde_json::from_str(&expected("squad2_expected_with_na.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&written).unwrap(),
        indented
    );
    assert!(
        written.starts_with("{\"exact\": ") && !written.contains('\n'),
        "{written}"
    );

    // SQuAD 1.1 dev: evaluate-v1.1.py's line; its warnings on stderr.
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/squad/dev-v1.1.json");
    let out = bert_train(&["evaluate-squad", &s(&dev), &squad("squad1_preds.json")]);
    assert!(stderr(&out).contains("will receive score 0."));
    assert_eq!(stdout(out), expected("squad1_expected.json"));

    // Errors: a missing file, a non-JSON prediction file, no-answer odds for v1.1.
    expect_error(
        &bert_train(&["evaluate-squad", "/nonexistent.json", &preds]),
        &["cannot read the SQuAD data set", "/nonexistent.json"],
    );
    expect_error(
        &bert_train(&["evaluate-squad", &cases, &squad("README.md")]),
        &["is not a valid predictions file"],
    );
    expect_error(
        &bert_train(&[
            "evaluate-squad",
            &s(&dev),
            &preds,
            "-n",
            &na,
            "--squad-version",
            "1.1",
        ]),
        &["--na-prob-file is a SQuAD 2.0 option"],
    );
}

#[test]
fn squad2_fine_tuning_writes_the_seeds_outputs() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let data = squad("tiny_train_v2.json");
    let out = tmp.path().join("squad");
    // Short windows and a small stride, so that contexts span several windows.
    let run = bert_train(&[
        "finetune-squad",
        "--model",
        &s(&minilm_dir()),
        "--train-file",
        &data,
        "--predict-file",
        &data,
        "--output-dir",
        &s(&out),
        "--max-seq-length",
        "48",
        "--doc-stride",
        "16",
        "--max-query-length",
        "16",
        "--batch-size",
        "4",
        "--accumulate",
        "2",
        "--epochs",
        "3",
        "--lr",
        "1e-4",
        "--log-interval",
        "1",
        "--null-score-diff-threshold",
        "-2.0",
    ]);
    let log = ok(run.clone());
    assert!(log.contains("skipped 1 training question(s)"), "{log}");
    // Two micro-batches of 4 windows per optimizer step.
    let plan = log
        .lines()
        .find(|l| l.starts_with("fine-tuning on"))
        .unwrap();
    let number_before = |marker: &str| -> usize {
        let head = &plan[..plan.find(marker).unwrap()];
        head.rsplit(['(', ' ']).next().unwrap().parse().unwrap()
    };
    let windows = number_before(" windows)");
    let steps = number_before(" steps");
    assert_eq!(steps, windows.div_ceil(4).div_ceil(2), "{plan}");
    let losses: Vec<f64> = log
        .lines()
        .filter_map(|l| {
            l.strip_prefix("epoch ")?
                .split("train loss ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(losses.len(), 3, "{log}");
    assert!(losses[2] < losses[0], "loss did not fall: {losses:?}");

    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap()
    };
    let predictions = read("predictions.json");
    let nbest = read("nbest_predictions.json");
    let odds = read("null_odds.json");
    // Every question of the file (the skipped one too) is answered.
    for qid in ["n1", "n2", "n3", "n4", "n5", "a1", "a2", "a3"] {
        assert!(predictions[qid].is_string(), "{qid}: {predictions}");
        assert!(odds[qid].is_number(), "{qid}");
        let candidates = nbest[qid].as_array().unwrap();
        let total: f64 = candidates
            .iter()
            .map(|c| c["probability"].as_f64().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-6, "{qid}: {candidates:?}");
    }
    // The saved model predicts the same without training, and evaluate-squad scores it.
    let again = tmp.path().join("again");
    ok(bert_train(&[
        "finetune-squad",
        "--model",
        &s(&out.join("model")),
        "--predict-file",
        &data,
        "--output-dir",
        &s(&again),
        "--max-seq-length",
        "48",
        "--doc-stride",
        "16",
        "--max-query-length",
        "16",
        "--null-score-diff-threshold",
        "-2.0",
    ]));
    assert_eq!(
        std::fs::read_to_string(again.join("predictions.json")).unwrap(),
        std::fs::read_to_string(out.join("predictions.json")).unwrap()
    );
    let eval = bert_train(&[
        "evaluate-squad",
        &data,
        &s(&out.join("predictions.json")),
        "--na-prob-file",
        &s(&out.join("null_odds.json")),
    ]);
    let printed: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(printed["total"], 8);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        String::from_utf8_lossy(&eval.stdout).trim(),
        "finetune-squad prints the official evaluation of its predictions"
    );
}
