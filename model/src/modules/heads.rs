//! `cls.*`: the pretraining heads. Masked-LM (transform + LayerNorm + decoder tied to the word
//! embeddings + bias) and next-sentence prediction; with `BertModel` under `bert.*` they make
//! HF's `BertForPreTraining`.

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use super::bert::{BertInput, BertModel};
use super::config::{Activation, BertConfig};
use super::layer::activate;

/// HF: `cls.predictions.transform`.
#[derive(Module, Debug)]
pub struct BertPredictionHeadTransform {
    pub dense: Linear,
    #[module(skip)]
    pub act: Activation,
    /// HF: `LayerNorm`.
    pub layer_norm: LayerNorm,
}

impl BertPredictionHeadTransform {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            dense: LinearConfig::new(h, h).init(device),
            act: config.hidden_act,
            layer_norm: LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.layer_norm
            .forward(activate(self.act, self.dense.forward(x)))
    }
}

/// HF: `cls.predictions`. The decoder has no weight of its own: it is the word-embedding
/// matrix, passed in, so the tie can never drift.
#[derive(Module, Debug)]
pub struct BertLMPredictionHead {
    pub transform: BertPredictionHeadTransform,
    /// HF: `cls.predictions.bias` (also stored as `cls.predictions.decoder.bias`).
    pub bias: Param<Tensor<1>>,
}

impl BertLMPredictionHead {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            transform: BertPredictionHeadTransform::new(config, device),
            bias: Param::from_tensor(Tensor::zeros([config.vocab_size], device)),
        }
    }

    /// Hidden states of the masked positions `[n, hidden]` → vocabulary logits `[n, vocab]`.
    pub fn forward(&self, hidden: Tensor<2>, word_embeddings: &Embedding) -> Tensor<2> {
        let x = self.transform.forward(hidden);
        let decoder = word_embeddings.weight.val().transpose();
        x.matmul(decoder) + self.bias.val().unsqueeze()
    }
}

/// HF: `cls`.
#[derive(Module, Debug)]
pub struct BertPreTrainingHeads {
    pub predictions: BertLMPredictionHead,
    /// Is-next / not-next logits from the pooled output.
    pub seq_relationship: Linear,
}

impl BertPreTrainingHeads {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            predictions: BertLMPredictionHead::new(config, device),
            seq_relationship: LinearConfig::new(config.hidden_size, 2).init(device),
        }
    }
}

/// HF: `BertForPreTraining` (`bert.*` + `cls.*`).
#[derive(Module, Debug)]
pub struct BertForPreTraining {
    pub bert: BertModel,
    pub cls: BertPreTrainingHeads,
}

/// Logits of both pretraining tasks.
#[derive(Debug, Clone)]
pub struct PreTrainingOutput {
    /// `[n_masked, vocab]`, one row per entry of `masked_positions`.
    pub mlm_logits: Tensor<2>,
    /// `[batch, 2]`: index 0 = "B follows A", as in Google's and HF's BERT.
    pub nsp_logits: Tensor<2>,
}

impl BertForPreTraining {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            bert: BertModel::new(config, device),
            cls: BertPreTrainingHeads::new(config, device),
        }
    }

    /// `masked_positions` are flat indices `row * seq + col` into the batch; predicting only
    /// there keeps the `[.., vocab]` matmul to the ~15% of tokens that are scored.
    pub fn forward(&self, input: BertInput, masked_positions: Tensor<1, Int>) -> PreTrainingOutput {
        let out = self.bert.forward(input);
        let [batch, seq, hidden] = out.last_hidden_state.dims();
        let flat = out.last_hidden_state.reshape([batch * seq, hidden]);
        let masked = flat.select(0, masked_positions);
        let mlm_logits = self
            .cls
            .predictions
            .forward(masked, &self.bert.embeddings.word_embeddings);
        let pooled = out
            .pooler_output
            .expect("BertForPreTraining always has a pooler");
        PreTrainingOutput {
            mlm_logits,
            nsp_logits: self.cls.seq_relationship.forward(pooled),
        }
    }
}
