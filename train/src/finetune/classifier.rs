//! The fine-tuning loop of `bert-train finetune-classifier`: shuffled, padded batches →
//! cross-entropy (classes) or mean-squared error (STS-B) → accumulated, globally clipped
//! gradients → BERTAdam/AdamW under linear warmup and decay; dev metrics after every epoch, the
//! best epoch kept as a HF directory, test predictions as GLUE submission files.
//!
//! `--dtype float16|bfloat16`: forward and backward (and the dev/test predictions) run on a
//! half-precision cast of the float32 weights, the logits are cast back to float32 for the loss
//! and the metrics, float16 losses are scaled dynamically (an overflowing step is skipped and
//! logged); the optimizer and the saved model stay float32.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde_json::json;

use super::config::ClassifierConfig;
use super::evaluate::{predict, submission_name, task_metrics, write_submission};
use super::features::{ClassifierBatch, Feature, Padding, check_vocab, featurize, pad_id};
use super::model_io::{Head, ModelFiles, Origin, classifier};
use crate::tasks::glue::{Example, Split, Task, read_examples};
use crate::training::Precision;
use crate::training::epochs::{EpochEnd, EpochSettings, EpochTask, prepare_output_dir, run_epochs};
use crate::training::optim::build_optimizer_with_epsilon;
use crate::training::precision::{check_device, compute_model, to_f32};
use crate::training::step::{MeanLoss, RankWork, StepOutcome, StepSettings};
use bert_core::fsutil::write_atomic;
use bert_model::checkpoint::{HfTensors, load_bert_for_sequence_classification, save_hf_model};
use bert_model::modules::BertForSequenceClassification;

/// Dev metrics of one dev file (MNLI has two).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DevScores {
    /// The file's stem: `dev`, `dev_matched`, `dev_mismatched`.
    pub split: String,
    pub metrics: Vec<(String, f64)>,
}

/// What a run ended with.
#[derive(Debug)]
pub struct ClassifierSummary {
    /// Per epoch: mean training loss and dev scores (empty with `--only-inference`).
    pub epochs: Vec<(f64, Vec<DevScores>)>,
    /// Dev scores of the model the test predictions come from.
    pub best: Vec<DevScores>,
    pub best_epoch: Option<usize>,
    /// `OUTPUT_DIR/best`, when training ran.
    pub best_dir: Option<PathBuf>,
    /// Submission files written.
    pub predictions: Vec<PathBuf>,
    pub optimizer_steps: u64,
    /// The `--dtype` of forward and backward.
    pub dtype: Precision,
    /// float16: steps whose gradients overflowed, not applied.
    pub skipped_steps: u64,
}

fn note(config: &ClassifierConfig, message: impl AsRef<str>) {
    if config.print {
        eprintln!("{}", message.as_ref());
    }
}

/// The task's examples of one file, featurized.
struct SplitData {
    file: PathBuf,
    examples: Vec<Example>,
    features: Vec<Feature>,
}

fn load_split(
    config: &ClassifierConfig,
    files: &ModelFiles,
    split: Split,
    required: bool,
) -> Result<Vec<SplitData>> {
    let mut out = Vec::new();
    for file in config.task.files(&config.data_dir, split) {
        if !file.is_file() {
            ensure!(
                !required,
                "{} not found: --data-dir must be the task's glue_data directory (with \
                 train.tsv, dev.tsv{})",
                file.display(),
                if config.task == Task::Mnli {
                    ", dev_matched.tsv, dev_mismatched.tsv"
                } else {
                    ""
                }
            );
            continue;
        }
        let mut examples = read_examples(config.task, &file, split)?;
        if split == Split::Train
            && let Some(n) = config.max_train_examples
        {
            examples.truncate(n);
        }
        ensure!(!examples.is_empty(), "{} has no examples", file.display());
        let features = featurize(&files.tokenizer, &examples)
            .with_context(|| format!("in {}", file.display()))?;
        check_vocab(&features, files.config.vocab_size)
            .with_context(|| format!("in {}", file.display()))?;
        out.push(SplitData {
            file,
            examples,
            features,
        });
    }
    Ok(out)
}

/// The head this task needs.
pub fn task_head(task: Task) -> Head {
    if task.is_regression() {
        Head::Regression
    } else {
        Head::Classification(task.labels().iter().map(|l| l.to_string()).collect())
    }
}

