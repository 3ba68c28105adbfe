//! The optimizers of BERT pretraining, on burn-optim's `ModuleOptimizer`:
//!
//! - BERTAdam (GluonNLP, Google's BERT): Adam with decoupled weight decay and *no* bias
//!   correction. burn-optim's `AdamW` always corrects the bias, so this is the one optimizer
//!   written here; its state is burn-optim's own `AdaptiveMomentumState`, so it saves and loads
//!   like every burn optimizer.
//! - AdamW: burn-optim's, with bias correction, as PyTorch's.
//! - LAMB: burn-optim's, which is GluonNLP's `lamb` (bias-corrected moments, decoupled weight
//!   decay inside the update, per-tensor trust ratio `|w| / |update|`, 1 where either is 0).
//!
//! All three decay every parameter except LayerNorm's and the biases (a second parameter group with
//! weight decay 0), and gradients are clipped to a global L2 norm first: burn-optim's
//! `GradientClipping::Norm` clips each tensor on its own, which is not what BERT does.

use anyhow::bail;
use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::optim::{
    AdamWConfig, AdaptiveMomentumState, GradientsParams, LambConfig, LearningRate, ModuleOptimizer,
    Optimizer,
};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// GluonNLP's BERTAdam: AdamW without bias correction (as Google's BERT).
    BertAdam,
    /// AdamW with bias correction (PyTorch's / HuggingFace's).
    AdamW,
    /// LAMB (You et al. 2019, GluonNLP's `lamb`): the bias-corrected Adam update plus weight
    /// decay, scaled per tensor by the trust ratio `|w| / |update|`.
    Lamb,
}

impl core::str::FromStr for OptimizerKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bertadam" => Ok(Self::BertAdam),
            "adamw" => Ok(Self::AdamW),
            "lamb" => Ok(Self::Lamb),
            other => bail!("unknown --optimizer {other:?}; expected bertadam, adamw or lamb"),
        }
    }
}

/// Adam's moment estimates, as BERT uses them.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
/// GluonNLP's BERTAdam and Google's BERT use 1e-6.
pub const EPSILON: f32 = 1e-6;

/// Parameters without weight decay: LayerNorm's `gamma`/`beta` and every bias.
pub const NO_DECAY_PATTERNS: [&str; 2] = [r"(^|\.)layer_norm\.(gamma|beta)$", r"(^|\.)bias$"];

/// GluonNLP's BERTAdam: `w -= lr * (m / (sqrt(v) + eps) + wd * w)`, without bias correction.
#[derive(Debug, Clone, Copy)]
pub struct BertAdam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub weight_decay: f32,
}

impl BertAdam {
    pub fn new(weight_decay: f32) -> Self {
        Self {
            beta_1: BETA_1,
            beta_2: BETA_2,
            epsilon: EPSILON,
            weight_decay,
        }
    }
}

impl Optimizer for BertAdam {
    type State<const D: usize> = AdaptiveMomentumState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (b1, b2) = (self.beta_1, self.beta_2);
        let state = match state {
            Some(mut s) => {
                s.moment_1 = s.moment_1.mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1);
                s.moment_2 = s.moment_2.mul_scalar(b2) + grad.square().mul_scalar(1.0 - b2);
                s.time += 1;
                s
            }
            None => AdaptiveMomentumState::new(
                1,
                grad.clone().mul_scalar(1.0 - b1),
                grad.square().mul_scalar(1.0 - b2),
            ),
        };
        let mut update =
            state.moment_1.clone() / state.moment_2.clone().sqrt().add_scalar(self.epsilon);
        if self.weight_decay != 0.0 {
            update = update + tensor.clone().mul_scalar(self.weight_decay);
        }
        (tensor - update.mul_scalar(lr), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.to_device(device)
    }
}

/// The optimizer for `kind`: `weight_decay` on weights and embeddings, none on LayerNorm
/// parameters and biases; ε = 1e-6.
pub fn build_optimizer(kind: OptimizerKind, weight_decay: f64) -> ModuleOptimizer {
    build_optimizer_with_epsilon(kind, weight_decay, EPSILON as f64)
}

/// [`build_optimizer`] with another ε (fine-tuning's `--epsilon`).
pub fn build_optimizer_with_epsilon(
    kind: OptimizerKind,
    weight_decay: f64,
    epsilon: f64,
) -> ModuleOptimizer {
    // The patterns are constants, known to compile.
    let no_decay = ParamGroup::from_any_regexes(NO_DECAY_PATTERNS.to_vec())
        .expect("NO_DECAY_PATTERNS are valid regexes");
    let (wd, eps) = (weight_decay as f32, epsilon as f32);
    match kind {
        OptimizerKind::BertAdam => {
            let bertadam = |weight_decay: f32| BertAdam {
                epsilon: eps,
                ..BertAdam::new(weight_decay)
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
        OptimizerKind::Lamb => {
            let lamb = |wd: f32| {
                LambConfig::new()
                    .with_beta_1(BETA_1)
                    .with_beta_2(BETA_2)
                    .with_epsilon(eps)
                    .with_weight_decay(wd)
                    .build()
            };
            ModuleOptimizer::from(lamb(wd)).with_group(no_decay, lamb(0.0), None)
        }
    }
}

/// Sum of squares of every gradient of `module`'s parameters.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let sq = g.square().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + sq,
                None => sq,
            });
        }
    }
}

/// Multiplies every gradient by one scalar tensor.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: Tensor<1>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads
                .register::<D>(param.id, g * self.factor.clone().unsqueeze::<D>());
        }
    }
}

