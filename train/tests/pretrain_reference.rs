//! bert-train's training step against PyTorch: the same initial weights (a transformers
//! `BertForPreTraining`, loaded through our HF importer), the same batch, no dropout. The MLM
//! and NSP losses at step 0 and after each of 10 steps, and the gradient norms, equal
//! PyTorch's within 1e-3 relative, with AdamW (torch.optim.AdamW), and with BERTAdam and LAMB
//! (GluonNLP's updates written out in PyTorch).
//!
//! The fixture is made by `train/scripts/make_pretrain_reference.py`.

use std::path::PathBuf;

use bert_model::checkpoint::load_pretraining_dir;
use bert_pipeline::Instance;
use bert_pipeline::loader::{BatchShape, LoaderPosition, collate};
use bert_train::pretrain::loss::{BatchStats, BatchTensors, pretraining_losses};
use bert_train::pretrain::step::{single, train_step};
use bert_train::training::OptimizerKind;
use bert_train::training::optim::build_optimizer;
use bert_train::training::schedule::LinearSchedule;
use bert_train::training::step::StepSettings;
use burn::module::Module;
use burn::prelude::*;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pretrain_reference")
}

/// Asserts 1e-3 relative agreement; returns the relative difference.
fn close(what: &str, ours: f64, theirs: f64) -> f64 {
    let rel = (ours - theirs).abs() / theirs.abs().max(1e-12);
    assert!(
        rel <= 1e-3,
        "{what}: ours {ours}, PyTorch {theirs} (relative {rel:.2e})"
    );
    rel
}

/// Train with `kind` for the fixture's steps and compare with its run named `name`.
fn compare_with_pytorch(kind: OptimizerKind, name: &str) {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("reference.json")).unwrap(),
    )
    .unwrap();
    let device = Device::flex().autodiff();
    let (model, config, _) = load_pretraining_dir(&fixture_dir(), &device).unwrap();
    assert_eq!(config.hidden_dropout_prob, 0.0);
    let mut model = model.train();

    let rows: Vec<Instance> = reference["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let u32s = |k: &str| -> Vec<u32> {
                r[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect()
            };
            Instance {
                input_ids: u32s("input_ids"),
                segment_ids: u32s("segment_ids").iter().map(|&s| s as u8).collect(),
                masked_lm_positions: u32s("masked_positions").iter().map(|&p| p as u16).collect(),
                masked_lm_ids: u32s("masked_ids"),
                next_sentence_label: r["next_sentence_label"].as_u64().unwrap() as u8,
            }
        })
        .collect();
    let pad_id = reference["pad_id"].as_u64().unwrap() as u32;
    let batch = collate(
        &rows,
        pad_id,
        BatchShape::EXACT,
        usize::MAX,
        LoaderPosition::default(),
    );
    // One row has fewer masked tokens than the others: its padding prediction must not count.
    assert!(batch.masked_weights.contains(&0.0));
    let tensors = BatchTensors::from_batch(&batch, config.vocab_size, &device).unwrap();

    let opt = &reference["optimizer"];
    let schedule = LinearSchedule::new(
        reference[name]["base_lr"].as_f64().unwrap(),
        opt["warmup_ratio"].as_f64().unwrap(),
        opt["num_steps"].as_u64().unwrap(),
    );
    let mut optimizer = build_optimizer(kind, opt["weight_decay"].as_f64().unwrap());
    let steps = reference[name]["steps"].as_array().unwrap();
    let mut worst: f64 = 0.0;
    let lrs = reference[name]["lrs"].as_array().unwrap();
    for (i, expected) in steps.iter().take(lrs.len()).enumerate() {
        let lr = schedule.lr(i as u64 + 1);
        close(
            &format!("learning rate of step {}", i + 1),
            lr,
            lrs[i].as_f64().unwrap(),
        );
        let (updated, report) = train_step(
            model,
            &mut optimizer,
            single(&device, tensors.clone(), 0),
            StepSettings::float32(lr, 1.0),
        )
        .unwrap();
        model = updated;
        let stats = report.micro_batches[0];
        let n = i + 1;
        for (what, ours, key) in [
            ("MLM loss before step", stats.mlm_loss, "mlm_loss"),
            ("NSP loss before step", stats.nsp_loss, "nsp_loss"),
            ("gradient norm of step", report.grad_norm, "grad_norm"),
        ] {
            let theirs = expected[key].as_f64().unwrap();
            worst = worst.max(close(&format!("{what} {n}"), ours, theirs));
        }
    }
    let last = steps.last().unwrap();
    let stats = BatchStats::read(
        pretraining_losses(&model.valid(), &{
            let plain = device.clone().without_autodiff();
            BatchTensors::from_batch(&batch, config.vocab_size, &plain).unwrap()
        })
        .stats,
    )
    .unwrap();
    close(
        "MLM loss after 10 steps",
        stats.mlm_loss,
        last["mlm_loss"].as_f64().unwrap(),
    );
    close(
        "NSP loss after 10 steps",
        stats.nsp_loss,
        last["nsp_loss"].as_f64().unwrap(),
    );
    eprintln!("{name}: largest relative difference from PyTorch over the steps: {worst:.2e}");
    // The steps changed the losses by far more than the tolerance: the comparison has teeth.
    let first = steps[0]["mlm_loss"].as_f64().unwrap();
    assert!(
        (first - stats.mlm_loss) / first > 0.05,
        "{first} -> {}",
        stats.mlm_loss
    );
}

#[test]
fn adamw_steps_equal_pytorch() {
    let _turn = crate::common::rng_turn();
    compare_with_pytorch(OptimizerKind::AdamW, "adamw");
}

#[test]
fn bertadam_steps_equal_pytorch() {
    let _turn = crate::common::rng_turn();
    compare_with_pytorch(OptimizerKind::BertAdam, "bertadam");
}

#[test]
fn lamb_steps_equal_pytorch() {
    let _turn = crate::common::rng_turn();
    compare_with_pytorch(OptimizerKind::Lamb, "lamb");
}
