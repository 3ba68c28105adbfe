//! BERT's initialisation for training from scratch: every weight matrix and embedding
//! ~ N(0, initializer_range), biases 0, LayerNorm scale 1 and shift 0 (HF's `_init_weights`).
//!
//! burn's defaults differ (Kaiming-uniform linears, N(0, 1) embeddings); N(0, 1) embeddings,
//! tied to the MLM decoder, make the first logits huge. Drawn from the backend's generator after
//! seeding it, so an initialisation is a function of `--seed`.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

use bert_model::modules::{BertConfig, BertForPreTraining};

struct BertInit {
    path: Vec<String>,
    std: f64,
}

impl ModuleMapper for BertInit {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let n = self.path.len();
        let leaf = self.path.last().map(String::as_str).unwrap_or("");
        let parent = if n >= 2 {
            self.path[n - 2].as_str()
        } else {
            ""
        };
        let std = self.std;
        param.map(|t| {
            let (shape, device) = (t.shape(), t.device());
            match (parent, leaf) {
                ("layer_norm", "gamma") => Tensor::ones(shape, &device),
                (_, "bias") | ("layer_norm", "beta") => Tensor::zeros(shape, &device),
                _ => Tensor::random(shape, Distribution::Normal(0.0, std), &device),
            }
        })
    }
}

/// A freshly initialised `BertForPreTraining` on `device`, drawn with `seed`.
///
/// The CPU backend's generator is process-wide: concurrent draws in other threads (parallel
/// tests) change what is drawn here.
///
/// On an autodiff device, call `Module::train` before training: replacing a parameter's value
/// keeps its configured gradient setting but not the new tensor's tracking.
pub fn init_from_scratch(config: &BertConfig, seed: u64, device: &Device) -> BertForPreTraining {
    device.seed(seed);
    let mut model = BertForPreTraining::new(config, device).map(&mut BertInit {
        path: Vec::new(),
        std: config.initializer_range,
    });
    // HF zeroes the padding token's embedding row.
    let (pad, hidden) = (config.pad_token_id, config.hidden_size);
    if pad < config.vocab_size {
        let weight = &mut model.bert.embeddings.word_embeddings.weight;
        *weight = weight.clone().map(|w| {
            let device = w.device();
            w.slice_assign(
                [pad..pad + 1, 0..hidden],
                Tensor::zeros([1, hidden], &device),
            )
        });
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(t: Tensor<2>) -> (f32, f32) {
        let v = t.into_data().try_to_vec::<f32>().unwrap();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
        (mean, var.sqrt())
    }

    #[test]
    fn weights_are_normal_biases_zero_and_norms_identity() {
        let config = BertConfig::new(400, 32, 1, 2);
        let device = Device::flex();
        let model = init_from_scratch(&config, 7, &device);
        let (mean, std) = stats(model.bert.embeddings.word_embeddings.weight.val());
        assert!(
            mean.abs() < 0.002 && (std - 0.02).abs() < 0.002,
            "{mean} {std}"
        );
        let (_, std) = stats(model.bert.encoder.layer[0].intermediate.dense.weight.val());
        assert!((std - 0.02).abs() < 0.003, "{std}");
        let pad_row = model
            .bert
            .embeddings
            .word_embeddings
            .weight
            .val()
            .slice([0..1, 0..32]);
        assert_eq!(pad_row.abs().sum().into_scalar::<f32>(), 0.0);
        let bias = model
            .cls
            .predictions
            .bias
            .val()
            .abs()
            .sum()
            .into_scalar::<f32>();
        assert_eq!(bias, 0.0);
        let ln = &model.bert.embeddings.layer_norm;
        assert_eq!(ln.gamma.val().sum().into_scalar::<f32>(), 32.0);
    }
}
