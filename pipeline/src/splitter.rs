//! Sentence splitting for `--input-format raw`: Unicode sentence boundaries (UAX #29, from
//! the `unicode-segmentation` crate), corrected where prose breaks UAX #29's assumptions:
//! abbreviations and initials do not end a sentence, and a piece starting in lower case
//! continues the previous one. Users need no NLTK.

use unicode_segmentation::UnicodeSegmentation;

/// Titles and abbreviations that are followed by a capitalised word mid-sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "hon", "gen", "col", "capt",
    "lt", "sgt", "gov", "pres", "vs", "etc", "no", "vol", "fig", "inc", "ltd", "co", "corp", "jan",
    "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "e.g", "i.e",
    "cf", "al", "esq",
];

/// Splits one paragraph (possibly wrapped over several lines) into sentences.
pub fn split_sentences(paragraph: &str) -> Vec<String> {
    let joined = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut sentences: Vec<String> = Vec::new();
    let mut glue_next = false;
    for piece in joined.split_sentence_bounds() {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        // A piece starting in lower case continues the sentence (`"Mad?" she asked.`).
        let continues = piece.chars().next().is_some_and(char::is_lowercase);
        match sentences.last_mut() {
            Some(last) if glue_next || continues => {
                last.push(' ');
                last.push_str(piece);
            }
            _ => sentences.push(piece.to_string()),
        }
        glue_next = ends_with_abbreviation(sentences.last().unwrap());
    }
    sentences
}

/// "Mr." or a single initial such as "J." end the piece: the sentence goes on.
fn ends_with_abbreviation(sentence: &str) -> bool {
    let Some(stem) = sentence.strip_suffix('.') else {
        return false;
    };
    let word = stem
        .rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"' || c == '\'')
        .next()
        .unwrap_or("");
    let lower = word.to_lowercase();
    let is_initial = word.chars().count() == 1 && word.chars().all(char::is_uppercase);
    is_initial || ABBREVIATIONS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_sentence_ends_and_joins_wrapped_lines() {
        let text = "It is a truth universally\nacknowledged. However little\nknown the feelings may be!  Is it so? Yes.";
        assert_eq!(
            split_sentences(text),
            [
                "It is a truth universally acknowledged.",
                "However little known the feelings may be!",
                "Is it so?",
                "Yes."
            ]
        );
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        let text = "Mr. Darcy met Dr. J. Smith at St. Paul's. They spoke.";
        assert_eq!(
            split_sentences(text),
            ["Mr. Darcy met Dr. J. Smith at St. Paul's.", "They spoke."]
        );
    }

    #[test]
    fn quotes_and_non_latin_scripts() {
        let text = "\"Are you mad?\" she asked. 我很好。你呢？";
        let s = split_sentences(text);
        assert_eq!(s[0], "\"Are you mad?\" she asked.");
        assert_eq!(&s[1..], ["我很好。", "你呢？"]);
    }

    #[test]
    fn empty_paragraph_gives_nothing() {
        assert!(split_sentences("  \n ").is_empty());
    }
}
