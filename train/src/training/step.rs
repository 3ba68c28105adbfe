//! One optimizer step, for every task: forward and backward over every micro-batch of every
//! data-parallel rank, the gradients summed, unscaled and clipped to a global norm, then the
//! optimizer update. Pretraining, `finetune-classifier` and `finetune-squad` all run exactly
//! this; a task only says what a micro-batch's loss is ([`StepTask`]).
//!
//! Data parallelism is burn-train's `MultiDevice` strategy ("optimizer on the main device"),
//! on our own loop: each rank forwards and backwards a fork of the model on its own device,
//! its gradients are moved to the main device (`GradientsParams::to_device`) and summed there
//! (`GradientsAccumulator`); clipping and the update run once, on the main device. Ranks on
//! distinct devices run in parallel threads; ranks that share a device (burn's CPU backend has
//! one) run in turn, which keeps their dropout draws deterministic.
//!
//! With `--dtype float16|bfloat16` each micro-batch computes with a half-precision cast of the
//! float32 weights ([`super::precision`]); float16 losses are multiplied by the loss scale, the
//! summed gradients divided by it, and a step whose gradients overflowed is skipped.
//!
//! A task normalises each micro-batch's loss by the whole step (pretraining: its masked tokens
//! and sequences; fine-tuning: its number of micro-batches), so R ranks × A micro-batches give
//! the update of one batch of R·A micro-batches. Statistics stay on the device until a rank's
//! micro-batches are all queued: one read-back per rank and step.

use anyhow::{Result, anyhow, ensure};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::collective::{Collective, OneProcess, agree, sum_gradients};
use super::precision::{LossScale, Precision, compute_model, scale_loss, unscale_and_clip};

/// What a task tells the step about its micro-batches.
pub trait StepTask<M, B>: Sync {
    /// What one micro-batch reports (losses, accuracies), read back after its rank's work.
    type Stats: Send;

    /// `model` (the compute model: a half-precision cast under `--dtype`) on `batch`: the
    /// micro-batch's share of the step's loss, to back-propagate, and its statistics as a
    /// detached 1-D tensor.
    fn loss(&self, model: &M, batch: &B) -> Result<(Tensor<1>, Tensor<1>)>;

    /// The statistics of a rank's micro-batches, from their concatenated tensors. An error
    /// (a non-finite loss) ends the step before the update.
    fn read(&self, stats: Tensor<1>) -> Result<Vec<Self::Stats>>;
}

/// A micro-batch on its rank's device, with the seed its dropout draws start from (`None`:
/// leave the device's generator as it is).
#[derive(Debug, Clone)]
pub struct MicroBatch<B> {
    pub data: B,
    pub seed: Option<u64>,
}

/// One rank's share of a step: its device and its micro-batches (already on that device).
pub struct RankWork<B> {
    pub device: Device,
    pub batches: Vec<MicroBatch<B>>,
}

/// A single rank on `device` with `batches`, seeded by `seed(micro)`.
pub fn single_rank<B>(
    device: &Device,
    batches: Vec<B>,
    seed: impl Fn(usize) -> Option<u64>,
) -> Vec<RankWork<B>> {
    vec![RankWork {
        device: device.clone(),
        batches: batches
            .into_iter()
            .enumerate()
            .map(|(micro, data)| MicroBatch {
                data,
                seed: seed(micro),
            })
            .collect(),
    }]
}

/// The seed of micro-batch `index` of optimizer step `step` (index counts over every rank:
/// rank r's micro-batch m of A is r·A + m). Dropout masks are then a function of the step,
/// so a resumed run draws the same ones, and R ranks draw what one rank accumulating R·A
/// micro-batches would.
pub fn micro_batch_seed(seed: u64, step: u64, index: usize) -> u64 {
    bert_core::rng::mix(seed, step, index as u64)
}

/// How to apply a step.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    pub lr: f64,
    pub max_grad_norm: f64,
    pub precision: Precision,
    /// The losses are multiplied by it before backward (1 without loss scaling).
    pub loss_scale: f64,
}

impl StepSettings {
    /// float32, no loss scaling.
    pub fn float32(lr: f64, max_grad_norm: f64) -> Self {
        Self {
            lr,
            max_grad_norm,
            precision: Precision::Float32,
            loss_scale: 1.0,
        }
    }

