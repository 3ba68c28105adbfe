//! A fine-tuned sentence (or sentence-pair) classifier for inference: the directory that
//! `bert-train finetune-classifier` and `bert-train export --task classification` write (HF's
//! `BertForSequenceClassification`: `bert.*` + `classifier.*`, `config.json` with `id2label`
//! and `problem_type`), with its tokenizer. The encoder is the one [`BertModel`](crate::BertModel).

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use tokenizers::{EncodeInput, Encoding, Tokenizer};

use crate::checkpoint::{
    HfTensors, load_bert_for_sequence_classification, load_tokenizer, read_config, weights_path,
};
use crate::kernels;
use crate::modules::{BertForSequenceClassification, BertInput};
use crate::precision::{Precision, check_device, compute_model};

/// What the head's outputs mean.
#[derive(Debug, Clone, PartialEq)]
pub enum Outputs {
    /// Class scores, one per label (softmax turns them into probabilities).
    Classes(Vec<String>),
    /// One value: regression (STS-B).
    Regression,
}

/// One input as the model sees it: token ids and their segment ids (0 for the first text,
/// 1 for the second of a pair).
#[derive(Debug, Clone, PartialEq)]
pub struct PairIds {
    pub ids: Vec<u32>,
    pub segments: Vec<u32>,
}

pub struct SequenceClassifier {
    model: BertForSequenceClassification,
    tokenizer: Tokenizer,
    outputs: Outputs,
    max_seq_length: usize,
    pad_id: u32,
    device: Device,
    precision: Precision,
}

impl SequenceClassifier {
    /// Whether `dir`'s weights carry a sequence-classification head (`classifier.*`).
    pub fn is_classifier_dir(dir: &Path) -> bool {
        weights_path(dir)
            .ok()
            .and_then(|path| HfTensors::from_file(&path).ok())
            .is_some_and(|weights| weights.classifier_outputs().is_some())
    }

    /// Load a fine-tuned classifier directory onto `device`.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<Self> {
        let config = read_config(dir)?;
        let weights = HfTensors::from_file(&weights_path(dir)?)?;
        let Some(num_labels) = weights.classifier_outputs() else {
            bail!(
                "{} has no classification head (classifier.*): it is an encoder, not a \
                 fine-tuned classifier",
                dir.display()
            );
        };
        let (model, _) =
            load_bert_for_sequence_classification(&config, num_labels, &weights, device)
                .with_context(|| format!("loading {}", dir.display()))?;
        let regression = config
            .extra
            .get("problem_type")
            .and_then(serde_json::Value::as_str)
            == Some("regression")
            || num_labels == 1;
        let outputs = if regression {
            Outputs::Regression
        } else {
            Outputs::Classes(label_names(&config.extra, num_labels))
        };
        let max_seq_length = config.max_position_embeddings;
        let tokenizer = load_tokenizer(dir, max_seq_length, None)?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        Ok(Self {
            model: model.for_inference(),
            tokenizer,
            outputs,
            max_seq_length,
            pad_id,
            device: device.clone(),
            precision: Precision::Float32,
        })
    }

    /// Cut inputs to at most `n` tokens (`[CLS]`/`[SEP]`s included), the longer text of a pair
    /// first, as fine-tuning's `--max-len` does.
    pub fn with_max_seq_length(mut self, n: usize) -> Result<Self> {
        let limit = self.model.bert.embeddings.position_embeddings.weight.dims()[0];
        if n < 3 || n > limit {
            bail!("the input length must be between 3 and the model's {limit} positions, got {n}");
        }
        self.tokenizer = load_tokenizer_truncated(self.tokenizer, n)?;
        self.max_seq_length = n;
        Ok(self)
    }

    pub fn outputs(&self) -> &Outputs {
        &self.outputs
    }

    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokenize texts and pairs as fine-tuning did (`[CLS] A [SEP] (B [SEP])`, the longer text
    /// cut first); what was cut is in each encoding's `get_overflowing()`.
    pub fn encode(&self, inputs: &[(String, Option<String>)]) -> Result<Vec<Encoding>> {
        let inputs: Vec<EncodeInput> = inputs
            .iter()
            .map(|(a, b)| match b {
                Some(b) => (a.as_str(), b.as_str()).into(),
                None => a.as_str().into(),
            })
            .collect();
        self.tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))
    }

    /// Compute in `precision` (the weights cast once); an error where the device lacks it.
    pub fn with_precision(mut self, precision: Precision) -> Result<Self> {
        check_device(precision, &self.device)?;
        self.model = compute_model(&self.model, precision).for_inference();
        self.precision = precision;
        Ok(self)
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The head's raw outputs (logits, or the regression value) for one padded batch, in
    /// input order.
    pub fn logits(&self, inputs: &[PairIds]) -> Result<Vec<Vec<f32>>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&[u32]> = inputs.iter().map(|i| i.ids.as_slice()).collect();
        let segments: Vec<&[u32]> = inputs.iter().map(|i| i.segments.as_slice()).collect();
        let longest = ids.iter().map(|s| s.len()).max().unwrap_or(0);
        let input = BertInput::padded(&ids, Some(&segments), self.pad_id, longest, &self.device)?;
        let n = self.model.num_labels();
        let flat = kernels::on_cpu_pool(&self.device, || self.model.forward(input))
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
        Ok(flat.chunks(n).map(<[f32]>::to_vec).collect())
    }
}

fn load_tokenizer_truncated(mut tokenizer: Tokenizer, n: usize) -> Result<Tokenizer> {
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: n,
            ..Default::default()
        }))
        .map_err(|e| anyhow::anyhow!("cannot truncate to {n} tokens: {e}"))?;
    Ok(tokenizer)
}

/// `id2label` in index order; HF's `LABEL_i` where it has none.
fn label_names(extra: &serde_json::Map<String, serde_json::Value>, n: usize) -> Vec<String> {
    let id2label = extra.get("id2label").and_then(serde_json::Value::as_object);
    (0..n)
        .map(|i| {
            id2label
                .and_then(|m| m.get(&i.to_string()))
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| format!("LABEL_{i}"), str::to_string)
        })
        .collect()
}
