//! Fine-tuning's loop: epochs over a fixed set of examples. Each epoch is a seeded shuffle cut
//! into micro-batches; every data-parallel rank takes `accumulate` of them per optimizer step
//! ([`super::step`]); after every epoch the task evaluates and keeps what it wants (the best
//! model), a row goes to `metrics.jsonl`, `metrics.svg` is redrawn, and a checkpoint records
//! where the run stands — so the same command, run again after a kill, continues exactly.
//! `finetune-classifier` and `finetune-squad` are tasks of it ([`EpochTask`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::checkpoint::{self, Found, STATE_VERSION, TrainState};
use super::plot::figure;
use super::precision::{LossScale, Precision};
use super::progress::Progress;
use super::schedule::LinearSchedule;
use super::step::{
    MeanLoss, MicroBatch, RankWork, StepOutcome, StepSettings, after_step, micro_batch_seed,
    train_step,
};
use bert_core::fsutil::write_atomic;
use bert_core::rng::{SplitMix64, mix};

/// What a fine-tuning task brings to the loop.
pub trait EpochTask: Sync {
    /// The model being trained (on an autodiff device).
    type Model: Module + Sync;
    /// A micro-batch, on its rank's device.
    type Batch: Send;

    /// The micro-batch of these training examples (indices) on `device`.
    fn batch(&self, examples: &[usize], device: &Device) -> Result<Self::Batch>;
    /// Examples in a micro-batch (for the examples/s of the log).
    fn rows(&self, batch: &Self::Batch) -> usize;
    /// The micro-batch's mean loss, a float32 scalar, from `model` (the compute model).
    fn loss(&self, model: &Self::Model, batch: &Self::Batch) -> Result<Tensor<1>>;
    /// After epoch `epoch`: evaluate `model` and keep what the task keeps (the best model).
    fn end_epoch(&mut self, model: &Self::Model, epoch: usize) -> Result<EpochEnd>;
    /// What the task keeps across epochs, for a checkpoint ...
    fn state(&self) -> Value;
    /// ... and taken back from one when a run resumes.
    fn restore(&mut self, state: Value) -> Result<()>;
}

/// What the task reports at the end of an epoch.
#[derive(Debug, Clone, Default)]
pub struct EpochEnd {
    /// The task's fields of the epoch's `metrics.jsonl` row (beside epoch, step, dtype,
    /// train_loss, seconds).
    pub fields: Map<String, Value>,
    /// Appended to the epoch's log line (`"; dev accuracy 0.71 (best so far)"`).
    pub line: String,
    /// Figures to draw in `metrics.svg`, by name.
    pub plot: Vec<(String, f64)>,
}

/// How the loop trains.
pub struct EpochSettings {
    /// Training examples; micro-batches hold `batch_size` of them.
    pub examples: usize,
    pub batch_size: usize,
    /// Micro-batches per rank and optimizer step.
    pub accumulate: usize,
    /// One autodiff device per data-parallel rank; the model lives on the first.
    pub devices: Vec<Device>,
    pub epochs: usize,
    pub seed: u64,
    pub lr: f64,
    pub warmup_ratio: f64,
    pub max_grad_norm: f64,
    pub dtype: Precision,
    /// A log line every N optimizer steps (and at every epoch's end).
    pub log_interval: usize,
    /// `metrics.jsonl`, `metrics.svg` and `checkpoints/` go here.
    pub output_dir: PathBuf,
    /// Also checkpoint every N steps within an epoch (0: at epoch ends only).
    pub ckpt_interval: u64,
    pub keep_checkpoints: usize,
    /// Resume from the newest intact checkpoint, skipping damaged newer ones.
    pub skip_damaged_checkpoints: bool,
    /// The settings and the data a checkpoint must share with this run to continue it.
    pub fingerprint: Value,
    pub data: Value,
    pub print: bool,
}

impl EpochSettings {
    /// Optimizer steps in an epoch: every rank takes `accumulate` micro-batches per step.
    pub fn steps_per_epoch(&self) -> usize {
        let per_step = self.accumulate * self.devices.len();
        self.examples.div_ceil(self.batch_size).div_ceil(per_step)
    }

    pub fn num_steps(&self) -> u64 {
        (self.steps_per_epoch() * self.epochs) as u64
    }

