//! The record a shard row holds.

/// One masked-LM + next-sentence training example, as stored in a shard row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// `[CLS] A [SEP] B [SEP]` with the masked positions already replaced.
    pub input_ids: Vec<u32>,
    /// 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`.
    pub segment_ids: Vec<u8>,
    /// Sorted positions of the masked tokens.
    pub masked_lm_positions: Vec<u16>,
    /// The original token at each masked position.
    pub masked_lm_ids: Vec<u32>,
    /// 1 when B is a random sentence from another document, 0 when it really follows A.
    pub next_sentence_label: u8,
}

impl Instance {
    pub fn valid_length(&self) -> usize {
        self.input_ids.len()
    }
}
