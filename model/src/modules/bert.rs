//! `BertModel`: embeddings → encoder → (pooler). The HF `BertModel`, key for key.

use burn::prelude::*;

use super::config::BertConfig;
use super::embeddings::BertEmbeddings;
use super::layer::BertEncoder;
use super::pooler::BertPooler;
use crate::error::BertError;
use crate::mask::{PaddingMask, RealRows};

#[derive(Module, Debug)]
pub struct BertModel {
    pub embeddings: BertEmbeddings,
    pub encoder: BertEncoder,
    /// Absent in checkpoints saved with `add_pooling_layer=False`.
    pub pooler: Option<BertPooler>,
    /// Set by [`BertModel::for_inference`]: on the CPU, compute real tokens only.
    #[module(skip)]
    pub skip_padding: bool,
}

/// What `BertModel::forward` returns, named as in HF.
#[derive(Debug, Clone)]
pub struct BertModelOutput {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor<3>,
    /// `[batch, hidden]`, when the model has a pooler.
    pub pooler_output: Option<Tensor<2>>,
}

/// One padded batch of token ids, as HF's tokenizers return it.
#[derive(Debug, Clone)]
pub struct BertInput {
    /// `[batch, seq]`.
    pub input_ids: Tensor<2, Int>,
    /// `[batch, seq]`, `1` for real tokens and `0` for padding.
    pub attention_mask: Tensor<2, Int>,
    /// `[batch, seq]`, segment A = 0 and B = 1.
    pub token_type_ids: Tensor<2, Int>,
}

impl BertInput {
    /// Pad ragged id lists (with `pad_id`) into one batch on `device`; all segment ids 0.
    ///
    /// An empty batch or an empty sequence is an error: a row with no token to attend to has
    /// no defined output.
    pub fn from_ids(
        ids: &[alloc::vec::Vec<u32>],
        pad_id: u32,
        device: &Device,
    ) -> Result<Self, BertError> {
        let rows: alloc::vec::Vec<&[u32]> = ids.iter().map(|s| s.as_slice()).collect();
        let longest = rows.iter().map(|s| s.len()).max().unwrap_or(0);
        Self::padded(&rows, None, pad_id, longest, device)
    }

    /// The one place where token ids become a batch: `ids` (with their `segments`, or all
    /// segment 0) padded with `pad_id` to `seq` tokens — at least the longest row, more when
    /// the caller pads to a multiple — with the attention mask that hides the padding.
    pub fn padded(
        ids: &[&[u32]],
        segments: Option<&[&[u32]]>,
        pad_id: u32,
        seq: usize,
        device: &Device,
    ) -> Result<Self, BertError> {
        let batch = ids.len();
        if batch == 0 {
            return Err(BertError::Input("empty batch".into()));
        }
        if let Some(i) = ids.iter().position(|s| s.is_empty()) {
            return Err(BertError::Input(alloc::format!(
                "sequence {i} has no tokens"
            )));
        }
        if let Some(i) = ids.iter().position(|s| s.len() > seq) {
            return Err(BertError::Input(alloc::format!(
                "sequence {i} has {} tokens, more than the batch's {seq}",
                ids[i].len()
            )));
        }
        let mut flat_ids = alloc::vec![pad_id as i64; batch * seq];
        let mut flat_types = alloc::vec![0i64; batch * seq];
        let mut flat_mask = alloc::vec![0i64; batch * seq];
        for (row, s) in ids.iter().enumerate() {
            for (col, &id) in s.iter().enumerate() {
                flat_ids[row * seq + col] = id as i64;
                flat_mask[row * seq + col] = 1;
            }
            if let Some(segments) = segments {
                for (col, &ty) in segments[row].iter().take(s.len()).enumerate() {
                    flat_types[row * seq + col] = ty as i64;
                }
            }
        }
        let tensor = |data: alloc::vec::Vec<i64>| {
            Tensor::<2, Int>::from_data(TensorData::new(data, [batch, seq]), device)
        };
        Ok(Self {
            input_ids: tensor(flat_ids),
            attention_mask: tensor(flat_mask),
            token_type_ids: tensor(flat_types),
        })
    }
}

impl BertModel {
    /// A randomly initialised model (weights are usually loaded over it, see `checkpoint`).
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        Self {
            embeddings: BertEmbeddings::new(config, device),
            encoder: BertEncoder::new(config, device),
            pooler: Some(BertPooler::new(config, device)),
            skip_padding: false,
        }
    }

    /// Drop the pooler (checkpoints without one; sentence embedders that never use it).
    pub fn without_pooler(mut self) -> Self {
        self.pooler = None;
        self
    }

    /// Ready for inference on the CPU backend (elsewhere — another backend, autodiff,
    /// float16 — this changes nothing):
    /// - the projection weights packed for gemm, as ONNX Runtime does (1.7× at batch 1; a
    ///   second copy of those weights in memory); the weights themselves stay as they are;
    /// - batches with much padding computed on their real tokens alone, each row attending
    ///   over its own ([`RealRows`]): `last_hidden_state` is then zero at padding positions,
    ///   where HuggingFace's model returns vectors nothing should read.
    pub fn for_inference(mut self) -> Self {
        self.encoder
            .layer
            .iter_mut()
            .for_each(|layer| layer.prepack());
        self.skip_padding = true;
        self
    }

    pub fn forward(&self, input: BertInput) -> BertModelOutput {
        let rows = self
            .skip_padding
            .then(|| RealRows::on_cpu(&input.attention_mask))
            .flatten();
        let mask = PaddingMask::from_attention_mask(input.attention_mask);
        let x = self
            .embeddings
            .forward(input.input_ids, input.token_type_ids);
        let last_hidden_state = self.encoder.forward(x, &mask, rows.as_ref());
        let pooler_output = self
            .pooler
            .as_ref()
            .map(|pooler| pooler.forward(last_hidden_state.clone()));
        BertModelOutput {
            last_hidden_state,
            pooler_output,
        }
    }
}
