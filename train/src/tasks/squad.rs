//! The SQuAD 1.1 / 2.0 JSON file, read once: what training, prediction and the official
//! evaluation all take from it.

use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Dataset {
    /// `"1.1"`, `"v2.0"`; absent in some hand-made files.
    #[serde(default)]
    pub version: String,
    pub data: Vec<Article>,
}

#[derive(Debug, Deserialize)]
pub struct Article {
    pub paragraphs: Vec<Paragraph>,
}

#[derive(Debug, Deserialize)]
pub struct Paragraph {
    pub context: String,
    pub qas: Vec<Question>,
}

#[derive(Debug, Deserialize)]
pub struct Question {
    pub id: String,
    pub question: String,
    /// Empty for an unanswerable SQuAD 2.0 question.
    #[serde(default)]
    pub answers: Vec<Answer>,
    /// SQuAD 2.0 only.
    #[serde(default)]
    pub is_impossible: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct Answer {
    pub text: String,
    /// Character (code point) offset of `text` in the context.
    pub answer_start: usize,
}

impl Dataset {
    /// Parse `path`, keeping the articles in `articles` (all when `None`).
    pub fn read(path: &Path, articles: Option<Range<usize>>) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut dataset: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a SQuAD JSON file", path.display()))?;
        let n = dataset.data.len();
        if let Some(range) = articles {
            if range.end > n || range.start >= range.end {
                bail!(
                    "{} has {n} articles; the range {}..{} is outside it or empty",
                    path.display(),
                    range.start,
                    range.end
                );
            }
            dataset.data = dataset.data.drain(range).collect();
        }
        Ok(dataset)
    }

    /// SQuAD 2.0: its version says so (`v2.0`) or a question carries `is_impossible`.
    pub fn is_v2(&self) -> bool {
        self.version.trim_start_matches('v').starts_with('2')
            || self.questions().any(|q| q.is_impossible.is_some())
    }

    pub fn questions(&self) -> impl Iterator<Item = &Question> {
        self.data
            .iter()
            .flat_map(|a| &a.paragraphs)
            .flat_map(|p| &p.qas)
    }
}
