//! `BertEmbedding`: a model (from bytes or a directory) in, per-sentence tokens and vectors out.

use anyhow::{Context, Result, anyhow, bail};
use burn::prelude::*;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::oov::{OovWay, fold_pieces};
use super::pooling::{Pooling, l2_normalize, pool};
use crate::checkpoint::{HfTensors, load_bert_model};
use crate::kernels;
use crate::modules::{BertConfig, BertInput, BertModel};
use crate::precision::{Precision, check_device, compute_model, to_f32};

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

/// What [`BertEmbedding::embed_ids`] gives for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputVectors {
    /// The pooled sentence vector.
    pub sentence: Vec<f32>,
    /// One vector per token id (empty unless asked for).
    pub tokens: Vec<Vec<f32>>,
}

/// How sentence vectors are made from token vectors, and how many sentences go per pass.
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

/// A BERT encoder with its tokenizer and pooling settings, on one device.
#[derive(Debug)]
pub struct BertEmbedding {
    model: BertModel,
    config: BertConfig,
    tokenizer: Tokenizer,
    device: Device,
    pad_id: u32,
    /// Pooling, normalisation and batch size of [`Self::embed`].
    options: EmbedOptions,
    oov_way: Option<OovWay>,
    max_seq_length: usize,
    token_embeddings: bool,
    /// sentence-transformers' `do_lower_case`: lower-case the text before tokenizing.
    lowercase_input: bool,
    /// What the encoder computes in (its weights are cast to it); pooling is in float32.
    precision: Precision,
    /// Batches are padded to a multiple of this many tokens (see [`Self::with_pad_multiple`]).
    pad_multiple: usize,
}

