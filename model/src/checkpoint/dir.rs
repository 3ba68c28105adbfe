//! A HuggingFace model directory on disk: `config.json`, `model.safetensors`, and
//! `tokenizer.json` and/or `vocab.txt`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use tokenizers::{Tokenizer, TruncationParams};

use super::import::{HfTensors, LoadReport, load_bert_for_pretraining, load_bert_model};
use crate::modules::{BertConfig, BertForPreTraining, BertModel};

/// Read and validate `DIR/config.json`.
pub fn read_config(dir: &Path) -> Result<BertConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (is {} a model directory?)",
            path.display(),
            dir.display()
        )
    })?;
    BertConfig::from_json_str(&text).with_context(|| format!("in {}", path.display()))
}

/// The weights file of a model directory: `model.safetensors`, else `pytorch_model.bin`.
pub fn weights_path(dir: &Path) -> Result<PathBuf> {
    for name in ["model.safetensors", "pytorch_model.bin"] {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "{} has neither model.safetensors nor pytorch_model.bin",
        dir.display()
    )
}

/// Load `DIR` as a `BertModel` (with or without the `bert.` prefix in its keys).
pub fn load_model_dir(dir: &Path, device: &Device) -> Result<(BertModel, BertConfig, LoadReport)> {
    let config = read_config(dir)?;
    let weights = HfTensors::from_file(&weights_path(dir)?)?;
    let (model, report) = load_bert_model(&config, &weights, device)?;
    Ok((model, config, report))
}

/// Load `DIR` as a `BertForPreTraining` (needs the `cls.*` heads in the file).
pub fn load_pretraining_dir(
    dir: &Path,
    device: &Device,
) -> Result<(BertForPreTraining, BertConfig, LoadReport)> {
    let config = read_config(dir)?;
    let weights = HfTensors::from_file(&weights_path(dir)?)?;
    let (model, report) = load_bert_for_pretraining(&config, &weights, device)?;
    Ok((model, config, report))
}

/// Whether the tokenizer lower-cases, from `tokenizer_config.json` (HF's `do_lower_case`).
fn do_lower_case(dir: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(dir.join("tokenizer_config.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["do_lower_case"].as_bool()
}

/// The model's tokenizer, without padding (the batcher pads) and truncating to `max_len`
/// tokens including `[CLS]`/`[SEP]`.
///
/// `tokenizer.json` when present, else `vocab.txt` with BERT's normalisation (lower-casing as
/// `tokenizer_config.json`, then `lowercase_fallback`, say; uncased if nothing does).
pub fn load_tokenizer(
    dir: &Path,
    max_len: usize,
    lowercase_fallback: Option<bool>,
) -> Result<Tokenizer> {
    let json = dir.join("tokenizer.json");
    let vocab = dir.join("vocab.txt");
    let mut tokenizer = if json.is_file() {
        Tokenizer::from_file(&json)
            .map_err(|e| anyhow::anyhow!("cannot load {}: {e}", json.display()))?
    } else if vocab.is_file() {
        let lowercase = do_lower_case(dir).or(lowercase_fallback).unwrap_or(true);
        bert_core::vocab::bert_tokenizer_from_vocab_file(&vocab, lowercase)?
    } else {
        bail!("{} has neither tokenizer.json nor vocab.txt", dir.display());
    };
    // Some exported tokenizer.json files (all-MiniLM-L6-v2's) pad every input to 128: that
    // would make mean pooling average padding. Batches are padded by us, with a mask.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..Default::default()
        }))
        .map_err(|e| anyhow::anyhow!("cannot truncate to {max_len} tokens: {e}"))?;
    Ok(tokenizer)
}
