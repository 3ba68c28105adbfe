//! Our fine-tuning step against PyTorch: a small random `BertForSequenceClassification`
//! (dropout off) takes 6 BERTAdam steps on one batch of sentence pairs, in our `train_step` and
//! in `transformers` with the BERTAdam of `scripts/reference_optim.py`; the cross-entropy
//! losses and gradient norms agree step by step. Python from BERT_PYTHON.

use std::process::Command;

use crate::common::{reference_python, repo_root};
use bert_model::BackendKind;
use bert_model::checkpoint::{HfTensors, load_bert_for_sequence_classification, read_config};
use bert_train::finetune::classifier::train_step;
use bert_train::finetune::features::{ClassifierBatch, Feature};
use bert_train::tasks::glue::Label;
use bert_train::training::OptimizerKind;
use bert_train::training::optim::build_optimizer_with_epsilon as build_optimizer;
use bert_train::training::step::{StepSettings, single_rank};
use burn::module::Module;

const STEPS: usize = 6;
const LR: f64 = 1e-3;

const SCRIPT: &str = r#"
import json, sys, importlib.util, torch
from transformers import AutoModelForSequenceClassification
spec = importlib.util.spec_from_file_location("ref", sys.argv[1]); ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
model_dir, batch, steps, lr = sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").float()
model.train()
opt = ref.BertAdam(ref.param_groups(model, 0.01), lr=lr, eps=1e-6)
inputs = {k: torch.tensor(v) for k, v in batch.items() if k != "labels"}
labels = torch.tensor(batch["labels"])
losses, norms = [], []
for _ in range(steps):
    loss = torch.nn.functional.cross_entropy(model(**inputs).logits, labels)
    opt.zero_grad(); loss.backward()
    norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item())
    losses.append(loss.item()); opt.step()
print(json.dumps({"losses": losses, "norms": norms}))
"#;

#[test]
fn bertadam_steps_agree_with_pytorch() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let out = Command::new(env!("CARGO_BIN_EXE_bert-train"))
        .args([
            "export",
            "--task",
            "classification",
            "--model",
            "bert_2_128_2",
            "--from-scratch",
        ])
        .args([
            "--num-labels",
            "3",
            "--seq-length",
            "64",
            "--seed",
            "11",
            "--output-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Dropout off on both sides, so that the steps are deterministic.
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["hidden_dropout_prob"] = 0.0.into();
    config["attention_probs_dropout_prob"] = 0.0.into();
    std::fs::write(&path, config.to_string()).unwrap();

    // Four pairs of different lengths (padding), labels of all three classes.
    let rows: [(&[u32], usize, usize); 4] = [
        (
            &[101, 2023, 2003, 1037, 3231, 102, 2009, 2001, 2204, 102],
            6,
            0,
        ),
        (&[101, 7592, 102, 2088, 102], 3, 1),
        (&[101, 1996, 4937, 2938, 102, 2006, 1996, 13523, 102], 5, 2),
        (&[101, 2748, 102, 2053, 102], 3, 1),
    ];
    let features: Vec<Feature> = rows
        .iter()
        .map(|(ids, segment_a, label)| Feature {
            input_ids: ids.to_vec(),
            token_type_ids: (0..ids.len()).map(|i| u32::from(i >= *segment_a)).collect(),
            label: Some(Label::Class(*label)),
        })
        .collect();
    let seq = rows.iter().map(|r| r.0.len()).max().unwrap();
    let pad = |f: &dyn Fn(&Feature, usize) -> u32| -> Vec<Vec<u32>> {
        features
            .iter()
            .map(|x| {
                (0..seq)
                    .map(|i| if i < x.input_ids.len() { f(x, i) } else { 0 })
                    .collect()
            })
            .collect()
    };
    let batch_json = serde_json::json!({
        "input_ids": pad(&|x, i| x.input_ids[i]),
        "token_type_ids": pad(&|x, i| x.token_type_ids[i]),
        "attention_mask": pad(&|_, _| 1),
        "labels": rows.iter().map(|r| r.2).collect::<Vec<_>>(),
    });

    let device = BackendKind::Cpu.device().unwrap().autodiff();
    let bert_config = read_config(&dir).unwrap();
    let weights = HfTensors::from_file(&dir.join("model.safetensors")).unwrap();
    let (model, _) =
        load_bert_for_sequence_classification(&bert_config, 3, &weights, &device).unwrap();
    let mut model = model.train();
    let mut optimizer = build_optimizer(OptimizerKind::BertAdam, 0.01, 1e-6);
    let (mut losses, mut norms) = (Vec::new(), Vec::new());
    for _ in 0..STEPS {
        let refs: Vec<&Feature> = features.iter().collect();
        let batch = ClassifierBatch::new(&refs, 0, &device).unwrap();
        let settings = StepSettings::float32(LR, 1.0);
        let (next, outcome) = train_step(
            model,
            &mut optimizer,
            single_rank(&device, vec![batch], |_| None),
            settings,
        )
        .unwrap();
        model = next;
        losses.push(outcome.loss);
        norms.push(outcome.grad_norm);
    }

    let python = reference_python();
    let script = repo_root().join("train/scripts/reference_optim.py");
    let out = Command::new(&python)
        .args(["-c", SCRIPT])
        .arg(&script)
        .arg(&dir)
        .arg(batch_json.to_string())
        .arg(STEPS.to_string())
        .arg(LR.to_string())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set BERT_PYTHON): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs =
        |key: &str| -> Vec<f64> { serde_json::from_value(reference[key].clone()).unwrap() };
    let (their_losses, their_norms) = (theirs("losses"), theirs("norms"));
    eprintln!("ours   losses {losses:?} norms {norms:?}");
    eprintln!("theirs losses {their_losses:?} norms {their_norms:?}");
    for step in 0..STEPS {
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
        assert!(
            rel(losses[step], their_losses[step]) < 1e-4,
            "step {step} loss"
        );
        assert!(
            rel(norms[step], their_norms[step]) < 1e-3,
            "step {step} grad norm"
        );
    }
    assert!(
        losses[STEPS - 1] < losses[0],
        "the steps should learn the batch"
    );
}
