//! Examples → model inputs: `[CLS] A [SEP] (B [SEP])` ids and segment ids from the model's
//! tokenizer, truncated to `--max-len` the way HF's `longest_first` does (the longer text loses
//! a token at a time), then batches padded to their own longest row (rounded up to a multiple
//! with `--pad-to-multiple-of`).

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use tokenizers::{EncodeInput, Tokenizer};

use crate::tasks::glue::{Example, Label};
use bert_model::modules::BertInput;

/// One example as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub label: Option<Label>,
}

/// Tokenize `examples` (in parallel); the tokenizer truncates (see `load_tokenizer`).
pub fn featurize(tokenizer: &Tokenizer, examples: &[Example]) -> Result<Vec<Feature>> {
    let inputs: Vec<EncodeInput> = examples
        .iter()
        .map(|e| match &e.text_b {
            Some(b) => (e.text_a.as_str(), b.as_str()).into(),
            None => e.text_a.as_str().into(),
        })
        .collect();
    let encodings = tokenizer
        .encode_batch(inputs, true)
        .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
    examples
        .iter()
        .zip(encodings)
        .map(|(example, encoding)| {
            if encoding.get_ids().is_empty() {
                bail!("example {} tokenizes to nothing", example.id);
            }
            Ok(Feature {
                input_ids: encoding.get_ids().to_vec(),
                token_type_ids: encoding.get_type_ids().to_vec(),
                label: example.label.clone(),
            })
        })
        .collect()
}

/// A padded batch on the device, with its labels when the features have them.
pub struct ClassifierBatch {
    pub input: BertInput,
    /// Class ids (`[batch]`), for classification.
    pub classes: Option<Tensor<1, Int>>,
    /// Targets (`[batch]`), for regression.
    pub scores: Option<Tensor<1>>,
    pub rows: usize,
    /// Real (unpadded) tokens.
    pub tokens: usize,
}

/// How a batch is padded: with the tokenizer's pad `id`, to its longest row rounded up to a
/// multiple of `multiple` but never past `max_len`. GPU backends compile (and tune) kernels for
/// each new shape, so fewer distinct lengths mean fewer of those.
#[derive(Debug, Clone, Copy)]
pub struct Padding {
    pub id: u32,
    pub multiple: usize,
    pub max_len: usize,
}

impl Padding {
    /// The padded length of a batch whose longest row has `longest` tokens.
    pub fn length(&self, longest: usize) -> usize {
        let rounded = longest.next_multiple_of(self.multiple.max(1));
        rounded.min(self.max_len).max(longest)
    }
}

/// To the longest row, with this pad id.
impl From<u32> for Padding {
    fn from(id: u32) -> Self {
        Self {
            id,
            multiple: 1,
            max_len: usize::MAX,
        }
    }
}

impl ClassifierBatch {
    /// Pad `features` as `padding` says (a bare pad id: to the longest of them).
    pub fn new(
        features: &[&Feature],
        padding: impl Into<Padding>,
        device: &Device,
    ) -> Result<Self> {
        let padding = padding.into();
        let rows = features.len();
        let longest = features
            .iter()
            .map(|f| f.input_ids.len())
            .max()
            .unwrap_or(0);
        if rows == 0 || longest == 0 {
            bail!("empty batch");
        }
        let seq = padding.length(longest);
        let ids: Vec<&[u32]> = features.iter().map(|f| f.input_ids.as_slice()).collect();
        let types: Vec<&[u32]> = features
            .iter()
            .map(|f| f.token_type_ids.as_slice())
            .collect();
        let input = BertInput::padded(&ids, Some(&types), padding.id, seq, device)?;
        let tokens = ids.iter().map(|s| s.len()).sum();
        let mut classes = Vec::new();
        let mut scores = Vec::new();
        for f in features {
            match &f.label {
                Some(Label::Class(c)) => classes.push(*c as i64),
                Some(Label::Score(s)) => scores.push(*s),
                None => {}
            }
        }
        let all = |n: usize| n == rows;
        Ok(Self {
            input,
            classes: all(classes.len())
                .then(|| Tensor::from_data(TensorData::new(classes, [rows]), device)),
            scores: all(scores.len())
                .then(|| Tensor::from_data(TensorData::new(scores, [rows]), device)),
            rows,
            tokens,
        })
    }
}

/// Indices of `features` sorted by length, cut into batches of `batch_size`: inference pads
/// less this way, and the predictions are put back in file order by index.
pub fn length_sorted_batches(features: &[Feature], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.sort_by_key(|&i| features[i].input_ids.len());
    order.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

/// The pad id of a tokenizer (`[PAD]`), 0 if it has none.
pub fn pad_id(tokenizer: &Tokenizer) -> u32 {
    tokenizer.token_to_id("[PAD]").unwrap_or(0)
}

/// Fail early, with the example, when a tokenizer makes ids the model has no embedding for.
pub fn check_vocab(features: &[Feature], vocab_size: usize) -> Result<()> {
    for (i, f) in features.iter().enumerate() {
        if let Some(&id) = f.input_ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(anyhow::anyhow!(
                "example {i}: token id {id} is outside the model's vocabulary of {vocab_size}"
            ))
            .context("the tokenizer does not belong to the model");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_pad_to_their_longest_row() {
        let device = Device::flex();
        let f = |n: usize, label| Feature {
            input_ids: (1..=n as u32).collect(),
            token_type_ids: vec![0; n],
            label,
        };
        let (a, b) = (f(3, Some(Label::Class(1))), f(5, Some(Label::Class(0))));
        let batch = ClassifierBatch::new(&[&a, &b], 0, &device).unwrap();
        assert_eq!(batch.input.input_ids.dims(), [2, 5]);
        assert_eq!(batch.tokens, 8);
        let mask = batch
            .input
            .attention_mask
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(mask, [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
        assert!(batch.classes.is_some() && batch.scores.is_none());
        let unlabelled = f(2, None);
        let batch = ClassifierBatch::new(&[&unlabelled], 0, &device).unwrap();
        assert!(batch.classes.is_none());
        assert_eq!(
            length_sorted_batches(&[a, b, unlabelled], 2),
            vec![vec![2, 0], vec![1]]
        );
    }

    #[test]
    fn batches_pad_to_a_multiple_but_not_past_max_len() {
        let device = Device::flex();
        let f = |n: usize| Feature {
            input_ids: vec![7; n],
            token_type_ids: vec![0; n],
            label: None,
        };
        let padding = |multiple, max_len| Padding {
            id: 9,
            multiple,
            max_len,
        };
        let (a, b) = (f(3), f(5));
        let batch = ClassifierBatch::new(&[&a, &b], padding(8, 128), &device).unwrap();
        assert_eq!(batch.input.input_ids.dims(), [2, 8]);
        assert_eq!(batch.tokens, 8);
        let ids = batch.input.input_ids.into_data().convert::<i64>();
        assert_eq!(ids.try_to_vec::<i64>().unwrap()[5..8], [9, 9, 9]);
        // Rounding stops at --max-len, and a multiple of 1 pads to the longest row.
        let batch = ClassifierBatch::new(&[&a, &b], padding(32, 6), &device).unwrap();
        assert_eq!(batch.input.input_ids.dims(), [2, 6]);
        let batch = ClassifierBatch::new(&[&a, &b], padding(1, 128), &device).unwrap();
        assert_eq!(batch.input.input_ids.dims(), [2, 5]);
    }
}
