//! Start/end logits of every window → one answer per question, as `run_squad.py` /
//! GluonNLP do: the `n_best` highest start and end positions of each window, spans inside the
//! context, starting where the window has the token's most context, at most
//! `max_answer_length` tokens; best by start + end logit. For SQuAD 2.0 the null answer scores
//! `start[CLS] + end[CLS]` (lowest over the windows) and wins when
//! `null − best > null_score_diff_threshold`.

use serde::Serialize;

use super::data::SquadExample;
use super::features::SquadFeature;

#[derive(Debug, Clone, Copy)]
pub struct AnswerParams {
    pub n_best_size: usize,
    pub max_answer_length: usize,
    pub version_2: bool,
    pub null_score_diff_threshold: f64,
}

/// One of the n best answers of a question (`nbest_predictions.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub text: String,
    pub probability: f64,
    pub start_logit: f64,
    pub end_logit: f64,
}

/// What `predictions.json`, `nbest_predictions.json` and `null_odds.json` hold, in the
/// examples' order.
pub struct Answers {
    pub predictions: Vec<(String, String)>,
    pub nbest: Vec<(String, Vec<Candidate>)>,
    /// SQuAD 2.0: null score − best non-null score, per question.
    pub null_odds: Vec<(String, f64)>,
}

fn top_indices(logits: &[f32], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(n);
    order
}

