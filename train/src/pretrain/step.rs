//! One optimizer step: forward and backward over each micro-batch (gradient accumulation),
//! global-norm clipping, then the optimizer update. The trainer and the PyTorch reference test
//! both run exactly this.

use anyhow::{Result, ensure};
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};

use super::loss::{BatchStats, BatchTensors, pretraining_losses};
use super::optim::clip_global_norm;
use crate::model::BertForPreTraining;

/// What one step saw.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    /// The losses and accuracies of each micro-batch, before the update.
    pub micro_batches: Vec<BatchStats>,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Train `model` on `accumulate` micro-batches from `next_batch` (called with the micro-batch
/// index, after which the caller may reseed the backend) and apply one update at rate `lr`.
///
/// A non-finite loss or gradient norm is an error and the update is not applied.
pub fn train_step(
    model: BertForPreTraining,
    optimizer: &mut ModuleOptimizer,
    accumulate: usize,
    mut next_batch: impl FnMut(usize) -> Result<BatchTensors>,
    lr: f64,
    max_grad_norm: f64,
) -> Result<(BertForPreTraining, StepReport)> {
    let mut report = StepReport::default();
    let mut accumulator = GradientsAccumulator::<BertForPreTraining>::new();
    for micro in 0..accumulate {
        let batch = next_batch(micro)?;
        let losses = pretraining_losses(&model, &batch);
        let stats = BatchStats::read(losses.stats)?;
        ensure!(
            stats.mlm_loss.is_finite() && stats.nsp_loss.is_finite(),
            "the loss is not finite (MLM {}, NSP {})",
            stats.mlm_loss,
            stats.nsp_loss
        );
        report.micro_batches.push(stats);
        // Mean over micro-batches: the same update as one batch of them all, up to weighting.
        let loss = if accumulate > 1 {
            losses.total.div_scalar(accumulate as f64)
        } else {
            losses.total
        };
        accumulator.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
    }
    let mut grads = accumulator.grads();
    report.grad_norm = clip_global_norm(&model, &mut grads, max_grad_norm);
    ensure!(
        report.grad_norm.is_finite(),
        "the gradient norm is not finite"
    );
    Ok((optimizer.step(lr, model, grads), report))
}
