//! Fine-tuning with `--dtype float16|bfloat16` on burn's CPU backend: the half-precision steps
//! of a small random classifier follow the float32 steps' losses closely (both compute from
//! the same float32 master weights), the STS-B regression loss too, and a float16 step whose
//! scaled gradients overflow is skipped without touching the weights.

use bert_model::modules::{BertConfig, BertForSequenceClassification};
use bert_train::finetune::classifier::train_step;
use bert_train::finetune::features::{ClassifierBatch, Feature};
use bert_train::tasks::glue::Label;
use bert_train::training::optim::build_optimizer_with_epsilon as build_optimizer;
use bert_train::training::precision::LossScale;
use bert_train::training::step::{StepSettings, after_step, single_rank};
use bert_train::training::{OptimizerKind, Precision};
use burn::module::Module;
use burn::prelude::*;

const STEPS: usize = 6;
const LR: f64 = 1e-3;

/// A 2-layer, 64-wide classifier with dropout off (deterministic steps).
fn tiny_model(num_labels: usize, device: &Device) -> BertForSequenceClassification {
    let mut config = BertConfig::new(120, 64, 2, 2);
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    device.seed(7);
    BertForSequenceClassification::new(&config, num_labels, device).train()
}

/// Four sentence pairs of different lengths (padding), with `label(i)`.
fn features(label: impl Fn(usize) -> Label) -> Vec<Feature> {
    let rows: [(&[u32], usize); 4] = [
        (&[1, 20, 21, 22, 23, 2, 30, 31, 32, 2], 6),
        (&[1, 40, 2, 41, 2], 3),
        (&[1, 50, 51, 52, 2, 60, 61, 62, 2], 5),
        (&[1, 70, 2, 71, 2], 3),
    ];
    rows.iter()
        .enumerate()
        .map(|(i, (ids, segment_a))| Feature {
            input_ids: ids.to_vec(),
            token_type_ids: (0..ids.len()).map(|j| u32::from(j >= *segment_a)).collect(),
            label: Some(label(i)),
        })
        .collect()
}

fn settings(precision: Precision, loss_scale: f64) -> StepSettings {
    StepSettings {
        lr: LR,
        max_grad_norm: 1.0,
        precision,
        loss_scale,
    }
}

/// The losses of `STEPS` BERTAdam steps on `features` (two micro-batches of two rows each, so
/// that accumulation is exercised), from the same initial weights, and the number of float16
/// steps skipped on overflow. A skipped step is tried again at the halved loss scale, as the
/// trainer's next step would be, so that the steps stay comparable with float32's.
fn losses(
    model: &BertForSequenceClassification,
    features: &[Feature],
    precision: Precision,
    device: &Device,
) -> (Vec<f64>, usize) {
    let mut model = model.clone();
    let mut optimizer = build_optimizer(OptimizerKind::BertAdam, 0.01, 1e-6);
    let mut scale = precision.needs_loss_scaling().then(LossScale::new);
    let (mut out, mut skipped) = (Vec::new(), 0);
    while out.len() < STEPS {
        let batches = features
            .chunks(2)
            .map(|rows| ClassifierBatch::new(&rows.iter().collect::<Vec<_>>(), 0, device).unwrap())
            .collect();
        let loss_scale = scale.map_or(1.0, |s| s.scale);
        let (next, outcome) = train_step(
            model,
            &mut optimizer,
            single_rank(device, batches, |_| None),
            settings(precision, loss_scale),
        )
        .unwrap();
        model = next;
        if after_step(&mut scale, out.len() as u64 + 1, &outcome).is_some() {
            skipped += 1;
            assert!(skipped < 20, "{precision}: the loss scale does not settle");
            continue;
        }
        assert!(outcome.grad_norm.is_finite() && outcome.grad_norm > 0.0);
        out.push(outcome.loss);
    }
    // The master weights stay float32.
    assert_eq!(
        model.classifier.weight.val().dtype(),
        burn::tensor::DType::F32
    );
    (out, skipped)
}

/// float16 keeps 11 significant bits (relative rounding 2^-11 ≈ 5e-4 per operation),
/// bfloat16 8 (2^-8 ≈ 4e-3). Over two layers and six steps the losses drift by a few of those
/// units, not by what a wrong gradient, a missing unscale or an applied overflow would give
/// (tens of percent once the learning rate of 1e-3 has moved the weights).
fn tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::Float16 => 4e-3,
        _ => 2e-2,
    }
}

