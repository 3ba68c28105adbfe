//! `bert-train finetune-classifier`: GluonNLP `finetune_classifier.py`'s flags.

use std::path::PathBuf;

use anyhow::Result;

use super::model_args::WeightsArgs;
use crate::finetune::{ClassifierConfig, run_classifier};
use crate::tasks::glue::Task;
use crate::training::{OptimizerKind, Precision};
use bert_model::BackendKind;

pub const AFTER_HELP: &str = "\
Example (all-MiniLM-L6-v2 on RTE, the seed's flags):
  bert-train finetune-classifier --task-name RTE --data-dir glue_data/RTE \\
      --model models/all-MiniLM-L6-v2 --batch-size 32 --epochs 3 --lr 2e-5 --epsilon 1e-6 \\
      --optimizer bertadam --warmup-ratio 0.1 --max-len 128 --seed 2 --output-dir out/rte

After every epoch the dev metrics are printed (accuracy; F1 for MRPC and QQP; Matthews
correlation for CoLA; Pearson and Spearman for STS-B; matched and mismatched for MNLI) and
appended to OUTPUT_DIR/metrics.jsonl. The best epoch (by the first metric listed) is kept in
OUTPUT_DIR/best/ in HuggingFace's layout (BertForSequenceClassification), and its predictions
for the test files are written as GLUE submission files (OUTPUT_DIR/RTE.tsv, MNLI-m.tsv, ...).
--only-inference --model OUTPUT_DIR/best evaluates dev and predicts test again, without
training. STS-B is regression (one output, mean-squared error). Task names: MRPC, RTE, SST,
MNLI, QQP, QNLI, CoLA, STS-B, WNLI, XNLI. GluonNLP's underscore spellings (--task_name,
--batch_size, ...) are accepted too.

