//! `BertConfig`: the hyper-parameters of a BERT encoder, stored as HuggingFace's `config.json`.
//!
//! This is a file format as much as a config, so it is a plain serde struct with HF's own field
//! names (burn's `#[derive(Config)]` cannot keep the keys it does not know, and HF configs carry
//! many). Unknown keys survive a read/write round trip in `extra`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::error::BertError;

/// The activation of the feed-forward block (`hidden_act` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Exact GELU, `x * Φ(x)` with erf: what `"gelu"` means in HF's BERT.
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation of GELU (`"gelu_new"`, `"gelu_pytorch_tanh"`).
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    /// `max(0, x)`.
    #[serde(rename = "relu")]
    Relu,
}

/// Hyper-parameters of a BERT encoder, field for field HuggingFace's `BertConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Every other key of `config.json` (architectures, torch_dtype, ...), kept for writing back.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_act() -> Activation {
    Activation::Gelu
}
fn default_dropout() -> f64 {
    0.1
}
fn default_max_positions() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_init_range() -> f64 {
    0.02
}
// Google's original checkpoints and HF both use 1e-12.
fn default_eps() -> f64 {
    1e-12
}
fn default_model_type() -> String {
    "bert".to_string()
}

/// The names of the model zoo, smallest first.
pub const ZOO_NAMES: [&str; 5] = [
    "bert_2_128_2",
    "bert_4_256_4",
    "bert_6_384_12",
    "bert_12_768_12",
    "bert_24_1024_16",
];

impl BertConfig {
    /// A config with BERT's defaults for everything but the shape.
    ///
    /// `intermediate_size` is the usual `4 * hidden_size`.
    pub fn new(
        vocab_size: usize,
        hidden_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
    ) -> Self {
        Self {
            vocab_size,
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            intermediate_size: 4 * hidden_size,
            hidden_act: default_act(),
            hidden_dropout_prob: default_dropout(),
            attention_probs_dropout_prob: default_dropout(),
            max_position_embeddings: default_max_positions(),
            type_vocab_size: default_type_vocab(),
            initializer_range: default_init_range(),
            layer_norm_eps: default_eps(),
            pad_token_id: 0,
            model_type: default_model_type(),
            extra: serde_json::Map::new(),
        }
    }

    /// A named configuration of the model zoo, `bert_{layers}_{hidden}_{heads}`, with the
    /// uncased English vocabulary size (30522).
    ///
    /// `bert_12_768_12` is BERT-BASE, `bert_24_1024_16` BERT-LARGE, `bert_6_384_12` the shape
    /// of all-MiniLM-L6-v2; the two smallest are for tests and CPU work.
    pub fn zoo(name: &str) -> Result<Self, BertError> {
        const VOCAB: usize = 30522;
        let (layers, hidden, heads) = match name {
            "bert_2_128_2" => (2, 128, 2),
            "bert_4_256_4" => (4, 256, 4),
            "bert_6_384_12" => (6, 384, 12),
            "bert_12_768_12" => (12, 768, 12),
            "bert_24_1024_16" => (24, 1024, 16),
            other => {
                return Err(BertError::Config(alloc::format!(
                    "unknown model-zoo name {other:?}; known: {}",
                    ZOO_NAMES.join(", ")
                )));
            }
        };
        Ok(Self::new(VOCAB, hidden, layers, heads))
    }

