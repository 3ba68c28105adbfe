//! `Embedder`: sentences in, sentence vectors out, with everything loaded from bytes.

use anyhow::{Context, Result, anyhow, bail};
use bert_train::checkpoint::{HfTensors, load_bert_model};
use bert_train::embed::{Pooling, l2_normalize, pool};
use bert_train::model::{BertConfig, BertInput, BertModel};
use burn::tensor::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

/// How `embed` turns token vectors into sentence vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedOptions {
    pub pooling: Pooling,
    pub normalize: bool,
    /// Sentences per forward pass (sentences are grouped by length first).
    pub batch_size: usize,
}

impl Default for EmbedOptions {
    /// sentence-transformers' all-MiniLM-L6-v2: mean pooling, then L2 normalisation.
    fn default() -> Self {
        Self {
            pooling: Pooling::Mean,
            normalize: true,
            batch_size: 32,
        }
    }
}

/// A BERT encoder with its tokenizer, on one device.
pub struct Embedder {
    model: BertModel,
    config: BertConfig,
    tokenizer: Tokenizer,
    device: Device,
    pad_id: u32,
    max_length: usize,
}

impl Embedder {
    /// Load the HF files' contents: `model.safetensors`, `config.json`, `tokenizer.json`.
    /// Inputs are cut to `max_length` tokens (with `[CLS]`/`[SEP]`; default and upper bound:
    /// the model's `max_position_embeddings`).
    pub fn from_bytes(
        weights: Vec<u8>,
        config_json: &str,
        tokenizer_json: &[u8],
        max_length: Option<usize>,
        device: &Device,
    ) -> Result<Self> {
        let config = BertConfig::from_json_str(config_json).context("in config.json")?;
        let tensors = HfTensors::from_bytes(weights, "model.safetensors")?;
        let (model, _report) = load_bert_model(&config, &tensors, device)?;
        let positions = config.max_position_embeddings;
        let max_length = max_length.unwrap_or(positions);
        if !(2..=positions).contains(&max_length) {
            bail!(
                "max length must be between 2 and the model's {positions} positions, got {max_length}"
            );
        }
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| anyhow!("cannot read tokenizer.json: {e}"))?;
        // As native `load_tokenizer`: no padding (batches are padded here, with a mask) and
        // truncation to `max_length`, replacing whatever tokenizer.json says.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("cannot truncate to {max_length} tokens: {e}"))?;
        let pad_id = tokenizer
            .token_to_id("[PAD]")
            .unwrap_or(config.pad_token_id as u32);
        Ok(Self {
            model,
            config,
            tokenizer,
            device: device.clone(),
            pad_id,
            max_length,
        })
    }

    /// Width of a sentence vector.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Token ids as the model sees them (`[CLS]` … `[SEP]`, truncated).
    pub fn tokenize(&self, sentences: &[String]) -> Result<Vec<Vec<u32>>> {
        // One sentence at a time: `encode_batch` goes through rayon, which has no threads in
        // the browser.
        sentences
            .iter()
            .map(|s| {
                self.tokenizer
                    .encode(s.as_str(), true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| anyhow!("cannot tokenize {s:?}: {e}"))
            })
            .collect()
    }

    /// One vector per sentence, in input order.
    pub async fn embed(
        &self,
        sentences: &[String],
        options: EmbedOptions,
    ) -> Result<Vec<Vec<f32>>> {
        if options.batch_size == 0 {
            bail!("batch size must be at least 1");
        }
        let ids = self.tokenize(sentences)?;
        // Longest first, so that each batch pads to a near-equal length.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| core::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); ids.len()];
        for batch in order.chunks(options.batch_size) {
            let batch_ids: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
            let vectors = self.embed_ids(&batch_ids, options).await?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    async fn embed_ids(&self, ids: &[Vec<u32>], options: EmbedOptions) -> Result<Vec<Vec<f32>>> {
        let input = BertInput::from_ids(ids, self.pad_id, &self.device)?;
        let mask = input.attention_mask.clone();
        let hidden = self.model.forward(input).last_hidden_state;
        let mut sentences = pool(options.pooling, hidden, mask);
        if options.normalize {
            sentences = l2_normalize(sentences);
        }
        let flat = read_async(sentences).await?;
        Ok(flat.chunks(self.dim()).map(<[f32]>::to_vec).collect())
    }
}

/// Copy a tensor to the host without blocking: the only way to read a WebGPU buffer.
async fn read_async(t: Tensor<2>) -> Result<Vec<f32>> {
    t.into_data_async()
        .await
        .map_err(|e| anyhow!("reading results from the device: {e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| anyhow!("results are not f32: {e:?}"))
}
