//! `encoder.layer.N`: attention, then the feed-forward block (`intermediate` + `output`).

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, relu};

use super::attention::BertAttention;
use super::config::{Activation, BertConfig};
use super::gelu::gelu;
use crate::kernels::{self, Prepacked, project};
use crate::mask::{PaddingMask, RealRows};

/// Applies `hidden_act`; GELU is the exact erf form, as in HF's BERT.
pub fn activate<const D: usize>(act: Activation, x: Tensor<D>) -> Tensor<D> {
    match act {
        Activation::Gelu => gelu(x),
        Activation::GeluTanh => gelu_approximate(x),
        Activation::Relu => relu(x),
    }
}

/// HF: `intermediate`: the widening projection and its activation.
#[derive(Module, Debug)]
pub struct BertIntermediate {
    pub dense: Linear,
    #[module(skip)]
    pub act: Activation,
    #[module(skip)]
    pub prepacked: Prepacked,
}

impl BertIntermediate {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            dense: LinearConfig::new(config.hidden_size, config.intermediate_size).init(device),
            act: config.hidden_act,
            prepacked: Prepacked::default(),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        if self.act == Activation::Gelu
            && let Some(y) = kernels::project_gelu(&self.dense, &self.prepacked, &x)
        {
            return y;
        }
        activate(self.act, project(&self.dense, &self.prepacked, x))
    }
}

/// HF: `output` (of a layer): the narrowing projection, dropout, residual, post-LayerNorm.
#[derive(Module, Debug)]
pub struct BertOutput {
    pub dense: Linear,
    /// HF: `LayerNorm`.
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
    #[module(skip)]
    pub prepacked: Prepacked,
}

impl BertOutput {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            dense: LinearConfig::new(config.intermediate_size, config.hidden_size).init(device),
            layer_norm: LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
            prepacked: Prepacked::default(),
        }
    }

    pub fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        let x = self
            .dropout
            .forward(project(&self.dense, &self.prepacked, x));
        self.layer_norm.forward(x + residual)
    }
}

/// HF: `encoder.layer.N`.
#[derive(Module, Debug)]
pub struct BertLayer {
    pub attention: BertAttention,
    pub intermediate: BertIntermediate,
    pub output: BertOutput,
}

impl BertLayer {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            attention: BertAttention::new(config, device),
            intermediate: BertIntermediate::new(config, device),
            output: BertOutput::new(config, device),
        }
    }

    /// Pack the projection weights for the CPU backend's gemm (see [`Prepacked`]).
    pub fn prepack(&mut self) {
        let attention = &mut self.attention.self_attention;
        attention.prepacked = Prepacked::of(&[&attention.query, &attention.key, &attention.value]);
        let output = &mut self.attention.output;
        output.prepacked = Prepacked::of(&[&output.dense]);
        self.intermediate.prepacked = Prepacked::of(&[&self.intermediate.dense]);
        self.output.prepacked = Prepacked::of(&[&self.output.dense]);
    }

    /// `x`: `[batch, seq, hidden]`, or with `rows` the real tokens only (`[1, tokens, hidden]`).
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask, rows: Option<&RealRows>) -> Tensor<3> {
        let x = self.attention.forward(x, mask, rows);
        self.output.forward(self.intermediate.forward(x.clone()), x)
    }
}

/// HF: `encoder`: the stack of layers.
#[derive(Module, Debug)]
pub struct BertEncoder {
    pub layer: Vec<BertLayer>,
}

impl BertEncoder {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            layer: (0..config.num_hidden_layers)
                .map(|_| BertLayer::new(config, device))
                .collect(),
        }
    }

    /// `[batch, seq, hidden]` → the same. With `rows` (CPU inference) every layer works on the
    /// real tokens alone, each row attending over its own; padding positions come back zero.
    pub fn forward(&self, x: Tensor<3>, mask: &PaddingMask, rows: Option<&RealRows>) -> Tensor<3> {
        let x = match rows {
            Some(rows) => rows.gather(x),
            None => x,
        };
        let x = self
            .layer
            .iter()
            .fold(x, |x, layer| layer.forward(x, mask, rows));
        match rows {
            Some(rows) => rows.scatter(x),
            None => x,
        }
    }
}