--dtype float16 or bfloat16 runs forward, backward and the predictions in half precision from
float32 master weights (loss and metrics in float32; float16 with dynamic loss scaling, a step
whose gradients overflow is skipped and logged); the saved model stays float32, and
metrics.jsonl records the dtype (and float16's loss scale and skipped steps).

Every epoch ends with a checkpoint in OUTPUT_DIR/checkpoints (model, optimizer, position;
--ckpt-interval N adds one every N steps): the same command, run again after a crash or a
kill, continues where the last one left off and ends with the same model and predictions.
OUTPUT_DIR/metrics.svg draws the training loss and the dev metrics epoch by epoch.
--gpus 0,1 trains data-parallel over devices of --backend.";

#[derive(Debug, clap::Args)]
pub struct FinetuneClassifierArgs {
    /// The task: MRPC, RTE, SST, MNLI, QQP, QNLI, CoLA, STS-B, WNLI or XNLI.
    #[arg(long, alias = "task_name")]
    pub task_name: String,
    /// The task's glue_data directory (train.tsv, dev.tsv, test.tsv); default glue_data/TASK.
    #[arg(long, alias = "data_dir")]
    pub data_dir: Option<PathBuf>,
    /// The encoder: a model-zoo name (its checkpoint pretrained on --bert-dataset, downloaded
    /// into the hub cache), a HuggingFace Hub id, or a model directory (pretrained encoder, or
    /// a fine-tuned model with its head).
    #[arg(
        long,
        visible_alias = "bert-model",
        alias = "bert_model",
        default_value = "bert_12_768_12"
    )]
    pub model: String,
    /// The zoo checkpoint's pretraining dataset (book_corpus_wiki_en_uncased, ..._cased,
    /// wiki_multilingual_uncased, wiki_multilingual_cased, wiki_cn_cased). With --from-scratch:
    /// the vocabulary, a bundled name or a vocab.txt / tokenizer.json path.
    #[arg(
        long,
        alias = "bert_dataset",
        default_value = "book_corpus_wiki_en_uncased"
    )]
    pub bert_dataset: String,
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// Examples per micro-batch.
    #[arg(long, alias = "batch_size", default_value_t = 32)]
    pub batch_size: usize,
    /// Examples per batch when evaluating and predicting.
    #[arg(long, alias = "dev_batch_size", default_value_t = 32)]
    pub dev_batch_size: usize,
    /// Micro-batches whose gradients are summed into one optimizer step.
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Passes over the training set.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f64,
    /// Adam's epsilon.
    #[arg(long, default_value_t = 1e-6)]
    pub epsilon: f64,
    /// bertadam (AdamW without bias correction, GluonNLP's) or adamw (with it, PyTorch's);
    /// weight decay 0.01 except LayerNorm and biases, gradients clipped to global norm 1.
    #[arg(long, default_value = "bertadam")]
    pub optimizer: String,
    /// Fraction of the steps spent warming the learning rate up; then linear decay to 0.
    #[arg(long, alias = "warmup_ratio", default_value_t = 0.1)]
    pub warmup_ratio: f64,
    /// Tokens per example, [CLS] and [SEP] included (longer pairs lose tokens from the longer
    /// text first).
    #[arg(long, alias = "max_len", default_value_t = 128)]
    pub max_len: usize,
    /// Pad each batch to a multiple of N tokens (up to --max-len); 1 pads to its longest row.
    /// GPU backends compile kernels per sequence length, so fewer lengths start faster; the
    /// scores are the same (padding is masked), up to dropout's random draws.
    /// Default: 32 on wgpu and cuda, 1 on the CPU.
    #[arg(long, alias = "pad_to_multiple_of")]
    pub pad_to_multiple_of: Option<usize>,
    /// Seed of the head's initialisation, the data order and dropout.
    #[arg(long, default_value_t = 2)]
    pub seed: u64,
    /// float32, float16 (half-precision forward and backward from float32 master weights,
    /// loss and metrics in float32, dynamic loss scaling) or bfloat16 (the same without loss
    /// scaling). The device must support the type; the saved model is float32.
    #[arg(long, default_value = "float32")]
    pub dtype: String,
    /// Report every N optimizer steps.
    #[arg(long, alias = "log_interval", default_value_t = 10)]
    pub log_interval: usize,
    /// Where metrics.jsonl, best/ and the test predictions go.
    #[arg(long, alias = "output_dir", default_value = "./output_dir")]
    pub output_dir: PathBuf,
    /// Replace what the output directory holds (a finished run's model and predictions, old
    /// checkpoints: the run starts over). Without it a non-empty directory is refused, unless
    /// it holds checkpoints to resume.
    #[arg(long)]
    pub overwrite: bool,
    /// Load a fine-tuned --model directory, evaluate dev and predict test; no training.
    #[arg(long, alias = "only_inference")]
    pub only_inference: bool,
    /// Train on the first N training examples only (quick runs).
    #[arg(long)]
    pub max_train_examples: Option<usize>,
    /// Where to run: auto (a hardware GPU where wgpu finds one, else the CPU; says which), cpu
    /// (burn flex), wgpu (GPU, or Mesa lavapipe), vulkan (native Vulkan, SPIR-V kernels), cuda
    /// (if built with it).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Data-parallel devices of --backend, e.g. 0,1: each takes --accumulate micro-batches of
    /// every optimizer step (the global batch grows with the list), gradients are summed on
    /// the first. The cpu backend has one device, which the ranks then take in turn.
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
}

pub fn run(args: FinetuneClassifierArgs) -> Result<()> {
    let task: Task = args.task_name.parse()?;
    let dtype: Precision = args.dtype.parse()?;
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from("glue_data").join(task.dir_name()));
    let model = args.weights.resolve(&args.model, &args.bert_dataset)?;
    let mut config = ClassifierConfig::new(task, data_dir, model);
    config.bert_dataset = Some(args.bert_dataset);
    config.batch_size = args.batch_size;
    config.dev_batch_size = args.dev_batch_size;
    config.accumulate = args.accumulate;
    config.epochs = args.epochs;
    config.lr = args.lr;
    config.epsilon = args.epsilon;
    config.optimizer = args.optimizer.parse::<OptimizerKind>()?;
    config.warmup_ratio = args.warmup_ratio;
    config.max_len = args.max_len;
    config.seed = args.seed;
    config.log_interval = args.log_interval;
    config.output_dir = args.output_dir;
    config.overwrite = args.overwrite;
    config.only_inference = args.only_inference;
    config.max_train_examples = args.max_train_examples;
    config.backend = args.backend.parse::<BackendKind>()?;
    config.pad_to_multiple_of = args.pad_to_multiple_of;
    config.dtype = dtype;
    config.gpus = args.gpus;
    config.ckpt_interval = args.ckpt_interval;
    config.keep_checkpoints = args.keep_checkpoints;
    config.skip_damaged_checkpoints = args.skip_damaged_checkpoints;
    run_classifier(&config)?;
    Ok(())
}