#[test]
fn half_precision_steps_follow_the_float32_steps() {
    let _turn = crate::common::rng_turn();
    let device = Device::flex().autodiff();

    // Classification: cross-entropy over three classes.
    let model = tiny_model(3, &device);
    let data = features(|i| Label::Class([0, 1, 2, 1][i]));
    let (reference, _) = losses(&model, &data, Precision::Float32, &device);
    assert!(reference[STEPS - 1] < reference[0], "{reference:?}");
    for precision in [Precision::Float16, Precision::BFloat16] {
        let (half, skipped) = losses(&model, &data, precision, &device);
        eprintln!(
            "classification {precision}: {half:?} ({skipped} skipped)\n  float32: {reference:?}"
        );
        for (step, (h, f)) in half.iter().zip(&reference).enumerate() {
            let rel = (h - f).abs() / f.abs();
            assert!(
                rel < tolerance(precision),
                "{precision}, step {step}: loss {h} vs float32 {f} (relative {rel:.2e})"
            );
        }
    }

    // Regression (STS-B): mean-squared error of one output.
    let model = tiny_model(1, &device);
    let data = features(|i| Label::Score([0.5, 3.0, 4.5, 1.0][i]));
    let (reference, _) = losses(&model, &data, Precision::Float32, &device);
    assert!(reference[STEPS - 1] < reference[0], "{reference:?}");
    for precision in [Precision::Float16, Precision::BFloat16] {
        // Squared errors of ~2.5 times 65536 exceed float16's 65504 in the output's gradient:
        // the first float16 steps overflow until the scale has halved enough.
        let (half, skipped) = losses(&model, &data, precision, &device);
        eprintln!("regression {precision}: {half:?} ({skipped} skipped)\n  float32: {reference:?}");
        for (step, (h, f)) in half.iter().zip(&reference).enumerate() {
            let rel = (h - f).abs() / f.abs();
            assert!(
                rel < tolerance(precision),
                "{precision}, step {step}: loss {h} vs float32 {f} (relative {rel:.2e})"
            );
        }
    }
}

#[test]
fn an_overflowing_float16_step_is_skipped() {
    let _turn = crate::common::rng_turn();
    let device = Device::flex().autodiff();
    let model = tiny_model(3, &device);
    let data = features(|i| Label::Class([0, 1, 2, 1][i]));
    let batch =
        || vec![ClassifierBatch::new(&data.iter().collect::<Vec<_>>(), 0, &device).unwrap()];
    let weights = |m: &BertForSequenceClassification| {
        (
            m.classifier.weight.val().into_data(),
            m.bert.embeddings.word_embeddings.weight.val().into_data(),
        )
    };
    let before = weights(&model);
    let mut optimizer = build_optimizer(OptimizerKind::BertAdam, 0.01, 1e-6);
    // float16 tops out at 65504: gradients scaled by 1e30 become infinite on their way back.
    let huge = settings(Precision::Float16, 1e30);
    let (model, outcome) = train_step(
        model,
        &mut optimizer,
        single_rank(&device, batch(), |_| None),
        huge,
    )
    .unwrap();
    assert!(outcome.overflowed, "{outcome:?}");
    assert!(outcome.loss.is_finite(), "the loss itself is float32");
    assert_eq!(weights(&model), before, "a skipped step leaves the weights");

    // The trainers halve the loss scale and log the skipped step.
    let mut scale = Some(LossScale::new());
    let line = after_step(&mut scale, 3, &outcome).expect("a log line");
    assert!(
        line.contains("step 3") && line.contains("skipped"),
        "{line}"
    );
    assert_eq!(scale.unwrap().scale, LossScale::INITIAL / 2.0);

    // At a sane scale the same step goes through.
    let sane = StepSettings {
        loss_scale: 1024.0,
        ..huge
    };
    let (model, outcome) = train_step(
        model,
        &mut optimizer,
        single_rank(&device, batch(), |_| None),
        sane,
    )
    .unwrap();
    assert!(!outcome.overflowed && outcome.grad_norm.is_finite() && outcome.grad_norm > 0.0);
    assert_ne!(weights(&model).0, before.0);
    assert_eq!(after_step(&mut scale, 4, &outcome), None);
}
