//! The pretrained checkpoints behind GluonNLP's names: (model, dataset) → a HuggingFace
//! repository pinned to a commit. The shapes themselves are `BertConfig::zoo`'s.

use anyhow::{Result, bail};

use crate::modules::BertConfig;

/// One pretrained checkpoint of the zoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pretrained {
    /// GluonNLP's model name (`bert_12_768_12`): the shape.
    pub model: &'static str,
    /// GluonNLP's dataset name (`book_corpus_wiki_en_uncased`): the corpus and vocabulary.
    pub dataset: &'static str,
    /// The HuggingFace repository.
    pub repo: &'static str,
    /// The id it had before the hub's 2024 rename, under which older caches hold it.
    pub legacy_id: &'static str,
    /// A commit of `repo`, or `main` where none could be confirmed (README says which).
    pub revision: &'static str,
    pub vocab_size: usize,
}

/// GluonNLP's default dataset, as `BertEmbedding()` and `finetune_classifier.py` use it.
pub const DEFAULT_DATASET: &str = "book_corpus_wiki_en_uncased";

const fn entry(
    model: &'static str,
    dataset: &'static str,
    repo: &'static str,
    legacy_id: &'static str,
    revision: &'static str,
    vocab_size: usize,
) -> Pretrained {
    Pretrained {
        model,
        dataset,
        repo,
        legacy_id,
        revision,
        vocab_size,
    }
}

/// Every pretrained checkpoint, as GluonNLP had them (no large multilingual or Chinese).
pub const PRETRAINED: [Pretrained; 7] = [
    entry(
        "bert_12_768_12",
        "book_corpus_wiki_en_uncased",
        "google-bert/bert-base-uncased",
        "bert-base-uncased",
        "86b5e0934494bd15c9632b12f734a8a67f723594",
        30522,
    ),
    entry(
        "bert_12_768_12",
        "book_corpus_wiki_en_cased",
        "google-bert/bert-base-cased",
        "bert-base-cased",
        "cd5ef92a9fb2f889e972770a36d4ed042daf221e",
        28996,
    ),
    entry(
        "bert_24_1024_16",
        "book_corpus_wiki_en_uncased",
        "google-bert/bert-large-uncased",
        "bert-large-uncased",
        "6da4b6a26a1877e173fca3225479512db81a5e5b",
        30522,
    ),
    entry(
        "bert_24_1024_16",
        "book_corpus_wiki_en_cased",
        "google-bert/bert-large-cased",
        "bert-large-cased",
        "main",
        28996,
    ),
    entry(
        "bert_12_768_12",
        "wiki_multilingual_uncased",
        "google-bert/bert-base-multilingual-uncased",
        "bert-base-multilingual-uncased",
        "main",
        105879,
    ),
    entry(
        "bert_12_768_12",
        "wiki_multilingual_cased",
        "google-bert/bert-base-multilingual-cased",
        "bert-base-multilingual-cased",
        "3f076fdb1ab68d5b2880cb87a0886f315b8146f8",
        119547,
    ),
    entry(
        "bert_12_768_12",
        "wiki_cn_cased",
        "google-bert/bert-base-chinese",
        "bert-base-chinese",
        "c30a6ed22ab4564dc1e3b2ecbf6e766b0611a33f",
        21128,
    ),
];

/// The checkpoint of `model` pretrained on `dataset`; an error lists the combinations there are.
pub fn pretrained(model: &str, dataset: &str) -> Result<&'static Pretrained> {
    if let Some(entry) = PRETRAINED
        .iter()
        .find(|p| p.model == model && p.dataset == dataset)
    {
        return Ok(entry);
    }
    let valid: Vec<String> = PRETRAINED
        .iter()
        .map(|p| format!("{} + {}", p.model, p.dataset))
        .collect();
    bail!(
        "there is no pretrained {model} on {dataset}; the pretrained checkpoints are:\n  {}\n\
         (--from-scratch trains a model-zoo shape from random weights)",
        valid.join("\n  ")
    )
}

impl Pretrained {
    /// The architecture the zoo promises: the model's shape with this vocabulary.
    pub fn config(&self) -> BertConfig {
        BertConfig::zoo(self.model)
            .expect("every zoo entry names a zoo shape")
            .with_vocab_size(self.vocab_size)
    }

    /// `config` (a downloaded `config.json`) has the zoo's shape; the error names both.
    pub fn check(&self, config: &BertConfig) -> Result<()> {
        let want = self.config();
        let shape = |c: &BertConfig| {
            format!(
                "{} layers, hidden {}, {} heads, vocabulary {}",
                c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.vocab_size
            )
        };
        if shape(config) != shape(&want) {
            bail!(
                "{}@{}'s config.json describes {}, but {} + {} is {}",
                self.repo,
                self.revision,
                shape(config),
                self.model,
                self.dataset,
                shape(&want)
            );
        }
        Ok(())
    }

    /// Bytes of the float32 weights (what a download weighs).
    pub fn weight_bytes(&self) -> u64 {
        4 * self.config().parameter_count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_has_a_zoo_shape_and_a_pin() {
        for p in PRETRAINED {
            assert_eq!(p.config().vocab_size, p.vocab_size);
            assert!(
                p.revision == "main" || bert_hub::is_commit_hash(p.revision),
                "{p:?}"
            );
            assert!(p.repo.ends_with(p.legacy_id));
        }
        // BERT-BASE uncased: model.safetensors is 440,449,768 bytes on the hub.
        let base = pretrained("bert_12_768_12", DEFAULT_DATASET).unwrap();
        let mb = base.weight_bytes() as f64 / 1e6;
        assert!((mb - 440.4).abs() < 1.0, "{mb}");
    }

    #[test]
    fn combinations_gluonnlp_never_had_list_the_valid_ones() {
        let err = pretrained("bert_24_1024_16", "wiki_cn_cased")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no pretrained bert_24_1024_16 on wiki_cn_cased"),
            "{err}"
        );
        assert!(err.contains("bert_12_768_12 + wiki_cn_cased"), "{err}");
    }

    #[test]
    fn a_config_of_another_shape_is_refused_naming_both() {
        let base = pretrained("bert_12_768_12", DEFAULT_DATASET).unwrap();
        base.check(&base.config()).unwrap();
        let other = BertConfig::zoo("bert_6_384_12").unwrap();
        let err = base.check(&other).unwrap_err().to_string();
        assert!(
            err.contains("6 layers, hidden 384") && err.contains("12 layers, hidden 768"),
            "{err}"
        );
    }
}
