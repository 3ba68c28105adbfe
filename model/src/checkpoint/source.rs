//! Where a model comes from, as `--model` names it: a model-zoo shape (`bert_12_768_12`, ...)
//! or a HuggingFace model directory.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::modules::{BertConfig, ZOO_NAMES};

/// `--model`: a model-zoo name or a HuggingFace model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    Zoo(String),
    Dir(PathBuf),
}

impl ModelSource {
    /// A zoo name if it is one, else an existing directory holding `config.json`.
    pub fn parse(spec: &str) -> Result<Self> {
        if ZOO_NAMES.contains(&spec) {
            return Ok(Self::Zoo(spec.to_string()));
        }
        let dir = PathBuf::from(spec);
        if dir.join("config.json").is_file() {
            return Ok(Self::Dir(dir));
        }
        bail!(
            "--model {spec:?} is neither a model-zoo name ({}) nor a directory with config.json",
            ZOO_NAMES.join(", ")
        )
    }

    /// The architecture; a zoo model takes `zoo_vocab_size` (the vocabulary it will use).
    pub fn bert_config(&self, zoo_vocab_size: usize) -> Result<BertConfig> {
        match self {
            Self::Zoo(name) => Ok(BertConfig::zoo(name)?.with_vocab_size(zoo_vocab_size)),
            Self::Dir(dir) => super::dir::read_config(dir),
        }
    }
}
