//! Helpers of the pretraining tests: small shard sets cut from the bundled sample corpus, and
//! tiny model directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bert_model::checkpoint::ModelSource;
use bert_pipeline::build::{BuildOptions, build};
use bert_pipeline::config::BuildConfig;
use bert_train::pretrain::PretrainConfig;

/// The first `bytes` of the sample corpus, cut at a line end, as a corpus file in `dir`.
pub fn corpus_prefix(dir: &Path, bytes: usize) -> PathBuf {
    let full = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pipeline/sample-corpus/persuasion.txt"
    ))
    .expect("the sample corpus is in pipeline/sample-corpus");
    let end = full[..bytes.min(full.len())]
        .rfind('\n')
        .unwrap_or(full.len());
    let path = dir.join("corpus.txt");
    std::fs::write(&path, &full[..end]).unwrap();
    path
}

/// Build shards from the first `corpus_bytes` of the sample corpus into `dir/shards`.
pub fn build_shards(
    dir: &Path,
    corpus_bytes: usize,
    max_seq_length: usize,
    shard_size: u64,
) -> PathBuf {
    let corpus = corpus_prefix(dir, corpus_bytes);
    let out = dir.join("shards");
    let config = BuildConfig {
        dupe_factor: 1,
        max_seq_length,
        shard_size,
        ..BuildConfig::default()
    };
    let options = BuildOptions {
        output: out.clone(),
        overwrite: false,
        threads: Some(1),
        progress: false,
        cancel: None,
    };
    build(&config, &[corpus.display().to_string()], &options).expect("build test shards");
    out
}

/// A model directory holding only `config.json` (no weights: trained from scratch), with the
/// uncased vocabulary's 30522 tokens.
pub fn tiny_model_dir(
    dir: &Path,
    hidden: usize,
    layers: usize,
    heads: usize,
    dropout: f64,
    positions: usize,
) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let config = serde_json::json!({
        "vocab_size": 30522,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 4 * hidden,
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
        "max_position_embeddings": positions,
        "model_type": "bert",
    });
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    model
}

/// A quiet CPU run of `model` on `shards`, checkpointing into `ckpt_dir`.
pub fn cpu_config(shards: &Path, model: &Path, ckpt_dir: &Path) -> PretrainConfig {
    let mut config = PretrainConfig::new(shards.to_path_buf());
    config.model = ModelSource::Dir(model.to_path_buf());
    config.ckpt_dir = ckpt_dir.to_path_buf();
    config.log_interval = 1;
    config
}
