//! Sentence vectors from token vectors: `[CLS]` or masked mean, and L2 normalisation.
//! Tensor code only, so the browser pools the same way.

use burn::prelude::*;

/// How a sentence vector is made from the last hidden state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The hidden state of `[CLS]` (the first token).
    Cls,
    /// The mean over real tokens; padding never counts.
    Mean,
}

impl core::str::FromStr for Pooling {
    type Err = crate::error::BertError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cls" => Ok(Self::Cls),
            "mean" => Ok(Self::Mean),
            other => Err(crate::error::BertError::Input(alloc::format!(
                "unknown pooling {other:?}; expected mean or cls"
            ))),
        }
    }
}

/// `[batch, seq, hidden]` with `attention_mask` `[batch, seq]` → `[batch, hidden]`.
pub fn pool(pooling: Pooling, hidden: Tensor<3>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
    let [batch, seq, h] = hidden.dims();
    match pooling {
        Pooling::Cls => hidden.slice([0..batch, 0..1]).reshape([batch, h]),
        Pooling::Mean => {
            let mask = attention_mask.float().reshape([batch, seq, 1]);
            let summed = (hidden * mask.clone()).sum_dim(1).reshape([batch, h]);
            // sentence-transformers clamps the count at 1e-9; a row always has >= 1 token.
            let count = mask.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
            summed / count
        }
    }
}

/// Divide each row by its L2 norm (at least 1e-12, like `torch.nn.functional.normalize`).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
