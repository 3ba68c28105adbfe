//! SQuAD examples → model inputs as Google's BERT `run_squad.py` (and GluonNLP) make them: the
//! question cut to `max_query_length` tokens; the context in windows of up to
//! `max_seq_length - query - 3` tokens, starting every `doc_stride` tokens, each
//! `[CLS] question [SEP] window [SEP]`; per token its byte span in the context and whether this
//! window is the one where it has the most context on both sides; for training, the answer's
//! token positions (`[CLS]`, position 0, when the window does not hold it or there is none).

use anyhow::{Result, bail};
use tokenizers::Tokenizer;

use super::data::SquadExample;

#[derive(Debug, Clone, Copy)]
pub struct WindowParams {
    pub max_seq_length: usize,
    pub doc_stride: usize,
    pub max_query_length: usize,
}

/// One window of one example.
#[derive(Debug, Clone)]
pub struct SquadFeature {
    /// Index of its example.
    pub example: usize,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// Byte span in the context of each context token; `None` for question and special tokens.
    pub offsets: Vec<Option<(usize, usize)>>,
    /// Whether this window gives the token its largest context.
    pub max_context: Vec<bool>,
    /// Answer start and end token (0 and 0: no answer in this window).
    pub start_position: usize,
    pub end_position: usize,
}

/// `run_squad.py`'s `_check_is_max_context` for every position of every window.
fn max_context_flags(spans: &[(usize, usize)]) -> Vec<Vec<bool>> {
    let score = |&(start, len): &(usize, usize), pos: usize| -> Option<f64> {
        if pos < start || pos >= start + len {
            return None;
        }
        let left = pos - start;
        let right = start + len - 1 - pos;
        Some(left.min(right) as f64 + 0.01 * len as f64)
    };
    spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            (span.0..span.0 + span.1)
                .map(|pos| {
                    let best = spans
                        .iter()
                        .enumerate()
                        .filter_map(|(j, s)| score(s, pos).map(|sc| (j, sc)))
                        // The first window wins ties, as in run_squad.py.
                        .fold((usize::MAX, f64::NEG_INFINITY), |b, (j, sc)| {
                            if sc > b.1 { (j, sc) } else { b }
                        });
                    best.0 == i
                })
                .collect()
        })
        .collect()
}

/// Windows of every example. `tokenizer` must not truncate (see `features_tokenizer`).
pub fn squad_features(
    tokenizer: &Tokenizer,
    examples: &[SquadExample],
    params: WindowParams,
) -> Result<Vec<SquadFeature>> {
    let cls = tokenizer.token_to_id("[CLS]");
    let sep = tokenizer.token_to_id("[SEP]");
    let (Some(cls), Some(sep)) = (cls, sep) else {
        bail!("the tokenizer has no [CLS] or [SEP] token");
    };
    if params.max_seq_length < params.max_query_length + 4 {
        bail!(
            "--max-seq-length {} leaves no room for context after a query of up to {} tokens",
            params.max_seq_length,
            params.max_query_length
        );
    }
    let mut out = Vec::new();
    for (index, example) in examples.iter().enumerate() {
        let question = tokenizer
            .encode(example.question.as_str(), false)
            .map_err(|e| anyhow::anyhow!("tokenizing question {}: {e}", example.qid))?;
        let mut query: Vec<u32> = question.get_ids().to_vec();
        query.truncate(params.max_query_length);
        let context = tokenizer
            .encode(&*example.context, false)
            .map_err(|e| anyhow::anyhow!("tokenizing the context of {}: {e}", example.qid))?;
        let doc_ids = context.get_ids();
        let doc_offsets = context.get_offsets();
        if doc_ids.is_empty() {
            continue;
        }
        // The answer in tokens: first token ending after its start, last starting before its end.
        let answer_tokens = example.answer.as_ref().and_then(|a| {
            let start = doc_offsets.iter().position(|&(_, e)| e > a.start)?;
            let end = doc_offsets.iter().rposition(|&(s, _)| s < a.end)?;
            (start <= end).then_some((start, end))
        });
        let window = params.max_seq_length - query.len() - 3;
        let mut spans = Vec::new();
        let mut start = 0;
        loop {
            let len = (doc_ids.len() - start).min(window);
            spans.push((start, len));
            if start + len == doc_ids.len() {
                break;
            }
            start += len.min(params.doc_stride);
        }
        let flags = max_context_flags(&spans);
        for (&(start, len), flags) in spans.iter().zip(flags) {
            let mut ids = Vec::with_capacity(query.len() + len + 3);
            ids.push(cls);
            ids.extend(&query);
            ids.push(sep);
            let offset = ids.len();
            ids.extend(&doc_ids[start..start + len]);
            ids.push(sep);
            let mut types = vec![0u32; offset];
            types.resize(ids.len(), 1);
            let mut offsets = vec![None; offset];
            offsets.extend(doc_offsets[start..start + len].iter().map(|&o| Some(o)));
            offsets.push(None);
            let mut max_context = vec![false; offset];
            max_context.extend(flags);
            max_context.push(false);
            let (start_position, end_position) = match answer_tokens {
                Some((s, e)) if s >= start && e < start + len => {
                    (offset + s - start, offset + e - start)
                }
                _ => (0, 0),
            };
            out.push(SquadFeature {
                example: index,
                input_ids: ids,
                token_type_ids: types,
                offsets,
                max_context,
                start_position,
                end_position,
            });
        }
    }
    Ok(out)
}

