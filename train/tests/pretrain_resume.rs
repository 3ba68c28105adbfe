//! Exact resume: a run stopped between checkpoints and started again ends with bit-for-bit the
//! weights of a run that was never interrupted (CPU, tiny model, dropout and dynamic masking on,
//! gradient accumulation, several shards and epochs).
//!
//! The CPU backend's random generator is process-wide: the test holds `rng_turn`.

use std::fs;
use std::path::Path;

use crate::pretrain_common::*;
use bert_train::pretrain::{RunOptions, train};
use bert_train::training::OptimizerKind;

/// Every metrics row without its timing columns.
fn losses(ckpt_dir: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(ckpt_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut row: serde_json::Value = serde_json::from_str(line).unwrap();
            let obj = row.as_object_mut().unwrap();
            obj.remove("seq_per_s");
            obj.remove("tokens_per_s");
            row
        })
        .collect()
}

fn step_dirs(ckpt_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(ckpt_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-") || n.starts_with(".incomplete"))
        .collect();
    names.sort();
    names
}

#[test]
fn stopped_and_resumed_run_equals_uninterrupted_run_bitwise() {
    let _turn = crate::common::rng_turn();
    let tmp = tempfile::tempdir().unwrap();
    // ~90 instances of up to 32 tokens in shards of 16: several shards, and 12 steps of 2 x 8
    // sequences run past the end of the first epoch.
    let shards = build_shards(tmp.path(), 24_000, 32, 16);
    let model = tiny_model_dir(tmp.path(), 32, 2, 2, 0.1, 32);
    let run = |name: &str| {
        let mut config = cpu_config(&shards, &model, &tmp.path().join(name));
        config.batch_size = 8;
        config.accumulate = 2;
        config.num_steps = 12;
        config.ckpt_interval = 4;
        config.keep_checkpoints = 2;
        config.dynamic_masking = true;
        config.optimizer = OptimizerKind::BertAdam;
        config.lr = 1e-3;
        config.warmup_ratio = 0.25;
        config.seed = 11;
        config
    };
    let quiet = |stop_after| RunOptions {
        stop_after,
        print: false,
    };

    let whole = train(&run("whole"), &quiet(None)).unwrap();
    assert_eq!((whole.step, whole.resumed_from), (12, None));

    // Stopped at step 6: the last checkpoint is step 4, so steps 5 and 6 are done again.
    let first = train(&run("parts"), &quiet(Some(6))).unwrap();
    assert_eq!(first.step, 6);
    assert!(first.final_dir.is_none());
    let second = train(&run("parts"), &quiet(None)).unwrap();
    assert_eq!((second.step, second.resumed_from), (12, Some(4)));

    let whole_weights = fs::read(tmp.path().join("whole/final/model.safetensors")).unwrap();
    let parts_weights = fs::read(tmp.path().join("parts/final/model.safetensors")).unwrap();
    assert!(
        whole_weights == parts_weights,
        "the resumed run's final weights differ from the uninterrupted run's"
    );
    assert_eq!(
        losses(&tmp.path().join("whole")),
        losses(&tmp.path().join("parts"))
    );
    assert_eq!(
        losses(&tmp.path().join("parts")).len(),
        12,
        "rows of steps 5-6 appear once"
    );
    // The last two checkpoints are kept, and no temporary directory is left.
    assert_eq!(
        step_dirs(&tmp.path().join("parts")),
        ["step-00000008", "step-00000012"]
    );

    // A damaged newest checkpoint (64 flipped bytes in its weights) is refused, naming the
    // file and the newest intact one; with --skip-damaged-checkpoints the run resumes from
    // that one and still ends bit-identical to the uninterrupted run.
    let damaged = tmp.path().join("damaged");
    train(&run("damaged"), &quiet(Some(10))).unwrap();
    assert_eq!(step_dirs(&damaged), ["step-00000004", "step-00000008"]);
    let weights = damaged.join("step-00000008/model.bpk");
    let mut bytes = fs::read(&weights).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5A;
    }
    fs::write(&weights, &bytes).unwrap();
    let Err(refused) = train(&run("damaged"), &quiet(None)) else {
        panic!("resumed from a damaged checkpoint");
    };
    let refused = format!("{refused:#}");
    for needle in [
        "step-00000008/model.bpk is damaged",
        "step-00000004 (step 4)",
        "--skip-damaged-checkpoints",
    ] {
        assert!(refused.contains(needle), "{needle:?} not in: {refused}");
    }
    let mut skipping = run("damaged");
    skipping.skip_damaged_checkpoints = true;
    let resumed = train(&skipping, &quiet(None)).unwrap();
    assert_eq!((resumed.step, resumed.resumed_from), (12, Some(4)));
    assert!(
        fs::read(damaged.join("final/model.safetensors")).unwrap() == whole_weights,
        "resuming from the intact checkpoint ends with the uninterrupted run's weights"
    );

    // Training moved the weights: the equality above is not of two untouched models.
    let rows = losses(&tmp.path().join("whole"));
    assert_ne!(rows[0]["mlm_loss"], rows[11]["mlm_loss"]);
}
