//! `bert-train export`: what it writes, PyTorch `transformers` loads with
//! AutoModelForSequenceClassification / AutoModelForQuestionAnswering and computes the same
//! logits with (train/scripts/check_hf_roundtrip.py, Python from BERT_PYTHON); bert-embed loads
//! it too; checkpoints with another head are refused.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;
use bert_model::checkpoint::{
    HfTensors, load_bert_for_question_answering, load_bert_for_sequence_classification, read_config,
};
use bert_model::{BackendKind, BertInput};
use burn::prelude::*;
use safetensors::Dtype;

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "failed:\n{}", stderr(&out));
    out
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Two pairs of ids (segment B on the tail of the first), padded: what both sides run.
fn input(device: &Device) -> BertInput {
    let ids = vec![
        vec![101u32, 2023, 2003, 1037, 3231, 102, 2009, 2001, 102],
        vec![101, 7592, 102],
    ];
    let input = BertInput::from_ids(&ids, 0, device).unwrap();
    let types: Vec<i64> = vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    BertInput {
        token_type_ids: Tensor::from_data(TensorData::new(types, [2, 9]), device),
        ..input
    }
}

/// Run the Python check on `export` with `outputs` (name, shape, values).
fn transformers_agrees(export: &Path, head: &str, outputs: &[(&str, Vec<usize>, Vec<f32>)]) {
    let device = device(BackendKind::Cpu);
    let input = input(&device);
    let dir = export.parent().unwrap();
    let inputs = dir.join(format!("{head}-inputs.safetensors"));
    write_bert_inputs(&inputs, input);
    let expected = dir.join(format!("{head}-outputs.safetensors"));
    let tensors: Vec<_> = outputs
        .iter()
        .map(|(name, shape, values)| {
            (
                name.to_string(),
                Dtype::F32,
                shape.clone(),
                f32_bytes(values),
            )
        })
        .collect();
    write_safetensors(&expected, &tensors);
    check_hf_roundtrip(export, &inputs, &expected, Some(head));
}

#[test]
fn classification_export_round_trips_through_transformers_and_bert_embed() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let random = tmp.path().join("random");
    // Random weights (no --model-parameters) of a small zoo shape, MNLI's three labels.
    ok(bert_train(&[
        "export",
        "--task",
        "classification",
        "--model",
        "bert_2_128_2",
        "--from-scratch",
        "--bert-dataset",
        "book_corpus_wiki_en_uncased",
        "--task-name",
        "MNLI",
        "--output-dir",
        &s(&random),
        "--seq-length",
        "64",
        "--seed",
        "5",
    ]));
    // Exporting that export again with its weights reproduces them.
    let export = tmp.path().join("export");
    ok(bert_train(&[
        "export",
        "--task",
        "classification",
        "--model-parameters",
        &s(&random),
        "--output-dir",
        &s(&export),
        "--seq-length",
        "64",
    ]));
    for name in [
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(export.join(name).is_file(), "{name} missing");
    }
    assert_eq!(
        std::fs::read(random.join("model.safetensors")).unwrap(),
        std::fs::read(export.join("model.safetensors")).unwrap()
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["id2label"]["1"], "entailment");
    assert_eq!(config["problem_type"], "single_label_classification");
    let tokenizer_config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(export.join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(tokenizer_config["model_max_length"], 64);

    // Our logits of the exported directory against transformers'.
    let device = device(BackendKind::Cpu);
    let bert_config = read_config(&export).unwrap();
    let weights = HfTensors::from_file(&export.join("model.safetensors")).unwrap();
    let (model, _) =
        load_bert_for_sequence_classification(&bert_config, 3, &weights, &device).unwrap();
    let logits = to_vec(model.forward(input(&device)));
    transformers_agrees(
        &export,
        "sequence-classification",
        &[("logits", vec![2, 3], logits)],
    );

    // bert-embed takes the encoder and skips the head.
    let out = ok(Command::new(env!("CARGO_BIN_EXE_bert-embed"))
        .args([
            "--model",
            &s(&export),
            "--sentences",
            "a classifier's encoder",
            "--no-token-embeddings",
        ])
        .output()
        .unwrap());
    let line = String::from_utf8_lossy(&out.stdout);
    let row: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(
        row["sentence_embedding"].as_array().map(Vec::len),
        Some(128),
        "{line}"
    );
    assert!(!stderr(&out).contains("not used"), "{}", stderr(&out));

    // A head of another size or kind is refused, naming the problem.
    let out = bert_train(&[
        "export",
        "--task",
        "classification",
        "--num-labels",
        "2",
        "--model-parameters",
        &s(&export),
        "--output-dir",
        &s(&tmp.path().join("x")),
    ]);
    expect_error(
        &out,
        &["classifier.weight", "has 3 output(s), the task needs 2"],
    );
    let out = bert_train(&[
        "export",
        "--task",
        "question_answering",
        "--model-parameters",
        &s(&export),
        "--output-dir",
        &s(&tmp.path().join("y")),
    ]);
    expect_error(&out, &["qa_outputs", "no question-answering head"]);
    let out = bert_train(&[
        "export",
        "--task",
        "regression",
        "--task-name",
        "RTE",
        "--output-dir",
        &s(&tmp.path().join("z")),
    ]);
    expect_error(&out, &["RTE is a classification task"]);
}

