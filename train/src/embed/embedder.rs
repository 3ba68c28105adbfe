//! `BertEmbedding`: a model directory in, per-sentence tokens and vectors out.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use tokenizers::{Encoding, Tokenizer};

use super::oov::{OovWay, fold_pieces};
use super::pooling::{Pooling, l2_normalize, pool};
use super::st_config::SentenceTransformersDefaults;
use crate::checkpoint::{HfTensors, LoadReport, load_bert_model, load_model_dir, load_tokenizer};
use crate::model::{BertConfig, BertInput, BertModel};

/// The embeddings of one sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceEmbedding {
    pub text: String,
    /// Word pieces as the model saw them (with `[CLS]`/`[SEP]`), or words when an `oov_way`
    /// folds pieces (special tokens dropped, as in GluonNLP).
    pub tokens: Vec<String>,
    /// One vector per entry of `tokens` (empty when token vectors are switched off).
    pub token_embeddings: Vec<Vec<f32>>,
    pub sentence_embedding: Vec<f32>,
    /// The sentence was longer than `max_seq_length` tokens and was cut.
    pub truncated: bool,
}

/// A BERT encoder with its tokenizer and pooling settings.
#[derive(Debug)]
pub struct BertEmbedding {
    model: BertModel,
    config: BertConfig,
    tokenizer: Tokenizer,
    device: Device,
    pad_id: u32,
    pooling: Pooling,
    normalize: bool,
    oov_way: Option<OovWay>,
    batch_size: usize,
    max_seq_length: usize,
    token_embeddings: bool,
    lowercase_fallback: Option<bool>,
    /// sentence-transformers' `do_lower_case`: lower-case the text before tokenizing.
    lowercase_input: bool,
    dir: Option<std::path::PathBuf>,
}

impl BertEmbedding {
    /// Load a HF model directory. Pooling, normalisation and `max_seq_length` default to what
    /// its sentence-transformers files say (mean pooling, no normalisation and the model's
    /// position limit when there are none).
    pub fn from_dir(dir: &Path, device: &Device) -> Result<(Self, LoadReport)> {
        let st = SentenceTransformersDefaults::read(dir)?;
        let (model, config, report) = load_model_dir(dir, device)?;
        let max_seq_length = st
            .max_seq_length
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        // (sentence-transformers' own `do_lower_case` lower-cases text before the tokenizer; it
        // says nothing about the vocabulary, so it is not a fallback for the tokenizer's.)
        let tokenizer = load_tokenizer(dir, max_seq_length, None)?;
        let mut embedding = Self::assemble(model, config, tokenizer, device)?;
        embedding.pooling = st.pooling.unwrap_or(Pooling::Mean);
        embedding.normalize = st.normalize.unwrap_or(false);
        embedding.max_seq_length = max_seq_length;
        embedding.lowercase_input = st.do_lower_case.unwrap_or(false);
        embedding.dir = Some(dir.to_path_buf());
        Ok((embedding, report))
    }

    /// A model-zoo shape (`bert_12_768_12`, ...) with weights from a safetensors file and a
    /// WordPiece vocabulary file.
    pub fn from_zoo(
        name: &str,
        weights: &Path,
        vocab: &Path,
        lowercase: bool,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        let tokenizer = bert_pipeline::vocab::bert_tokenizer_from_vocab_file(vocab, lowercase)?;
        let config = BertConfig::zoo(name)?.with_vocab_size(tokenizer.get_vocab_size(true));
        let tensors = HfTensors::from_file(weights)?;
        let (model, report) = load_bert_model(&config, &tensors, device)?;
        let mut embedding = Self::assemble(model, config, tokenizer, device)?;
        embedding.set_truncation(embedding.max_seq_length)?;
        Ok((embedding, report))
    }

