//! One fine-tuning optimizer step, shared by `finetune-classifier` and `finetune-squad`:
//! forward and backward over accumulated micro-batches — with `--dtype float16|bfloat16` on a
//! half-precision cast of the float32 weights, float16 losses multiplied by the loss scale —
//! then the gradients unscaled and globally clipped, and the update applied unless they
//! overflowed. The pieces are pretraining's ([`crate::pretrain::precision`]).

use anyhow::{Result, ensure};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use crate::pretrain::precision::{LossScale, compute_model, scale_loss, unscale_and_clip};
pub use crate::pretrain::step::StepSettings;

/// What one step saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// The mean of the micro-batches' losses (unscaled, computed in float32).
    pub loss: f64,
    /// The global norm of the (unscaled) gradients before clipping.
    pub grad_norm: f64,
    /// float16 with loss scaling: the gradients overflowed and the update was skipped.
    pub overflowed: bool,
}

/// Step settings for `lr` under `loss_scale` (none: 1, no scaling).
pub fn step_settings(
    lr: f64,
    max_grad_norm: f64,
    precision: crate::pretrain::Precision,
    loss_scale: Option<&LossScale>,
) -> StepSettings {
    StepSettings {
        lr,
        max_grad_norm,
        precision,
        loss_scale: loss_scale.map_or(1.0, |s| s.scale),
    }
}

/// One optimizer step over `micro_batches` micro-batches: `micro_loss(compute, i)` is the loss
/// of micro-batch `i` (a float32 scalar) computed with `compute`, the model to run forward (a
/// half-precision cast of `model` under `--dtype float16|bfloat16`, `model` itself in float32).
/// The gradient is that of the mean of the micro-batch losses. A non-finite loss is an error,
/// and so is a non-finite gradient norm without loss scaling; with it the step is skipped.
pub fn accumulated_step<M: Module>(
    model: M,
    optimizer: &mut ModuleOptimizer,
    micro_batches: usize,
    settings: StepSettings,
    mut micro_loss: impl FnMut(&M, usize) -> Result<Tensor<1>>,
) -> Result<(M, StepOutcome)> {
    ensure!(micro_batches >= 1, "a step needs at least one micro-batch");
    let mut accumulator = GradientsAccumulator::<M>::new();
    let mut total = 0.0;
    for micro in 0..micro_batches {
        // A fresh cast per micro-batch: each backward consumes the graph, the casts included.
        let compute = compute_model(&model, settings.precision);
        let loss = micro_loss(&compute, micro)?;
        let value: f64 = loss.clone().into_scalar::<f32>() as f64;
        ensure!(value.is_finite(), "the loss is not finite ({value})");
        total += value;
        let loss = if micro_batches > 1 {
            loss.div_scalar(micro_batches as f64)
        } else {
            loss
        };
        let loss = scale_loss(loss, settings.loss_scale);
        // Keyed by the float32 parameters: a cast copy passes its gradients on to them.
        accumulator.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
    }
    let mut grads = accumulator.grads();
    let (grad_norm, overflowed) = unscale_and_clip(
        &model,
        &mut grads,
        settings.loss_scale,
        settings.max_grad_norm,
    )?;
    let outcome = StepOutcome {
        loss: total / micro_batches as f64,
        grad_norm,
        overflowed,
    };
    if overflowed {
        return Ok((model, outcome));
    }
    Ok((optimizer.step(settings.lr, model, grads), outcome))
}

/// After step `step`: record its outcome in the loss scale (float16), and the line to log when
/// its update was skipped.
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
