//! The padding mask: built once per batch from HF's `attention_mask`, read by every attention
//! layer (`modules::attention`) and by the WGSL attention kernel (`kernels`).

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

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

/// The real (not padding) tokens of a batch, for running the encoder on them alone:
/// `[batch, seq, hidden]` ↔ `[1, real tokens, hidden]`, each row's tokens one after another.
/// The row-wise work (projections, feed-forward, LayerNorm) does not care; attention runs per
/// row over its own tokens. Used on the CPU at inference, where a padded token costs as much
/// as a real one (GPUs keep padded shapes: every new shape compiles kernels).
#[derive(Debug, Clone)]
pub struct RealRows {
    /// Positions of the real tokens in the flattened `[batch · seq]`.
    index: Tensor<1, Int>,
    seq: usize,
    /// Real tokens per row (one per row of the batch), in order: row `r`'s are the next
    /// `lengths[r]` gathered rows.
    lengths: alloc::vec::Vec<usize>,
}

impl RealRows {
    /// For a batch with padding on the CPU backend outside autodiff; `None` elsewhere, or
    /// where less than an eighth of the batch is padding (moving the rows would cost more
    /// than it saves).
    pub fn on_cpu(attention_mask: &Tensor<2, Int>) -> Option<Self> {
        let device = attention_mask.device();
        if !crate::backend::is_plain_cpu(&device) {
            return None;
        }
        let [batch, seq] = attention_mask.dims();
        let mask = attention_mask
            .to_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .ok()?;
        let mut real = alloc::vec::Vec::new();
        let mut lengths = alloc::vec::Vec::with_capacity(batch);
        for (row, flags) in mask.chunks(seq.max(1)).enumerate() {
            let before = real.len();
            real.extend(
                (0..seq)
                    .filter(|&t| flags[t] != 0)
                    .map(|t| (row * seq + t) as i64),
            );
            lengths.push(real.len() - before);
        }
        let tokens = real.len();
        if 8 * (batch * seq - tokens) < batch * seq {
            return None;
        }
        let index = Tensor::from_data(TensorData::new(real, [tokens]), &device);
        Some(Self {
            index,
            seq,
            lengths,
        })
    }

    /// How many real tokens each row of the batch has.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// `[batch, seq, hidden]` → `[1, real tokens, hidden]`.
    pub fn gather(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, seq, hidden] = x.dims();
        x.reshape([batch * seq, hidden])
            .select(0, self.index.clone())
            .unsqueeze_dim(0)
    }

    /// `[1, real tokens, hidden]` → `[batch, seq, hidden]`, zeros at the padding.
    pub fn scatter(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, tokens, hidden] = x.dims();
        let batch = self.lengths.len();
        Tensor::zeros([batch * self.seq, hidden], (&x.device(), x.dtype()))
            .select_assign(
                0,
                self.index.clone(),
                x.reshape([tokens, hidden]),
                IndexingUpdateOp::Add,
            )
            .reshape([batch, self.seq, hidden])
    }
}
