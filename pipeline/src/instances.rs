//! Pretraining instances from tokenized documents, following BERT's reference
//! `create_pretraining_data.py` rule for rule (`create_instances_from_document`,
//! `truncate_seq_pair`). Only the pool that "random next" sentences come from differs:
//! it is the bounded block of documents being processed, not the whole corpus.

use rand::Rng;

use crate::masking::{MaskingParams, MaskingVocab, mask_tokens};
use crate::shards::Instance;

/// One document: its sentences as word-piece ids (no empty sentences).
pub type Document = Vec<Vec<u32>>;

#[derive(Clone, Copy, Debug)]
pub struct InstanceParams {
    pub max_seq_length: usize,
    pub short_seq_prob: f64,
    pub masking: MaskingParams,
}

/// The reference's `create_instances_from_document` for `pool[doc_index]`; random-next
/// segments come from other documents of `pool`.
pub fn create_instances_from_document<R: Rng>(
    pool: &[Document],
    doc_index: usize,
    params: &InstanceParams,
    vocab: &MaskingVocab,
    rng: &mut R,
) -> Vec<Instance> {
    let document = &pool[doc_index];
    // Room for [CLS], [SEP], [SEP].
    let max_num_tokens = params.max_seq_length - 3;
    // Mostly fill the sequence; sometimes use a shorter one to reduce the
    // pretraining/fine-tuning length mismatch.
    let mut target_seq_length = max_num_tokens;
    if rng.random::<f64>() < params.short_seq_prob {
        target_seq_length = rng.random_range(2..=max_num_tokens);
    }

    let mut instances = Vec::new();
    let mut current_chunk: Vec<&[u32]> = Vec::new();
    let mut current_length = 0;
    let mut i = 0;
    while i < document.len() {
        let segment = &document[i];
        current_chunk.push(segment);
        current_length += segment.len();
        if i == document.len() - 1 || current_length >= target_seq_length {
            // `a_end` is how many chunk segments go into A.
            let a_end = if current_chunk.len() >= 2 {
                rng.random_range(1..=current_chunk.len() - 1)
            } else {
                1
            };
            let tokens_a: Vec<u32> = current_chunk[..a_end].concat();
            let mut tokens_b: Vec<u32> = Vec::new();
            let is_random_next = current_chunk.len() == 1 || rng.random::<f64>() < 0.5;
            if is_random_next {
                let target_b_length = target_seq_length.saturating_sub(tokens_a.len());
                // Ten tries at a different document, as the reference; a pool of one
                // document falls back to itself.
                let mut random_index = doc_index;
                for _ in 0..10 {
                    random_index = rng.random_range(0..pool.len());
                    if random_index != doc_index {
                        break;
                    }
                }
                let random_document = &pool[random_index];
                let random_start = rng.random_range(0..random_document.len());
                for sentence in &random_document[random_start..] {
                    tokens_b.extend_from_slice(sentence);
                    if tokens_b.len() >= target_b_length {
                        break;
                    }
                }
                // The segments of the chunk we did not use go back for the next instance.
                let num_unused_segments = current_chunk.len() - a_end;
                i -= num_unused_segments;
            } else {
                tokens_b = current_chunk[a_end..].concat();
            }
            let (a, b) = truncate_seq_pair(&tokens_a, &tokens_b, max_num_tokens, rng);
            debug_assert!(!a.is_empty() && !b.is_empty());
            instances.push(assemble(a, b, is_random_next, &params.masking, vocab, rng));
            current_chunk.clear();
            current_length = 0;
        }
        i += 1;
    }
    instances
}

