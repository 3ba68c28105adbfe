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
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde_json::json;

use super::config::ClassifierConfig;
use super::evaluate::{predict, submission_name, task_metrics, write_submission};
use super::features::{
    ClassifierBatch, Feature, Padding, check_vocab, epoch_order, featurize, pad_id,
};
use super::model_io::{Head, ModelFiles, Origin, classifier};
use crate::tasks::glue::{Example, Split, Task, read_examples};
use crate::training::Precision;
use crate::training::checkpoint::{self, Found, STATE_VERSION, TrainState};
use crate::training::optim::build_optimizer_with_epsilon;
use crate::training::plot::figure;
use crate::training::precision::{LossScale, check_device, compute_model, to_f32};
use crate::training::progress::Progress;
use crate::training::schedule::LinearSchedule;
use crate::training::step::{
    MeanLoss, MicroBatch, RankWork, StepOutcome, StepSettings, after_step, micro_batch_seed,
};
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

/// Where a fine-tuning run stands, as a checkpoint records it: the finished epochs and what
/// they scored, and the sums of the epoch in progress.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Position {
    epochs_done: usize,
    /// Of the epoch in progress: optimizer steps done, their summed loss, skipped steps.
    epoch_steps: usize,
    epoch_loss: f64,
    epoch_skipped: u64,
    /// The finished epochs' metrics.jsonl rows, and (train loss, dev scores).
    rows: Vec<serde_json::Value>,
    epochs: Vec<(f64, Vec<DevScores>)>,
    best_score: Option<f64>,
    best_epoch: Option<usize>,
    best: Vec<DevScores>,
    skipped_steps: u64,
}

fn train_state(
    step: u64,
    at: &Position,
    loss_scale: Option<LossScale>,
    config: &ClassifierConfig,
    settings: &serde_json::Value,
    data: &serde_json::Value,
) -> Result<TrainState> {
    let serde_json::Value::Object(position) = serde_json::to_value(at)? else {
        unreachable!("a struct serialises to an object");
    };
    Ok(TrainState {
        format_version: STATE_VERSION,
        step,
        position,
        loss_scale,
        seed: config.seed,
        settings: settings.clone(),
        data: data.clone(),
    })
}

