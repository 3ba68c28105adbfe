//! The padding mask: built once per batch from HF's `attention_mask`, read by every attention
//! layer (`modules::attention`) and by the WGSL attention kernel (`kernels`).

use burn::prelude::*;

/// Which keys a query may attend to: `true` marks padding. Shape `[batch, 1, 1, seq]`, built
/// once per batch and broadcast over heads and queries by every layer.
#[derive(Debug, Clone)]
pub struct PaddingMask(pub Tensor<4, Bool>);

impl PaddingMask {
    /// From HF's `attention_mask` (`1` = real token, `0` = padding), `[batch, seq]`.
    pub fn from_attention_mask(attention_mask: Tensor<2, Int>) -> Self {
        let [batch, seq] = attention_mask.dims();
        Self(attention_mask.equal_elem(0).reshape([batch, 1, 1, seq]))
    }
}
