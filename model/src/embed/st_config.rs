//! The defaults a sentence-transformers model directory declares: pooling mode
//! (`1_Pooling/config.json`), normalisation (a `Normalize` module in `modules.json`) and
//! `max_seq_length` (`sentence_bert_config.json`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::pooling::Pooling;

/// What the sentence-transformers files of a model directory say, where they say it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentenceTransformersDefaults {
    pub pooling: Option<Pooling>,
    pub normalize: Option<bool>,
    pub max_seq_length: Option<usize>,
    pub do_lower_case: Option<bool>,
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(Some(value))
}

impl SentenceTransformersDefaults {
    /// Read them from `dir`; absent files give `None`s, malformed ones an error.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut defaults = Self::default();
        let mut pooling_dir = dir.join("1_Pooling");
        if let Some(modules) = read_json(&dir.join("modules.json"))? {
            let modules = modules.as_array().context("modules.json is not a list")?;
            let has = |suffix: &str| {
                modules
                    .iter()
                    .find(|m| m["type"].as_str().is_some_and(|t| t.ends_with(suffix)))
            };
            if let Some(pooling) = has("models.Pooling")
                && let Some(path) = pooling["path"].as_str()
            {
                pooling_dir = dir.join(path);
            }
            defaults.normalize = Some(has("models.Normalize").is_some());
        }
        if let Some(config) = read_json(&pooling_dir.join("config.json"))? {
            let flag = |key: &str| config[key].as_bool().unwrap_or(false);
            defaults.pooling = Some(
                match (
                    flag("pooling_mode_cls_token"),
                    flag("pooling_mode_mean_tokens"),
                ) {
                    (true, false) => Pooling::Cls,
                    (false, true) => Pooling::Mean,
                    _ => bail!(
                        "{}: only pooling_mode_cls_token or pooling_mode_mean_tokens (exactly one) \
                     is supported",
                        pooling_dir.join("config.json").display()
                    ),
                },
            );
            for unsupported in [
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens",
                "pooling_mode_lasttoken",
            ] {
                if flag(unsupported) {
                    bail!("{unsupported} is not supported");
                }
            }
        }
        if let Some(config) = read_json(&dir.join("sentence_bert_config.json"))? {
            defaults.max_seq_length = config["max_seq_length"].as_u64().map(|n| n as usize);
            defaults.do_lower_case = config["do_lower_case"].as_bool();
        }
        Ok(defaults)
    }
}
