//! `bert-train zoo`: the pretrained checkpoints behind the model-zoo names, and which of them
//! the hub cache holds.

use anyhow::Result;
use bert_hub::Hub;
use bert_model::checkpoint::source::zoo_cache_status;

pub const AFTER_HELP: &str = "\
A zoo name with a dataset (--bert-dataset / --dataset-name, default book_corpus_wiki_en_uncased)
means that pretrained checkpoint wherever a command takes --model; it is downloaded into the
HuggingFace hub cache (HF_HUB_CACHE, default ~/.cache/huggingface/hub) on first use.
--from-scratch takes the shape alone, with random weights.";

#[derive(Debug, clap::Args)]
pub struct ZooArgs {}

pub fn run(_args: ZooArgs) -> Result<()> {
    let hub = Hub::from_env();
    println!(
        "{:<16} {:<30} {:<44} {:>8}  {:<8} cached",
        "model", "dataset", "repository", "size", "revision"
    );
    for (entry, cached) in zoo_cache_status(&hub) {
        let revision = &entry.revision[..entry.revision.len().min(8)];
        println!(
            "{:<16} {:<30} {:<44} {:>5} MB  {:<8} {}",
            entry.model,
            entry.dataset,
            entry.repo,
            entry.weight_bytes() / 1_000_000,
            revision,
            if cached { "yes" } else { "no" }
        );
    }
    println!("\nhub cache: {}", hub.settings().cache_dir.display());
    println!(
        "other shapes (random weights only, --from-scratch): bert_2_128_2, bert_4_256_4, bert_6_384_12"
    );
    Ok(())
}