    pub fn schedule(&self) -> LinearSchedule {
        LinearSchedule::new(self.lr, self.warmup_ratio, self.num_steps())
    }
}

/// What the loop ends with.
pub struct EpochOutcome<M> {
    /// The model after the last epoch (still on the autodiff device).
    pub model: M,
    pub steps: u64,
    /// The mean training loss of every epoch.
    pub train_losses: Vec<f64>,
    /// float16: steps whose gradients overflowed, not applied.
    pub skipped_steps: u64,
    /// The step the run continued from, when it resumed.
    pub resumed_from: Option<u64>,
}

/// The order of one training epoch: a Fisher–Yates shuffle from `(seed, epoch)`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    SplitMix64::new(mix(seed, epoch as u64, EPOCH_SALT)).permutation(n)
}

/// Salt of the seed of an epoch's example order.
const EPOCH_SALT: u64 = 0x5eed;

/// Where a run stands, as its checkpoints record it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Position {
    epochs_done: usize,
    /// Of the epoch in progress: optimizer steps done, their summed loss, skipped steps.
    epoch_steps: usize,
    epoch_loss: f64,
    epoch_skipped: u64,
    /// Of the finished epochs: metrics.jsonl rows, mean training losses, plotted figures.
    rows: Vec<Value>,
    train_losses: Vec<f64>,
    plots: Vec<Vec<(String, f64)>>,
    skipped_steps: u64,
    /// The task's own (`EpochTask::state`).
    task: Value,
}

/// Makes sure a fine-tuning run may write into `dir`: new or empty, or — for a training run
/// (`resumable`) — holding checkpoints to resume (the same command after a kill: the resume
/// itself checks it is the same run). Anything else — a finished run's `best/`, predictions —
/// is only replaced with `overwrite`, which also drops the old checkpoints so the run starts
/// over.
pub fn prepare_output_dir(dir: &Path, overwrite: bool, resumable: bool) -> Result<()> {
    let checkpoints = dir.join("checkpoints");
    if overwrite {
        if checkpoints.exists() {
            std::fs::remove_dir_all(&checkpoints)
                .with_context(|| format!("cannot remove {}", checkpoints.display()))?;
        }
        return Ok(());
    }
    if resumable && !checkpoint::list(&checkpoints)?.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => return Ok(()),
    };
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    bail!(
        "output directory {} is not empty ({}{}){}; pass --overwrite to replace it, or give \
         another --output-dir",
        dir.display(),
        names.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
        if names.len() > 3 { ", ..." } else { "" },
        if resumable {
            " and holds no checkpoint to resume"
        } else {
            ""
        }
    )
}

