//! `encoder.layer.N.attention.*`: multi-head self-attention with a padding mask, and its
//! post-LayerNorm residual output.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::config::BertConfig;
use crate::kernels::{self, Prepacked, project, project_all};
use crate::mask::{PaddingMask, RealRows};

/// HF: `attention.self` (`self` is a Rust keyword, hence the longer field name).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub dropout: Dropout,
    pub num_heads: usize,
    /// The query, key and value weights packed for the CPU at inference (`BertModel::for_inference`).
    #[module(skip)]
    pub prepacked: Prepacked,
}

impl BertSelfAttention {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            query: LinearConfig::new(h, h).init(device),
            key: LinearConfig::new(h, h).init(device),
            value: LinearConfig::new(h, h).init(device),
            dropout: DropoutConfig::new(config.attention_probs_dropout_prob).init(),
            num_heads: config.num_attention_heads,
            prepacked: Prepacked::default(),
        }
    }

    /// `[batch, seq, hidden]` → context `[batch, seq, hidden]`; with `rows` (inference), the
    /// real tokens alone in and out (`[1, tokens, hidden]`), each row attending over its own.
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask, rows: Option<&RealRows>) -> Tensor<3> {
        let [q, k, v] = project_all([&self.query, &self.key, &self.value], &self.prepacked, x);
        match rows {
            Some(rows) => self.attend_each(q, k, v, rows.lengths()),
            None => self.attend(q, k, v, mask),
        }
    }

    /// Attention of each row over its own tokens, on `[1, tokens, hidden]` projections whose
    /// rows follow one another with `lengths` tokens each: no padding, no mask.
    fn attend_each(
        &self,
        q: Tensor<3>,
        k: Tensor<3>,
        v: Tensor<3>,
        lengths: &[usize],
    ) -> Tensor<3> {
        let hidden = q.dims()[2];
        let (heads, head_dim) = (self.num_heads, hidden / self.num_heads);
        let mut start = 0;
        let mut contexts = alloc::vec::Vec::with_capacity(lengths.len());
        for &len in lengths.iter().filter(|&&len| len > 0) {
            let row = |t: &Tensor<3>| {
                t.clone()
                    .slice([0..1, start..start + len, 0..hidden])
                    .reshape([1, len, heads, head_dim])
                    .swap_dims(1, 2)
            };
            let context = attention(
                row(&q),
                row(&k),
                row(&v),
                None,
                None,
                AttentionModuleOptions::default(),
            );
            contexts.push(context.swap_dims(1, 2).reshape([1, len, hidden]));
            start += len;
        }
        Tensor::cat(contexts, 1)
    }

    /// Multi-head attention over padded `[batch, seq, hidden]` projections.
    fn attend(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, mask: &PaddingMask) -> Tensor<3> {
        let [batch, seq, hidden] = q.dims();
        let heads = self.num_heads;
        let head_dim = hidden / heads;
        let training = is_training(&q);
        if !training && let Some(context) = kernels::attention(&q, &k, &v, mask, heads) {
            return context;
        }

        let split_heads = |t: Tensor<3>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let (q, k, v) = (split_heads(q), split_heads(k), split_heads(v));
        let mask = mask.0.clone().expand([batch, heads, seq, seq]);
        let context = if training {
            // Training needs dropout on the attention probabilities, which the fused kernel
            // does not do: spell softmax(QKᵀ/√d)·V out.
            let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt();
            let probs = softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3);
            self.dropout.forward(probs).matmul(v)
        } else {
            // Inference: the backend's fused attention (flash attention where it has one).
            attention(q, k, v, Some(mask), None, AttentionModuleOptions::default())
        };
        context.swap_dims(1, 2).reshape([batch, seq, hidden])
    }
}

/// Gradients are only tracked on autodiff devices; that is where dropout applies.
fn is_training<const D: usize>(t: &Tensor<D>) -> bool {
    t.device().is_autodiff()
}

/// HF: `attention.output`: projection, dropout, residual, post-LayerNorm.
#[derive(Module, Debug)]
pub struct BertSelfOutput {
    pub dense: Linear,
    /// HF: `LayerNorm`.
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
    #[module(skip)]
    pub prepacked: Prepacked,
}

impl BertSelfOutput {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            dense: LinearConfig::new(h, h).init(device),
            layer_norm: LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            prepacked: Prepacked::default(),
        }
    }

    pub fn forward(&self, context: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        let x = self
            .dropout
            .forward(project(&self.dense, &self.prepacked, context));
        self.layer_norm.forward(x + residual)
    }
}

/// HF: `encoder.layer.N.attention`.
#[derive(Module, Debug)]
pub struct BertAttention {
    /// HF: `self`.
    pub self_attention: BertSelfAttention,
    pub output: BertSelfOutput,
}

impl BertAttention {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            self_attention: BertSelfAttention::new(config, device),
            output: BertSelfOutput::new(config, device),
        }
    }

    /// See [`BertSelfAttention::forward`] for `rows`.
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask, rows: Option<&RealRows>) -> Tensor<3> {
        let context = self.self_attention.forward(x.clone(), mask, rows);
        self.output.forward(context, x)
    }
}
