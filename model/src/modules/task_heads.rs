//! The fine-tuning heads, module for module HF's `BertForSequenceClassification` (pooled `[CLS]`
//! → dropout → `classifier`) and `BertForQuestionAnswering` (every token → `qa_outputs` → start
//! and end logits), so that their checkpoints load and export without renaming.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

use super::bert::{BertInput, BertModel};
use super::config::BertConfig;
use super::pooler::BertPooler;

/// A linear layer initialised as HF's `_init_weights` does: weight ~ N(0, std), bias 0. Drawn
/// from the device's generator, so seeding the device first makes it reproducible.
pub fn hf_linear(d_in: usize, d_out: usize, std: f64, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out).init(device);
    linear.weight = Param::from_tensor(Tensor::random(
        [d_in, d_out],
        Distribution::Normal(0.0, std),
        device,
    ));
    linear.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    linear
}

/// HF's dropout before the classifier: `classifier_dropout` when the config sets it, else
/// `hidden_dropout_prob`.
fn classifier_dropout(config: &BertConfig) -> f64 {
    config
        .extra
        .get("classifier_dropout")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(config.hidden_dropout_prob)
}

/// HF: `BertForSequenceClassification` (`bert.*` + `classifier.*`). One output is regression
/// (STS-B), more are classes.
#[derive(Module, Debug)]
pub struct BertForSequenceClassification {
    pub bert: BertModel,
    pub dropout: Dropout,
    pub classifier: Linear,
}

impl BertForSequenceClassification {
    /// Encoder and head drawn at random (encoder weights are usually loaded over it).
    pub fn new(config: &BertConfig, num_labels: usize, device: &Device) -> Self {
        Self::with_encoder(BertModel::new(config, device), config, num_labels, device)
    }

    /// A fresh head (HF's initialisation) on `bert`; a pooler is added, drawn the same way,
    /// when the encoder has none.
    pub fn with_encoder(
        mut bert: BertModel,
        config: &BertConfig,
        num_labels: usize,
        device: &Device,
    ) -> Self {
        let std = config.initializer_range;
        if bert.pooler.is_none() {
            let h = config.hidden_size;
            bert.pooler = Some(BertPooler {
                dense: hf_linear(h, h, std, device),
            });
        }
        Self {
            bert,
            dropout: DropoutConfig::new(classifier_dropout(config)).init(),
            classifier: hf_linear(config.hidden_size, num_labels, std, device),
        }
    }

    /// Ready for inference on the CPU backend (`BertModel::for_inference`).
    pub fn for_inference(mut self) -> Self {
        self.bert = self.bert.for_inference();
        self
    }

    /// Outputs of the head: 1 for regression, else the number of classes.
    pub fn num_labels(&self) -> usize {
        self.classifier.weight.dims()[1]
    }

    /// `[batch, num_labels]` logits (scores for regression).
    pub fn forward(&self, input: BertInput) -> Tensor<2> {
        let pooled = self
            .bert
            .forward(input)
            .pooler_output
            .expect("BertForSequenceClassification always has a pooler");
        self.classifier.forward(self.dropout.forward(pooled))
    }
}

/// HF: `BertForQuestionAnswering` (`bert.*` without pooler + `qa_outputs.*`).
#[derive(Module, Debug)]
pub struct BertForQuestionAnswering {
    pub bert: BertModel,
    pub qa_outputs: Linear,
}

/// Start and end logits of every token, `[batch, seq]` each.
#[derive(Debug, Clone)]
pub struct SpanLogits {
    pub start: Tensor<2>,
    pub end: Tensor<2>,
}

impl BertForQuestionAnswering {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self::with_encoder(BertModel::new(config, device), config, device)
    }

    /// A fresh head on `bert`; HF's question-answering model has no pooler, so it is dropped.
    pub fn with_encoder(bert: BertModel, config: &BertConfig, device: &Device) -> Self {
        Self {
            bert: bert.without_pooler(),
            qa_outputs: hf_linear(config.hidden_size, 2, config.initializer_range, device),
        }
    }

    pub fn forward(&self, input: BertInput) -> SpanLogits {
        let hidden = self.bert.forward(input).last_hidden_state;
        let [batch, seq, _] = hidden.dims();
        let logits = self.qa_outputs.forward(hidden);
        let pick = |i: usize| {
            logits
                .clone()
                .slice(s![.., .., i..i + 1])
                .reshape([batch, seq])
        };
        SpanLogits {
            start: pick(0),
            end: pick(1),
        }
    }
}
