//! A fast path for ASCII sentences through exactly the steps of HuggingFace's BERT pipeline
//! (BertNormalizer → BertPreTokenizer → WordPiece). HF's general machinery tracks alignments
//! for every character, which makes it most of the pipeline's run time; for ASCII text those
//! steps reduce to a byte loop. Anything else (non-ASCII, literal special tokens) goes through
//! HF itself, and tests check both paths agree on every sentence of the sample corpora.

use ahash::AHashMap;

/// Words longer than this many characters become `[UNK]` (HF's `max_input_chars_per_word`).
const MAX_INPUT_CHARS_PER_WORD: usize = 100;

pub struct AsciiWordPiece {
    vocab: AHashMap<String, u32>,
    unk_id: u32,
    lowercase: bool,
    /// Literal special tokens, which HF matches before normalizing.
    specials: Vec<String>,
}

impl AsciiWordPiece {
    pub fn new(
        vocab: AHashMap<String, u32>,
        unk_id: u32,
        lowercase: bool,
        specials: Vec<String>,
    ) -> Self {
        Self {
            vocab,
            unk_id,
            lowercase,
            specials,
        }
    }

    /// Appends the ids of `text` to `out`; `false` (and `out` untouched) when the text is
    /// not plain ASCII, so the caller must use HF's pipeline.
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) -> bool {
        if !text.is_ascii() || self.specials.iter().any(|s| text.contains(s.as_str())) {
            return false;
        }
        let mut word = String::with_capacity(32);
        let mut key = String::with_capacity(34);
        for byte in text.bytes() {
            match byte {
                // BertNormalizer's clean_text: tab, newline and return are whitespace.
                b' ' | b'\t' | b'\n' | b'\r' => self.flush(&mut word, &mut key, out),
                // Other ASCII control characters are removed (they do not split words).
                0..=0x1f | 0x7f => {}
                // BertPreTokenizer isolates punctuation.
                b if b.is_ascii_punctuation() => {
                    self.flush(&mut word, &mut key, out);
                    word.push(b as char);
                    self.flush(&mut word, &mut key, out);
                }
                b => word.push(if self.lowercase {
                    b.to_ascii_lowercase()
                } else {
                    b
                } as char),
            }
        }
        self.flush(&mut word, &mut key, out);
        true
    }

    /// WordPiece on one word, greedy longest match first, as HF's `WordPiece::tokenize`.
    fn flush(&self, word: &mut String, key: &mut String, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if word.len() > MAX_INPUT_CHARS_PER_WORD {
            out.push(self.unk_id);
            word.clear();
            return;
        }
        let first = out.len();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                key.clear();
                if start > 0 {
                    key.push_str("##");
                }
                key.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(key.as_str()) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => out.push(id),
                None => {
                    // No piece matches: the whole word is unknown.
                    out.truncate(first);
                    out.push(self.unk_id);
                    break;
                }
            }
            start = end;
        }
        word.clear();
    }
}
