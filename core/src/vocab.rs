//! WordPiece vocabularies: the seed's named ones (embedded in the binary), a `vocab.txt`
//! path, or a HuggingFace `tokenizer.json`, all turned into one HF `tokenizers` pipeline so
//! our token ids are HuggingFace's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::ascii_wordpiece::AsciiWordPiece;

/// The vocabularies GluonNLP's model zoo names, bundled in the binary.
const BUILTIN: &[(&str, &str)] = &[
    (
        "book_corpus_wiki_en_uncased",
        include_str!("../vocab/en_uncased.vocab.txt"),
    ),
    (
        "book_corpus_wiki_en_cased",
        include_str!("../vocab/en_cased.vocab.txt"),
    ),
    ("wiki_cn_cased", include_str!("../vocab/zh_cased.vocab.txt")),
];

/// Names GluonNLP knows that we do not bundle (they are large): the user must pass a path.
const NOT_BUNDLED: &[&str] = &[
    "wiki_multilingual_cased",
    "wiki_multilingual_uncased",
    "openwebtext_book_corpus_wiki_en_uncased",
    "scibert_scivocab_uncased",
    "scibert_scivocab_cased",
    "scibert_basevocab_uncased",
    "scibert_basevocab_cased",
    "biobert_v1.0_pmc_cased",
    "biobert_v1.0_pubmed_cased",
    "biobert_v1.0_pubmed_pmc_cased",
    "biobert_v1.1_pubmed_cased",
    "clinicalbert_uncased",
    "kobert_news_wiki_ko_cased",
];

/// Names of the bundled vocabularies, for `--help` and error messages.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

/// Special tokens every BERT vocabulary must have.
const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// A loaded vocabulary: the tokenizer plus what instance creation needs to know per id.
pub struct Vocab {
    /// What the user named: a builtin name or the path they gave.
    pub name: String,
    /// SHA-256 of the vocabulary file's bytes, so a manifest pins the exact vocabulary.
    pub sha256: String,
    pub lowercase: bool,
    pub tokenizer: Tokenizer,
    /// Token string for every id (index = id).
    pub tokens: Vec<String>,
    /// True for `##` continuation pieces (whole-word masking groups them with the previous token).
    pub is_continuation: Vec<bool>,
    pub pad_id: u32,
    pub unk_id: u32,
    pub cls_id: u32,
    pub sep_id: u32,
    pub mask_id: u32,
    /// The byte-loop path for ASCII text, when the tokenizer is a plain BERT one we built.
    fast: Option<AsciiWordPiece>,
}

impl Vocab {
    /// Loads `spec`: a builtin name, a `vocab.txt` path, or a `tokenizer.json` path.
    /// `lowercase` overrides what the vocabulary implies (`None` = follow the vocabulary).
    pub fn load(spec: &str, lowercase: Option<bool>) -> Result<Self> {
        if let Some((name, text)) = BUILTIN.iter().find(|(name, _)| *name == spec) {
            // GluonNLP's rule: the name says whether the vocabulary is cased.
            let lower = lowercase.unwrap_or(!name.contains("_cased"));
            return Self::from_vocab_text(name.to_string(), text, lower);
        }
        if NOT_BUNDLED.contains(&spec) {
            bail!(
                "vocabulary `{spec}` is not bundled with bert-pipeline (bundled: {}); \
                 download its vocab.txt or tokenizer.json and pass the path to --vocab",
                builtin_names().join(", ")
            );
        }
        let path = PathBuf::from(spec);
        if !path.exists() {
            bail!(
                "unknown vocabulary `{spec}`: not a bundled name ({}) and no such file",
                builtin_names().join(", ")
            );
        }
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading vocabulary {}", path.display()))?;
        if path.extension().is_some_and(|e| e == "json") {
            let mut tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| {
                anyhow::anyhow!("{}: not a valid tokenizer.json: {e}", path.display())
            })?;
            let implied = tokenizer_lowercases(&bytes);
            let lower = lowercase.unwrap_or(implied);
            if lower != implied {
                tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, lower)));
            }
            tokenizer.with_padding(None);
            tokenizer
                .with_truncation(None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Self::from_tokenizer(spec.to_string(), sha256_hex(&bytes), lower, tokenizer, None)
        } else {
            let text = String::from_utf8(bytes)
                .with_context(|| format!("{}: vocabulary is not valid UTF-8", path.display()))?;
            let lower = lowercase.unwrap_or(!looks_cased(&text));
            Self::from_vocab_text(spec.to_string(), &text, lower)
        }
    }

    /// A plain BERT vocab.txt: HF's pipeline plus the ASCII fast path over the same vocabulary.
    fn from_vocab_text(name: String, text: &str, lowercase: bool) -> Result<Self> {
        let map = parse_vocab(text)?;
        let tokenizer = bert_tokenizer_from_map(&map, lowercase)?;
        let fast = AsciiWordPiece::new(
            map.iter().map(|(k, &v)| (k.clone(), v)).collect(),
            map["[UNK]"],
            lowercase,
            SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect(),
        );
        Self::from_tokenizer(
            name,
            sha256_hex(text.as_bytes()),
            lowercase,
            tokenizer,
            Some(fast),
        )
    }

    fn from_tokenizer(
        name: String,
        sha256: String,
        lowercase: bool,
        tokenizer: Tokenizer,
        fast: Option<AsciiWordPiece>,
    ) -> Result<Self> {
        let vocab = tokenizer.get_vocab(true);
        let size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut tokens = vec![String::new(); size];
        for (token, id) in vocab {
            tokens[id as usize] = token;
        }
        let is_continuation = tokens.iter().map(|t| t.starts_with("##")).collect();
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .with_context(|| format!("vocabulary `{name}` has no {token} token"))
        };
        Ok(Self {
            pad_id: id("[PAD]")?,
            unk_id: id("[UNK]")?,
            cls_id: id("[CLS]")?,
            sep_id: id("[SEP]")?,
            mask_id: id("[MASK]")?,
            name: name.clone(),
            sha256,
            lowercase,
            tokens,
            is_continuation,
            tokenizer,
            fast,
        })
    }

    pub fn size(&self) -> usize {
        self.tokens.len()
    }

    /// Word-piece ids of one sentence, without special tokens: HF's ids, through the ASCII
    /// fast path where it applies.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if let Some(fast) = &self.fast
            && fast.encode(text, &mut ids)
        {
            return Ok(ids);
        }
        self.encode_hf(text)
    }

    /// Word-piece ids of one sentence through HF's full pipeline.
    pub fn encode_hf(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| anyhow::anyhow!("tokenizing failed: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn token(&self, id: u32) -> &str {
        self.tokens.get(id as usize).map_or("[?]", String::as_str)
    }
}

