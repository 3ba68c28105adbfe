//! `bert-train`: BERT pretraining (masked LM + next sentence) on `bert-pipeline` shards, with
//! GluonNLP's `run_pretraining.py` flags. Pretraining is the default action; the subcommands
//! (`finetune-classifier`, `finetune-squad`, `evaluate-squad`, `export`, `convert`) live in
//! `bert_train::cli`.

use std::path::PathBuf;

use anyhow::Result;
use bert_model::BackendKind;
use bert_model::checkpoint::{ModelRequest, ModelSource};
use bert_train::cli::Command;
use bert_train::pretrain::{PretrainConfig, RunOptions, train_in};
use bert_train::training::collective::{Collective, OneProcess};
use bert_train::training::{OptimizerKind, Precision};
use clap::Parser;

const AFTER_HELP: &str = "\
Example:
  bert-pipeline build --dupe-factor 5 'corpus/*.txt' --output shards/
  bert-train --shards shards/ --model bert_4_256_4 --batch-size 32 --lr 1e-4 \\
      --warmup-ratio 0.01 --num-steps 10000 --ckpt-dir ckpt/ --ckpt-interval 1000

Rerunning the same command continues from the newest checkpoint in --ckpt-dir, on the same
trajectory (same weights as a run that was never interrupted). Every --log-interval steps a
line goes to stderr and a row to CKPT_DIR/metrics.jsonl; at the end the model is written to
CKPT_DIR/final/ in HuggingFace's layout (config.json, model.safetensors, vocab.txt).

Length buckets are decided when the shards are built (bert-pipeline build --num-buckets N):
every batch comes from one bucket and is padded to its own longest sequence.
GluonNLP's underscore spellings (--batch_size, --num_steps, ...) are accepted too.

Subcommands (bert-train help SUBCOMMAND):
  bert-train finetune-classifier --task-name RTE --data-dir glue_data/RTE --model DIR ...
  bert-train evaluate-squad dev-v1.1.json predictions.json
  bert-train export --task classification --model-parameters DIR --output-dir OUT
  bert-train convert --model DIR --dtype float16 --output-dir OUT";

