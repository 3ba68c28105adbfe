use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use bert_pipeline::build::{BuildOptions, Interrupted, build};
use bert_pipeline::config::{BuildConfig, InputFormat, OnInvalidUtf8};
use bert_pipeline::{inspect, merge};
use clap::{Args, Parser, Subcommand};

/// Builds BERT pretraining data (masked LM + next sentence prediction) from raw corpora,
/// as BERT's create_pretraining_data.py does, streaming and in parallel, into
/// length-bucketed Arrow IPC shards for `bert-train --shards`.
#[derive(Parser)]
#[command(name = "bert-pipeline", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Turn corpus files into shards.
    #[command(after_help = "Examples:\n  \
        bert-pipeline build --dupe-factor 5 'corpus/*.txt'\n  \
        bert-pipeline build --input-format raw --vocab book_corpus_wiki_en_cased books/*.txt.gz\n  \
        bert-pipeline build --worker 3/8 --output /data/shards 'wiki/*.zst'   # then: bert-pipeline merge /data/shards")]
    Build(Box<BuildArgs>),
    /// Summarise a shard directory and decode its first instances.
    Inspect {
        /// Shard directory (or its manifest.json).
        #[arg(default_value = "shards")]
        dir: PathBuf,
        /// How many instances to decode.
        #[arg(long, default_value_t = 3)]
        show: usize,
    },
    /// Join the manifests written by `build --worker I/N` runs into one manifest.json.
    Merge {
        /// Directories holding manifest-wIII-of-NNN.json files, or the manifest files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Where manifest.json goes (default: the first input's directory); every shard
        /// must lie under it.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Args)]
struct BuildArgs {
    /// Input files or quoted glob patterns ('corpus/*.txt'); .gz and .zst are decompressed.
    #[arg(required = true)]
    inputs: Vec<String>,
    /// Output directory.
    #[arg(long, short, default_value = "shards")]
    output: PathBuf,
    /// Replace an earlier output in the output directory.
    #[arg(long)]
    overwrite: bool,
    /// Vocabulary: a bundled name (book_corpus_wiki_en_uncased, book_corpus_wiki_en_cased,
    /// wiki_cn_cased) or a path to a vocab.txt or a HuggingFace tokenizer.json.
    #[arg(long, default_value = "book_corpus_wiki_en_uncased")]
    vocab: String,
    /// Lower-case the text (default: as the vocabulary implies).
    #[arg(long, alias = "do_lower_case", conflicts_with = "no_lower_case")]
    do_lower_case: bool,
    /// Keep the case of the text (default: as the vocabulary implies).
    #[arg(long, alias = "no_lower_case")]
    no_lower_case: bool,
    /// `sentences`: one sentence per line, blank line between documents (BERT's format).
    /// `raw`: prose split into sentences for you, one document per file.
    #[arg(long, value_enum, default_value_t = InputFormat::Sentences, alias = "input_format")]
    input_format: InputFormat,
    /// Lines that are not UTF-8: stop with file and line, or skip and count them.
    #[arg(long, value_enum, default_value_t = OnInvalidUtf8::Fail)]
    on_invalid_utf8: OnInvalidUtf8,
    /// Maximum sequence length, [CLS] and [SEP]s included.
    #[arg(long, default_value_t = 128, alias = "max_seq_length")]
    max_seq_length: usize,
    /// Maximum masked-LM predictions per sequence.
    #[arg(long, default_value_t = 20, alias = "max_predictions_per_seq")]
    max_predictions_per_seq: usize,
    /// Fraction of tokens to mask.
    #[arg(long, default_value_t = 0.15, alias = "masked_lm_prob")]
    masked_lm_prob: f64,
    /// Probability of a shorter-than-maximum target length.
    #[arg(long, default_value_t = 0.1, alias = "short_seq_prob")]
    short_seq_prob: f64,
    /// Passes over the data, each with fresh masks.
    #[arg(long, default_value_t = 10, alias = "dupe_factor")]
    dupe_factor: usize,
    /// Seed for every random choice; the output depends only on it, the inputs and the flags.
    #[arg(long, default_value_t = 12345, alias = "random_seed")]
    random_seed: u64,
    /// Mask whole words (all of their ## word pieces) at once.
    #[arg(long, alias = "whole_word_mask")]
    whole_word_mask: bool,
    /// Sequence-length buckets (equal-width ranges of valid length).
    #[arg(long, default_value_t = 4, alias = "num_buckets")]
    num_buckets: usize,
    /// Maximum instances per shard; a bucket's shards are equal within one instance.
    #[arg(long, default_value_t = 16384)]
    shard_size: u64,
    /// MiB of text per block; a block is the pool "random next" sentences are drawn from,
    /// and bounds memory.
    #[arg(long, default_value_t = 16)]
    pool_size: usize,
    /// Process only block I of every N (I/N, from 0), for N machines; join with `merge`.
    /// `auto`: I and N from the launcher (mpirun's OMPI_COMM_WORLD_RANK/SIZE, MPICH's
    /// PMI_RANK/SIZE, Slurm's SLURM_PROCID/NTASKS).
    #[arg(long, value_parser = parse_worker)]
    worker: Option<Worker>,
    /// Worker threads (default: all cores). The output does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy)]
enum Worker {
    Given(usize, usize),
    FromLauncher,
}

/// The launchers' variables for (this process's index, the number of processes).
const LAUNCHER_VARS: [(&str, &str, &str); 3] = [
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI"),
    ("PMI_RANK", "PMI_SIZE", "MPICH (PMI)"),
    ("SLURM_PROCID", "SLURM_NTASKS", "Slurm"),
];

/// `--worker auto`: the first launcher whose variables are set.
fn worker_from_launcher() -> Result<(usize, usize)> {
    for (rank_var, size_var, launcher) in LAUNCHER_VARS {
        let (Ok(rank), Ok(size)) = (std::env::var(rank_var), std::env::var(size_var)) else {
            continue;
        };
        let (Ok(rank), Ok(size)) = (rank.trim().parse::<usize>(), size.trim().parse::<usize>())
        else {
            anyhow::bail!(
                "--worker auto: {rank_var}={rank:?} and {size_var}={size:?} are not numbers"
            );
        };
        anyhow::ensure!(
            rank < size,
            "--worker auto: {rank_var}={rank} is not below {size_var}={size}"
        );
        // One write: under mpirun the workers share a stderr, and eprintln! may write a
        // formatted line in pieces that interleave with the others'.
        let line = format!(
            "--worker auto: worker {rank}/{size} from {launcher} ({rank_var}, {size_var})\n"
        );
        std::io::stderr().write_all(line.as_bytes())?;
        return Ok((rank, size));
    }
    anyhow::bail!(
        "--worker auto needs a launcher (mpirun, srun) that sets one of: {}",
        LAUNCHER_VARS
            .iter()
            .map(|(r, s, _)| format!("{r}/{s}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn parse_worker(s: &str) -> Result<Worker, String> {
    if s == "auto" {
        return Ok(Worker::FromLauncher);
    }
    let (i, n) = s.split_once('/').ok_or("expected I/N (e.g. 0/4) or auto")?;
    let i = i
        .trim()
        .parse()
        .map_err(|_| format!("bad worker index `{i}`"))?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| format!("bad worker count `{n}`"))?;
    Ok(Worker::Given(i, n))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Build(args) => run_build(*args),
        Command::Inspect { dir, show } => {
            print!("{}", inspect::inspect(&dir, show)?);
            Ok(())
        }
        Command::Merge { inputs, output } => {
            let (path, m) = merge::merge(&inputs, output.as_deref())?;
            println!(
                "wrote {}: {} instances in {} shards from {} workers",
                path.display(),
                m.totals.instances,
                m.shards.len(),
                m.config.worker_count
            );
            Ok(())
        }
    }
}

/// SIGINT and SIGTERM set the returned flag (the build stops at its next check and cleans up)
/// and record which signal came; a second one ends the process at once.
fn stop_on_signals() -> Result<(Arc<AtomicBool>, Arc<AtomicUsize>)> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let (cancel, signal) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&cancel))?;
        signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)?;
        signal_hook::flag::register(sig, Arc::clone(&cancel))?;
    }
    Ok((cancel, signal))
}

fn run_build(a: BuildArgs) -> Result<()> {
    let (worker_index, worker_count) = match a.worker {
        None => (0, 1),
        Some(Worker::Given(i, n)) => (i, n),
        Some(Worker::FromLauncher) => worker_from_launcher()?,
    };
    let config = BuildConfig {
        vocab: a.vocab,
        do_lower_case: match (a.do_lower_case, a.no_lower_case) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        max_seq_length: a.max_seq_length,
        max_predictions_per_seq: a.max_predictions_per_seq,
        masked_lm_prob: a.masked_lm_prob,
        short_seq_prob: a.short_seq_prob,
        dupe_factor: a.dupe_factor,
        random_seed: a.random_seed,
        whole_word_mask: a.whole_word_mask,
        num_buckets: a.num_buckets,
        shard_size: a.shard_size,
        input_format: a.input_format,
        on_invalid_utf8: a.on_invalid_utf8,
        pool_size_mib: a.pool_size,
        worker_index,
        worker_count,
    };
    let (cancel, signal) = stop_on_signals()?;
    let options = BuildOptions {
        output: a.output,
        overwrite: a.overwrite,
        threads: a.threads,
        progress: !a.quiet,
        cancel: Some(cancel),
    };
    let started = Instant::now();
    let m = match build(&config, &a.inputs, &options) {
        Ok(m) => m,
        Err(e) if e.is::<Interrupted>() => {
            let signal = signal.load(Ordering::Relaxed);
            eprintln!(
                "interrupted (signal {signal}): stopped, removed the partial output in {}",
                options.output.display()
            );
            std::process::exit(128 + signal as i32);
        }
        Err(e) => return Err(e),
    };
    let secs = started.elapsed().as_secs_f64();
    let t = &m.totals;
    let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
    eprintln!(
        "wrote {} instances ({} documents, {} sentences) in {} shards to {} in {:.2} s ({:.0} instances/s); \
         masked {:.1}% of tokens, {:.1}% random next{}",
        t.instances,
        t.documents,
        t.sentences,
        m.shards.len(),
        options.output.display(),
        secs,
        t.instances as f64 / secs.max(1e-9),
        pct(t.masked_tokens, t.instance_tokens),
        pct(t.random_next, t.instances),
        if t.read.invalid_utf8_lines_skipped > 0 {
            format!(
                "; skipped {} invalid UTF-8 lines",
                t.read.invalid_utf8_lines_skipped
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
