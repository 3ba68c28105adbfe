//! `bert-train finetune-squad`: GluonNLP `finetune_squad.py`'s flags.

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::model_args::WeightsArgs;
use crate::finetune::squad::data::parse_range;
use crate::finetune::squad::features::WindowParams;
use crate::finetune::squad::postprocess::AnswerParams;
use crate::finetune::squad::{SquadConfig, run_squad};
use crate::training::{OptimizerKind, Precision};
use bert_model::BackendKind;

pub const AFTER_HELP: &str = "\
Example (train on the first 38 articles of dev-v1.1.json, predict the last 10):
  bert-train finetune-squad --model models/all-MiniLM-L6-v2 \\
      --train-file dev-v1.1.json --train-articles 0..38 \\
      --predict-file dev-v1.1.json --predict-articles 38..48 --output-dir out/squad

Writes OUTPUT_DIR/predictions.json, nbest_predictions.json and (SQuAD 2.0) null_odds.json,
which `bert-train evaluate-squad` scores like the official scripts; after training, the model
goes to OUTPUT_DIR/model/ (HuggingFace BertForQuestionAnswering). Without --train-file, --model
must already have a question-answering head (qa_outputs.*).

Training runs on the training core, as finetune-classifier: every epoch ends with a checkpoint
in OUTPUT_DIR/checkpoints (--ckpt-interval N adds one every N steps), and the same command run
again after a kill continues there; OUTPUT_DIR/metrics.jsonl and metrics.svg record the training
loss per epoch; --gpus 0,1 trains data-parallel over devices of --backend.";

#[derive(Debug, clap::Args)]
pub struct FinetuneSquadArgs {
    /// The encoder: a model-zoo name (its checkpoint pretrained on --bert-dataset), a
    /// HuggingFace Hub id, or a model directory (pretrained, or fine-tuned with its QA head).
    #[arg(
        long,
        visible_alias = "bert-model",
        alias = "bert_model",
        default_value = "bert_12_768_12"
    )]
    pub model: String,
    /// The zoo checkpoint's pretraining dataset; with --from-scratch, the vocabulary.
    #[arg(
        long,
        alias = "bert_dataset",
        default_value = "book_corpus_wiki_en_uncased"
    )]
    pub bert_dataset: String,
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// SQuAD JSON to train on (omit to only predict).
    #[arg(long)]
    pub train_file: Option<PathBuf>,
    /// Articles START..END of --train-file (default: all).
    #[arg(long)]
    pub train_articles: Option<String>,
    /// SQuAD JSON to predict.
    #[arg(long)]
    pub predict_file: PathBuf,
    /// Articles START..END of --predict-file (default: all).
    #[arg(long)]
    pub predict_articles: Option<String>,
    /// SQuAD 2.0 (null answers); implied by the file's version or is_impossible.
    #[arg(long, alias = "version_2")]
    pub version_2: bool,
    #[arg(long, alias = "max_seq_length", default_value_t = 384)]
    pub max_seq_length: usize,
    /// Windows over the context start every N tokens.
    #[arg(long, alias = "doc_stride", default_value_t = 128)]
    pub doc_stride: usize,
    #[arg(long, alias = "max_query_length", default_value_t = 64)]
    pub max_query_length: usize,
    #[arg(long, alias = "n_best_size", default_value_t = 20)]
    pub n_best_size: usize,
    #[arg(long, alias = "max_answer_length", default_value_t = 30)]
    pub max_answer_length: usize,
    /// SQuAD 2.0: answer "no answer" when null score - best span score is above this (the
    /// seed's recipe passes -2.0).
    #[arg(
        long,
        alias = "null_score_diff_threshold",
        default_value_t = 0.0,
        allow_hyphen_values = true
    )]
    pub null_score_diff_threshold: f64,
    #[arg(long, alias = "batch_size", default_value_t = 32)]
    pub batch_size: usize,
    /// Micro-batches of --batch-size whose gradients are summed into one optimizer step.
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    #[arg(long, alias = "test_batch_size", default_value_t = 24)]
    pub test_batch_size: usize,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-6)]
    pub epsilon: f64,
    #[arg(long, alias = "warmup_ratio", default_value_t = 0.1)]
    pub warmup_ratio: f64,
    /// Gradients are rescaled to at most this global L2 norm (as run_squad.py's 1.0).
    #[arg(long, alias = "max_grad_norm", default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value = "bertadam")]
    pub optimizer: String,
    #[arg(long, default_value_t = 2)]
    pub seed: u64,
    /// float32, float16 (half-precision forward and backward from float32 master weights,
    /// loss in float32, dynamic loss scaling) or bfloat16 (no loss scaling); also the dtype of
    /// the predictions. The saved model is float32.
    #[arg(long, default_value = "float32")]
    pub dtype: String,
    #[arg(long, alias = "log_interval", default_value_t = 50)]
    pub log_interval: usize,
    /// Data-parallel devices of --backend, e.g. 0,1: each takes --accumulate micro-batches of
    /// every optimizer step, gradients are summed on the first.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub gpus: Vec<usize>,
    /// Also checkpoint every N optimizer steps within an epoch (0: at epoch ends only).
    #[arg(long, alias = "ckpt_interval", default_value_t = 0)]
    pub ckpt_interval: u64,
    /// Checkpoints kept in OUTPUT_DIR/checkpoints.
    #[arg(long, default_value_t = 1)]
    pub keep_checkpoints: usize,
    /// Resume from the newest intact checkpoint when newer ones are damaged (their files no
    /// longer match their SHA256SUMS); without it, a damaged newest checkpoint is an error.
    #[arg(long)]
    pub skip_damaged_checkpoints: bool,
    #[arg(long, alias = "output_dir", default_value = "./output_dir")]
    pub output_dir: PathBuf,
    /// Replace what the output directory holds (a finished run's model and predictions, old
    /// checkpoints: the run starts over). Without it a non-empty directory is refused, unless
    /// it holds checkpoints to resume.
    #[arg(long)]
    pub overwrite: bool,
    /// Where to run: auto (a hardware GPU where wgpu finds one, else the CPU; says which), cpu
    /// (burn flex), wgpu (GPU, or Mesa lavapipe), vulkan (native Vulkan, SPIR-V kernels), cuda
    /// (if built with it).
    #[arg(long, default_value = "auto")]
    pub backend: String,
}