    /// Parameters of `BertForPreTraining` (encoder, pooler, MLM head with the decoder tied to
    /// the word embeddings, NSP head): what Google's and HF's checkpoints hold.
    pub fn parameter_count(&self) -> usize {
        let (h, i, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let embeddings = (v + self.max_position_embeddings + self.type_vocab_size) * h + 2 * h;
        let layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h;
        let pooler = h * h + h;
        let mlm = (h * h + h) + 2 * h + v;
        let nsp = 2 * h + 2;
        embeddings + self.num_hidden_layers * layer + pooler + mlm + nsp
    }

    /// Set the vocabulary size (e.g. to match a cased or Chinese vocabulary).
    pub fn with_vocab_size(mut self, vocab_size: usize) -> Self {
        self.vocab_size = vocab_size;
        self
    }

    /// The width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Parse `config.json` text and check that the shape is usable.
    pub fn from_json_str(json: &str) -> Result<Self, BertError> {
        let config: Self = serde_json::from_str(json)
            .map_err(|e| BertError::Config(alloc::format!("config.json: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// `config.json` text, pretty-printed like HF writes it.
    pub fn to_json_string(&self) -> String {
        // Serializing a struct of plain fields cannot fail.
        serde_json::to_string_pretty(self).expect("BertConfig serializes")
    }

    /// Reject shapes no BERT can have, before any tensor is allocated.
    pub fn validate(&self) -> Result<(), BertError> {
        let mut problems: Vec<String> = Vec::new();
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if value == 0 {
                problems.push(alloc::format!("{name} must be positive"));
            }
        }
        if self.num_attention_heads > 0
            && !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            problems.push(alloc::format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                problems.push(alloc::format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if self.model_type != "bert" {
            problems.push(alloc::format!(
                "model_type is {:?}; only \"bert\" checkpoints are supported",
                self.model_type
            ));
        }
        let pos_type = self
            .extra
            .get("position_embedding_type")
            .and_then(|v| v.as_str());
        if let Some(kind) = pos_type.filter(|kind| *kind != "absolute") {
            problems.push(alloc::format!(
                "position_embedding_type {kind:?} is not supported (only \"absolute\")"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BertError::Config(problems.join("; ")))
        }
    }

    /// Number of parameters of the encoder with pooler (the heads add only a little).
    pub fn num_params(&self) -> usize {
        let h = self.hidden_size;
        let i = self.intermediate_size;
        let embeddings =
            (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h + 2 * h;
        let layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h;
        embeddings + self.num_hidden_layers * layer + h * h + h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hf_config_and_keeps_unknown_keys() {
        let json = r#"{
          "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1,
          "gradient_checkpointing": false, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
          "hidden_size": 384, "initializer_range": 0.02, "intermediate_size": 1536,
          "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
          "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
          "position_embedding_type": "absolute", "transformers_version": "4.8.2",
          "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522
        }"#;
        let config = BertConfig::from_json_str(json).unwrap();
        assert_eq!(config.hidden_size, 384);
        assert_eq!(config.hidden_act, Activation::Gelu);
        assert_eq!(config.head_dim(), 32);
        assert_eq!(config.extra["transformers_version"], "4.8.2");
        let again = BertConfig::from_json_str(&config.to_json_string()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn zoo_has_base_large_and_minilm_shapes() {
        let base = BertConfig::zoo("bert_12_768_12").unwrap();
        // BERT-BASE has 109.5M parameters with its pooler.
        assert_eq!(base.num_params(), 109_482_240);
        assert_eq!(
            BertConfig::zoo("bert_24_1024_16")
                .unwrap()
                .intermediate_size,
            4096
        );
        assert_eq!(BertConfig::zoo("bert_6_384_12").unwrap().head_dim(), 32);
        let err = BertConfig::zoo("bert_3_3_3").unwrap_err().to_string();
        assert!(err.contains("bert_12_768_12"), "{err}");
    }

    #[test]
    fn rejects_impossible_shapes_with_every_reason() {
        let mut config = BertConfig::new(100, 30, 2, 4);
        config.hidden_dropout_prob = 1.5;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("not a multiple"), "{err}");
        assert!(err.contains("hidden_dropout_prob"), "{err}");
        assert!(BertConfig::from_json_str("{\"hidden_size\": 3}").is_err());
        let err = BertConfig::from_json_str(
            r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
               "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "swish"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("swish"), "{err}");
    }
}