/// Cross-entropy over classes, or mean-squared error for one output (regression), in float32
/// whatever the model computes in.
fn loss(model: &BertForSequenceClassification, batch: &ClassifierBatch) -> Result<Tensor<1>> {
    let rows = batch.rows;
    let logits = to_f32(model.forward(batch.input.clone()));
    if let Some(scores) = batch.scores.clone() {
        return Ok((logits.reshape([rows]) - scores).square().mean());
    }
    let classes = batch
        .classes
        .clone()
        .context("a training batch without labels")?;
    let log_probs = log_softmax(logits, 1);
    Ok(-log_probs.gather(1, classes.reshape([rows, 1])).mean())
}

/// The model predictions run with: `model` without autodiff, cast to `--dtype`.
fn inference_model(
    config: &ClassifierConfig,
    model: &BertForSequenceClassification,
) -> BertForSequenceClassification {
    compute_model(&model.valid(), config.dtype)
}

/// Evaluate every dev file (in `--dtype`; the metrics from float32 copies of the outputs).
fn evaluate_dev(
    config: &ClassifierConfig,
    model: &BertForSequenceClassification,
    dev: &[SplitData],
    pad: Padding,
) -> Result<Vec<DevScores>> {
    let model = &inference_model(config, model);
    dev.iter()
        .map(|d| {
            let outputs = predict(model, &d.features, config.dev_batch_size, pad)?;
            Ok(DevScores {
                split: d
                    .file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("dev")
                    .to_string(),
                metrics: task_metrics(config.task, &outputs, &d.features),
            })
        })
        .collect()
}

fn scores_line(scores: &[DevScores]) -> String {
    scores
        .iter()
        .map(|s| {
            let metrics: Vec<String> = s
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            format!("{}: {}", s.split, metrics.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Write `model` to `OUTPUT_DIR/best` as a whole: into a temporary sibling, then renamed over
/// the previous best, so the directory is always one complete model.
fn save_best(
    config: &ClassifierConfig,
    files: &ModelFiles,
    model: &BertForSequenceClassification,
) -> Result<PathBuf> {
    let best = config.output_dir.join("best");
    let partial = config.output_dir.join(".best.partial");
    let old = config.output_dir.join(".best.old");
    for stale in [&partial, &old] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)
                .with_context(|| format!("cannot remove {}", stale.display()))?;
        }
    }
    let head = task_head(config.task);
    let hf_config = head.config_for(&files.config, Some(config.task.dir_name()));
    save_hf_model(model, &hf_config, head.architecture(), &partial)?;
    files.write_tokenizer(&partial, None)?;
    if best.exists() {
        std::fs::rename(&best, &old)
            .with_context(|| format!("cannot move {} aside", best.display()))?;
    }
    std::fs::rename(&partial, &best)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), best.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).ok();
    }
    Ok(best)
}

/// Predict every test file with `model` and write the GLUE submission files.
fn write_test_predictions(
    config: &ClassifierConfig,
    model: &BertForSequenceClassification,
    test: &[SplitData],
    pad: Padding,
) -> Result<Vec<PathBuf>> {
    let model = &inference_model(config, model);
    let mut written = Vec::new();
    for t in test {
        let outputs = predict(model, &t.features, config.dev_batch_size, pad)?;
        let path = config
            .output_dir
            .join(submission_name(config.task, &t.file));
        write_submission(&path, config.task, &t.examples, &outputs)?;
        note(
            config,
            format!(
                "test predictions for {} ({} rows): {}",
                t.file.display(),
                t.examples.len(),
                path.display()
            ),
        );
        written.push(path);
    }
    Ok(written)
}

/// One optimizer step over every rank's micro-batches as `settings` say (learning rate,
/// clipping, `--dtype`, loss scale): the mean loss, the gradient norm before clipping, and
/// whether a float16 overflow skipped the update.
pub fn train_step(
    model: BertForSequenceClassification,
    optimizer: &mut ModuleOptimizer,
    ranks: Vec<RankWork<ClassifierBatch>>,
    settings: StepSettings,
) -> Result<(BertForSequenceClassification, StepOutcome)> {
    let task = MeanLoss {
        micro_batches: ranks.iter().map(|r| r.batches.len()).sum(),
        loss: |model: &BertForSequenceClassification, batch: &ClassifierBatch| loss(model, batch),
    };
    let (model, report) =
        crate::training::step::train_step(model, optimizer, ranks, settings, &task)?;
    Ok((model, report.outcome()))
}

/// Append-only log of the run, rewritten whole (atomically) after every epoch.
fn write_metrics(path: &Path, rows: &[serde_json::Value]) -> Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(&serde_json::to_string(row)?);
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// The best model so far, from OUTPUT_DIR/best (a resumed run predicts the test set with it).
fn load_best(
    config: &ClassifierConfig,
    files: &ModelFiles,
    device: &Device,
) -> Result<BertForSequenceClassification> {
    let dir = config.output_dir.join("best");
    let weights = HfTensors::from_file(&dir.join("model.safetensors"))?;
    let num_labels = task_head(config.task).num_labels();
    let (model, _) =
        load_bert_for_sequence_classification(&files.config, num_labels, &weights, device)
            .with_context(|| {
                format!("cannot reload the best model so far from {}", dir.display())
            })?;
    Ok(model.valid())
}