/// `[CLS] A [SEP] B [SEP]` with segment ids, then masked.
fn assemble<R: Rng>(
    tokens_a: &[u32],
    tokens_b: &[u32],
    is_random_next: bool,
    masking: &MaskingParams,
    vocab: &MaskingVocab,
    rng: &mut R,
) -> Instance {
    let mut input_ids = Vec::with_capacity(tokens_a.len() + tokens_b.len() + 3);
    input_ids.push(vocab.cls_id);
    input_ids.extend_from_slice(tokens_a);
    input_ids.push(vocab.sep_id);
    let segment_a_len = input_ids.len();
    input_ids.extend_from_slice(tokens_b);
    input_ids.push(vocab.sep_id);
    let mut segment_ids = vec![0u8; input_ids.len()];
    segment_ids[segment_a_len..].fill(1);
    let (masked_lm_positions, masked_lm_ids) = mask_tokens(&mut input_ids, masking, vocab, rng);
    Instance {
        input_ids,
        segment_ids,
        masked_lm_positions,
        masked_lm_ids,
        next_sentence_label: is_random_next as u8,
    }
}

/// Trims the longer of A and B one token at a time, from the front or the back at random
/// (the reference's way to avoid always cutting the same end), until both fit.
pub fn truncate_seq_pair<'a, R: Rng>(
    mut a: &'a [u32],
    mut b: &'a [u32],
    max_num_tokens: usize,
    rng: &mut R,
) -> (&'a [u32], &'a [u32]) {
    while a.len() + b.len() > max_num_tokens {
        let longer = if a.len() > b.len() { &mut a } else { &mut b };
        *longer = if rng.random::<f64>() < 0.5 {
            &longer[1..]
        } else {
            &longer[..longer.len() - 1]
        };
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const CLS: u32 = 1;
    const SEP: u32 = 2;
    const MASK: u32 = 3;

    fn vocab_table() -> Vec<bool> {
        vec![false; 1000]
    }

    fn vocab(is_continuation: &[bool]) -> MaskingVocab<'_> {
        MaskingVocab {
            cls_id: CLS,
            sep_id: SEP,
            mask_id: MASK,
            is_continuation,
        }
    }

    fn params(max_seq_length: usize, short_seq_prob: f64) -> InstanceParams {
        InstanceParams {
            max_seq_length,
            short_seq_prob,
            masking: MaskingParams {
                masked_lm_prob: 0.15,
                max_predictions_per_seq: 20,
                whole_word_mask: false,
            },
        }
    }

    /// A document of `n` sentences of `len` tokens; token values encode (doc, sentence).
    fn doc(d: u32, n: u32, len: usize) -> Document {
        (0..n).map(|s| vec![100 + d * 100 + s; len]).collect()
    }

    /// The original tokens of an instance (masks undone).
    fn original(inst: &Instance) -> Vec<u32> {
        let mut ids = inst.input_ids.clone();
        for (&p, &id) in inst.masked_lm_positions.iter().zip(&inst.masked_lm_ids) {
            ids[p as usize] = id;
        }
        ids
    }

    fn all_instances(pool: &[Document], p: &InstanceParams, seed: u64) -> Vec<Instance> {
        let table = vocab_table();
        let v = vocab(&table);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..pool.len())
            .flat_map(|d| create_instances_from_document(pool, d, p, &v, &mut rng))
            .collect()
    }

    #[test]
    fn layout_is_cls_a_sep_b_sep_with_segment_ids() {
        let pool: Vec<Document> = (0..4).map(|d| doc(d, 20, 7)).collect();
        for inst in all_instances(&pool, &params(64, 0.1), 7) {
            let ids = original(&inst);
            let n = ids.len();
            assert!(n <= 64);
            assert_eq!(ids[0], CLS);
            assert_eq!(ids[n - 1], SEP);
            let seps: Vec<usize> = (0..n).filter(|&i| ids[i] == SEP).collect();
            assert_eq!(seps.len(), 2, "exactly two [SEP]");
            let first_b = seps[0] + 1;
            assert!(first_b >= 3 && first_b < n, "A and B are non-empty");
            assert!(inst.segment_ids[..first_b].iter().all(|&s| s == 0));
            assert!(inst.segment_ids[first_b..].iter().all(|&s| s == 1));
        }
    }

    #[test]
    fn actual_next_keeps_document_order_and_random_next_comes_from_another_document() {
        let pool: Vec<Document> = (0..6).map(|d| doc(d, 30, 5)).collect();
        let instances = all_instances(&pool, &params(128, 0.0), 3);
        let mut random = 0;
        for inst in &instances {
            let ids = original(inst);
            let sep = ids.iter().position(|&t| t == SEP).unwrap();
            let (a, b) = (&ids[1..sep], &ids[sep + 1..ids.len() - 1]);
            let doc_of = |t: u32| (t - 100) / 100;
            if inst.next_sentence_label == 1 {
                random += 1;
                assert_ne!(
                    doc_of(a[0]),
                    doc_of(b[0]),
                    "random next from another document"
                );
            } else {
                assert_eq!(doc_of(a[0]), doc_of(b[0]));
                assert!(a.last().unwrap() <= &b[0], "B follows A");
            }
        }
        let frac = random as f64 / instances.len() as f64;
        assert!((0.35..0.65).contains(&frac), "random-next fraction {frac}");
    }

    #[test]
    fn unused_segments_are_put_back_after_a_random_next() {
        // Every sentence id appears in some instance's A when segments are put back.
        let pool: Vec<Document> = (0..3).map(|d| doc(d, 40, 10)).collect();
        let instances = all_instances(&pool, &params(64, 0.0), 11);
        let mut seen_in_a = std::collections::HashSet::new();
        for inst in &instances {
            let ids = original(inst);
            let sep = ids.iter().position(|&t| t == SEP).unwrap();
            seen_in_a.extend(ids[1..sep].iter().copied());
            if inst.next_sentence_label == 0 {
                seen_in_a.extend(ids[sep + 1..].iter().copied());
            }
        }
        // With 61 tokens per instance and 10-token sentences nothing is skipped except
        // by truncation, which only trims tokens, never whole 10-token sentences.
        for d in 0..3u32 {
            for s in 0..40u32 {
                assert!(
                    seen_in_a.contains(&(100 + d * 100 + s)),
                    "sentence {d}/{s} lost"
                );
            }
        }
    }

    #[test]
    fn short_seq_prob_one_gives_short_targets() {
        let pool: Vec<Document> = (0..4).map(|d| doc(d, 50, 3)).collect();
        let long = all_instances(&pool, &params(128, 0.0), 5);
        let short = all_instances(&pool, &params(128, 1.0), 5);
        let mean = |v: &[Instance]| {
            v.iter().map(|i| i.valid_length()).sum::<usize>() as f64 / v.len() as f64
        };
        assert!(
            mean(&short) < 0.75 * mean(&long),
            "{} vs {}",
            mean(&short),
            mean(&long)
        );
        assert!(short.len() > long.len());
    }

    #[test]
    fn truncation_trims_the_longer_side_from_both_ends() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (mut front, mut back) = (0, 0);
        let (a0, b0): (Vec<u32>, Vec<u32>) = ((0..10).collect(), (100..103).collect());
        for _ in 0..200 {
            let (a, b) = truncate_seq_pair(&a0, &b0, 9, &mut rng);
            assert_eq!(a.len() + b.len(), 9);
            assert_eq!(b, [100, 101, 102], "the shorter side is untouched");
            front += (a[0] != 0) as usize;
            back += (*a.last().unwrap() != 9) as usize;
        }
        assert!(front > 50 && back > 50, "front {front} back {back}");
        // Equal lengths: B is trimmed (the reference's `>` comparison).
        let (a, b) = truncate_seq_pair(&[1, 2, 3], &[4, 5, 6], 5, &mut rng);
        assert_eq!((a.len(), b.len()), (3, 2));
    }

    #[test]
    fn single_document_pool_still_makes_instances() {
        let pool = vec![doc(0, 10, 4)];
        let instances = all_instances(&pool, &params(32, 0.0), 9);
        assert!(!instances.is_empty());
        assert!(instances.iter().all(|i| i.valid_length() <= 32));
    }

    #[test]
    fn same_seed_same_instances() {
        let pool: Vec<Document> = (0..5).map(|d| doc(d, 25, 6)).collect();
        assert_eq!(
            all_instances(&pool, &params(64, 0.1), 42),
            all_instances(&pool, &params(64, 0.1), 42)
        );
        assert_ne!(
            all_instances(&pool, &params(64, 0.1), 42),
            all_instances(&pool, &params(64, 0.1), 43)
        );
    }
}
