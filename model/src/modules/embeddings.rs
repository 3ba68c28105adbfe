//! `embeddings.*`: token + position + segment embeddings, then LayerNorm and dropout.

use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::config::BertConfig;

#[derive(Module, Debug)]
pub struct BertEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    /// HF: `embeddings.LayerNorm`.
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
}

impl BertEmbeddings {
    pub fn new(config: &BertConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            word_embeddings: EmbeddingConfig::new(config.vocab_size, h).init(device),
            position_embeddings: EmbeddingConfig::new(config.max_position_embeddings, h)
                .init(device),
            token_type_embeddings: EmbeddingConfig::new(config.type_vocab_size, h).init(device),
            layer_norm: LayerNormConfig::new(h)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            dropout: DropoutConfig::new(config.hidden_dropout_prob).init(),
        }
    }

    /// `[batch, seq]` ids → `[batch, seq, hidden]`. Positions are `0..seq` (absolute).
    pub fn forward(&self, input_ids: Tensor<2, Int>, token_type_ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq] = input_ids.dims();
        let positions =
            Tensor::<1, Int>::arange(0..seq as i64, &input_ids.device()).reshape([1, seq]);
        // Same summation order as HF (words + types, then positions): float addition is not
        // associative and the fidelity tests compare at 1e-4.
        let x = self.word_embeddings.forward(input_ids)
            + self.token_type_embeddings.forward(token_type_ids);
        let x = x + self.position_embeddings.forward(positions);
        self.dropout.forward(self.layer_norm.forward(x))
    }
}
