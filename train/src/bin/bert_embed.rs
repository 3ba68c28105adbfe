//! `bert-embed`: sentence and token embeddings from a HuggingFace BERT directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bert_core::fsutil::write_atomic;
use bert_model::checkpoint::ModelSource;
use bert_model::embed::{BertEmbedding, OovWay, Pooling};
use bert_model::{BackendKind, Precision};
use bert_train::embed_output::{arrow_bytes, npy_bytes, write_jsonl};
use clap::{ArgGroup, Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object per sentence and line.
    Json,
    /// The sentence vectors as a float32 [sentences, hidden] NumPy array.
    Npy,
    /// An Arrow IPC file, one row per sentence.
    Arrow,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Sentence and token embeddings from a pretrained BERT (zoo name, hub id or directory)"
)]
#[command(group(ArgGroup::new("input").required(true).args(["sentences", "file"])))]
struct Args {
    /// A model-zoo name (its checkpoint pretrained on --dataset-name), a HuggingFace Hub id
    /// (sentence-transformers/all-MiniLM-L6-v2) or a model directory (config.json,
    /// model.safetensors, tokenizer.json/vocab.txt). Hub checkpoints are downloaded into the
    /// hub cache (HF_HUB_CACHE) once.
    #[arg(long, default_value = "bert_12_768_12")]
    model: String,
    /// The pretraining dataset of a zoo --model (book_corpus_wiki_en_uncased, ..._cased,
    /// wiki_multilingual_uncased, wiki_multilingual_cased, wiki_cn_cased).
    #[arg(
        long,
        alias = "dataset_name",
        default_value = "book_corpus_wiki_en_uncased"
    )]
    dataset_name: String,
    /// Hub revision (branch, tag or commit) of --model.
    #[arg(long)]
    revision: Option<String>,
    /// Sentences to embed.
    #[arg(long, num_args = 1..)]
    sentences: Vec<String>,
    /// UTF-8 text file, one sentence per line (blank lines are skipped); `-` reads standard
    /// input.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Sentence vector: mean of the token vectors (padding excluded) or the [CLS] vector.
    /// Default: the model's sentence-transformers pooling config, else mean.
    #[arg(long, value_parser = ["mean", "cls"])]
    pooling: Option<String>,
    /// L2-normalise sentence vectors (default: as the model's sentence-transformers modules say).
    #[arg(long, conflicts_with = "no_normalize")]
    normalize: bool,
    /// Do not L2-normalise sentence vectors.
    #[arg(long)]
    no_normalize: bool,
    /// Fold word pieces into words, GluonNLP-style (default: keep the pieces).
    #[arg(long, value_parser = ["avg", "sum", "last"])]
    oov_way: Option<String>,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Cut sentences to this many tokens (default: sentence_bert_config.json, else the model's).
    #[arg(long)]
    max_seq_length: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Output file (written atomically); standard output if absent (json only).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Leave the per-token vectors out.
    #[arg(long)]
    no_token_embeddings: bool,
    /// Where to run: auto (a hardware GPU where wgpu finds one, else the CPU; says which), cpu
    /// (burn flex), wgpu (GPU, or Mesa lavapipe), vulkan (native Vulkan, SPIR-V kernels), cuda
    /// (if built with it).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// What the encoder computes in: float32, or float16/bfloat16 (weights cast once, half the
    /// memory; vectors pooled in float32; the device must have the arithmetic).
    #[arg(long, default_value = "float32")]
    dtype: String,
    /// Pad each batch to a multiple of N tokens (GPU backends compile kernels per shape);
    /// the vectors do not change. Default: 32 on GPU backends, 1 on the CPU.
    #[arg(long)]
    pad_to_multiple_of: Option<usize>,
}

/// Read one sentence per non-blank line; a clear error for non-UTF-8 or empty files.
fn read_sentences(path: &Path) -> Result<Vec<String>> {
    let bytes = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
            .context("cannot read standard input")?;
        bytes
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            bail!(
                "{} is not UTF-8 text: invalid byte at offset {at} (line {line})",
                path.display()
            );
        }
    };
    let sentences: Vec<String> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if sentences.is_empty() {
        bail!(
            "{} has no sentences (it is empty or all blank lines)",
            path.display()
        );
    }
    Ok(sentences)
}

fn run(args: Args) -> Result<()> {
    let sentences = match &args.file {
        Some(path) => read_sentences(path)?,
        None => args.sentences.clone(),
    };
    if matches!(args.format, Format::Npy | Format::Arrow) && args.output.is_none() {
        bail!(
            "--format {} writes binary data: give --output PATH",
            args.format
                .to_possible_value()
                .expect("no variant is skipped")
                .get_name()
        );
    }
    if let Some(path) = &args.output {
        bert_core::fsutil::check_writable(path)?;
    }
    let backend: BackendKind = args.backend.parse()?;
    let device = backend.device()?;

    let model_dir =
        ModelSource::pretrained_dir(&args.model, &args.dataset_name, args.revision.clone())?;
    if model_dir.as_os_str() != args.model.as_str() {
        eprintln!("model: {} from {}", args.model, model_dir.display());
    }
    let (mut embedder, report) = BertEmbedding::from_dir(&model_dir, &device)?;
    if !report.unused.is_empty() {
        eprintln!(
            "note: {} tensor(s) in the checkpoint are not used by BertModel: {}",
            report.unused.len(),
            report.unused.join(", ")
        );
    }
    if let Some(p) = &args.pooling {
        embedder = embedder.with_pooling(p.parse::<Pooling>()?);
    }
    if args.normalize || args.no_normalize {
        embedder = embedder.with_normalize(args.normalize);
    }
    if let Some(way) = &args.oov_way {
        embedder = embedder.with_oov_way(Some(way.parse::<OovWay>()?));
    }
    if let Some(n) = args.max_seq_length {
        embedder = embedder.with_max_seq_length(n)?;
    }
    let with_tokens = !args.no_token_embeddings && !matches!(args.format, Format::Npy);
    embedder = embedder
        .with_batch_size(args.batch_size)?
        .with_token_embeddings(with_tokens)
        .with_precision(args.dtype.parse::<Precision>()?)?
        .with_pad_multiple(backend.pad_multiple(args.pad_to_multiple_of))?;

    let rows = embedder.embed(&sentences)?;
    if let Some(i) = rows
        .iter()
        .position(|r| r.sentence_embedding.iter().any(|v| !v.is_finite()))
    {
        bail!(
            "sentence {} came out with NaN or infinite values: the model's numbers overflow \
             (try --backend cpu, or check the weights)",
            i + 1
        );
    }

    let truncated: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].truncated).collect();
    if let Some(first) = truncated.first() {
        eprintln!(
            "warning: {} sentence(s) longer than {} tokens were truncated (first: sentence {})",
            truncated.len(),
            embedder.max_seq_length(),
            first + 1
        );
    }

    let bytes = match args.format {
        Format::Json => {
            if args.output.is_none() {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                write_jsonl(&mut out, &rows, with_tokens)?;
                out.flush()?;
                return Ok(());
            }
            let mut buf = Vec::new();
            write_jsonl(&mut buf, &rows, with_tokens)?;
            buf
        }
        Format::Npy => npy_bytes(&rows)?,
        Format::Arrow => arrow_bytes(&rows, with_tokens)?,
    };
    let path = args.output.as_deref().expect("checked above");
    write_atomic(path, &bytes)
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bert-embed: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
