//! Memorisation: on a fixed set of ~256 instances a tiny BERT trained from scratch reaches
//! ≥ 90% masked-LM and ≥ 98% next-sentence accuracy on that set within a few hundred steps, and
//! every parameter moved: the gradients reach all of the model, both heads included.

use std::collections::BTreeMap;

use crate::pretrain_common::*;
use bert_model::modules::BertForPreTraining;
use bert_train::pretrain::{RunOptions, evaluate, train};
use bert_train::training::OptimizerKind;
use bert_train::training::init::init_from_scratch;
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

/// Every parameter by path, as numbers.
#[derive(Default)]
struct Values {
    path: Vec<String>,
    values: BTreeMap<String, Vec<f32>>,
}

impl ModuleVisitor for Values {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = param.val().into_data().try_to_vec_as::<f32>().unwrap();
        self.values.insert(self.path.join("."), v);
    }
}

fn values(model: &BertForPreTraining) -> BTreeMap<String, Vec<f32>> {
    let mut visitor = Values::default();
    model.visit(&mut visitor);
    visitor.values
}

#[test]
fn tiny_bert_memorises_256_instances() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let shards = build_shards(tmp.path(), 58_000, 32, 128);
    let model_dir = tiny_model_dir(tmp.path(), 128, 2, 2, 0.0, 32);
    let mut config = cpu_config(&shards, &model_dir, &tmp.path().join("ckpt"));
    config.batch_size = 32;
    config.num_steps = 300;
    config.lr = 1e-3;
    config.warmup_ratio = 0.1;
    config.optimizer = OptimizerKind::BertAdam;
    config.log_interval = 50;
    config.seed = 1;
    let summary = train(
        &config,
        &RunOptions {
            stop_after: None,
            print: true,
        },
    )
    .unwrap();

    let result = evaluate(&summary.model, &shards, 64, 1).unwrap();
    eprintln!("training-set evaluation: {result:?}");
    assert!(
        (220..=300).contains(&result.sequences),
        "{} instances",
        result.sequences
    );
    assert!(result.mlm_acc >= 0.90, "MLM accuracy {}", result.mlm_acc);
    assert!(result.nsp_acc >= 0.98, "NSP accuracy {}", result.nsp_acc);

    let bert_config = summary.config.clone();
    let before = values(&init_from_scratch(
        &bert_config,
        config.seed,
        &Device::flex(),
    ));
    let after = values(&summary.model);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (path, initial) in &before {
        assert!(
            initial != &after[path],
            "{path} did not change: no gradient reached it"
        );
    }
}