/// What the classifier keeps across epochs: every epoch's dev scores and the best of them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Kept {
    dev: Vec<Vec<DevScores>>,
    best_score: Option<f64>,
    best_epoch: Option<usize>,
}

/// `finetune-classifier` as a task of the training core's epoch loop.
struct ClassifierTask<'a> {
    config: &'a ClassifierConfig,
    files: &'a ModelFiles,
    train: &'a SplitData,
    dev: &'a [SplitData],
    pad: Padding,
    kept: Kept,
    /// The best epoch's model (also in OUTPUT_DIR/best): the test predictions come from it.
    best_model: Option<BertForSequenceClassification>,
}

impl EpochTask for ClassifierTask<'_> {
    type Model = BertForSequenceClassification;
    type Batch = ClassifierBatch;

    fn batch(&self, examples: &[usize], device: &Device) -> Result<ClassifierBatch> {
        let rows: Vec<&Feature> = examples.iter().map(|&i| &self.train.features[i]).collect();
        ClassifierBatch::new(&rows, self.pad, device)
    }

    fn rows(&self, batch: &ClassifierBatch) -> usize {
        batch.rows
    }

    fn loss(&self, model: &Self::Model, batch: &ClassifierBatch) -> Result<Tensor<1>> {
        loss(model, batch)
    }

    fn end_epoch(&mut self, model: &Self::Model, epoch: usize) -> Result<EpochEnd> {
        let scores = evaluate_dev(self.config, model, self.dev, self.pad)?;
        let primary = scores[0].metrics[0].1;
        let improved = self.kept.best_score.is_none_or(|best| primary > best);
        if improved {
            let valid = model.valid();
            save_best(self.config, self.files, &valid)?;
            self.best_model = Some(valid);
            self.kept.best_score = Some(primary);
            self.kept.best_epoch = Some(epoch);
        }
        let mut fields = serde_json::Map::new();
        fields.insert("dev".into(), json!(scores));
        fields.insert("best".into(), json!(improved));
        let line = format!(
            "; {}{}",
            scores_line(&scores),
            if improved { " (best so far)" } else { "" }
        );
        let plot = scores[0].metrics.clone();
        self.kept.dev.push(scores);
        Ok(EpochEnd { fields, line, plot })
    }

    fn state(&self) -> serde_json::Value {
        json!(self.kept)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<()> {
        self.kept = serde_json::from_value(state).context("a checkpoint without dev scores")?;
        if self.kept.best_epoch.is_some() {
            let device = self
                .config
                .backend
                .device_at(self.config.gpus[0], self.config.gpus.len())?;
            self.best_model = Some(load_best(self.config, self.files, &device.autodiff())?);
        }
        Ok(())
    }
}

