//! The one place where HuggingFace checkpoint keys and burn parameter paths differ.
//!
//! The modules mirror HF's so closely that a key maps segment by segment, with three
//! differences that Rust forces: `self` is a keyword (→ `self_attention`), `LayerNorm` is not a
//! snake-case field name (→ `layer_norm`), and burn's LayerNorm calls its parameters
//! `gamma`/`beta` (TF-era BERT checkpoints do too; PyTorch ones say `weight`/`bias`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Which HF class a checkpoint is loaded into, which decides the `bert.` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// HF `BertModel`: keys `embeddings.*`, `encoder.*`, `pooler.*`.
    Encoder,
    /// HF `BertForPreTraining`: keys `bert.*` and `cls.*`.
    PreTraining,
    /// HF `BertForSequenceClassification` / `BertForQuestionAnswering`: keys `bert.*` and the
    /// task head (`classifier.*` or `qa_outputs.*`).
    TaskHead,
}

/// The first segment of the fine-tuning heads' keys (HF's attribute names).
pub const TASK_HEAD_PREFIXES: [&str; 2] = ["classifier.", "qa_outputs."];

/// What to do with one key of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// Load it into this burn path.
    Load(String),
    /// A known tensor this model does not need (buffers, tied copies, other heads).
    Ignore(&'static str),
}

/// Map a HF key to a burn path for a model of `layout`.
pub fn hf_to_burn(key: &str, layout: Layout) -> KeyAction {
    let bare = key.strip_prefix("bert.").unwrap_or(key);
    if bare.ends_with("position_ids") {
        return KeyAction::Ignore("position ids are recomputed, not stored");
    }
    if bare == "cls.predictions.decoder.weight" {
        return KeyAction::Ignore("decoder weight is tied to the word embeddings");
    }
    if bare == "cls.predictions.decoder.bias" {
        return KeyAction::Ignore("a copy of cls.predictions.bias");
    }
    let is_pretraining_head = bare.starts_with("cls.");
    let is_task_head = TASK_HEAD_PREFIXES.iter().any(|p| bare.starts_with(p));
    let path = match layout {
        Layout::Encoder if is_pretraining_head => {
            return KeyAction::Ignore("pretraining head, not used by BertModel");
        }
        Layout::Encoder if is_task_head => {
            return KeyAction::Ignore("fine-tuning head, not used by BertModel");
        }
        Layout::Encoder => bare.to_string(),
        Layout::PreTraining if is_task_head => {
            return KeyAction::Ignore("fine-tuning head, not used by BertForPreTraining");
        }
        Layout::TaskHead if is_pretraining_head => {
            return KeyAction::Ignore("pretraining head, not used by a fine-tuning model");
        }
        Layout::PreTraining | Layout::TaskHead if is_pretraining_head || is_task_head => {
            bare.to_string()
        }
        Layout::PreTraining | Layout::TaskHead => alloc::format!("bert.{bare}"),
    };
    let segments: Vec<&str> = path.split('.').collect();
    let mapped: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let after_norm = i > 0 && segments[i - 1] == "LayerNorm";
            match *seg {
                "self" => "self_attention",
                "LayerNorm" => "layer_norm",
                "weight" | "gamma" if after_norm => "gamma",
                "bias" | "beta" if after_norm => "beta",
                other => other,
            }
        })
        .collect();
    KeyAction::Load(mapped.join("."))
}

/// Map a burn path (after burn-store's `BurnToPyTorchAdapter`, which already renamed
/// `gamma`/`beta` to `weight`/`bias`) to the HF key.
pub fn burn_to_hf(path: &str) -> String {
    path.split('.')
        .map(|seg| match seg {
            "self_attention" => "self",
            "layer_norm" => "LayerNorm",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The HF key for a burn path as the loader reports it (before any adapter): used to name
/// missing tensors in error messages.
pub fn burn_path_to_hf_name(path: &str) -> String {
    let hf = burn_to_hf(path);
    if let Some(stem) = hf.strip_suffix("LayerNorm.gamma") {
        alloc::format!("{stem}LayerNorm.weight")
    } else if let Some(stem) = hf.strip_suffix("LayerNorm.beta") {
        alloc::format!("{stem}LayerNorm.bias")
    } else {
        hf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(key: &str, layout: Layout) -> String {
        match hf_to_burn(key, layout) {
            KeyAction::Load(path) => path,
            KeyAction::Ignore(why) => panic!("{key} ignored: {why}"),
        }
    }

    #[test]
    fn maps_with_and_without_bert_prefix() {
        for key in [
            "encoder.layer.3.attention.self.query.weight",
            "bert.encoder.layer.3.attention.self.query.weight",
        ] {
            assert_eq!(
                load(key, Layout::Encoder),
                "encoder.layer.3.attention.self_attention.query.weight"
            );
        }
        assert_eq!(
            load("embeddings.word_embeddings.weight", Layout::PreTraining),
            "bert.embeddings.word_embeddings.weight"
        );
    }

    #[test]
    fn layer_norm_gamma_beta_and_weight_bias_agree() {
        for (a, b) in [("gamma", "weight"), ("beta", "bias")] {
            let key = |p: &str| alloc::format!("bert.encoder.layer.0.output.LayerNorm.{p}");
            assert_eq!(
                load(&key(a), Layout::Encoder),
                load(&key(b), Layout::Encoder)
            );
        }
        assert_eq!(
            load("embeddings.LayerNorm.weight", Layout::Encoder),
            "embeddings.layer_norm.gamma"
        );
        // A dense layer's weight is not a LayerNorm's.
        assert_eq!(
            load(
                "cls.predictions.transform.dense.weight",
                Layout::PreTraining
            ),
            "cls.predictions.transform.dense.weight"
        );
    }

    #[test]
    fn skips_buffers_tied_copies_and_unused_heads() {
        for key in [
            "embeddings.position_ids",
            "bert.embeddings.position_ids",
            "cls.predictions.decoder.weight",
            "cls.predictions.decoder.bias",
        ] {
            assert!(
                matches!(hf_to_burn(key, Layout::PreTraining), KeyAction::Ignore(_)),
                "{key}"
            );
        }
        assert!(matches!(
            hf_to_burn("cls.seq_relationship.weight", Layout::Encoder),
            KeyAction::Ignore(_)
        ));
        for head in ["classifier.weight", "qa_outputs.bias"] {
            assert!(matches!(
                hf_to_burn(head, Layout::Encoder),
                KeyAction::Ignore(_)
            ));
            assert_eq!(load(head, Layout::TaskHead), head);
        }
        assert!(matches!(
            hf_to_burn("cls.predictions.bias", Layout::TaskHead),
            KeyAction::Ignore(_)
        ));
        assert_eq!(
            load("embeddings.LayerNorm.weight", Layout::TaskHead),
            "bert.embeddings.layer_norm.gamma"
        );
    }

    #[test]
    fn burn_paths_map_back() {
        assert_eq!(
            burn_to_hf("bert.encoder.layer.11.attention.self_attention.key.bias"),
            "bert.encoder.layer.11.attention.self.key.bias"
        );
        assert_eq!(
            burn_to_hf("embeddings.layer_norm.weight"),
            "embeddings.LayerNorm.weight"
        );
        assert_eq!(
            burn_path_to_hf_name("encoder.layer.0.output.layer_norm.gamma"),
            "encoder.layer.0.output.LayerNorm.weight"
        );
    }
}
