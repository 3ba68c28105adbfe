//! Masked-LM targets, as the reference's `create_masked_lm_predictions`.

use rand::Rng;
use rand::seq::SliceRandom;

#[derive(Clone, Copy, Debug)]
pub struct MaskingParams {
    pub masked_lm_prob: f64,
    pub max_predictions_per_seq: usize,
    /// Mask all word pieces of a word together (`##` pieces join the previous token).
    pub whole_word_mask: bool,
}

/// What masking needs to know about the vocabulary.
pub struct MaskingVocab<'a> {
    pub cls_id: u32,
    pub sep_id: u32,
    pub mask_id: u32,
    /// Indexed by id; its length is the vocabulary size random replacements draw from.
    pub is_continuation: &'a [bool],
}

/// Masks `tokens` in place and returns the sorted masked positions with their original ids.
///
/// Up to `max(1, round(len * masked_lm_prob))` (capped by `max_predictions_per_seq`)
/// candidates are chosen among the non-special tokens; each becomes `[MASK]` 80% of the
/// time, stays itself 10%, and becomes a random vocabulary token 10%.
pub fn mask_tokens<R: Rng>(
    tokens: &mut [u32],
    params: &MaskingParams,
    vocab: &MaskingVocab,
    rng: &mut R,
) -> (Vec<u16>, Vec<u32>) {
    // Candidate words as ranges into one flat list of positions (no allocation per word).
    // With whole-word masking a `##` piece joins the previous candidate even across [SEP],
    // as in the reference.
    let mut positions: Vec<usize> = Vec::with_capacity(tokens.len());
    let mut words: Vec<(usize, usize)> = Vec::with_capacity(tokens.len());
    for (i, &token) in tokens.iter().enumerate() {
        if token == vocab.cls_id || token == vocab.sep_id {
            continue;
        }
        let continues_word = params.whole_word_mask
            && !words.is_empty()
            && vocab
                .is_continuation
                .get(token as usize)
                .copied()
                .unwrap_or(false);
        if continues_word {
            words.last_mut().unwrap().1 += 1;
        } else {
            words.push((positions.len(), 1));
        }
        positions.push(i);
    }
    words.shuffle(rng);

    // Python's round() is round-half-to-even; so is ours.
    let num_to_predict = params
        .max_predictions_per_seq
        .min(((tokens.len() as f64 * params.masked_lm_prob).round_ties_even() as usize).max(1));

    let mut masked: Vec<(usize, u32)> = Vec::with_capacity(num_to_predict);
    for (start, len) in words {
        if masked.len() >= num_to_predict {
            break;
        }
        // A whole word that would overshoot the budget is skipped, not split.
        if masked.len() + len > num_to_predict {
            continue;
        }
        // Words are disjoint by construction, so no "already covered" check is needed.
        for &index in &positions[start..start + len] {
            let original = tokens[index];
            tokens[index] = if rng.random::<f64>() < 0.8 {
                vocab.mask_id
            } else if rng.random::<f64>() < 0.5 {
                original
            } else {
                rng.random_range(0..vocab.is_continuation.len()) as u32
            };
            masked.push((index, original));
        }
    }
    masked.sort_unstable_by_key(|&(index, _)| index);
    masked
        .into_iter()
        .map(|(index, original)| (index as u16, original))
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const CLS: u32 = 1;
    const SEP: u32 = 2;
    const MASK: u32 = 3;
    const VOCAB: usize = 1000;

    fn params(prob: f64, max: usize, wwm: bool) -> MaskingParams {
        MaskingParams {
            masked_lm_prob: prob,
            max_predictions_per_seq: max,
            whole_word_mask: wwm,
        }
    }

    fn sequence(len: usize) -> Vec<u32> {
        let mut t: Vec<u32> = (0..len as u32).map(|i| 500 + i).collect();
        t[0] = CLS;
        t[len / 2] = SEP;
        t[len - 1] = SEP;
        t
    }

    fn table() -> Vec<bool> {
        let mut t = vec![false; VOCAB];
        // Ids 600.. are `##` pieces.
        t[600..].fill(true);
        t
    }

    fn vocab(t: &[bool]) -> MaskingVocab<'_> {
        MaskingVocab {
            cls_id: CLS,
            sep_id: SEP,
            mask_id: MASK,
            is_continuation: t,
        }
    }

    #[test]
    fn masks_round_len_times_prob_positions_sorted_labels_original() {
        let t = table();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for len in [5, 20, 64, 128] {
            let orig = sequence(len);
            let mut tokens = orig.clone();
            let (pos, labels) =
                mask_tokens(&mut tokens, &params(0.15, 20, false), &vocab(&t), &mut rng);
            let expected = ((len as f64 * 0.15).round_ties_even() as usize).clamp(1, 20);
            assert_eq!(pos.len(), expected, "len {len}");
            assert!(pos.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
            for (&p, &l) in pos.iter().zip(&labels) {
                assert_eq!(l, orig[p as usize]);
                assert!(l != CLS && l != SEP, "special tokens are never masked");
            }
            for i in 0..len {
                if !pos.contains(&(i as u16)) {
                    assert_eq!(tokens[i], orig[i], "unmasked positions are untouched");
                }
            }
        }
    }

    #[test]
    fn max_predictions_caps_the_count() {
        let t = table();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut tokens = sequence(128);
        let (pos, _) = mask_tokens(&mut tokens, &params(0.5, 7, false), &vocab(&t), &mut rng);
        assert_eq!(pos.len(), 7);
        // round(0.5 * 0.15) = 0 is lifted to 1.
        let mut tokens = sequence(4);
        let (pos, _) = mask_tokens(&mut tokens, &params(0.15, 20, false), &vocab(&t), &mut rng);
        assert_eq!(pos.len(), 1);
    }

    #[test]
    fn replacement_is_80_percent_mask_10_original_10_random() {
        let t = table();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (mut mask, mut same, mut other, mut total) = (0, 0, 0, 0);
        for _ in 0..4000 {
            let orig = sequence(128);
            let mut tokens = orig.clone();
            let (pos, _) = mask_tokens(&mut tokens, &params(0.15, 20, false), &vocab(&t), &mut rng);
            for p in pos {
                let (now, was) = (tokens[p as usize], orig[p as usize]);
                total += 1;
                if now == MASK {
                    mask += 1;
                } else if now == was {
                    same += 1;
                } else {
                    other += 1;
                }
            }
        }
        let f = |n: usize| n as f64 / total as f64;
        assert!((f(mask) - 0.8).abs() < 0.01, "mask {}", f(mask));
        // A random token equals the original 1/VOCAB of the time: negligible here.
        assert!((f(same) - 0.1).abs() < 0.01, "same {}", f(same));
        assert!((f(other) - 0.1).abs() < 0.01, "random {}", f(other));
    }

    #[test]
    fn whole_word_masking_masks_all_pieces_of_a_word() {
        let t = table();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Words: 10 | 11 ##601 ##602 | 12 | 13 ##603 | ...
        let orig: Vec<u32> = vec![
            CLS, 10, 11, 601, 602, 12, 13, 603, SEP, 14, 15, 604, 605, 606, 16, SEP,
        ];
        let mut whole = 0;
        for _ in 0..500 {
            let mut tokens = orig.clone();
            let (pos, _) = mask_tokens(&mut tokens, &params(0.3, 20, true), &vocab(&t), &mut rng);
            assert!(pos.len() <= 5);
            let has = |i: u16| pos.contains(&i);
            for word in [&[2u16, 3, 4][..], &[6, 7], &[10, 11, 12, 13]] {
                let n = word.iter().filter(|&&i| has(i)).count();
                assert!(
                    n == 0 || n == word.len(),
                    "word {word:?} partly masked: {pos:?}"
                );
                whole += (n == word.len() && n > 1) as usize;
            }
        }
        assert!(whole > 100, "multi-piece words do get masked ({whole})");
        // Without whole-word masking, pieces are masked independently.
        let mut split = false;
        for _ in 0..200 {
            let mut tokens = orig.clone();
            let (pos, _) = mask_tokens(&mut tokens, &params(0.3, 20, false), &vocab(&t), &mut rng);
            split |= pos.contains(&3) && !pos.contains(&2);
        }
        assert!(split);
    }
}
