//! `--dtype`: training in half precision as GluonNLP's `--dtype float16` does it — the model
//! computes in float16 (or bfloat16) while the optimizer keeps float32 master weights
//! (MXNet's `multi_precision`), and float16 losses are scaled dynamically so that small
//! gradients do not underflow.
//!
//! The half-precision model is a cast of the float32 parameters *inside* the autodiff graph,
//! so backward delivers float32 gradients for the master weights themselves; the losses are
//! computed from logits cast back to float32.
//!
//! Pretraining ([`super::step`]) and fine-tuning (`finetune-classifier`, `finetune-squad`)
//! share these pieces: [`compute_model`] for any module, [`to_f32`] for the logits and
//! [`check_device`] (from `bert_model::precision`, which inference uses too), [`LossScale`]
//! and [`unscale_and_clip`] for the gradients.

use anyhow::{Result, ensure};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;

use serde::{Deserialize, Serialize};

use super::optim::{clip_global_norm, scale_gradients};

pub use bert_model::precision::{Precision, check_device, compute_model, to_f32};

/// `loss` multiplied by the loss scale before backward (unchanged at scale 1).
pub fn scale_loss(loss: Tensor<1>, loss_scale: f64) -> Tensor<1> {
    if loss_scale != 1.0 {
        loss.mul_scalar(loss_scale)
    } else {
        loss
    }
}

/// The gradients of a step, ready for the optimizer: divided by `loss_scale` (when not 1), then
/// clipped to a global norm of `max_grad_norm`. Returns the norm of the unscaled gradients
/// before clipping, and whether they overflowed: a non-finite norm under loss scaling means the
/// step must be skipped (the caller halves the scale); without loss scaling it is an error.
pub fn unscale_and_clip<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    loss_scale: f64,
    max_grad_norm: f64,
) -> Result<(f64, bool)> {
    if loss_scale != 1.0 {
        scale_gradients(model, grads, 1.0 / loss_scale);
    }
    let norm = clip_global_norm(model, grads, max_grad_norm);
    if norm.is_finite() {
        return Ok((norm, false));
    }
    ensure!(loss_scale != 1.0, "the gradient norm is not finite");
    Ok((norm, true))
}

/// Dynamic loss scaling (as MXNet's and PyTorch's `GradScaler`): multiply the loss by `scale`
/// before backward; a step whose gradients overflow is skipped and halves the scale; after
/// `growth_interval` clean steps in a row the scale doubles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    pub scale: f64,
    /// Clean steps since the scale last changed.
    pub clean_steps: u64,
}

impl LossScale {
    /// MXNet's and PyTorch's defaults.
    pub const INITIAL: f64 = 65536.0;
    pub const GROWTH_INTERVAL: u64 = 2000;

    pub fn new() -> Self {
        Self {
            scale: Self::INITIAL,
            clean_steps: 0,
        }
    }

    /// Record a step's outcome; `overflowed` steps are not applied.
    pub fn update(&mut self, overflowed: bool) {
        if overflowed {
            self.scale = (self.scale / 2.0).max(1.0);
            self.clean_steps = 0;
        } else {
            self.clean_steps += 1;
            if self.clean_steps >= Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.clean_steps = 0;
            }
        }
    }
}

impl Default for LossScale {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bert_model::modules::BertForPreTraining;

    #[test]
    fn the_scale_halves_on_overflow_and_doubles_after_clean_steps() {
        let mut s = LossScale::new();
        s.update(true);
        assert_eq!(s.scale, 32768.0);
        for _ in 0..LossScale::GROWTH_INTERVAL {
            s.update(false);
        }
        assert_eq!(s.scale, 65536.0);
        assert_eq!(s.clean_steps, 0);
    }

    #[test]
    fn gradients_of_the_half_model_reach_the_float32_weights() {
        let device = Device::flex().autodiff();
        let mut config = bert_model::modules::BertConfig::new(40, 8, 1, 2);
        config.hidden_dropout_prob = 0.0;
        config.attention_probs_dropout_prob = 0.0;
        let model = BertForPreTraining::new(&config, &device).train();
        let half = compute_model(&model, Precision::Float16);
        let word = &half.bert.embeddings.word_embeddings.weight;
        assert_eq!(word.val().dtype(), burn::tensor::DType::F16);
        assert_eq!(word.id, model.bert.embeddings.word_embeddings.weight.id);

        let ids = Tensor::<2, Int>::from_ints([[2, 5, 7, 3]], &device);
        let input = bert_model::modules::BertInput {
            attention_mask: ids.ones_like(),
            token_type_ids: ids.zeros_like(),
            input_ids: ids,
        };
        let out = half.forward(input, Tensor::<1, Int>::from_ints([1, 2], &device));
        let loss = out.mlm_logits.cast(burn::tensor::FloatDType::F32).sum();
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
        let g = grads
            .get::<2>(model.bert.embeddings.word_embeddings.weight.id)
            .expect("a gradient for the float32 word embeddings");
        assert_eq!(g.dtype(), burn::tensor::DType::F32);
        assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
    }
}