/// A checkpoint continues only the run that wrote it.
fn check_same_run(
    found: &Found,
    settings: &serde_json::Value,
    data: &serde_json::Value,
) -> Result<()> {
    let differ = checkpoint::differing_keys(&found.state.settings, settings);
    ensure!(
        differ.is_empty(),
        "{} holds a checkpoint of a fine-tuning run with other settings ({}); rerun with the \
         same flags to continue it, or give another --output-dir",
        found.dir.display(),
        differ.join("; ")
    );
    ensure!(
        &found.state.data == data,
        "{} was fine-tuned on other data ({}); give another --output-dir",
        found.dir.display(),
        found.state.data
    );
    Ok(())
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

/// OUTPUT_DIR/metrics.svg: the training loss and the dev metrics, epoch by epoch.
fn write_metrics_svg(dir: &Path, rows: &[serde_json::Value]) -> Result<()> {
    let steps: Vec<f64> = rows.iter().filter_map(|r| r["step"].as_f64()).collect();
    if steps.len() != rows.len() || steps.is_empty() {
        return Ok(());
    }
    let loss: Vec<f64> = rows
        .iter()
        .map(|r| r["train_loss"].as_f64().unwrap_or(f64::NAN))
        .collect();
    // Every metric of the first dev file, by name, in the order the task lists them.
    let names: Vec<String> = rows[0]["dev"][0]["metrics"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|p| p[0].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let dev: Vec<(&str, Vec<f64>)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let values = rows
                .iter()
                .map(|r| r["dev"][0]["metrics"][i][1].as_f64().unwrap_or(f64::NAN))
                .collect();
            (name.as_str(), values)
        })
        .collect();
    let svg = figure(
        &steps,
        &[("train loss", vec![("loss", loss)]), ("dev", dev)],
    );
    write_atomic(&dir.join("metrics.svg"), svg.as_bytes())
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
    check_device(config.dtype, &device, config.backend)?;
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
        note(config, format!("dev {}", scores_line(&scores)));
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
        check_device(config.dtype, d, config.backend)?;
    }
    let batches_per_epoch = n.div_ceil(config.batch_size);
    // One optimizer step takes `accumulate` micro-batches on every rank.
    let per_step = config.accumulate * ranks;
    let steps_per_epoch = batches_per_epoch.div_ceil(per_step);
    let num_steps = (steps_per_epoch * config.epochs) as u64;
    let schedule = LinearSchedule::new(config.lr, config.warmup_ratio, num_steps);
    let optimizer =
        build_optimizer_with_epsilon(config.optimizer, config.weight_decay, config.epsilon);

    // Continue the run whose checkpoint is in OUTPUT_DIR/checkpoints, if there is one.
    let ckpt_dir = config.output_dir.join("checkpoints");
    checkpoint::remove_incomplete(&ckpt_dir)?;
    let fingerprint = config.trajectory_fingerprint();
    let data = json!({ "train_file": train.file, "train_examples": n });
    let resume = checkpoint::latest(&ckpt_dir)?;
    let (model, mut optimizer, mut at) = match &resume {
        Some(found) => {
            check_same_run(found, &fingerprint, &data)?;
            let (model, optimizer) = checkpoint::load(found, model, optimizer)?;
            let at: Position = serde_json::from_value(found.state.position.clone().into())
                .with_context(|| format!("{} has no fine-tuning position", found.dir.display()))?;
            note(
                config,
                format!(
                    "resuming from {} (step {}, epoch {})",
                    found.dir.display(),
                    found.state.step,
                    at.epochs_done + 1
                ),
            );
            (model, optimizer, at)
        }
        None => (model, optimizer, Position::default()),
    };
    let mut loss_scale = match &resume {
        Some(found) => found.state.loss_scale,
        None => config.dtype.needs_loss_scaling().then(LossScale::new),
    };
    let mut step = resume.as_ref().map_or(0, |f| f.state.step);
    let mut best_model = match at.best_epoch {
        Some(_) => Some(load_best(config, &files, &devices[0])?),
        None => None,
    };
    summary.epochs = at.epochs.clone();
    summary.best = at.best.clone();
    summary.best_epoch = at.best_epoch;
    summary.skipped_steps = at.skipped_steps;
    if best_model.is_some() {
        summary.best_dir = Some(config.output_dir.join("best"));
    }
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
            steps_per_epoch,
            config.batch_size,
            config.accumulate,
            if ranks > 1 {
                format!(" x {ranks} ranks")
            } else {
                String::new()
            },
            schedule.warmup_steps,
            config.dtype,
            config.backend
        ),
    );

    let mut model = model.train();
    let progress = Progress::new(config.print, step, num_steps);
    let started = Instant::now();
    for epoch in at.epochs_done + 1..=config.epochs {
        let order = epoch_order(n, config.seed, epoch);
        let batches: Vec<&[usize]> = order.chunks(config.batch_size).collect();
        let (mut interval_loss, mut interval_steps, mut interval_rows) = (0.0, 0usize, 0usize);
        let mut interval_start = Instant::now();
        for group in batches.chunks(per_step).skip(at.epoch_steps) {
            step += 1;
            let lr = schedule.lr(step);
            // Rank r takes micro-batches r·A .. (r+1)·A of the step, on its own device.
            let mut work = Vec::with_capacity(ranks);
            for (rank, share) in group.chunks(config.accumulate).enumerate() {
                let device = &devices[rank];
                let mut micro_batches = Vec::with_capacity(share.len());
                for (micro, indices) in share.iter().enumerate() {
                    let rows: Vec<&Feature> = indices.iter().map(|&i| &train.features[i]).collect();
                    micro_batches.push(MicroBatch {
                        data: ClassifierBatch::new(&rows, pad, device)?,
                        seed: Some(micro_batch_seed(
                            config.seed,
                            step,
                            rank * config.accumulate + micro,
                        )),
                    });
                }
                work.push(RankWork {
                    device: device.clone(),
                    batches: micro_batches,
                });
            }
            let rows_in_step: usize = work
                .iter()
                .flat_map(|w| &w.batches)
                .map(|b| b.data.rows)
                .sum();
            let settings =
                StepSettings::new(lr, config.max_grad_norm, config.dtype, loss_scale.as_ref());
            let (updated, outcome) = train_step(model, &mut optimizer, work, settings)
                .with_context(|| {
                    format!("epoch {epoch}, step {step}: a diverging run needs a lower --lr")
                })?;
            model = updated;
            if let Some(line) = after_step(&mut loss_scale, step, &outcome) {
                at.epoch_skipped += 1;
                progress.line(&line);
            }
            let (loss, grad_norm) = (outcome.loss, outcome.grad_norm);
            at.epoch_loss += loss;
            at.epoch_steps += 1;
            interval_loss += loss;
            interval_steps += 1;
            interval_rows += rows_in_step;
            progress.step(step);
            if step.is_multiple_of(config.log_interval as u64) || at.epoch_steps == steps_per_epoch
            {
                let seconds = interval_start.elapsed().as_secs_f64();
                progress.line(&format!(
                    "[epoch {epoch} step {}/{steps_per_epoch}] loss {:.4} lr {lr:.3e} \
                     grad_norm {grad_norm:.3} {:.1} examples/s",
                    at.epoch_steps,
                    interval_loss / interval_steps as f64,
                    interval_rows as f64 / seconds.max(1e-9)
                ));
                (interval_loss, interval_steps, interval_rows) = (0.0, 0, 0);
                interval_start = Instant::now();
            }
            let epoch_ends = at.epoch_steps == steps_per_epoch;
            if !epoch_ends && config.ckpt_interval > 0 && step.is_multiple_of(config.ckpt_interval)
            {
                let state = train_state(step, &at, loss_scale, config, &fingerprint, &data)?;
                checkpoint::save(
                    &ckpt_dir,
                    &state,
                    &model,
                    &optimizer,
                    config.keep_checkpoints,
                )?;
            }
        }
        let train_loss = at.epoch_loss / at.epoch_steps.max(1) as f64;
        let scores = evaluate_dev(config, &model, &dev, pad)?;
        let primary = scores[0].metrics[0].1;
        let improved = at.best_score.is_none_or(|best| primary > best);
        progress.line(&format!(
            "epoch {epoch}: train loss {train_loss:.4}; dev {}{} ({:.0} s)",
            scores_line(&scores),
            if improved { " (best so far)" } else { "" },
            started.elapsed().as_secs_f64()
        ));
        if improved {
            at.best_score = Some(primary);
            let valid = model.valid();
            summary.best_dir = Some(save_best(config, &files, &valid)?);
            best_model = Some(valid);
            summary.best = scores.clone();
            summary.best_epoch = Some(epoch);
        }
        summary.skipped_steps += at.epoch_skipped;
        let mut row = json!({
            "epoch": epoch,
            "step": step,
            "dtype": config.dtype,
            "train_loss": train_loss,
            "dev": scores,
            "best": improved,
            "seconds": started.elapsed().as_secs_f64(),
        });
        if let Some(scale) = &loss_scale {
            row["loss_scale"] = json!(scale.scale);
            row["skipped_steps"] = json!(at.epoch_skipped);
        }
        at.rows.push(row);
        write_metrics(&config.output_dir.join("metrics.jsonl"), &at.rows)?;
        write_metrics_svg(&config.output_dir, &at.rows)?;
        summary.epochs.push((train_loss, scores));
        // The epoch is done: checkpoint it with what it scored, so a resumed run neither
        // repeats it nor forgets its best model.
        at.epochs_done = epoch;
        (at.epoch_steps, at.epoch_loss, at.epoch_skipped) = (0, 0.0, 0);
        at.epochs = summary.epochs.clone();
        at.best = summary.best.clone();
        at.best_epoch = summary.best_epoch;
        at.skipped_steps = summary.skipped_steps;
        let state = train_state(step, &at, loss_scale, config, &fingerprint, &data)?;
        checkpoint::save(
            &ckpt_dir,
            &state,
            &model,
            &optimizer,
            config.keep_checkpoints,
        )?;
    }
    progress.finish();
    summary.optimizer_steps = step;
    let best_model = best_model.context("no epoch was run")?;
    note(
        config,
        format!(
            "best dev {} = {:.4} after epoch {} ({}{}); model (HuggingFace layout, float32): {}",
            summary.best[0].metrics[0].0,
            summary.best[0].metrics[0].1,
            summary.best_epoch.unwrap_or(0),
            config.dtype,
            if loss_scale.is_some() {
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