impl BertEmbedding {
    /// A model from the contents of HF's files: `model.safetensors`, `config.json`,
    /// `tokenizer.json` (the browser's way in: no file system). Inputs are cut to `max_length`
    /// tokens (with `[CLS]`/`[SEP]`; default and upper bound: the model's
    /// `max_position_embeddings`). Mean pooling, no normalisation.
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
        let tokenizer = Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| anyhow!("cannot read tokenizer.json: {e}"))?;
        let max_length = max_length.unwrap_or(config.max_position_embeddings);
        Self::assemble(model, config, tokenizer, device)?.with_max_seq_length(max_length)
    }

    /// Load a HF model directory. Pooling, normalisation and `max_seq_length` default to what
    /// its sentence-transformers files say (mean pooling, no normalisation and the model's
    /// position limit when there are none).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(
        dir: &std::path::Path,
        device: &Device,
    ) -> Result<(Self, crate::checkpoint::LoadReport)> {
        use crate::checkpoint::{load_model_dir, load_tokenizer};

        let st = super::SentenceTransformersDefaults::read(dir)?;
        let (model, config, report) = load_model_dir(dir, device)?;
        let max_seq_length = st
            .max_seq_length
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        // (sentence-transformers' own `do_lower_case` lower-cases text before the tokenizer; it
        // says nothing about the vocabulary, so it is not a fallback for the tokenizer's.)
        let tokenizer = load_tokenizer(dir, max_seq_length, None)?;
        let mut embedding = Self::assemble(model, config, tokenizer, device)?;
        embedding.options.pooling = st.pooling.unwrap_or(Pooling::Mean);
        embedding.options.normalize = st.normalize.unwrap_or(false);
        embedding.max_seq_length = max_seq_length;
        embedding.lowercase_input = st.do_lower_case.unwrap_or(false);
        Ok((embedding, report))
    }

    /// A pretrained model by name, as GluonNLP's `BertEmbedding(model=..., dataset_name=...)`:
    /// a model-zoo name with its dataset, a HuggingFace Hub id, or a directory
    /// ([`ModelSource::resolve`](crate::checkpoint::ModelSource::resolve); hub checkpoints
    /// are downloaded into the hub cache once). Then as [`Self::from_dir`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_pretrained(
        request: &crate::checkpoint::ModelRequest,
        device: &Device,
    ) -> Result<(Self, crate::checkpoint::LoadReport)> {
        use crate::checkpoint::ModelSource;
        if request.random_weights {
            bail!("an embedding model needs pretrained weights");
        }
        match ModelSource::resolve(request)? {
            ModelSource::Dir(dir) => Self::from_dir(&dir, device),
            ModelSource::Zoo(name) => bail!("{name} resolved to random weights"),
        }
    }

    /// A model-zoo shape (`bert_12_768_12`, ...) with weights from a safetensors file and a
    /// WordPiece vocabulary file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_zoo(
        name: &str,
        weights: &std::path::Path,
        vocab: &std::path::Path,
        lowercase: bool,
        device: &Device,
    ) -> Result<(Self, crate::checkpoint::LoadReport)> {
        let tokenizer = bert_core::vocab::bert_tokenizer_from_vocab_file(vocab, lowercase)?;
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
        // Some exported tokenizer.json files (all-MiniLM-L6-v2's) pad every input to 128: that
        // would make mean pooling average padding. Batches are padded here, with a mask.
        tokenizer.with_padding(None);
        Ok(Self {
            max_seq_length: config.max_position_embeddings,
            model: model.for_inference(),
            config,
            tokenizer,
            device: device.clone(),
            pad_id,
            options: EmbedOptions {
                normalize: false,
                ..EmbedOptions::default()
            },
            oov_way: None,
            token_embeddings: true,
            lowercase_input: false,
            precision: Precision::Float32,
            pad_multiple: 1,
        })
    }

    /// Compute in `precision`: the weights are cast once (float16/bfloat16 halve the memory
    /// the encoder reads); sentence vectors are pooled and normalised in float32. An error
    /// where the device has no such arithmetic.
    pub fn with_precision(mut self, precision: Precision) -> Result<Self> {
        check_device(precision, &self.device)?;
        if precision != self.precision {
            if self.precision != Precision::Float32 {
                bail!(
                    "the model is already in {}; load it again for {precision}",
                    self.precision
                );
            }
            self.model = compute_model(&self.model, precision).for_inference();
            self.precision = precision;
        }
        Ok(self)
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Pad each batch to a multiple of `n` tokens (at most `max_seq_length`). GPU backends
    /// compile kernels per shape, so a few lengths start sooner there
    /// ([`BackendKind::default_pad_multiple`](crate::BackendKind::default_pad_multiple));
    /// padding is masked, so the vectors do not change.
    pub fn with_pad_multiple(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            bail!("the pad multiple must be at least 1");
        }
        self.pad_multiple = n;
        Ok(self)
    }

    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.options.pooling = pooling;
        self
    }

    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.options.normalize = normalize;
        self
    }

    /// Fold word pieces into words (`None`: keep the pieces).
    pub fn with_oov_way(mut self, oov_way: Option<OovWay>) -> Self {
        self.oov_way = oov_way;
        self
    }

    /// Sentences per forward pass (sentences are grouped by length first).
    pub fn with_batch_size(mut self, batch_size: usize) -> Result<Self> {
        check_batch_size(batch_size)?;
        self.options.batch_size = batch_size;
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

    /// Replaces whatever truncation the tokenizer came with.
    fn set_truncation(&mut self, n: usize) -> Result<()> {
        self.tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: n,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("cannot truncate to {n} tokens: {e}"))?;
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
        self.options.pooling
    }
    pub fn normalize(&self) -> bool {
        self.options.normalize
    }
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    /// Width of a sentence vector.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
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
        // `encode_batch` goes through rayon, which has no threads in the browser.
        #[cfg(target_arch = "wasm32")]
        let encoded: Result<Vec<Encoding>, _> = inputs
            .into_iter()
            .map(|s| self.tokenizer.encode(s, true))
            .collect();
        #[cfg(not(target_arch = "wasm32"))]
        let encoded = self.tokenizer.encode_batch(inputs, true);
        encoded.map_err(|e| anyhow!("tokenization failed: {e}"))
    }

    /// Token ids as the model sees them, one list per sentence.
    pub fn tokenize(&self, sentences: &[String]) -> Result<Vec<Vec<u32>>> {
        Ok(self
            .encode(sentences)?
            .iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// Embed `sentences` with this embedder's settings; the result is in input order.
    pub fn embed(&self, sentences: &[String]) -> Result<Vec<SentenceEmbedding>> {
        let encodings = self.encode(sentences)?;
        let mut results: Vec<Option<SentenceEmbedding>> = vec![None; sentences.len()];
        for batch in length_sorted_batches(&encodings, self.options.batch_size) {
            let ids: Vec<Vec<u32>> = batch
                .iter()
                .map(|&i| encodings[i].get_ids().to_vec())
                .collect();
            let (sentence, hidden) = self.forward(&ids, self.options)?;
            let [_, seq, h] = hidden.dims();
            let vectors = to_vec(sentence)?;
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
                vec![Vec::new(); batch.len()]
            };
            for ((&i, sentence_embedding), token_vectors) in
                batch.iter().zip(vectors.chunks(h)).zip(tokens)
            {
                results[i] = Some(self.describe(
                    &sentences[i],
                    &encodings[i],
                    sentence_embedding.to_vec(),
                    token_vectors,
                ));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every sentence is in one batch"))
            .collect())
    }

    /// One padded batch of already tokenized inputs (the caller batches, as a server's queue
    /// does): per input its sentence vector, pooled as this embedder pools and normalised if
    /// `normalize`, and with `with_tokens` its token vectors (one per id).
    pub fn embed_ids(
        &self,
        ids: &[Vec<u32>],
        normalize: bool,
        with_tokens: bool,
    ) -> Result<Vec<InputVectors>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let options = EmbedOptions {
            normalize,
            ..self.options
        };
        let (sentence, hidden) = self.forward(ids, options)?;
        let [_, seq, h] = hidden.dims();
        let vectors = to_vec(sentence)?;
        let all = if with_tokens {
            to_vec(hidden)?
        } else {
            Vec::new()
        };
        Ok(ids
            .iter()
            .enumerate()
            .map(|(row, input)| {
                let tokens = if with_tokens {
                    (0..input.len())
                        .map(|t| all[(row * seq + t) * h..(row * seq + t + 1) * h].to_vec())
                        .collect()
                } else {
                    Vec::new()
                };
                InputVectors {
                    sentence: vectors[row * h..(row + 1) * h].to_vec(),
                    tokens,
                }
            })
            .collect())
    }

    /// One sentence vector per sentence, in input order, read back without blocking: the only
    /// way to read a WebGPU buffer (the browser's path; natively, drive it with any executor).
    pub async fn embed_async(
        &self,
        sentences: &[String],
        options: EmbedOptions,
    ) -> Result<Vec<Vec<f32>>> {
        check_batch_size(options.batch_size)?;
        let encodings = self.encode(sentences)?;
        let mut out = vec![Vec::new(); encodings.len()];
        for batch in length_sorted_batches(&encodings, options.batch_size) {
            let ids: Vec<Vec<u32>> = batch
                .iter()
                .map(|&i| encodings[i].get_ids().to_vec())
                .collect();
            let (sentence, _) = self.forward(&ids, options)?;
            let flat = read_async(sentence).await?;
            for (&i, v) in batch.iter().zip(flat.chunks(self.dim())) {
                out[i] = v.to_vec();
            }
        }
        Ok(out)
    }

    /// One padded batch through the encoder: sentence vectors `[batch, hidden]` and the last
    /// hidden state `[batch, seq, hidden]`.
    fn forward(&self, ids: &[Vec<u32>], options: EmbedOptions) -> Result<(Tensor<2>, Tensor<3>)> {
        let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let longest = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let seq = longest
            .next_multiple_of(self.pad_multiple)
            .min(self.max_seq_length.max(longest));
        let input = BertInput::padded(&rows, None, self.pad_id, seq, &self.device)?;
        let mask = input.attention_mask.clone();
        let hidden = kernels::on_cpu_pool(&self.device, || {
            to_f32(self.model.forward(input).last_hidden_state)
        });
        let mut sentence = pool(options.pooling, hidden.clone(), mask);
        if options.normalize {
            sentence = l2_normalize(sentence);
        }
        Ok((sentence, hidden))
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
    #[cfg(not(target_arch = "wasm32"))]
    pub fn reload_weights(
        &mut self,
        weights: &std::path::Path,
    ) -> Result<crate::checkpoint::LoadReport> {
        let tensors = HfTensors::from_file(weights)?;
        let (model, report) = load_bert_model(&self.config, &tensors, &self.device)
            .with_context(|| format!("reloading {}", weights.display()))?;
        self.model = compute_model(&model, self.precision).for_inference();
        Ok(report)
    }
}

fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        bail!("batch size must be at least 1");
    }
    Ok(())
}

/// Indices longest first, cut into batches: each batch pads to a near-equal length, so little
/// compute is wasted on padding.
fn length_sorted_batches(encodings: &[Encoding], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    order.sort_by_key(|&i| core::cmp::Reverse(encodings[i].get_ids().len()));
    order.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

/// Copy a tensor to the host as `f32`s.
fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_data()
        .map_err(|e| anyhow!("reading results from the device: {e:?}"))?
        .try_to_vec::<f32>()
        .map_err(|e| anyhow!("results are not f32: {e:?}"))
}

/// Copy a tensor to the host without blocking.
async fn read_async(t: Tensor<2>) -> Result<Vec<f32>> {
    t.into_data_async()
        .await
        .map_err(|e| anyhow!("reading results from the device: {e:?}"))?
        .try_into_vec::<f32>()
        .map_err(|e| anyhow!("results are not f32: {e:?}"))
}