    /// Wrap an already built model and tokenizer (mean pooling, no normalisation).
    pub fn assemble(
        model: BertModel,
        config: BertConfig,
        mut tokenizer: Tokenizer,
        device: &Device,
    ) -> Result<Self> {
        let pad_id = tokenizer
            .token_to_id("[PAD]")
            .unwrap_or(config.pad_token_id as u32);
        tokenizer.with_padding(None);
        Ok(Self {
            max_seq_length: config.max_position_embeddings,
            model,
            config,
            tokenizer,
            device: device.clone(),
            pad_id,
            pooling: Pooling::Mean,
            normalize: false,
            oov_way: None,
            batch_size: 32,
            token_embeddings: true,
            lowercase_fallback: None,
            lowercase_input: false,
            dir: None,
        })
    }

    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self
    }

    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// Fold word pieces into words (`None`: keep the pieces).
    pub fn with_oov_way(mut self, oov_way: Option<OovWay>) -> Self {
        self.oov_way = oov_way;
        self
    }

    /// Sentences per forward pass (sentences are grouped by length first).
    pub fn with_batch_size(mut self, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            bail!("batch size must be at least 1");
        }
        self.batch_size = batch_size;
        Ok(self)
    }

    /// Whether to return per-token vectors (off saves copying them off the device).
    pub fn with_token_embeddings(mut self, on: bool) -> Self {
        self.token_embeddings = on;
        self
    }

    /// Cut sentences to at most `n` tokens including `[CLS]`/`[SEP]`.
    pub fn with_max_seq_length(mut self, n: usize) -> Result<Self> {
        if n < 2 || n > self.config.max_position_embeddings {
            bail!(
                "max_seq_length must be between 2 and the model's max_position_embeddings ({}), got {n}",
                self.config.max_position_embeddings
            );
        }
        self.set_truncation(n)?;
        Ok(self)
    }

    fn set_truncation(&mut self, n: usize) -> Result<()> {
        if let Some(dir) = &self.dir {
            // Reload so that a tokenizer.json's own truncation settings are replaced cleanly.
            self.tokenizer = load_tokenizer(dir, n, self.lowercase_fallback)?;
        } else {
            self.tokenizer
                .with_truncation(Some(tokenizers::TruncationParams {
                    max_length: n,
                    ..Default::default()
                }))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        self.max_seq_length = n;
        Ok(())
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }
    pub fn model(&self) -> &BertModel {
        &self.model
    }
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }
    pub fn normalize(&self) -> bool {
        self.normalize
    }
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Tokenize like the model will (with `[CLS]`/`[SEP]`, truncated to `max_seq_length`).
    pub fn encode(&self, sentences: &[String]) -> Result<Vec<Encoding>> {
        let lowered: Vec<String>;
        let inputs: Vec<&str> = if self.lowercase_input {
            lowered = sentences.iter().map(|s| s.to_lowercase()).collect();
            lowered.iter().map(String::as_str).collect()
        } else {
            sentences.iter().map(String::as_str).collect()
        };
        self.tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| anyhow::anyhow!("tokenization failed: {e}"))
    }

    /// Embed `sentences`; the result is in input order.
    pub fn embed(&self, sentences: &[String]) -> Result<Vec<SentenceEmbedding>> {
        let encodings = self.encode(sentences)?;
        // Longest first, so each batch pads to a near-equal length and little compute is wasted.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));

        let mut results: Vec<Option<SentenceEmbedding>> = vec![None; sentences.len()];
        for batch in order.chunks(self.batch_size) {
            let ids: Vec<Vec<u32>> = batch
                .iter()
                .map(|&i| encodings[i].get_ids().to_vec())
                .collect();
            let embedded = self.embed_ids(&ids)?;
            for ((&i, sentence_embedding), token_vectors) in
                batch.iter().zip(embedded.sentences).zip(embedded.tokens)
            {
                results[i] = Some(self.describe(
                    &sentences[i],
                    &encodings[i],
                    sentence_embedding,
                    token_vectors,
                ));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every sentence is in one batch"))
            .collect())
    }

    /// Run one padded batch; token vectors are trimmed to each sentence's length.
    fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<EmbeddedBatch> {
        let input = BertInput::from_ids(ids, self.pad_id, &self.device)?;
        let mask = input.attention_mask.clone();
        let hidden = self.model.forward(input).last_hidden_state;
        let [batch, seq, h] = hidden.dims();
        let mut sentence = pool(self.pooling, hidden.clone(), mask);
        if self.normalize {
            sentence = l2_normalize(sentence);
        }
        let flat = to_vec(sentence)?;
        let sentences = flat.chunks(h).map(<[f32]>::to_vec).collect();
        let tokens = if self.token_embeddings {
            let all = to_vec(hidden)?;
            ids.iter()
                .enumerate()
                .map(|(row, s)| {
                    (0..s.len())
                        .map(|t| all[(row * seq + t) * h..(row * seq + t + 1) * h].to_vec())
                        .collect()
                })
                .collect()
        } else {
            vec![Vec::new(); batch]
        };
        Ok(EmbeddedBatch { sentences, tokens })
    }

    fn describe(
        &self,
        text: &str,
        encoding: &Encoding,
        sentence_embedding: Vec<f32>,
        token_vectors: Vec<Vec<f32>>,
    ) -> SentenceEmbedding {
        let truncated = !encoding.get_overflowing().is_empty();
        let (tokens, token_embeddings) = match (self.oov_way, self.token_embeddings) {
            (Some(way), true) => {
                let offsets = encoding.get_offsets();
                let pieces = encoding.get_tokens();
                // A word's text is its span in the input; the joined pieces if that fails.
                let word_text = |a: usize, b: usize| {
                    text.get(offsets[a].0..offsets[b - 1].1)
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            pieces[a..b]
                                .iter()
                                .map(|p| p.trim_start_matches("##"))
                                .collect()
                        })
                };
                fold_pieces(way, encoding.get_word_ids(), word_text, &token_vectors)
            }
            (None, true) => (encoding.get_tokens().to_vec(), token_vectors),
            (_, false) => (encoding.get_tokens().to_vec(), Vec::new()),
        };
        SentenceEmbedding {
            text: text.to_string(),
            tokens,
            token_embeddings,
            sentence_embedding,
            truncated,
        }
    }

    /// Load weights of the same shape from another directory's safetensors (fine-tuned copies).
    pub fn reload_weights(&mut self, weights: &Path) -> Result<LoadReport> {
        let tensors = HfTensors::from_file(weights)?;
        let (model, report) = load_bert_model(&self.config, &tensors, &self.device)
            .with_context(|| format!("reloading {}", weights.display()))?;
        self.model = model;
        Ok(report)
    }
}

struct EmbeddedBatch {
    sentences: Vec<Vec<f32>>,
    tokens: Vec<Vec<Vec<f32>>>,
}

/// Copy a tensor to the host as `f32`s.
pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_data()
        .map_err(|e| anyhow::anyhow!("reading results from the device: {e:?}"))?
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("results are not f32: {e:?}"))
}