#[test]
fn regression_and_question_answering_exports_round_trip() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let device = device(BackendKind::Cpu);

    let regression = tmp.path().join("regression");
    ok(bert_train(&[
        "export",
        "--task",
        "regression",
        "--model",
        "bert_2_128_2",
        "--from-scratch",
        "--task-name",
        "STS-B",
        "--output-dir",
        &s(&regression),
        "--seq-length",
        "128",
    ]));
    let config = read_config(&regression).unwrap();
    assert_eq!(config.extra["problem_type"], "regression");
    let weights = HfTensors::from_file(&regression.join("model.safetensors")).unwrap();
    let (model, _) = load_bert_for_sequence_classification(&config, 1, &weights, &device).unwrap();
    let scores = to_vec(model.forward(input(&device)));
    transformers_agrees(
        &regression,
        "sequence-classification",
        &[("logits", vec![2, 1], scores)],
    );

    let qa = tmp.path().join("qa");
    ok(bert_train(&[
        "export",
        "--task",
        "question_answering",
        "--model",
        "bert_2_128_2",
        "--from-scratch",
        "--output-dir",
        &s(&qa),
        "--seq-length",
        "384",
    ]));
    let config = read_config(&qa).unwrap();
    let weights = HfTensors::from_file(&qa.join("model.safetensors")).unwrap();
    assert!(weights.shape("qa_outputs.weight").is_some());
    assert!(
        weights.shape("bert.pooler.dense.weight").is_none(),
        "HF's QA model has no pooler"
    );
    let (model, _) = load_bert_for_question_answering(&config, &weights, &device).unwrap();
    let spans = model.forward(input(&device));
    transformers_agrees(
        &qa,
        "question-answering",
        &[
            ("start_logits", vec![2, 9], to_vec(spans.start)),
            ("end_logits", vec![2, 9], to_vec(spans.end)),
        ],
    );
}

/// What `bert-train export` writes (here a classification export of the MiniLM architecture
/// with random weights: `bert.`-prefixed encoder, `classifier.*` head, the head in
/// config.json, tokenizer.json) loads through the browser's code path, head skipped, and gives
/// native `BertEmbedding`'s vectors.
#[test]
fn loads_a_bert_train_export() {
    let _turn = crate::common::rng_turn();
    use bert_model::embed::{BertEmbedding, EmbedOptions, Pooling};
    use bert_train::cli::export::{ExportArgs, ExportTask, run};
    use burn::tensor::Device;
    use test_support::{block_on, browser_fixture as fixture};

    let out = tempfile::tempdir().unwrap();
    run(ExportArgs {
        task: ExportTask::Classification,
        model_parameters: None,
        output_dir: out.path().to_path_buf(),
        seq_length: 128,
        model: Some(minilm_dir().to_string_lossy().into_owned()),
        bert_dataset: "book_corpus_wiki_en_uncased".into(),
        num_labels: Some(3),
        task_name: None,
        seed: 7,
        weights: Default::default(),
    })
    .unwrap();
    let file = |name: &str| std::fs::read(out.path().join(name)).unwrap();
    let device = Device::flex();
    let embedder = BertEmbedding::from_bytes(
        file("model.safetensors"),
        &String::from_utf8(file("config.json")).unwrap(),
        &file("tokenizer.json"),
        Some(128),
        &device,
    )
    .unwrap();
    let (sentences, _) = fixture();
    let got = block_on(embedder.embed_async(&sentences, EmbedOptions::default())).unwrap();

    let (native, _) = BertEmbedding::from_dir(out.path(), &device).unwrap();
    let native = native
        .with_pooling(Pooling::Mean)
        .with_normalize(true)
        .with_max_seq_length(128)
        .unwrap();
    let want = native.embed(&sentences).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let max_abs = g
            .iter()
            .zip(&w.sentence_embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_abs < 1e-5, "sentence {i}: max-abs {max_abs:e}");
    }
}
