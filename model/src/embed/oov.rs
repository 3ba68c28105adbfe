//! GluonNLP's `oov_way`: fold the word pieces of one word back into one word vector.

use alloc::string::String;
use alloc::vec::Vec;

/// How the vectors of a word's pieces become the word's vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OovWay {
    /// The mean of the pieces (GluonNLP's default).
    Avg,
    /// Their sum.
    Sum,
    /// The last piece's vector.
    Last,
}

impl core::str::FromStr for OovWay {
    type Err = crate::error::BertError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "avg" => Ok(Self::Avg),
            "sum" => Ok(Self::Sum),
            "last" => Ok(Self::Last),
            other => Err(crate::error::BertError::Input(alloc::format!(
                "unknown oov way {other:?}; expected avg, sum or last"
            ))),
        }
    }
}

/// Group pieces by `word_ids` (from the tokenizer; `None` for `[CLS]`/`[SEP]`, which are
/// dropped, as GluonNLP does) and fold each group's vectors.
///
/// `words[i]` is the text of word `i` of the result; `vectors[t]` is piece `t`'s vector.
pub fn fold_pieces(
    way: OovWay,
    word_ids: &[Option<u32>],
    word_text: impl Fn(usize, usize) -> String,
    vectors: &[Vec<f32>],
) -> (Vec<String>, Vec<Vec<f32>>) {
    let mut words = Vec::new();
    let mut folded: Vec<Vec<f32>> = Vec::new();
    let mut t = 0;
    while t < word_ids.len() {
        let Some(id) = word_ids[t] else {
            t += 1;
            continue;
        };
        let start = t;
        while t < word_ids.len() && word_ids[t] == Some(id) {
            t += 1;
        }
        let pieces = &vectors[start..t];
        let vector = match way {
            OovWay::Last => pieces[pieces.len() - 1].clone(),
            OovWay::Sum | OovWay::Avg => {
                let mut acc = alloc::vec![0.0f32; pieces[0].len()];
                for piece in pieces {
                    for (a, v) in acc.iter_mut().zip(piece) {
                        *a += v;
                    }
                }
                if way == OovWay::Avg {
                    let n = pieces.len() as f32;
                    acc.iter_mut().for_each(|a| *a /= n);
                }
                acc
            }
        };
        words.push(word_text(start, t));
        folded.push(vector);
    }
    (words, folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_pieces_and_drops_special_tokens() {
        // [CLS] un ##aff ##able day [SEP]
        let ids = [None, Some(0), Some(0), Some(0), Some(1), None];
        let vectors: Vec<Vec<f32>> = (0..6).map(|i| alloc::vec![i as f32, 1.0]).collect();
        let text = |a: usize, b: usize| alloc::format!("{a}-{b}");
        let (words, avg) = fold_pieces(OovWay::Avg, &ids, text, &vectors);
        assert_eq!(words, ["1-4", "4-5"]);
        assert_eq!(avg, [alloc::vec![2.0, 1.0], alloc::vec![4.0, 1.0]]);
        let (_, sum) = fold_pieces(OovWay::Sum, &ids, text, &vectors);
        assert_eq!(sum[0], [6.0, 3.0]);
        let (_, last) = fold_pieces(OovWay::Last, &ids, text, &vectors);
        assert_eq!(last[0], [3.0, 1.0]);
    }
}
