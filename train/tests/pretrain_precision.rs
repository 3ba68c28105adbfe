//! `--dtype float16|bfloat16` on burn's CPU backend: the half-precision runs follow the float32
//! run's losses closely (they compute with the same float32 master weights), float16 keeps a
//! dynamic loss scale in its checkpoints, and a step whose scaled gradients overflow is skipped
//! without touching the weights.

use bert_model::modules::{BertConfig, BertForPreTraining};
use bert_pipeline::Instance;
use bert_pipeline::loader::{BatchShape, LoaderPosition, collate};
use bert_train::pretrain::loss::BatchTensors;
use bert_train::pretrain::step::{single, train_step};
use bert_train::pretrain::{RunOptions, train};
use bert_train::training::optim::build_optimizer;
use bert_train::training::step::StepSettings;
use bert_train::training::{OptimizerKind, Precision};
use burn::module::Module;
use burn::prelude::*;

fn last_losses(
    dtype: Precision,
    pad: usize,
    dir: &std::path::Path,
) -> (f64, f64, serde_json::Value) {
    let shards = dir.join("shards");
    let model = dir.join("model");
    let ckpt = dir.join(format!("ckpt-{dtype}-{pad}"));
    let mut config = crate::pretrain_common::cpu_config(&shards, &model, &ckpt);
    // Two micro-batches of 4 per step: each needs its own cast of the weights (a backward
    // consumes the graph, casts included).
    config.batch_size = 4;
    config.accumulate = 2;
    config.num_steps = 8;
    config.lr = 1e-3;
    config.ckpt_interval = 8;
    config.dtype = dtype;
    config.pad_to_multiple_of = Some(pad);
    let quiet = RunOptions {
        stop_after: None,
        print: false,
    };
    let summary = train(&config, &quiet).unwrap();
    let row = summary.last_metrics.unwrap();
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ckpt.join("step-00000008/state.json")).unwrap(),
    )
    .unwrap();
    (row.mlm_loss, row.nsp_loss, state)
}

#[test]
fn half_precision_runs_follow_the_float32_run() {
    let _turn = crate::common::rng_turn();
    let dir = tempfile::tempdir().unwrap();
    crate::pretrain_common::build_shards(dir.path(), 20_000, 64, 1000);
    crate::pretrain_common::tiny_model_dir(dir.path(), 32, 2, 2, 0.0, 64);

    let (mlm32, nsp32, state32) = last_losses(Precision::Float32, 1, dir.path());
    assert!(state32.get("loss_scale").is_none(), "{state32}");
    for dtype in [Precision::Float16, Precision::BFloat16] {
        let (mlm, nsp, state) = last_losses(dtype, 1, dir.path());
        eprintln!("{dtype}: mlm {mlm:.5} (float32 {mlm32:.5}), nsp {nsp:.5} (float32 {nsp32:.5})");
        // float16 rounds to ~1e-3, bfloat16 to ~8e-3 per operation.
        assert!(
            (mlm - mlm32).abs() / mlm32 < 1e-2,
            "{dtype}: {mlm} vs {mlm32}"
        );
        assert!(
            (nsp - nsp32).abs() / nsp32 < 2e-2,
            "{dtype}: {nsp} vs {nsp32}"
        );
        assert_eq!(
            state.get("loss_scale").is_some(),
            dtype == Precision::Float16,
            "{state}"
        );
    }
}

/// What GPU backends do by default (`--pad-to-multiple-of 32`: lengths rounded up, every row
/// with `max_predictions_per_seq` prediction slots) is masked padding: same losses.
#[test]
fn batches_padded_to_fixed_shapes_give_the_same_losses() {
    let _turn = crate::common::rng_turn();
    let dir = tempfile::tempdir().unwrap();
    crate::pretrain_common::build_shards(dir.path(), 20_000, 64, 1000);
    crate::pretrain_common::tiny_model_dir(dir.path(), 32, 2, 2, 0.0, 64);
    let (mlm, nsp, _) = last_losses(Precision::Float32, 1, dir.path());
    let (mlm_padded, nsp_padded, _) = last_losses(Precision::Float32, 32, dir.path());
    assert!(
        (mlm - mlm_padded).abs() / mlm < 1e-4,
        "{mlm} vs {mlm_padded}"
    );
    assert!(
        (nsp - nsp_padded).abs() / nsp < 1e-4,
        "{nsp} vs {nsp_padded}"
    );
}

#[test]
fn an_overflowing_float16_step_is_skipped() {
    let _turn = crate::common::rng_turn();
    let device = Device::flex().autodiff();
    let mut config = BertConfig::new(40, 16, 1, 2);
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let model = BertForPreTraining::new(&config, &device).train();
    let row = Instance {
        input_ids: vec![2, 4, 9, 3, 11, 12, 3],
        segment_ids: vec![0, 0, 0, 0, 1, 1, 1],
        masked_lm_positions: vec![1],
        masked_lm_ids: vec![7],
        next_sentence_label: 0,
    };
    let batch = collate(
        &[row],
        0,
        BatchShape::EXACT,
        usize::MAX,
        LoaderPosition::default(),
    );
    let tensors = BatchTensors::from_batch(&batch, 40, &device).unwrap();
    let before = model
        .cls
        .predictions
        .transform
        .dense
        .weight
        .val()
        .into_data();
    let mut optimizer = build_optimizer(OptimizerKind::BertAdam, 0.01);
    let settings = StepSettings {
        lr: 1e-2,
        max_grad_norm: 1.0,
        precision: Precision::Float16,
        // float16 tops out at 65504: gradients this large become infinite.
        loss_scale: 1e30,
    };
    let (model, report) = train_step(
        model,
        &mut optimizer,
        single(&device, tensors.clone(), 0),
        settings,
    )
    .unwrap();
    assert!(report.overflowed);
    assert_eq!(
        model
            .cls
            .predictions
            .transform
            .dense
            .weight
            .val()
            .into_data(),
        before
    );

    // At a sane scale the same step goes through.
    let settings = StepSettings {
        loss_scale: 1024.0,
        ..settings
    };
    let (model, report) =
        train_step(model, &mut optimizer, single(&device, tensors, 0), settings).unwrap();
    assert!(!report.overflowed && report.grad_norm.is_finite() && report.grad_norm > 0.0);
    assert_ne!(
        model
            .cls
            .predictions
            .transform
            .dense
            .weight
            .val()
            .into_data(),
        before
    );
}
