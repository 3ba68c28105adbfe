//! SQuAD evaluation, exactly as the official `evaluate-v1.1.py` and `evaluate-v2.0.py`
//! compute it: answer normalisation, exact match, token F1, the no-answer threshold, the
//! HasAns/NoAns breakdown and the best-threshold search. Output JSON has the same keys, order
//! and number formatting as the scripts print.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

pub use super::squad::Dataset;

/// A JSON object of numbers in file order (Python dicts keep it, and ties in the
/// best-threshold search are broken by it).
pub fn parse_ordered_probs(json: &str) -> Result<Vec<(String, f64)>> {
    struct Ordered(Vec<(String, f64)>);
    impl<'de> Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object of question id -> probability")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Ordered, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = map.next_entry::<String, f64>()? {
                        out.push((k, v));
                    }
                    Ok(Ordered(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    Ok(serde_json::from_str::<Ordered>(json)?.0)
}

/// Lower-cases, drops ASCII punctuation and the articles a/an/the, and collapses whitespace
/// (the scripts' `normalize_answer`).
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punct: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // `re.sub(r"\b(a|an|the)\b", " ", text)`: an article is a whole run of word characters.
    let mut no_articles = String::with_capacity(no_punct.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in no_punct.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut no_articles);
            no_articles.push(c);
        }
    }
    flush(&mut word, &mut no_articles);
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn tokens(s: &str) -> Vec<String> {
    normalize_answer(s)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn exact(gold: &str, pred: &str) -> f64 {
    f64::from(normalize_answer(gold) == normalize_answer(pred))
}

/// Token-overlap F1. `empty_agrees`: v2.0 scores two empty answers 1 (v1.1 scores them 0).
fn f1(gold: &str, pred: &str, empty_agrees: bool) -> f64 {
    let (gold, pred) = (tokens(gold), tokens(pred));
    if empty_agrees && (gold.is_empty() || pred.is_empty()) {
        return f64::from(gold == pred);
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in &gold {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0;
    for t in &pred {
        if let Some(c) = counts.get_mut(t.as_str())
            && *c > 0
        {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / pred.len() as f64;
    let recall = same as f64 / gold.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// `evaluate-v1.1.py`: `{"exact_match": .., "f1": ..}`; unanswered questions score 0.
pub fn evaluate_v1(dataset: &Dataset, preds: &HashMap<String, String>) -> (String, Vec<String>) {
    let mut warnings = Vec::new();
    if dataset.version != "1.1" {
        warnings.push(format!(
            "Evaluation expects v-1.1, but got dataset with v-{}",
            dataset.version
        ));
    }
    let (mut em, mut f, mut total) = (0.0, 0.0, 0usize);
    for qa in dataset.questions() {
        total += 1;
        let Some(pred) = preds.get(&qa.id) else {
            warnings.push(format!(
                "Unanswered question {} will receive score 0.",
                qa.id
            ));
            continue;
        };
        let max =
            |m: &dyn Fn(&str) -> f64| qa.answers.iter().map(|a| m(&a.text)).fold(0.0, f64::max);
        em += max(&|g| exact(g, pred));
        f += max(&|g| f1(g, pred, false));
    }
    let total = total.max(1) as f64;
    let json = format!(
        "{{\"exact_match\": {}, \"f1\": {}}}",
        py_float(100.0 * em / total),
        py_float(100.0 * f / total)
    );
    (json, warnings)
}

/// `evaluate-v2.0.py`, printed as `json.dumps(out_eval, indent=2)`.
pub fn evaluate_v2(
    dataset: &Dataset,
    preds: &HashMap<String, String>,
    na_probs: Option<&[(String, f64)]>,
    na_prob_thresh: f64,
) -> Result<(String, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut order: Vec<&str> = Vec::new();
    let mut has_ans: HashMap<&str, bool> = HashMap::new();
    let mut exact_raw: HashMap<&str, f64> = HashMap::new();
    let mut f1_raw: HashMap<&str, f64> = HashMap::new();
    for qa in dataset.questions() {
        if has_ans.insert(&qa.id, !qa.answers.is_empty()).is_none() {
            order.push(&qa.id);
        }
        let mut gold: Vec<&str> = qa
            .answers
            .iter()
            .map(|a| a.text.as_str())
            .filter(|t| !normalize_answer(t).is_empty())
            .collect();
        if gold.is_empty() {
            gold.push(""); // Unanswerable: only the empty answer is right.
        }
        let Some(pred) = preds.get(&qa.id) else {
            warnings.push(format!("Missing prediction for {}", qa.id));
            continue;
        };
        exact_raw.insert(
            &qa.id,
            gold.iter().map(|g| exact(g, pred)).fold(f64::MIN, f64::max),
        );
        f1_raw.insert(
            &qa.id,
            gold.iter()
                .map(|g| f1(g, pred, true))
                .fold(f64::MIN, f64::max),
        );
    }
    let na: HashMap<&str, f64> = match na_probs {
        Some(list) => list.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
        None => preds.keys().map(|k| (k.as_str(), 0.0)).collect(),
    };
    let na_of = |qid: &str| -> Result<f64> {
        na.get(qid)
            .copied()
            .with_context(|| format!("no no-answer probability for question {qid}"))
    };
    let threshold = |raw: &HashMap<&str, f64>| -> Result<HashMap<String, f64>> {
        raw.iter()
            .map(|(&qid, &s)| {
                let s = if na_of(qid)? > na_prob_thresh {
                    f64::from(!has_ans[qid])
                } else {
                    s
                };
                Ok((qid.to_string(), s))
            })
            .collect()
    };
    let exact_t = threshold(&exact_raw)?;
    let f1_t = threshold(&f1_raw)?;
    if exact_t.is_empty() {
        bail!("no predictions for any question of the data set");
    }
    // Python sums dict values in insertion (data set) order; so do we, for identical floats.
    let answered: Vec<&str> = order
        .iter()
        .copied()
        .filter(|q| exact_t.contains_key(*q))
        .collect();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut block = |prefix: &str, qids: &[&str]| -> Result<()> {
        let mut e = 0.0;
        let mut f = 0.0;
        for q in qids {
            e += exact_t
                .get(*q)
                .copied()
                .with_context(|| format!("Missing prediction for {q}"))?;
            f += f1_t[*q];
        }
        let n = qids.len() as f64;
        fields.push((format!("{prefix}exact"), py_float(100.0 * e / n)));
        fields.push((format!("{prefix}f1"), py_float(100.0 * f / n)));
        fields.push((format!("{prefix}total"), qids.len().to_string()));
        Ok(())
    };
    block("", &answered)?;
    let has: Vec<&str> = order.iter().copied().filter(|q| has_ans[q]).collect();
    let no: Vec<&str> = order.iter().copied().filter(|q| !has_ans[q]).collect();
    if !has.is_empty() {
        block("HasAns_", &has)?;
    }
    if !no.is_empty() {
        block("NoAns_", &no)?;
    }
    if let Some(na) = na_probs {
        for (name, raw) in [("exact", &exact_raw), ("f1", &f1_raw)] {
            let (best, thresh) = best_threshold(preds, raw, na, &has_ans)?;
            fields.push((format!("best_{name}"), py_float(best)));
            fields.push((format!("best_{name}_thresh"), py_float(thresh)));
        }
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("  \"{k}\": {v}"))
        .collect();
    Ok((format!("{{\n{}\n}}", body.join(",\n")), warnings))
}

/// `evaluate-v2.0.py --out-file`'s form of the result: `json.dump` on one line, where the
/// printed form is `json.dumps(.., indent=2)`.
pub fn v2_one_line(indented: &str) -> String {
    let body = indented
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split(",\n")
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{{body}}}")
}

/// The scripts' `find_best_thresh`: the score if every question with a no-answer probability
/// above a threshold answered "no answer", at the best threshold.
fn best_threshold(
    preds: &HashMap<String, String>,
    scores: &HashMap<&str, f64>,
    na_probs: &[(String, f64)],
    has_ans: &HashMap<&str, bool>,
) -> Result<(f64, f64)> {
    let num_no_ans = has_ans.values().filter(|&&h| !h).count() as f64;
    let mut cur = num_no_ans;
    let mut best = cur;
    let mut best_thresh = 0.0;
    // `sorted(na_probs, key=...)`: a stable sort over the file's key order.
    let mut qids: Vec<(&String, f64)> = na_probs.iter().map(|(k, v)| (k, *v)).collect();
    qids.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
    for (qid, p) in qids {
        let Some(&score) = scores.get(qid.as_str()) else {
            continue;
        };
        let has = *has_ans
            .get(qid.as_str())
            .with_context(|| format!("question {qid} is not in the data set"))?;
        let diff = if has {
            score
        } else if preds.get(qid).is_some_and(|p| !p.is_empty()) {
            -1.0
        } else {
            0.0
        };
        cur += diff;
        if cur > best {
            best = cur;
            best_thresh = p;
        }
    }
    Ok((100.0 * best / scores.len() as f64, best_thresh))
}

/// A float as Python's `repr` writes it: shortest round-trip digits, positional between 1e-4
/// and 1e16, else scientific with a signed two-digit exponent (`1e-05`).
pub fn py_float(x: f64) -> String {
    if x == 0.0 || (1e-4..1e16).contains(&x.abs()) {
        let s = format!("{x}");
        return if s.contains('.') || s.contains("inf") || s.contains("NaN") {
            s
        } else {
            format!("{s}.0")
        };
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    format!(
        "{mantissa}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_matches_the_scripts() {
        assert_eq!(normalize_answer("The  Quick, brown-fox!"), "quick brownfox");
        assert_eq!(normalize_answer("an apple a day"), "apple day");
        assert_eq!(normalize_answer("theory of Anna"), "theory of anna");
        // Non-ASCII punctuation stays and is a word boundary: "the—cat" loses "the".
        assert_eq!(normalize_answer("the—cat"), "—cat");
        assert_eq!(normalize_answer("a_b the_c"), "ab thec");
    }

    #[test]
    fn f1_counts_token_overlap() {
        assert_eq!(f1("the cat sat", "cat sat down", false), 0.8);
        assert_eq!(f1("", "", true), 1.0);
        assert_eq!(f1("", "", false), 0.0);
        assert_eq!(f1("a", "cat", true), 0.0);
    }

    #[test]
    fn one_line_form_is_json_dump() {
        assert_eq!(
            v2_one_line("{\n  \"exact\": 50.0,\n  \"total\": 2\n}"),
            "{\"exact\": 50.0, \"total\": 2}"
        );
    }

    #[test]
    fn floats_print_like_python() {
        assert_eq!(py_float(100.0), "100.0");
        assert_eq!(py_float(66.66666666666667), "66.66666666666667");
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(-2.5e-7), "-2.5e-07");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(py_float(1.5e16), "1.5e+16");
    }
}