    /// `lr` under `loss_scale` (none: 1, no scaling).
    pub fn new(
        lr: f64,
        max_grad_norm: f64,
        precision: Precision,
        loss_scale: Option<&LossScale>,
    ) -> Self {
        Self {
            lr,
            max_grad_norm,
            precision,
            loss_scale: loss_scale.map_or(1.0, |s| s.scale),
        }
    }
}

/// What one step saw.
#[derive(Debug, Clone)]
pub struct StepReport<S> {
    /// The statistics of each micro-batch (rank by rank), before the update.
    pub micro_batches: Vec<S>,
    /// The global gradient norm before clipping (of the unscaled gradients).
    pub grad_norm: f64,
    /// float16 with loss scaling: the gradients overflowed and the update was skipped.
    pub overflowed: bool,
    /// Seconds spent summing the gradients over the job's processes (0 in one process).
    pub sync_seconds: f64,
}

/// What a fine-tuning step reports: the mean micro-batch loss, the norm, the overflow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// The mean of the micro-batches' losses (unscaled, computed in float32).
    pub loss: f64,
    /// The global norm of the (unscaled) gradients before clipping.
    pub grad_norm: f64,
    /// float16 with loss scaling: the gradients overflowed and the update was skipped.
    pub overflowed: bool,
}

impl StepReport<f64> {
    /// For tasks whose statistics are one loss per micro-batch.
    pub fn outcome(&self) -> StepOutcome {
        let n = self.micro_batches.len().max(1) as f64;
        StepOutcome {
            loss: self.micro_batches.iter().sum::<f64>() / n,
            grad_norm: self.grad_norm,
            overflowed: self.overflowed,
        }
    }
}

/// Forward and backward `work`'s micro-batches with a fork of `model` on its device; the
/// summed gradients, moved to `main`, and the micro-batch statistics.
fn rank_gradients<M, B, T>(
    model: &M,
    work: RankWork<B>,
    main: &Device,
    settings: StepSettings,
    task: &T,
) -> Result<(GradientsParams, Vec<T::Stats>)>
where
    M: Module,
    T: StepTask<M, B>,
{
    let model = if &work.device == main {
        model.clone()
    } else {
        model.clone().fork(&work.device)
    };
    let mut pending = Vec::with_capacity(work.batches.len());
    let mut accumulator = GradientsAccumulator::<M>::new();
    for batch in work.batches {
        if let Some(seed) = batch.seed {
            work.device.seed(seed);
        }
        // A fresh cast per micro-batch: each backward consumes the graph, the casts included
        // (burn has no retain_graph), so a second micro-batch cannot reuse the first's.
        let compute = compute_model(&model, settings.precision);
        let (loss, stats) = task.loss(&compute, &batch.data)?;
        pending.push(stats);
        let loss = scale_loss(loss, settings.loss_scale);
        // Keyed by the float32 parameters: the cast copies pass their gradients on to them.
        accumulator.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
    }
    let stats = task.read(Tensor::cat(pending, 0))?;
    let grads = accumulator.grads();
    let grads = if &work.device == main {
        grads
    } else {
        grads.to_device(main, &model)
    };
    Ok((grads, stats))
}

/// Train `model` (on `ranks[0].device`, the main device) on every rank's micro-batches and
/// apply one update.
///
/// A non-finite loss is an error (the task's `read` says so), and so is a non-finite gradient
/// norm without loss scaling; with it, that step is skipped (`overflowed`). Either way the
/// update is not applied.
pub fn train_step<M, B, T>(
    model: M,
    optimizer: &mut ModuleOptimizer,
    ranks: Vec<RankWork<B>>,
    settings: StepSettings,
    task: &T,
) -> Result<(M, StepReport<T::Stats>)>
where
    M: Module + Sync,
    B: Send,
    T: StepTask<M, B>,
{
    train_step_in(model, optimizer, ranks, settings, task, &OneProcess)
}

