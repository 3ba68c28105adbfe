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
//! The losses are normalised by the whole step's counts (masked tokens, sequences), not each
//! micro-batch's: R ranks × A micro-batches of B sequences then give the same update as one
//! batch of R·A·B, which is what the data-parallel test checks.

use anyhow::{Result, anyhow, ensure};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::loss::{BatchStats, BatchTensors, StepTotals, pretraining_losses_in_step};
use super::optim::clip_global_norm;
use crate::model::BertForPreTraining;

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
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
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
) -> Result<(GradientsParams, Vec<BatchStats>)> {
    let model = if &work.device == main {
        model.clone()
    } else {
        model.clone().fork(&work.device)
    };
    let mut stats = Vec::with_capacity(work.batches.len());
    let mut accumulator = GradientsAccumulator::<BertForPreTraining>::new();
    for batch in work.batches {
        work.device.seed(batch.seed);
        let losses = pretraining_losses_in_step(&model, &batch.tensors, totals);
        let s = BatchStats::read(losses.stats)?;
        ensure!(
            s.mlm_loss.is_finite() && s.nsp_loss.is_finite(),
            "the loss is not finite (MLM {}, NSP {})",
            s.mlm_loss,
            s.nsp_loss
        );
        stats.push(s);
        accumulator.accumulate(
            &model,
            GradientsParams::from_grads(losses.total.backward(), &model),
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
/// apply one update at rate `lr`.
///
/// A non-finite loss or gradient norm is an error and the update is not applied.
pub fn train_step(
    model: BertForPreTraining,
    optimizer: &mut ModuleOptimizer,
    ranks: Vec<RankWork>,
    lr: f64,
    max_grad_norm: f64,
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
                    scope.spawn(move || rank_gradients(model, work, totals, main))
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
            .map(|work| rank_gradients(&model, work, totals, &main))
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
    report.grad_norm = clip_global_norm(&model, &mut grads, max_grad_norm);
    ensure!(
        report.grad_norm.is_finite(),
        "the gradient norm is not finite"
    );
    Ok((optimizer.step(lr, model, grads), report))
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