/// Train `model` with `optimizer` as `settings` say, continuing from the newest checkpoint in
/// `OUTPUT_DIR/checkpoints` when there is one (of a run with the same settings and data).
pub fn run_epochs<T: EpochTask>(
    task: &mut T,
    model: T::Model,
    optimizer: ModuleOptimizer,
    settings: &EpochSettings,
) -> Result<EpochOutcome<T::Model>> {
    ensure!(
        settings.examples > 0,
        "there are no training examples to fine-tune on"
    );
    let ckpt_dir = settings.output_dir.join("checkpoints");
    checkpoint::remove_incomplete(&ckpt_dir)?;
    let resume = checkpoint::latest(&ckpt_dir, settings.skip_damaged_checkpoints)?;
    let (model, mut optimizer, mut at, mut loss_scale, mut step) = match &resume {
        Some(found) => {
            check_same_run(found, &settings.fingerprint, &settings.data)?;
            let (model, optimizer) = checkpoint::load(found, model, optimizer)?;
            let at: Position = serde_json::from_value(found.state.position.clone().into())
                .with_context(|| format!("{} has no fine-tuning position", found.dir.display()))?;
            task.restore(at.task.clone())?;
            for damage in &found.skipped {
                note(settings, format!("skipped a damaged checkpoint: {damage}"));
            }
            note(
                settings,
                format!(
                    "resuming from {} (step {}, epoch {})",
                    found.dir.display(),
                    found.state.step,
                    (at.epochs_done + 1).min(settings.epochs)
                ),
            );
            (
                model,
                optimizer,
                at,
                found.state.loss_scale,
                found.state.step,
            )
        }
        None => (
            model,
            optimizer,
            Position::default(),
            settings.dtype.needs_loss_scaling().then(LossScale::new),
            0,
        ),
    };

    let (ranks, accumulate) = (settings.devices.len(), settings.accumulate);
    let steps_per_epoch = settings.steps_per_epoch();
    let schedule = settings.schedule();
    let mut model = model.train();
    let progress = Progress::new(settings.print, step, settings.num_steps());
    let started = Instant::now();
    for epoch in at.epochs_done + 1..=settings.epochs {
        let order = epoch_order(settings.examples, settings.seed, epoch);
        let batches: Vec<&[usize]> = order.chunks(settings.batch_size).collect();
        let (mut interval_loss, mut interval_steps, mut interval_rows) = (0.0, 0usize, 0usize);
        let mut interval_start = Instant::now();
        for group in batches.chunks(accumulate * ranks).skip(at.epoch_steps) {
            step += 1;
            let lr = schedule.lr(step);
            // Rank r takes micro-batches r·A .. (r+1)·A of the step, on its own device.
            let mut work = Vec::with_capacity(ranks);
            for (rank, share) in group.chunks(accumulate).enumerate() {
                let device = &settings.devices[rank];
                let batches = share
                    .iter()
                    .enumerate()
                    .map(|(micro, examples)| {
                        Ok(MicroBatch {
                            data: task.batch(examples, device)?,
                            seed: Some(micro_batch_seed(
                                settings.seed,
                                step,
                                rank * accumulate + micro,
                            )),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                work.push(RankWork {
                    device: device.clone(),
                    batches,
                });
            }
            let rows_in_step: usize = work
                .iter()
                .flat_map(|w| &w.batches)
                .map(|b| task.rows(&b.data))
                .sum();
            let step_settings = StepSettings::new(
                lr,
                settings.max_grad_norm,
                settings.dtype,
                loss_scale.as_ref(),
            );
            let (updated, outcome) =
                mean_loss_step(task, model, &mut optimizer, work, step_settings).with_context(
                    || format!("epoch {epoch}, step {step}: a diverging run needs a lower --lr"),
                )?;
            model = updated;
            if let Some(line) = after_step(&mut loss_scale, step, &outcome) {
                at.epoch_skipped += 1;
                progress.line(&line);
            }
            at.epoch_loss += outcome.loss;
            at.epoch_steps += 1;
            interval_loss += outcome.loss;
            interval_steps += 1;
            interval_rows += rows_in_step;
            progress.step(step);
            let epoch_ends = at.epoch_steps == steps_per_epoch;
            if step.is_multiple_of(settings.log_interval as u64) || epoch_ends {
                let seconds = interval_start.elapsed().as_secs_f64();
                progress.line(&format!(
                    "[epoch {epoch} step {}/{steps_per_epoch}] loss {:.4} lr {lr:.3e} \
                     grad_norm {:.3} {:.1} examples/s",
                    at.epoch_steps,
                    interval_loss / interval_steps as f64,
                    outcome.grad_norm,
                    interval_rows as f64 / seconds.max(1e-9)
                ));
                (interval_loss, interval_steps, interval_rows) = (0.0, 0, 0);
                interval_start = Instant::now();
            }
            if !epoch_ends
                && settings.ckpt_interval > 0
                && step.is_multiple_of(settings.ckpt_interval)
            {
                save(settings, task, &at, step, loss_scale, &model, &optimizer)?;
            }
        }

        let train_loss = at.epoch_loss / at.epoch_steps.max(1) as f64;
        let end = task.end_epoch(&model, epoch)?;
        progress.line(&format!(
            "epoch {epoch}: train loss {train_loss:.4}{} ({:.0} s)",
            end.line,
            started.elapsed().as_secs_f64()
        ));
        let mut row = json!({
            "epoch": epoch,
            "step": step,
            "dtype": settings.dtype,
            "train_loss": train_loss,
            "seconds": started.elapsed().as_secs_f64(),
        });
        row.as_object_mut()
            .expect("a JSON object")
            .extend(end.fields);
        if let Some(scale) = &loss_scale {
            row["loss_scale"] = json!(scale.scale);
            row["skipped_steps"] = json!(at.epoch_skipped);
        }
        at.rows.push(row);
        at.train_losses.push(train_loss);
        at.plots.push(end.plot);
        at.skipped_steps += at.epoch_skipped;
        write_metrics(&settings.output_dir, &at)?;
        // The epoch is done: checkpoint it with what it scored, so that a resumed run neither
        // repeats it nor forgets what the task kept.
        at.epochs_done = epoch;
        (at.epoch_steps, at.epoch_loss, at.epoch_skipped) = (0, 0.0, 0);
        save(settings, task, &at, step, loss_scale, &model, &optimizer)?;
    }
    progress.finish();
    Ok(EpochOutcome {
        model,
        steps: step,
        train_losses: at.train_losses,
        skipped_steps: at.skipped_steps,
        resumed_from: resume.map(|f| f.state.step),
    })
}

/// One optimizer step of the task's mean micro-batch loss.
fn mean_loss_step<T: EpochTask>(
    task: &T,
    model: T::Model,
    optimizer: &mut ModuleOptimizer,
    work: Vec<RankWork<T::Batch>>,
    settings: StepSettings,
) -> Result<(T::Model, StepOutcome)> {
    let step_task = MeanLoss {
        micro_batches: work.iter().map(|r| r.batches.len()).sum(),
        loss: |model: &T::Model, batch: &T::Batch| task.loss(model, batch),
    };
    let (model, report) = train_step(model, optimizer, work, settings, &step_task)?;
    Ok((model, report.outcome()))
}

fn save<T: EpochTask>(
    settings: &EpochSettings,
    task: &T,
    at: &Position,
    step: u64,
    loss_scale: Option<LossScale>,
    model: &T::Model,
    optimizer: &ModuleOptimizer,
) -> Result<()> {
    let mut at = at.clone();
    at.task = task.state();
    let Value::Object(position) = serde_json::to_value(&at)? else {
        unreachable!("a struct serialises to an object");
    };
    let state = TrainState {
        format_version: STATE_VERSION,
        step,
        position,
        loss_scale,
        seed: settings.seed,
        settings: settings.fingerprint.clone(),
        data: settings.data.clone(),
    };
    let dir = settings.output_dir.join("checkpoints");
    checkpoint::save(&dir, &state, model, optimizer, settings.keep_checkpoints)?;
    Ok(())
}

/// A checkpoint continues only the run that wrote it.
fn check_same_run(found: &Found, settings: &Value, data: &Value) -> Result<()> {
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
        "{} was fine-tuned on other data (then {}, now {}); give another --output-dir, or \
         --overwrite to start over",
        found.dir.display(),
        found.state.data,
        data
    );
    Ok(())
}

/// `metrics.jsonl` (rewritten whole, atomically, after every epoch) and `metrics.svg`: the
/// training loss and the task's figures, epoch by epoch.
fn write_metrics(dir: &Path, at: &Position) -> Result<()> {
    let mut text = String::new();
    for row in &at.rows {
        text.push_str(&serde_json::to_string(row)?);
        text.push('\n');
    }
    write_atomic(&dir.join("metrics.jsonl"), text.as_bytes())?;

    let steps: Vec<f64> = at
        .rows
        .iter()
        .map(|r| r["step"].as_f64().unwrap_or(f64::NAN))
        .collect();
    // The task's figures, by the names of the first epoch.
    let names: Vec<&str> = at
        .plots
        .first()
        .map(|p| p.iter().map(|(name, _)| name.as_str()).collect())
        .unwrap_or_default();
    let figures: Vec<(&str, Vec<f64>)> = names
        .iter()
        .map(|&name| {
            let values = at
                .plots
                .iter()
                .map(|p| {
                    p.iter()
                        .find(|(n, _)| n == name)
                        .map_or(f64::NAN, |(_, v)| *v)
                })
                .collect();
            (name, values)
        })
        .collect();
    let mut panels = vec![("train loss", vec![("loss", at.train_losses.clone())])];
    if !figures.is_empty() {
        panels.push(("dev", figures));
    }
    write_atomic(&dir.join("metrics.svg"), figure(&steps, &panels).as_bytes())
}

fn note(settings: &EpochSettings, message: impl AsRef<str>) {
    if settings.print {
        eprintln!("{}", message.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(100, 7, 0);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(100, 7, 0));
        assert_ne!(a, epoch_order(100, 7, 1));
        assert_ne!(a, epoch_order(100, 8, 0));
    }
}