/// [`train_step`] as one process of a job: `ranks` are this process's, and the gradients are
/// summed over every process before the norm, the clipping and the (identical) update. The
/// task's loss must already be normalised by the whole job's step.
pub fn train_step_in<M, B, T>(
    model: M,
    optimizer: &mut ModuleOptimizer,
    ranks: Vec<RankWork<B>>,
    settings: StepSettings,
    task: &T,
    collective: &dyn Collective,
) -> Result<(M, StepReport<T::Stats>)>
where
    M: Module + Sync,
    B: Send,
    T: StepTask<M, B>,
{
    ensure!(!ranks.is_empty(), "a step needs at least one rank");
    ensure!(
        ranks.iter().any(|r| !r.batches.is_empty()),
        "a step needs at least one micro-batch"
    );
    let main = ranks[0].device.clone();
    let parallel = ranks.len() > 1 && distinct(ranks.iter().map(|r| &r.device));

    type RankResult<S> = Result<(GradientsParams, Vec<S>)>;
    let results: Vec<RankResult<T::Stats>> = if parallel {
        std::thread::scope(|scope| {
            let handles: Vec<_> = ranks
                .into_iter()
                .map(|work| {
                    let (model, main) = (&model, &main);
                    scope.spawn(move || rank_gradients(model, work, main, settings, task))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a data-parallel rank panicked")))
                })
                .collect()
        })
    } else {
        ranks
            .into_iter()
            .map(|work| rank_gradients(&model, work, &main, settings, task))
            .collect()
    };

    let mut micro_batches = Vec::new();
    let mut accumulator = GradientsAccumulator::<M>::new();
    let local = results.into_iter().try_for_each(|result| {
        let (grads, stats) = result?;
        accumulator.accumulate(&model, grads);
        micro_batches.extend(stats);
        Ok(())
    });
    // A process that failed (a non-finite loss) must not leave the others in the sum.
    let sync_started = std::time::Instant::now();
    agree(collective, local)?;
    let mut grads = accumulator.grads();
    sum_gradients(&model, &mut grads, &main, collective)?;
    let sync_seconds = if collective.size() > 1 {
        sync_started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let (grad_norm, overflowed) = unscale_and_clip(
        &model,
        &mut grads,
        settings.loss_scale,
        settings.max_grad_norm,
    )?;
    let report = StepReport {
        micro_batches,
        grad_norm,
        overflowed,
        sync_seconds,
    };
    if overflowed {
        return Ok((model, report));
    }
    Ok((optimizer.step(settings.lr, model, grads), report))
}

/// Whether no two devices are the same.
fn distinct<'a>(devices: impl Iterator<Item = &'a Device>) -> bool {
    let devices: Vec<&Device> = devices.collect();
    devices
        .iter()
        .enumerate()
        .all(|(i, d)| devices[..i].iter().all(|e| e != d))
}

/// After step `step`: record whether it overflowed in the loss scale (float16), and the line
/// to log when its update was skipped.
pub fn after_step(
    loss_scale: &mut Option<LossScale>,
    step: u64,
    outcome: &StepOutcome,
) -> Option<String> {
    let scale = loss_scale.as_mut()?;
    let before = scale.scale;
    scale.update(outcome.overflowed);
    outcome.overflowed.then(|| {
        format!(
            "step {step}: the float16 gradients overflowed at loss scale {before}; update \
             skipped, loss scale now {}",
            scale.scale
        )
    })
}

/// A task whose statistics are its micro-batch's loss: each micro-batch's loss is divided by
/// the step's number of micro-batches (the mean over them), and read back to check it.
pub struct MeanLoss<F> {
    pub micro_batches: usize,
    pub loss: F,
}

impl<M, B, F> StepTask<M, B> for MeanLoss<F>
where
    F: Fn(&M, &B) -> Result<Tensor<1>> + Sync,
{
    type Stats = f64;

    fn loss(&self, model: &M, batch: &B) -> Result<(Tensor<1>, Tensor<1>)> {
        let loss = (self.loss)(model, batch)?;
        let stats = loss.clone().detach().reshape([1]);
        let share = if self.micro_batches > 1 {
            loss.div_scalar(self.micro_batches as f64)
        } else {
            loss
        };
        Ok((share, stats))
    }

    fn read(&self, stats: Tensor<1>) -> Result<Vec<f64>> {
        let values = stats
            .into_data()
            .try_to_vec_as::<f32>()
            .map_err(|e| anyhow!("cannot read the loss: {e:?}"))?;
        values
            .into_iter()
            .map(|v| {
                let v = v as f64;
                ensure!(v.is_finite(), "the loss is not finite ({v})");
                Ok(v)
            })
            .collect()
    }
}