/// `logits[i]` are the (start, end) logits of `features[i]`.
pub fn best_answers(
    examples: &[SquadExample],
    features: &[SquadFeature],
    logits: &[(Vec<f32>, Vec<f32>)],
    params: AnswerParams,
) -> Answers {
    let mut by_example: Vec<Vec<usize>> = vec![Vec::new(); examples.len()];
    for (i, f) in features.iter().enumerate() {
        by_example[f.example].push(i);
    }
    let mut answers = Answers {
        predictions: Vec::new(),
        nbest: Vec::new(),
        null_odds: Vec::new(),
    };
    for (example, windows) in examples.iter().zip(by_example) {
        // (score, start logit, end logit, byte span)
        let mut prelim: Vec<(f64, f64, f64, (usize, usize))> = Vec::new();
        let mut null: Option<(f64, f64)> = None;
        for &i in &windows {
            let (start, end) = (&logits[i].0, &logits[i].1);
            let f = &features[i];
            let null_here = (start[0] as f64, end[0] as f64);
            if null.is_none_or(|(s, e)| null_here.0 + null_here.1 < s + e) {
                null = Some(null_here);
            }
            for &s in &top_indices(start, params.n_best_size) {
                for &e in &top_indices(end, params.n_best_size) {
                    let (Some(Some(a)), Some(Some(b))) = (f.offsets.get(s), f.offsets.get(e))
                    else {
                        continue;
                    };
                    if e < s || e - s + 1 > params.max_answer_length || !f.max_context[s] {
                        continue;
                    }
                    let (sl, el) = (start[s] as f64, end[e] as f64);
                    prelim.push((sl + el, sl, el, (a.0, b.1)));
                }
            }
        }
        prelim.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut nbest: Vec<(f64, f64, String)> = Vec::new();
        for (_, sl, el, (a, b)) in prelim {
            if nbest.len() >= params.n_best_size {
                break;
            }
            let text = example.context[a..b].to_string();
            if nbest.iter().any(|(_, _, t)| *t == text) {
                continue;
            }
            nbest.push((sl, el, text));
        }
        let best_non_null = nbest.first().cloned();
        if params.version_2
            && let Some((s, e)) = null
            && !nbest.iter().any(|(_, _, t)| t.is_empty())
        {
            nbest.push((s, e, String::new()));
            nbest.sort_by(|a, b| (b.0 + b.1).total_cmp(&(a.0 + a.1)));
            nbest.truncate(params.n_best_size.max(1));
            if !nbest.iter().any(|(_, _, t)| t.is_empty()) {
                nbest.push((s, e, String::new()));
            }
        }
        if nbest.is_empty() {
            nbest.push((0.0, 0.0, "empty".into()));
        }
        let max = nbest
            .iter()
            .map(|(s, e, _)| s + e)
            .fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = nbest.iter().map(|(s, e, _)| (s + e - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        let candidates: Vec<Candidate> = nbest
            .iter()
            .zip(&exps)
            .map(|((s, e, text), x)| Candidate {
                text: text.clone(),
                probability: x / total,
                start_logit: *s,
                end_logit: *e,
            })
            .collect();
        let best_text = best_non_null
            .as_ref()
            .map_or(String::new(), |b| b.2.clone());
        let prediction = if params.version_2 {
            let (ns, ne) = null.unwrap_or((0.0, 0.0));
            let diff = match &best_non_null {
                Some((s, e, _)) => ns + ne - s - e,
                None => f64::INFINITY,
            };
            answers.null_odds.push((
                example.qid.clone(),
                if diff.is_finite() { diff } else { 1e9 },
            ));
            if diff > params.null_score_diff_threshold {
                String::new()
            } else {
                best_text
            }
        } else {
            best_text
        };
        answers.predictions.push((example.qid.clone(), prediction));
        answers.nbest.push((example.qid.clone(), candidates));
    }
    answers
}

/// A JSON object from pairs, in their order (as Python's `collections.OrderedDict`).
pub fn ordered_json<T: Serialize>(pairs: &[(String, T)]) -> serde_json::Result<String> {
    let body = pairs
        .iter()
        .map(|(k, v)| {
            Ok(format!(
                "{}: {}",
                serde_json::to_string(k)?,
                serde_json::to_string(v)?
            ))
        })
        .collect::<serde_json::Result<Vec<_>>>()?;
    Ok(format!("{{{}}}", body.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// One example, one window: `[CLS] q [SEP] the cat sat [SEP]` (context bytes "the cat sat").
    fn setup() -> (Vec<SquadExample>, Vec<SquadFeature>) {
        let example = SquadExample {
            qid: "q1".into(),
            question: "q".into(),
            context: Arc::from("the cat sat"),
            answer: None,
            is_impossible: false,
        };
        let offsets = vec![
            None,
            None,
            None,
            Some((0, 3)),
            Some((4, 7)),
            Some((8, 11)),
            None,
        ];
        let feature = SquadFeature {
            example: 0,
            input_ids: vec![0; 7],
            token_type_ids: vec![0; 7],
            max_context: offsets.iter().map(Option::is_some).collect(),
            offsets,
            start_position: 0,
            end_position: 0,
        };
        (vec![example], vec![feature])
    }

    fn params(version_2: bool, threshold: f64) -> AnswerParams {
        AnswerParams {
            n_best_size: 20,
            max_answer_length: 2,
            version_2,
            null_score_diff_threshold: threshold,
        }
    }

    #[test]
    fn picks_the_best_valid_span() {
        let (examples, features) = setup();
        // Best raw pair would be start 5 ("sat") with end 3 ("the"): invalid (end < start).
        let start = vec![0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 0.0];
        let end = vec![0.0, 0.0, 0.0, 6.0, 3.0, 2.0, 0.0];
        let answers = best_answers(&examples, &features, &[(start, end)], params(false, 0.0));
        // "the" (1 + 6) beats "sat" (4 + 2), "cat" (2 + 3) and "the cat" (1 + 3).
        assert_eq!(answers.predictions[0].1, "the");
        let nbest = &answers.nbest[0].1;
        assert!(
            nbest.iter().all(|c| c.text != "the cat sat"),
            "longer than 2 tokens"
        );
        let total: f64 = nbest.iter().map(|c| c.probability).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn squad2_answers_null_above_the_threshold() {
        let (examples, features) = setup();
        let start = vec![4.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let end = vec![4.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let logits = [(start, end)];
        // null 8, best non-null "the" 2: diff 6.
        let answers = best_answers(&examples, &features, &logits, params(true, 0.0));
        assert_eq!(answers.predictions[0].1, "");
        assert_eq!(answers.null_odds[0].1, 6.0);
        assert!(answers.nbest[0].1.iter().any(|c| c.text.is_empty()));
        let answers = best_answers(&examples, &features, &logits, params(true, 7.0));
        assert_eq!(answers.predictions[0].1, "the");
        assert_eq!(
            ordered_json(&answers.predictions).unwrap(),
            r#"{"q1": "the"}"#
        );
    }
}