/// A BERT tokenizer (BERT normalizer, BERT pre-tokenizer, WordPiece, `[CLS] A [SEP] B [SEP]`
/// template) from a `vocab.txt` on disk, as HuggingFace's `BertTokenizerFast` builds it.
pub fn bert_tokenizer_from_vocab_file(path: &Path, lowercase: bool) -> Result<Tokenizer> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    bert_tokenizer_from_vocab_text(&text, lowercase)
}

/// Same as [`bert_tokenizer_from_vocab_file`], from the file's text.
pub fn bert_tokenizer_from_vocab_text(text: &str, lowercase: bool) -> Result<Tokenizer> {
    bert_tokenizer_from_map(&parse_vocab(text)?, lowercase)
}

/// One token per line, id = line number; a repeated token keeps its first id (as HF).
fn parse_vocab(text: &str) -> Result<HashMap<String, u32>> {
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for (id, line) in text.lines().enumerate() {
        vocab
            .entry(line.trim_end().to_string())
            .or_insert(id as u32);
    }
    for special in SPECIAL_TOKENS {
        if !vocab.contains_key(special) {
            bail!("vocabulary has no {special} token; is this a BERT vocab.txt?");
        }
    }
    Ok(vocab)
}

fn bert_tokenizer_from_map(vocab: &HashMap<String, u32>, lowercase: bool) -> Result<Tokenizer> {
    let wordpiece = WordPiece::builder()
        .vocab(
            vocab
                .iter()
                .map(|(k, &v)| (k.clone(), v))
                .collect::<ahash::AHashMap<_, _>>(),
        )
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| anyhow::anyhow!("building WordPiece: {e}"))?;
    let mut tokenizer = Tokenizer::new(wordpiece);
    // strip_accents = None follows `lowercase`, as BertTokenizerFast does.
    tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    let template = TemplateProcessing::builder()
        .try_single("[CLS]:0 $A:0 [SEP]:0")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .try_pair("[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .special_tokens(vec![("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tokenizer.with_post_processor(Some(template));
    tokenizer.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    // Literal "[MASK]" etc. in text are special tokens in HF's BERT tokenizers too.
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(t.to_string(), true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// A vocabulary is cased when more than 1% of its word tokens carry upper-case letters.
fn looks_cased(vocab_text: &str) -> bool {
    let (mut total, mut upper) = (0usize, 0usize);
    for token in vocab_text.lines().filter(|t| !t.starts_with('[')) {
        total += 1;
        upper += token.chars().any(char::is_uppercase) as usize;
    }
    upper * 100 > total
}

/// Whether a tokenizer.json's normalizer lower-cases (BertNormalizer or a Lowercase step).
fn tokenizer_lowercases(json: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return true;
    };
    fn walk(v: &serde_json::Value) -> bool {
        match v.get("type").and_then(|t| t.as_str()) {
            Some("BertNormalizer") => v.get("lowercase").and_then(|l| l.as_bool()).unwrap_or(true),
            Some("Lowercase") => true,
            Some("Sequence") => v
                .get("normalizers")
                .and_then(|n| n.as_array())
                .is_some_and(|steps| steps.iter().any(walk)),
            _ => false,
        }
    }
    walk(&value["normalizer"])
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_fast_path_equals_hf_pipeline() {
        let mut sentences: Vec<String> = [
            include_str!("../../pipeline/sample-corpus/persuasion.txt"),
            include_str!("../../pipeline/sample-corpus/raw/northangerabbey-opening.txt"),
        ]
        .iter()
        .flat_map(|t| t.lines().map(str::to_string))
        .collect();
        let long_word = "a".repeat(101);
        let edge = [
            "",
            "   ",
            "Tabs\there,\r\nand\x0bvertical\x0cfeeds\x01joined\x7fDEL",
            "[MASK] is special, [mask] is not; [UNK] [CLS][SEP] [PAD]",
            "ellipsis... (brackets) {braces} <angle> \"quotes\" 'single' `back` ~tilde^caret|pipe",
            "e-mail: someone@example.com, url https://example.com/a_b?c=d&e=f#g",
            "numbers 3.14159 1,000,000 42nd 1st $5 10% #hashtag @mention",
            "UPPER lower MiXeD xyzzyplugh qwertyuiopasdfghjkl",
            &long_word,
            "\x00nul\x00",
        ];
        sentences.extend(edge.iter().map(|s| s.to_string()));
        for name in ["book_corpus_wiki_en_uncased", "book_corpus_wiki_en_cased"] {
            let v = Vocab::load(name, None).unwrap();
            let mut fast = 0;
            for s in &sentences {
                let mut ids = Vec::new();
                fast += v.fast.as_ref().unwrap().encode(s, &mut ids) as usize;
                assert_eq!(
                    v.encode(s).unwrap(),
                    v.encode_hf(s).unwrap(),
                    "{name}: {s:?}"
                );
            }
            assert!(
                fast > sentences.len() * 9 / 10,
                "the fast path is used ({fast})"
            );
        }
    }

    #[test]
    fn builtin_uncased_matches_bert_wordpiece() {
        let v = Vocab::load("book_corpus_wiki_en_uncased", None).unwrap();
        assert!(v.lowercase);
        assert_eq!(v.size(), 30522);
        assert_eq!(
            (v.pad_id, v.unk_id, v.cls_id, v.sep_id, v.mask_id),
            (0, 100, 101, 102, 103)
        );
        // HuggingFace's documented example for bert-base-uncased, plus an accent to strip.
        let ids = v.encode("I have a new GPU! Héllo").unwrap();
        let tokens: Vec<&str> = ids.iter().map(|&i| v.token(i)).collect();
        assert_eq!(tokens, ["i", "have", "a", "new", "gp", "##u", "!", "hello"]);
        assert!(v.is_continuation[ids[5] as usize] && !v.is_continuation[ids[4] as usize]);
    }

    #[test]
    fn cased_vocab_keeps_case_and_chinese_splits_characters() {
        let v = Vocab::load("book_corpus_wiki_en_cased", None).unwrap();
        assert!(!v.lowercase);
        let ids = v.encode("Hello").unwrap();
        assert_eq!(v.token(ids[0]), "Hello");
        let zh = Vocab::load("wiki_cn_cased", None).unwrap();
        let ids = zh.encode("我爱北京").unwrap();
        assert_eq!(ids.len(), 4);
    }

    #[test]
    fn lowercase_override_and_special_tokens_in_text() {
        let v = Vocab::load("book_corpus_wiki_en_uncased", Some(false)).unwrap();
        assert!(!v.lowercase);
        let ids = v.encode("Hello [MASK]").unwrap();
        assert_eq!(v.token(ids[0]), "[UNK]", "an uncased vocab has no `Hello`");
        assert_eq!(ids[1], v.mask_id);
    }

    #[test]
    fn unknown_and_unbundled_names_are_clear_errors() {
        let err = Vocab::load("no_such_vocab", None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown vocabulary") && err.contains("book_corpus_wiki_en_uncased"));
        let err = Vocab::load("wiki_multilingual_cased", None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not bundled") && err.contains("path"), "{err}");
    }

    #[test]
    fn vocab_file_path_infers_casing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.txt");
        std::fs::write(&path, include_str!("../vocab/en_cased.vocab.txt")).unwrap();
        let v = Vocab::load(path.to_str().unwrap(), None).unwrap();
        assert!(!v.lowercase);
        std::fs::write(&path, include_str!("../vocab/en_uncased.vocab.txt")).unwrap();
        assert!(Vocab::load(path.to_str().unwrap(), None).unwrap().lowercase);
        std::fs::write(&path, "hello\nworld\n").unwrap();
        let err = Vocab::load(path.to_str().unwrap(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("[PAD]"), "{err}");
    }
}
