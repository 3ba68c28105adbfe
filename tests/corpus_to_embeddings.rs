//! The whole way through, with each crate's public API: the bundled sample corpus → shards
//! (bert-pipeline) → a small BERT pretrained on them (bert-train, CPU) → its HuggingFace
//! export → sentence embeddings (bert-train's BertEmbedding) — which PyTorch `transformers`,
//! loading the same exported directory, must reproduce.

use std::path::Path;
use std::process::Command;

use bert_model::BackendKind;
use bert_model::checkpoint::ModelSource;
use bert_model::embed::BertEmbedding;
use bert_pipeline::build::{BuildOptions, build};
use bert_pipeline::config::BuildConfig;
use bert_train::pretrain::{PretrainConfig, RunOptions, train};

const SENTENCES: [&str; 3] = [
    "Anne had been a very pretty girl, but her bloom had vanished early.",
    "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, never took up any book but the Baronetage.",
    "The navy is a noble profession.",
];

fn sample_corpus_prefix(dir: &Path, bytes: usize) -> String {
    let full = std::fs::read_to_string(
        bert_tests::repo_root().join("pipeline/sample-corpus/persuasion.txt"),
    )
    .unwrap();
    let end = full[..bytes].rfind("\n\n").unwrap();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, &full[..end]).unwrap();
    path.display().to_string()
}

fn tiny_model(dir: &Path) -> String {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let config = serde_json::json!({
        "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 128, "max_position_embeddings": 64,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "model_type": "bert",
    });
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    model.display().to_string()
}

#[test]
fn corpus_to_shards_to_pretrained_model_to_embeddings_equal_to_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = sample_corpus_prefix(dir.path(), 60_000);
    let shards = dir.path().join("shards");
    let stats = build(
        &BuildConfig {
            max_seq_length: 64,
            dupe_factor: 2,
            ..BuildConfig::default()
        },
        &[corpus],
        &BuildOptions {
            output: shards.clone(),
            overwrite: false,
            threads: Some(2),
            progress: false,
            cancel: None,
        },
    )
    .unwrap();
    eprintln!("built {} instances", stats.totals.instances);

    let mut config = PretrainConfig::new(shards);
    config.model = ModelSource::Dir(tiny_model(dir.path()).into());
    config.ckpt_dir = dir.path().join("ckpt");
    config.batch_size = 16;
    config.num_steps = 30;
    config.lr = 2e-3;
    config.warmup_ratio = 0.1;
    config.log_interval = 10;
    let summary = train(
        &config,
        &RunOptions {
            stop_after: None,
            print: false,
        },
    )
    .unwrap();
    let rows: Vec<serde_json::Value> =
        std::fs::read_to_string(config.ckpt_dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let first = rows[0]["mlm_loss"].as_f64().unwrap();
    let last = rows[rows.len() - 1]["mlm_loss"].as_f64().unwrap();
    assert!(
        last < first - 0.5,
        "pretraining did not learn: MLM loss {first} -> {last}"
    );
    let final_dir = summary.final_dir.expect("the run finished and exported");

    let device = BackendKind::Cpu.device().unwrap();
    let (embedder, report) = BertEmbedding::from_dir(&final_dir, &device).unwrap();
    assert!(report.unused.is_empty() || report.unused.iter().all(|k| k.starts_with("cls.")));
    let sentences: Vec<String> = SENTENCES.iter().map(|s| s.to_string()).collect();
    let ours: Vec<Vec<f32>> = embedder
        .embed(&sentences)
        .unwrap()
        .into_iter()
        .map(|e| e.sentence_embedding)
        .collect();
    assert!(
        ours.iter()
            .all(|v| v.len() == 32 && v.iter().all(|x| x.is_finite()))
    );

    let script = r#"
import json, sys, torch
from transformers import AutoModel, AutoTokenizer
path, sentences = sys.argv[1], json.loads(sys.argv[2])
tok = AutoTokenizer.from_pretrained(path)
model = AutoModel.from_pretrained(path).eval()
out = []
with torch.no_grad():
    for s in sentences:
        enc = tok(s, return_tensors="pt")
        h = model(**enc).last_hidden_state[0]
        out.append(h.mean(0).tolist())
print(json.dumps(out))
"#;
    let python = bert_tests::reference_python();
    let output = Command::new(&python)
        .args(["-c", script])
        .arg(&final_dir)
        .arg(serde_json::to_string(&SENTENCES).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (tests/python/setup_venv.sh): {e}"));
    assert!(
        output.status.success(),
        "transformers could not embed with the exported model: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs: Vec<Vec<f32>> = serde_json::from_slice(&output.stdout).unwrap();
    let mut worst = 0f32;
    for (a, b) in ours.iter().zip(&theirs) {
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    eprintln!("embeddings: largest difference from transformers {worst:.2e}");
    assert!(worst < 1e-4, "{worst}");
}