/// The model's tokenizer without truncation: windows are cut here.
pub fn features_tokenizer(tokenizer: &Tokenizer) -> Result<Tokenizer> {
    let mut t = tokenizer.clone();
    t.with_padding(None);
    t.with_truncation(None)
        .map_err(|e| anyhow::anyhow!("cannot switch truncation off: {e}"))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tokenizer() -> Tokenizer {
        let vocab = bert_core::vocab::Vocab::load("book_corpus_wiki_en_uncased", None).unwrap();
        features_tokenizer(&vocab.tokenizer).unwrap()
    }

    #[test]
    fn windows_overlap_and_label_the_answer() {
        let context: String = (0..40).map(|i| format!("w{i} ")).collect::<String>() + "paris end";
        let start = context.find("paris").unwrap();
        let example = SquadExample {
            qid: "q".into(),
            question: "where is it".into(),
            context: Arc::from(context.as_str()),
            answer: Some(start..start + 5),
            is_impossible: false,
        };
        let t = tokenizer();
        let doc_len = t.encode(context.as_str(), false).unwrap().get_ids().len();
        let params = WindowParams {
            max_seq_length: 32,
            doc_stride: 10,
            max_query_length: 16,
        };
        let features = squad_features(&t, &[example], params).unwrap();
        // 3 query tokens: windows of 26 context tokens every 10 tokens.
        let window = 32 - 3 - 3;
        assert_eq!(features.len(), (doc_len - window).div_ceil(10) + 1);
        for f in &features {
            assert!(f.input_ids.len() <= 32);
            assert_eq!(f.input_ids.len(), f.offsets.len());
        }
        let with_answer: Vec<&SquadFeature> =
            features.iter().filter(|f| f.start_position > 0).collect();
        assert!(!with_answer.is_empty());
        for f in with_answer {
            let (s, _) = f.offsets[f.start_position].unwrap();
            let (_, e) = f.offsets[f.end_position].unwrap();
            assert_eq!(&context[s..e], "paris");
        }
        // Every context token has exactly one window where it has the most context.
        let mut owners = vec![0; doc_len];
        let mut position = 0;
        for (k, f) in features.iter().enumerate() {
            let first = f.offsets.iter().position(Option::is_some).unwrap();
            let window_start = if k == 0 { 0 } else { position + 10 };
            position = window_start;
            for (i, &m) in f.max_context.iter().enumerate().skip(first) {
                if m {
                    owners[window_start + i - first] += 1;
                }
            }
        }
        assert!(owners.iter().all(|&n| n == 1), "{owners:?}");
    }

    #[test]
    fn long_questions_are_cut() {
        let example = SquadExample {
            qid: "q".into(),
            question: "word ".repeat(100),
            context: Arc::from("a short context"),
            answer: None,
            is_impossible: true,
        };
        let params = WindowParams {
            max_seq_length: 384,
            doc_stride: 128,
            max_query_length: 64,
        };
        let f = &squad_features(&tokenizer(), &[example], params).unwrap()[0];
        assert_eq!(f.token_type_ids.iter().filter(|&&t| t == 0).count(), 64 + 2);
        assert_eq!((f.start_position, f.end_position), (0, 0));
    }
}
