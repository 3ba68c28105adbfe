//! The fine-tuning optimizer: pretraining's BERTAdam / AdamW (weight decay on everything but
//! LayerNorm and biases) with the `--epsilon` of `finetune_classifier.py`.

use anyhow::{Result, bail};
use burn::module::ParamGroup;
use burn::optim::{AdamWConfig, ModuleOptimizer};

use crate::pretrain::OptimizerKind;
use crate::pretrain::optim::{BertAdam, NO_DECAY_PATTERNS};

const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;

/// `kind` with `weight_decay` on weights and embeddings and none on LayerNorm and biases.
pub fn build_optimizer(
    kind: OptimizerKind,
    weight_decay: f64,
    epsilon: f64,
) -> Result<ModuleOptimizer> {
    let no_decay = ParamGroup::from_any_regexes(NO_DECAY_PATTERNS.to_vec())
        .expect("NO_DECAY_PATTERNS are valid regexes");
    let (wd, eps) = (weight_decay as f32, epsilon as f32);
    Ok(match kind {
        OptimizerKind::BertAdam => {
            let bertadam = |weight_decay: f32| BertAdam {
                beta_1: BETA_1,
                beta_2: BETA_2,
                epsilon: eps,
                weight_decay,
            };
            ModuleOptimizer::from(bertadam(wd)).with_group(no_decay, bertadam(0.0), None)
        }
        OptimizerKind::AdamW => {
            let adamw = |wd: f32| {
                AdamWConfig::new()
                    .with_beta_1(BETA_1)
                    .with_beta_2(BETA_2)
                    .with_epsilon(eps)
                    .with_weight_decay(wd)
                    .build()
            };
            ModuleOptimizer::from(adamw(wd)).with_group(no_decay, adamw(0.0), None)
        }
        // Optimizers pretraining may gain later (LAMB) are not wired up for fine-tuning.
        #[allow(unreachable_patterns)]
        other => {
            bail!("--optimizer {other:?} is not supported for fine-tuning; use bertadam or adamw")
        }
    })
}