/// Multiply every gradient by `factor` (undoing a loss scale).
pub fn scale_gradients<M: Module>(module: &M, grads: &mut GradientsParams, factor: f64) {
    let device = match module.devices().first() {
        Some(d) => d.clone(),
        None => return,
    };
    let factor = Tensor::<1>::from_floats([factor as f32], &device.without_autodiff());
    module.visit(&mut Scale { grads, factor });
}

/// Rescale `grads` so that their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: factor `max_norm / (norm + 1e-6)`, capped at 1). Returns the norm before
/// clipping. The rescaling stays on the device; only the norm is read back.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let mut norm = SquaredNorm { grads, total: None };
    module.visit(&mut norm);
    let Some(total) = norm.total else {
        return 0.0;
    };
    let norm = total.sqrt();
    let factor = (norm.clone().add_scalar(1e-6).recip() * max_norm).clamp_max(1.0);
    module.visit(&mut Scale { grads, factor });
    norm.into_scalar::<f32>() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::ModuleVisitor;

    /// Every parameter path of a model, split into decayed / not decayed, as the optimizer
    /// groups them.
    struct Paths {
        path: Vec<String>,
        decayed: Vec<String>,
        not_decayed: Vec<String>,
        group: ParamGroup,
    }

    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let path = self.path.join(".");
            if self.group.matches(&param.id, Some(&path)) {
                self.not_decayed.push(path);
            } else {
                self.decayed.push(path);
            }
        }
    }

    #[test]
    fn layer_norms_and_biases_are_not_decayed() {
        let config = bert_model::modules::BertConfig::new(50, 8, 1, 2);
        let model = bert_model::modules::BertForPreTraining::new(&config, &Device::flex());
        let mut paths = Paths {
            path: vec![],
            decayed: vec![],
            not_decayed: vec![],
            group: ParamGroup::from_any_regexes(NO_DECAY_PATTERNS.to_vec()).unwrap(),
        };
        model.visit(&mut paths);
        assert!(
            paths
                .not_decayed
                .iter()
                .all(|p| p.ends_with("bias") || p.contains("layer_norm.")),
            "{:?}",
            paths.not_decayed
        );
        assert!(
            paths.decayed.iter().all(|p| p.ends_with("weight")),
            "{:?}",
            paths.decayed
        );
        assert!(
            paths
                .not_decayed
                .contains(&"cls.predictions.bias".to_string())
        );
        assert!(
            paths
                .not_decayed
                .contains(&"bert.embeddings.layer_norm.gamma".to_string())
        );
        // 3 embeddings + 6 linear weights per layer + pooler, transform and NSP weights.
        assert_eq!(paths.decayed.len(), 3 + 6 + 3, "{:?}", paths.decayed);
    }

    #[test]
    fn bertadam_has_no_bias_correction() {
        let device = Device::flex();
        let opt = BertAdam::new(0.0);
        let w = Tensor::<1>::from_floats([1.0, -1.0], &device);
        let g = Tensor::<1>::from_floats([0.5, 0.5], &device);
        let (w1, state) = opt.step(0.1, w, g, None);
        // m = 0.05, v = 0.00025: update = 0.05 / (0.0158 + 1e-6) = 3.162 (Adam with bias
        // correction would step by ~1).
        let w1 = w1.into_data().try_to_vec::<f32>().unwrap();
        let step = 0.05 / (0.00025f32.sqrt() + 1e-6);
        assert!((w1[0] - (1.0 - 0.1 * step)).abs() < 1e-5, "{w1:?}");
        assert_eq!(state.unwrap().time, 1);
    }

    #[test]
    fn bertadam_decays_weights_decoupled() {
        let device = Device::flex();
        let opt = BertAdam::new(0.5);
        let w = Tensor::<1>::from_floats([2.0], &device);
        let g = Tensor::<1>::from_floats([0.0], &device);
        let (w1, _) = opt.step(0.1, w, g, None);
        let w1 = w1.into_data().try_to_vec::<f32>().unwrap()[0];
        assert!((w1 - (2.0 - 0.1 * 0.5 * 2.0)).abs() < 1e-6, "{w1}");
    }

    #[test]
    fn clipping_rescales_to_the_global_norm() {
        let device = Device::flex().autodiff();
        let lin = burn::nn::LinearConfig::new(2, 1).init(&device);
        let x = Tensor::<2>::from_floats([[3.0, 4.0]], &device);
        // d/dw = x = (3, 4), d/db = 1: global norm sqrt(26).
        let grads = lin.forward(x).sum().backward();
        let mut grads = GradientsParams::from_grads(grads, &lin);
        let norm = clip_global_norm(&lin, &mut grads, 1.0);
        assert!((norm - 26f64.sqrt()).abs() < 1e-5, "{norm}");
        let w = grads
            .get::<2>(lin.weight.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = grads
            .get::<1>(lin.bias.as_ref().unwrap().id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let clipped: f32 = w.iter().chain(&b).map(|v| v * v).sum::<f32>().sqrt();
        assert!((clipped - 1.0).abs() < 1e-4, "{clipped}");
        // Under the limit nothing changes.
        let mut again = GradientsParams::new();
        again.register::<1>(
            lin.bias.as_ref().unwrap().id,
            Tensor::from_floats([0.5], &device.clone().without_autodiff()),
        );
        assert!((clip_global_norm(&lin, &mut again, 1.0) - 0.5).abs() < 1e-6);
        let b = again
            .get::<1>(lin.bias.as_ref().unwrap().id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(b, [0.5]);
    }
}
