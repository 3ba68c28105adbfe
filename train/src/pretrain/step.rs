//! One optimizer step: forward and backward over every micro-batch of every data-parallel rank,
//! global-norm clipping, then the optimizer update. The trainer and the PyTorch reference test
//! both run exactly this.
//!
//! Data parallelism is burn-train's `MultiDevice` strategy ("optimizer on the main device"),
//! on our own loop: each rank forwards and backwards a fork of the model on its own device,
//! its gradients are moved to the main device (`GradientsParams::to_device`) and summed there
//! (`GradientsAccumulator`); clipping and the update run once, on the main device. Ranks on
//! distinct devices run in parallel threads; ranks that share a device (burn's CPU backend has
//! one) run in turn, which keeps their dropout draws deterministic.
//!
//! With `--dtype float16|bfloat16` each rank computes with a half-precision cast of the
//! float32 weights ([`super::precision`]); float16 losses are multiplied by the loss scale, the
//! summed gradients divided by it, and a step whose gradients overflowed is skipped.
//!
//! The losses are normalised by the whole step's counts (masked tokens, sequences), not each
//! micro-batch's: R ranks × A micro-batches of B sequences then give the same update as one
//! batch of R·A·B, which is what the data-parallel test checks.

use anyhow::{Result, anyhow, ensure};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::loss::{BatchStats, BatchTensors, StepTotals, pretraining_losses_in_step};
use super::precision::{Precision, compute_model, scale_loss, unscale_and_clip};
use bert_model::modules::BertForPreTraining;

/// A micro-batch on its rank's device, with the seed of its dropout draws.
#[derive(Debug, Clone)]
pub struct MicroBatch {
    pub tensors: BatchTensors,
    pub seed: u64,
}

/// What one step saw.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    /// The losses and accuracies of each micro-batch (rank by rank), before the update.
    pub micro_batches: Vec<BatchStats>,
    /// The global gradient norm before clipping (of the unscaled gradients).
    pub grad_norm: f64,
    /// float16 with loss scaling: the gradients overflowed and the update was skipped.
    pub overflowed: bool,
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
}

/// One rank's share of a step: its device and its micro-batches (already on that device).
pub struct RankWork {
    pub device: Device,
    pub batches: Vec<MicroBatch>,
}

/// Forward and backward `batches` on `device` with a fork of `model`; the summed gradients,
/// moved to `main`, and the micro-batch statistics.
fn rank_gradients(
    model: &BertForPreTraining,
    work: RankWork,
    totals: StepTotals,
    main: &Device,
    settings: StepSettings,
) -> Result<(GradientsParams, Vec<BatchStats>)> {
    let model = if &work.device == main {
        model.clone()
    } else {
        model.clone().fork(&work.device)
    };
    // The statistics stay on the device until every micro-batch is queued: one read-back per
    // rank and step, not one per micro-batch (each read waits for the GPU to drain).
    let mut pending = Vec::with_capacity(work.batches.len());
    let mut accumulator = GradientsAccumulator::<BertForPreTraining>::new();
    for batch in work.batches {
        work.device.seed(batch.seed);
        // A fresh cast per micro-batch: each backward consumes the graph, the casts included
        // (burn has no retain_graph), so a second micro-batch cannot reuse the first's.
        let compute = compute_model(&model, settings.precision);
        let losses = pretraining_losses_in_step(&compute, &batch.tensors, totals);
        pending.push(losses.stats);
        let loss = scale_loss(losses.total, settings.loss_scale);
        // Keyed by the float32 parameters: the cast copies pass their gradients on to them.
        accumulator.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
    }
    let stats = BatchStats::read_many(Tensor::cat(pending, 0))?;
    for s in &stats {
        ensure!(
            s.mlm_loss.is_finite() && s.nsp_loss.is_finite(),
            "the loss is not finite (MLM {}, NSP {})",
            s.mlm_loss,
            s.nsp_loss
        );
    }
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
/// A non-finite loss is an error, and so is a non-finite gradient norm without loss scaling;
/// with it, that step is skipped (`overflowed`). Either way the update is not applied.
pub fn train_step(
    model: BertForPreTraining,
    optimizer: &mut ModuleOptimizer,
    ranks: Vec<RankWork>,
    settings: StepSettings,
) -> Result<(BertForPreTraining, StepReport)> {
    ensure!(!ranks.is_empty(), "a step needs at least one rank");
    let totals = StepTotals::of(
        ranks
            .iter()
            .flat_map(|r| r.batches.iter().map(|b| &b.tensors)),
    );
    let main = ranks[0].device.clone();
    let parallel = ranks.len() > 1 && distinct(ranks.iter().map(|r| &r.device));

    let results: Vec<Result<(GradientsParams, Vec<BatchStats>)>> = if parallel {
        std::thread::scope(|scope| {
            let handles: Vec<_> = ranks
                .into_iter()
                .map(|work| {
                    let (model, main) = (&model, &main);
                    scope.spawn(move || rank_gradients(model, work, totals, main, settings))
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
            .map(|work| rank_gradients(&model, work, totals, &main, settings))
            .collect()
    };

    let mut report = StepReport::default();
    let mut accumulator = GradientsAccumulator::<BertForPreTraining>::new();
    for result in results {
        let (grads, stats) = result?;
        accumulator.accumulate(&model, grads);
        report.micro_batches.extend(stats);
    }
    let mut grads = accumulator.grads();
    (report.grad_norm, report.overflowed) = unscale_and_clip(
        &model,
        &mut grads,
        settings.loss_scale,
        settings.max_grad_norm,
    )?;
    if report.overflowed {
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

/// A single rank, a single micro-batch: the step of the reference tests.
pub fn single(device: &Device, tensors: BatchTensors, seed: u64) -> Vec<RankWork> {
    vec![RankWork {
        device: device.clone(),
        batches: vec![MicroBatch { tensors, seed }],
    }]
}
