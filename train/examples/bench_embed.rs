//! Sentences per second of `BertEmbedding` on a TSV's first column (SST-2 dev by default),
//! tokenization and pooling included, as sentence-transformers' `encode` is timed.
//!
//! cargo run --release -p bert-train --example bench_embed -- \
//!     --model models/all-MiniLM-L6-v2 --backend cpu --batch-size 32

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bert_model::{BackendKind, BertEmbedding, Precision};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model: PathBuf,
    #[arg(long, default_value = "../shared/data/glue/SST-2/dev.tsv")]
    tsv: PathBuf,
    #[arg(long, default_value = "auto")]
    backend: String,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Timed passes over all sentences (the best and the median are reported).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Only the first N sentences (for slow backends, e.g. lavapipe at batch 1).
    #[arg(long)]
    limit: Option<usize>,
    /// float32, float16 or bfloat16.
    #[arg(long, default_value = "float32")]
    dtype: String,
    /// Pad batches to a multiple of N tokens (default: the backend's, 32 on GPUs, 1 on the CPU).
    #[arg(long)]
    pad_to_multiple_of: Option<usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text =
        std::fs::read_to_string(&args.tsv).with_context(|| format!("{}", args.tsv.display()))?;
    let sentences: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    let backend: BackendKind = args.backend.parse()?;
    let device = backend.device()?;
    let (embedder, _) = BertEmbedding::from_dir(&args.model, &device)?;
    let precision: Precision = args.dtype.parse()?;
    let embedder = embedder
        .with_batch_size(args.batch_size)?
        .with_token_embeddings(false)
        .with_precision(precision)?
        .with_pad_multiple(backend.pad_multiple(args.pad_to_multiple_of))?;

    // Warm-up: kernel compilation/autotuning on GPU backends, allocator pools everywhere.
    embedder.embed(&sentences[..sentences.len().min(4 * args.batch_size)])?;

    let mut rates = Vec::new();
    for _ in 0..args.repeats {
        let start = Instant::now();
        let rows = embedder.embed(&sentences)?;
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(rows.len(), sentences.len());
        rates.push(sentences.len() as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "backend={} dtype={precision} batch={} sentences={} sentences/s: best {:.1}, median {:.1}",
        backend,
        args.batch_size,
        sentences.len(),
        rates[rates.len() - 1],
        rates[rates.len() / 2]
    );
    Ok(())
}