#[derive(Debug, Parser)]
#[command(
    version,
    about = "BERT pretraining (masked LM + next sentence prediction) on bert-pipeline shards; \
             fine-tuning, SQuAD evaluation and export as subcommands",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Shard directory written by `bert-pipeline build` (holds manifest.json).
    #[arg(long, required = true)]
    shards: Option<PathBuf>,
    /// Model-zoo name (bert_2_128_2, bert_4_256_4, bert_6_384_12, bert_12_768_12,
    /// bert_24_1024_16) or a HuggingFace model directory (its config.json); with --pretrained
    /// also a HuggingFace Hub id.
    #[arg(long, default_value = "bert_12_768_12")]
    model: String,
    /// Start from pretrained weights instead of a fresh initialisation: the zoo checkpoint of
    /// --model on --dataset-name (downloaded into the hub cache), a hub id's, or a directory's.
    #[arg(long)]
    pretrained: bool,
    /// The pretraining dataset of a --pretrained zoo checkpoint (book_corpus_wiki_en_uncased,
    /// ..._cased, wiki_multilingual_uncased, wiki_multilingual_cased, wiki_cn_cased).
    #[arg(
        long,
        alias = "dataset_name",
        default_value = "book_corpus_wiki_en_uncased"
    )]
    dataset_name: String,
    /// Hub revision (branch, tag or commit) of a --pretrained hub id or zoo checkpoint.
    #[arg(long)]
    revision: Option<String>,
    /// Sequences per micro-batch (with --use-avg-len: tokens per micro-batch).
    #[arg(long, alias = "batch_size", default_value_t = 8)]
    batch_size: usize,
    /// Micro-batches whose gradients are summed into one optimizer step.
    #[arg(long, default_value_t = 1)]
    accumulate: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Fraction of --num-steps spent warming the learning rate up linearly; it then decays
    /// linearly to 0.
    #[arg(long, alias = "warmup_ratio", default_value_t = 0.01)]
    warmup_ratio: f64,
    /// Optimizer steps.
    #[arg(long, alias = "num_steps", default_value_t = 20)]
    num_steps: u64,
    /// bertadam: AdamW without bias correction (GluonNLP, Google's BERT); adamw: with it
    /// (PyTorch); lamb: layer-wise trust ratio on top of AdamW (large batches). All: weight
    /// decay 0.01 except LayerNorm and biases, gradients clipped to global norm 1.
    #[arg(long, default_value = "bertadam")]
    optimizer: String,
    /// Size batches by tokens instead of sequences: --batch-size becomes a token budget.
    #[arg(long, alias = "use_avg_len")]
    use_avg_len: bool,
    /// Re-mask every epoch from the original tokens (default: the masks stored in the shards).
    #[arg(long, alias = "dynamic_masking")]
    dynamic_masking: bool,
    /// Pad each batch to a multiple of N tokens (and every row to the shards'
    /// max_predictions_per_seq slots when N > 1): GPU backends compile kernels per shape, so a
    /// few fixed shapes start sooner. Padding is masked; the losses are the same.
    /// Default: 32 on GPU backends, 1 (each batch as long as its longest row) on the CPU.
    #[arg(long, alias = "pad_to_multiple_of")]
    pad_to_multiple_of: Option<usize>,
    /// Leave out each shard's last, partial batch, so that every batch has --batch-size rows
    /// (GPU backends compile kernels for every new row count; the reference pretraining drops it
    /// too). The rows left out differ every epoch. Default: true on GPU backends, false on the CPU.
    #[arg(long, alias = "drop_remainder", value_name = "BOOL")]
    drop_remainder: Option<bool>,
    /// Shards to evaluate the final model on (losses and accuracies).
    #[arg(long, alias = "data_eval")]
    data_eval: Option<PathBuf>,
    /// Sequences per evaluation batch.
    #[arg(long, alias = "batch_size_eval", default_value_t = 8)]
    batch_size_eval: usize,
    /// Where checkpoints, metrics.jsonl and the final model go.
    #[arg(long, alias = "ckpt_dir", default_value = "./ckpt_dir")]
    ckpt_dir: PathBuf,
    /// Save a checkpoint every N steps (and at the end).
    #[arg(long, alias = "ckpt_interval", default_value_t = 250_000)]
    ckpt_interval: u64,
    /// Checkpoints kept; older ones are deleted once a newer one is complete.
    #[arg(long, default_value_t = 3)]
    keep_checkpoints: usize,
    /// Resume from the newest intact checkpoint when newer ones are damaged (their files no
    /// longer match their SHA256SUMS); without it, a damaged newest checkpoint is an error.
    #[arg(long)]
    skip_damaged_checkpoints: bool,
    /// Report every N steps.
    #[arg(long, alias = "log_interval", default_value_t = 250)]
    log_interval: u64,
    /// Seed of initialisation, data order, masks and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to run: auto (a hardware GPU where wgpu finds one, else the CPU; says which), cpu
    /// (burn flex), wgpu (GPU, or Mesa lavapipe), vulkan (native Vulkan, SPIR-V kernels), cuda
    /// (if built with it).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Data parallelism: device indices, one rank each (e.g. 0,1,2,3); each rank takes
    /// --batch-size sequences and its own share of the shards, gradients are summed on the
    /// first device. The cpu backend has one device, which the ranks then take in turn.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    gpus: Vec<usize>,
    /// Precision of forward and backward: float32, float16 (GluonNLP's: half-precision
    /// compute, float32 master weights, dynamic loss scaling) or bfloat16 (no loss scaling
    /// needed). The device must support it (wgpu: the adapter's shader-f16 feature).
    #[arg(long, default_value = "float32")]
    dtype: String,
    /// Hidden and attention dropout probability, instead of the model config's (0.1 for the
    /// zoo shapes); 0 turns dropout off.
    #[arg(long)]
    dropout: Option<f64>,
}