pub fn run(args: FinetuneSquadArgs) -> Result<()> {
    let dtype: Precision = args.dtype.parse()?;
    if args.log_interval == 0 || args.epochs == 0 || args.doc_stride == 0 {
        bail!("--log-interval, --epochs and --doc-stride must be at least 1");
    }
    let config = SquadConfig {
        model: args.weights.resolve(&args.model, &args.bert_dataset)?,
        bert_dataset: Some(args.bert_dataset),
        train_file: args.train_file,
        train_articles: args
            .train_articles
            .as_deref()
            .map(parse_range)
            .transpose()?,
        predict_file: args.predict_file,
        predict_articles: args
            .predict_articles
            .as_deref()
            .map(parse_range)
            .transpose()?,
        version_2: args.version_2,
        window: WindowParams {
            max_seq_length: args.max_seq_length,
            doc_stride: args.doc_stride,
            max_query_length: args.max_query_length,
        },
        answers: AnswerParams {
            n_best_size: args.n_best_size,
            max_answer_length: args.max_answer_length,
            version_2: args.version_2,
            null_score_diff_threshold: args.null_score_diff_threshold,
        },
        batch_size: args.batch_size,
        accumulate: args.accumulate,
        test_batch_size: args.test_batch_size,
        epochs: args.epochs,
        lr: args.lr,
        epsilon: args.epsilon,
        warmup_ratio: args.warmup_ratio,
        weight_decay: 0.01,
        max_grad_norm: args.max_grad_norm,
        gpus: args.gpus,
        ckpt_interval: args.ckpt_interval,
        keep_checkpoints: args.keep_checkpoints,
        skip_damaged_checkpoints: args.skip_damaged_checkpoints,
        optimizer: args.optimizer.parse::<OptimizerKind>()?,
        seed: args.seed,
        log_interval: args.log_interval,
        output_dir: args.output_dir,
        overwrite: args.overwrite,
        backend: args.backend.parse::<BackendKind>()?,
        dtype,
        print: true,
    };
    let summary = run_squad(&config)?;
    println!("{}", summary.evaluation);
    Ok(())
}
