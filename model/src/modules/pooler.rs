//! `pooler.*`: tanh(dense(hidden state of [CLS])), BERT's sentence vector for NSP.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use super::config::BertConfig;

#[derive(Module, Debug)]
pub struct BertPooler {
    pub dense: Linear,
}

impl BertPooler {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            dense: LinearConfig::new(h, h).init(device),
        }
    }

    /// `[batch, seq, hidden]` → `[batch, hidden]`.
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [batch, _, h] = hidden.dims();
        let cls = hidden.slice([0..batch, 0..1]).reshape([batch, h]);
        self.dense.forward(cls).tanh()
    }
}
