//! The fine-tuning optimizer: pretraining's BERTAdam / AdamW / LAMB (weight decay on everything
//! but LayerNorm and biases) with the `--epsilon` of `finetune_classifier.py`.

use anyhow::Result;
use burn::optim::ModuleOptimizer;

use crate::pretrain::OptimizerKind;
use crate::pretrain::optim::build_optimizer_with_epsilon;

/// `kind` with `weight_decay` on weights and embeddings and none on LayerNorm and biases
/// (`--epsilon` is checked with the other flags, in `ClassifierConfig::validate`).
pub fn build_optimizer(
    kind: OptimizerKind,
    weight_decay: f64,
    epsilon: f64,
) -> Result<ModuleOptimizer> {
    Ok(build_optimizer_with_epsilon(kind, weight_decay, epsilon))
}