/// Fine-tune (or, with `only_inference`, only evaluate) as `config` says.
pub fn run_classifier(config: &ClassifierConfig) -> Result<ClassifierSummary> {
    config.validate()?;
    let files = ModelFiles::open(
        &config.model,
        config.bert_dataset.as_deref(),
        config.max_len,
    )?;
    files.check_max_len(config.max_len, "--max-len")?;
    let head = task_head(config.task);
    // The model lives on the first rank's device (--gpus); inference runs there alone.
    let device = config
        .backend
        .device_at(config.gpus[0], config.gpus.len())?;
    check_device(config.dtype, &device)?;
    let device = if config.only_inference {
        device
    } else {
        device.autodiff()
    };
    let (model, origin) = classifier(
        &config.model,
        &files,
        head.num_labels(),
        config.only_inference,
        config.seed,
        &device,
    )?;
    if let (Some(dir), Some(task)) = (
        &files.dir,
        files
            .config
            .extra
            .get("finetuning_task")
            .and_then(|v| v.as_str()),
    ) && matches!(origin, Origin::FineTuned)
        && !task.eq_ignore_ascii_case(config.task.dir_name())
    {
        note(
            config,
            format!(
                "note: {} was fine-tuned on {task}, not {}",
                dir.display(),
                config.task
            ),
        );
    }
    let pad = Padding {
        id: pad_id(&files.tokenizer),
        multiple: config.pad_multiple(),
        max_len: config.max_len,
    };
    prepare_output_dir(&config.output_dir, config.overwrite, !config.only_inference)?;
    std::fs::create_dir_all(&config.output_dir)
        .with_context(|| format!("cannot create {}", config.output_dir.display()))?;

    let train = if config.only_inference {
        Vec::new()
    } else {
        load_split(config, &files, Split::Train, true)?
    };
    let dev = load_split(config, &files, Split::Dev, true)?;
    let test = load_split(config, &files, Split::Test, false)?;
    let mut summary = ClassifierSummary {
        epochs: Vec::new(),
        best: Vec::new(),
        best_epoch: None,
        best_dir: None,
        predictions: Vec::new(),
        optimizer_steps: 0,
        dtype: config.dtype,
        skipped_steps: 0,
    };

    if config.only_inference {
        let scores = evaluate_dev(config, &model, &dev, pad)?;
        note(config, scores_line(&scores));
        write_metrics(
            &config.output_dir.join("metrics.jsonl"),
            &[json!({ "only_inference": true, "dtype": config.dtype, "dev": scores })],
        )?;
        summary.predictions = write_test_predictions(config, &model, &test, pad)?;
        summary.best = scores;
        return Ok(summary);
    }

    let train = train.into_iter().next().context("no training file")?;
    let n = train.features.len();
    let ranks = config.gpus.len();
    let devices = config
        .gpus
        .iter()
        .map(|&g| Ok(config.backend.device_at(g, ranks)?.autodiff()))
        .collect::<Result<Vec<_>>>()?;
    for d in &devices {
        check_device(config.dtype, d)?;
    }
    let settings = EpochSettings {
        examples: n,
        batch_size: config.batch_size,
        accumulate: config.accumulate,
        devices,
        epochs: config.epochs,
        seed: config.seed,
        lr: config.lr,
        warmup_ratio: config.warmup_ratio,
        max_grad_norm: config.max_grad_norm,
        dtype: config.dtype,
        log_interval: config.log_interval,
        output_dir: config.output_dir.clone(),
        ckpt_interval: config.ckpt_interval,
        keep_checkpoints: config.keep_checkpoints,
        skip_damaged_checkpoints: config.skip_damaged_checkpoints,
        fingerprint: config.trajectory_fingerprint(),
        data: json!({ "train_file": train.file, "train_examples": n }),
        print: config.print,
    };
    note(
        config,
        format!(
            "fine-tuning {} ({} parameters, {}) on {}: {n} training examples, {} epochs of {} \
             steps (batch {} x {} accumulated{}), {} warmup steps, {}, on {}",
            files.dir.as_deref().map_or_else(
                || format!("{:?}", config.model),
                |d| d.display().to_string()
            ),
            files.config.num_params(),
            match origin {
                Origin::Random => "random weights",
                Origin::PretrainedEncoder => "pretrained encoder, new head",
                Origin::FineTuned => "continuing a fine-tuned head",
            },
            config.task,
            config.epochs,
            settings.steps_per_epoch(),
            config.batch_size,
            config.accumulate,
            if ranks > 1 {
                format!(" x {ranks} ranks")
            } else {
                String::new()
            },
            settings.schedule().warmup_steps,
            config.dtype,
            config.backend
        ),
    );
    let optimizer =
        build_optimizer_with_epsilon(config.optimizer, config.weight_decay, config.epsilon);
    let mut task = ClassifierTask {
        config,
        files: &files,
        train: &train,
        dev: &dev,
        pad,
        kept: Kept::default(),
        best_model: None,
    };
    let outcome = run_epochs(&mut task, model, optimizer, &settings)?;
    let (kept, best_model) = (task.kept, task.best_model);
    summary.epochs = outcome
        .train_losses
        .iter()
        .copied()
        .zip(kept.dev.iter().cloned())
        .collect();
    summary.best_epoch = kept.best_epoch;
    if let Some(epoch) = kept.best_epoch {
        summary.best = kept.dev[epoch - 1].clone();
        summary.best_dir = Some(config.output_dir.join("best"));
    }
    summary.skipped_steps = outcome.skipped_steps;
    summary.optimizer_steps = outcome.steps;
    let best_model = best_model.context("no epoch was run")?;
    note(
        config,
        format!(
            "best dev {} = {:.4} after epoch {} ({}{}); model (HuggingFace layout, float32): {}",
            summary.best[0].metrics[0].0,
            summary.best[0].metrics[0].1,
            summary.best_epoch.unwrap_or(0),
            config.dtype,
            if config.dtype.needs_loss_scaling() {
                format!(", {} skipped step(s)", summary.skipped_steps)
            } else {
                String::new()
            },
            summary
                .best_dir
                .as_deref()
                .map_or_else(String::new, |d| d.display().to_string())
        ),
    );
    summary.predictions = write_test_predictions(config, &best_model, &test, pad)?;
    Ok(summary)
}
