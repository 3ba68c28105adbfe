//! SQuAD 1.1 / 2.0 training and prediction data: questions with their context and answers.
//! An answer whose `answer_start` does not point at its text in the context is counted and the
//! question skipped for training, as the reference implementations do.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::tasks::squad::Dataset;

/// One question.
#[derive(Debug, Clone)]
pub struct SquadExample {
    pub qid: String,
    pub question: String,
    pub context: Arc<str>,
    /// The training answer as a byte range of `context` (the first gold answer), when it has
    /// one that matches its offset.
    pub answer: Option<Range<usize>>,
    pub is_impossible: bool,
}

/// The examples of a file and how many answers did not match their context.
pub struct SquadData {
    pub examples: Vec<SquadExample>,
    pub bad_offsets: usize,
    pub version_2: bool,
    /// The file as parsed (the article range only): what the official evaluation scores.
    pub dataset: Dataset,
}

/// Byte offset of the `chars`-th character of `s` (Python indexes strings by code point).
fn byte_offset(s: &str, chars: usize) -> Option<usize> {
    if chars == s.chars().count() {
        return Some(s.len());
    }
    s.char_indices().nth(chars).map(|(b, _)| b)
}

/// Read `path`, keeping the articles in `articles` (all when `None`). `training`: a question
/// whose answer does not match its offset is counted and skipped; otherwise it is kept (it
/// still needs a prediction), without a training answer.
pub fn read_squad(
    path: &Path,
    articles: Option<Range<usize>>,
    training: bool,
) -> Result<SquadData> {
    let raw = Dataset::read(path, articles)?;
    if raw.data.is_empty() {
        bail!("{} has no articles", path.display());
    }
    let mut version_2 = raw.version.trim_start_matches('v').starts_with('2');
    let mut examples = Vec::new();
    let mut bad_offsets = 0;
    for article in &raw.data {
        for paragraph in &article.paragraphs {
            let context: Arc<str> = Arc::from(paragraph.context.as_str());
            for qa in &paragraph.qas {
                let is_impossible = qa.is_impossible.unwrap_or(false);
                version_2 |= is_impossible;
                let answer = match qa.answers.first() {
                    Some(a) if !is_impossible => {
                        let start = byte_offset(&context, a.answer_start);
                        let range = start.map(|s| s..s + a.text.len());
                        match range {
                            Some(r) if context.get(r.clone()) == Some(a.text.as_str()) => Some(r),
                            _ => {
                                bad_offsets += 1;
                                if training {
                                    continue;
                                }
                                None
                            }
                        }
                    }
                    _ => None,
                };
                examples.push(SquadExample {
                    qid: qa.id.clone(),
                    question: qa.question.clone(),
                    context: context.clone(),
                    answer,
                    is_impossible,
                });
            }
        }
    }
    Ok(SquadData {
        examples,
        bad_offsets,
        version_2,
        dataset: raw,
    })
}

/// `"A..B"` (article indices, end exclusive).
pub fn parse_range(spec: &str) -> Result<Range<usize>> {
    let (a, b) = spec
        .split_once("..")
        .with_context(|| format!("{spec:?} is not a range START..END"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .with_context(|| format!("{spec:?} is not a range START..END"))
    };
    Ok(parse(a)?..parse(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_byte_ranges_and_bad_offsets_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(
            &path,
            r#"{"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "Café au lait in Paris.",
              "qas": [{"id": "a", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 16}]},
                      {"id": "b", "question": "What?", "answers": [{"text": "lait", "answer_start": 3}]}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(read_squad(&path, None, false).unwrap().examples.len(), 2);
        let data = read_squad(&path, None, true).unwrap();
        assert_eq!(data.bad_offsets, 1);
        assert_eq!(data.examples.len(), 1);
        let e = &data.examples[0];
        // "é" is two bytes: character 16 is byte 17.
        assert_eq!(&e.context[e.answer.clone().unwrap()], "Paris");
        assert!(!data.version_2);
        assert!(read_squad(&path, Some(1..2), true).is_err());
        assert_eq!(parse_range("38..48").unwrap(), 38..48);
    }
}