fn run(args: Args, job: &dyn Collective) -> Result<()> {
    if let Some(command) = args.command {
        anyhow::ensure!(
            job.size() == 1,
            "only pretraining runs as several processes (mpirun -np N bert-train --shards ...); \
             run subcommands as one process"
        );
        return command.run();
    }
    let Some(shards) = args.shards else {
        anyhow::bail!("--shards is required (or name a subcommand; see --help)");
    };
    let mut config = PretrainConfig::new(shards);
    let dir = std::path::Path::new(&args.model);
    config.model = if !args.pretrained && dir.is_dir() {
        // A directory without --pretrained: its config.json's shape, fresh weights.
        ModelSource::resolve(&ModelRequest::pretrained(&args.model))?
    } else {
        ModelSource::resolve(&ModelRequest {
            model: args.model.clone(),
            dataset: Some(args.dataset_name.clone()),
            revision: args.revision.clone(),
            random_weights: !args.pretrained,
        })?
    };
    config.pretrained = args.pretrained;
    config.batch_size = args.batch_size;
    config.accumulate = args.accumulate;
    config.lr = args.lr;
    config.warmup_ratio = args.warmup_ratio;
    config.num_steps = args.num_steps;
    config.optimizer = args.optimizer.parse::<OptimizerKind>()?;
    config.use_avg_len = args.use_avg_len;
    config.dynamic_masking = args.dynamic_masking;
    config.pad_to_multiple_of = args.pad_to_multiple_of;
    config.drop_remainder = args.drop_remainder;
    config.data_eval = args.data_eval;
    config.batch_size_eval = args.batch_size_eval;
    config.ckpt_dir = args.ckpt_dir;
    config.ckpt_interval = args.ckpt_interval;
    config.keep_checkpoints = args.keep_checkpoints;
    config.skip_damaged_checkpoints = args.skip_damaged_checkpoints;
    config.log_interval = args.log_interval;
    config.seed = args.seed;
    config.backend = args.backend.parse::<BackendKind>()?;
    config.gpus = args.gpus;
    config.dtype = args.dtype.parse::<Precision>()?;
    config.dropout = args.dropout;
    train_in(&config, &RunOptions::default(), job)?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // burn-optim materialises a loaded optimizer state on burn's *default* device before moving
    // it to the parameters' device; left alone that default is wgpu whenever it is compiled in,
    // which a CPU run on a machine without Vulkan cannot create. Point it at --backend.
    let backend = args
        .command
        .as_ref()
        .map_or(Some(args.backend.as_str()), Command::backend);
    if std::env::var_os("BURN_DEVICE").is_none()
        && let Some(Ok(backend)) = backend.map(str::parse::<BackendKind>)
    {
        let name = match backend {
            BackendKind::Cpu => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Vulkan => "vulkan",
            BackendKind::Cuda => "cuda",
        };
        // SAFETY: no other thread exists yet (the batch loader and burn's workers start later).
        unsafe { std::env::set_var("BURN_DEVICE", name) };
    }
    #[cfg(feature = "mpi")]
    {
        match bert_train::training::mpi::MpiJob::from_launcher() {
            Ok(Some(job)) => {
                if let Err(e) = run(args, &job) {
                    eprintln!(
                        "bert-train (process {} of {}): error: {e:#}",
                        job.rank(),
                        job.size()
                    );
                    // Unless every process is stopping with this error, the others may be
                    // waiting in an exchange: end the whole job.
                    if job.size() > 1 && !bert_train::training::collective::stopped_together() {
                        job.abort(1);
                    }
                    return std::process::ExitCode::FAILURE;
                }
                return std::process::ExitCode::SUCCESS;
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("bert-train: error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    match run(args, &OneProcess) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bert-train: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
