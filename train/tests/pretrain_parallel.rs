//! Data parallelism: two ranks of B sequences each make the same update as one rank with the
//! 2B sequences together, and as one rank accumulating the two halves; on two ranks sharing
//! the CPU device (run in turn), and on two distinct devices — burn's CPU backend and wgpu
//! (lavapipe here) — run in parallel threads, with the gradients moved between them.
//! And the CLI: `--gpus 0,1` trains, checkpoints one loader position per rank and resumes.

use bert_model::modules::{BertConfig, BertForPreTraining};
use bert_pipeline::Instance;
use bert_pipeline::loader::{BatchShape, LoaderPosition, collate};
use bert_train::pretrain::loss::BatchTensors;
use bert_train::pretrain::step::train_step;
use bert_train::pretrain::{RunOptions, train};
use bert_train::training::OptimizerKind;
use bert_train::training::optim::build_optimizer;
use bert_train::training::step::{MicroBatch, RankWork, StepSettings};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::SgdConfig;
use burn::prelude::*;

const VOCAB: usize = 64;

/// Eight instances of different lengths with 1-3 masked tokens: the halves differ in masked
/// counts, so a mean of per-half means would not equal the mean over all eight.
fn instances() -> Vec<Instance> {
    // A fixed linear congruential sequence: the ids only need to vary.
    let mut state = 7u64;
    let mut next_id = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        5 + ((state >> 33) % (VOCAB as u64 - 5)) as u32
    };
    (0..8)
        .map(|i| {
            let len = 8 + (i * 3) % 9;
            let mut input_ids: Vec<u32> = (0..len).map(|_| next_id()).collect();
            let n_masked = 1 + i % 3;
            let positions: Vec<u16> = (0..n_masked).map(|k| (1 + 2 * k) as u16).collect();
            let masked_lm_ids = positions.iter().map(|&p| input_ids[p as usize]).collect();
            for &p in &positions {
                input_ids[p as usize] = 4;
            }
            Instance {
                segment_ids: (0..len).map(|t| u8::from(t >= len / 2)).collect(),
                input_ids,
                masked_lm_positions: positions,
                masked_lm_ids,
                next_sentence_label: (i % 2) as u8,
            }
        })
        .collect()
}

fn tensors(rows: &[Instance], device: &Device) -> BatchTensors {
    let batch = collate(
        rows,
        0,
        BatchShape::EXACT,
        usize::MAX,
        LoaderPosition::default(),
    );
    BatchTensors::from_batch(&batch, VOCAB, device).unwrap()
}

fn config() -> BertConfig {
    let mut config = BertConfig::new(VOCAB, 16, 2, 2);
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    config
}

/// Every float parameter, flattened in visiting order.
struct Flatten(Vec<f32>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        self.0
            .extend(data.convert::<f32>().try_to_vec::<f32>().unwrap());
    }
}

fn weights(model: &BertForPreTraining) -> Vec<f32> {
    let mut flat = Flatten(vec![]);
    model.visit(&mut flat);
    flat.0
}

/// Which optimizer the comparison runs. Adam divides by `sqrt(v)`, so on parameters whose
/// gradients are ~0 it turns rounding noise into full-size steps: across two backends (which
/// round differently) plain SGD shows the gradients themselves.
#[derive(Clone, Copy)]
enum Update {
    BertAdam,
    Sgd,
}

/// Three steps from `model`, each on the micro-batches `split` makes.
fn train_three_steps(
    model: &BertForPreTraining,
    update: Update,
    split: impl Fn() -> Vec<RankWork<BatchTensors>>,
) -> BertForPreTraining {
    let mut model = model.clone();
    let mut optimizer = match update {
        Update::BertAdam => build_optimizer(OptimizerKind::BertAdam, 0.01),
        Update::Sgd => SgdConfig::new().init(),
    };
    let lr = match update {
        Update::BertAdam => 1e-2,
        Update::Sgd => 1.0,
    };
    for _ in 0..3 {
        let (updated, report) = train_step(
            model,
            &mut optimizer,
            split(),
            StepSettings::float32(lr, 1.0),
        )
        .unwrap();
        assert!(report.grad_norm > 0.0);
        model = updated;
    }
    model
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn one(device: &Device, rows: &[Instance]) -> MicroBatch<BatchTensors> {
    MicroBatch {
        data: tensors(rows, device),
        seed: Some(0),
    }
}

/// Three steps on all eight rows on `main`, three accumulating the halves on `main`, and three
/// with one half on each of `devices`: the weights before and after each.
struct Runs {
    before: Vec<f32>,
    whole: Vec<f32>,
    accumulated: Vec<f32>,
    two_ranks: Vec<f32>,
}

fn run_three_ways(initial: &BertForPreTraining, devices: [Device; 2], update: Update) -> Runs {
    let rows = instances();
    let (a, b) = rows.split_at(4);
    let main = devices[0].clone();
    let whole = train_three_steps(initial, update, || {
        vec![RankWork {
            device: main.clone(),
            batches: vec![one(&main, &rows)],
        }]
    });
    let accumulated = train_three_steps(initial, update, || {
        vec![RankWork {
            device: main.clone(),
            batches: vec![one(&main, a), one(&main, b)],
        }]
    });
    let two_ranks = train_three_steps(initial, update, || {
        devices
            .iter()
            .zip([a, b])
            .map(|(device, rows)| RankWork {
                device: device.clone(),
                batches: vec![one(device, rows)],
            })
            .collect()
    });
    Runs {
        before: weights(initial),
        whole: weights(&whole),
        accumulated: weights(&accumulated),
        two_ranks: weights(&two_ranks),
    }
}

#[test]
fn two_ranks_on_the_cpu_device_equal_one_batch_of_both() {
    let _turn = crate::common::rng_turn();
    let cpu = Device::flex().autodiff();
    cpu.seed(1);
    let initial = BertForPreTraining::new(&config(), &cpu).train();
    let runs = run_three_ways(&initial, [cpu.clone(), cpu], Update::BertAdam);
    let moved = largest_difference(&runs.before, &runs.whole);
    let accumulated = largest_difference(&runs.whole, &runs.accumulated);
    let two_ranks = largest_difference(&runs.whole, &runs.two_ranks);
    eprintln!(
        "weights moved by up to {moved:.3e}; accumulating the halves differs by \
         {accumulated:.2e}, two ranks by {two_ranks:.2e}"
    );
    // The steps move the weights by far more than the tolerance: the comparison has teeth.
    assert!(moved > 1e-2, "{moved}");
    assert!(accumulated < 1e-5, "{accumulated}");
    assert!(two_ranks < 1e-5, "{two_ranks}");
}

#[test]
fn two_ranks_on_cpu_and_the_gpu_backend_equal_one_batch_of_both() {
    let _turn = crate::common::rng_turn();
    let gpu = crate::common::GPU
        .device()
        .expect("this test needs a wgpu adapter: apt-get install mesa-vulkan-drivers libvulkan1")
        .autodiff();
    let cpu = Device::flex().autodiff();
    cpu.seed(1);
    let initial = BertForPreTraining::new(&config(), &cpu).train();
    let runs = run_three_ways(&initial, [cpu.clone(), gpu.clone()], Update::Sgd);
    // The same whole-batch steps on the GPU backend alone: how far the two backends' rounding drifts.
    let rows = instances();
    let on_gpu = train_three_steps(&initial.clone().fork(&gpu), Update::Sgd, || {
        vec![RankWork {
            device: gpu.clone(),
            batches: vec![one(&gpu, &rows)],
        }]
    });
    let moved = largest_difference(&runs.before, &runs.whole);
    let backends = largest_difference(&runs.whole, &weights(&on_gpu));
    let two_ranks = largest_difference(&runs.whole, &runs.two_ranks);
    eprintln!(
        "weights moved by up to {moved:.3e}; cpu and {} alone differ by {backends:.2e}; \
         half on each differs from all on cpu by {two_ranks:.2e}",
        crate::common::GPU
    );
    assert!(moved > 1e-1, "{moved}");
    // Half of the gradient from each backend: within the backends' own disagreement (a rank
    // lost or counted twice would be off by a large part of `moved`).
    assert!(
        two_ranks <= backends.max(1e-6) * 1.5,
        "two ranks {two_ranks:.3e}, backends {backends:.3e}"
    );
    assert!(backends < moved * 1e-2, "{backends} vs {moved}");
}

#[test]
fn cli_two_ranks_train_checkpoint_and_resume() {
    let _turn = crate::common::rng_turn();
    let dir = tempfile::tempdir().unwrap();
    let shards = crate::pretrain_common::build_shards(dir.path(), 30_000, 32, 40);
    let model = crate::pretrain_common::tiny_model_dir(dir.path(), 16, 1, 2, 0.1, 32);
    let ckpt = dir.path().join("ckpt");
    let mut config = crate::pretrain_common::cpu_config(&shards, &model, &ckpt);
    config.gpus = vec![0, 1];
    config.batch_size = 4;
    config.num_steps = 4;
    config.ckpt_interval = 2;
    let quiet = RunOptions {
        stop_after: Some(2),
        print: false,
    };
    let first = train(&config, &quiet).unwrap();
    assert_eq!(first.step, 2);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ckpt.join("step-00000002/state.json")).unwrap(),
    )
    .unwrap();
    let loaders = state["loaders"].as_array().unwrap();
    assert_eq!(loaders.len(), 2, "{state}");
    // Each rank moved through its own shards.
    let start = serde_json::json!({"epoch": 0, "shard": 0, "batch": 0});
    assert!(loaders.iter().all(|p| *p != start), "{state}");

    let resumed = train(
        &config,
        &RunOptions {
            stop_after: None,
            print: false,
        },
    )
    .unwrap();
    assert_eq!(resumed.resumed_from, Some(2));
    assert_eq!(resumed.step, 4);

    let uninterrupted_dir = dir.path().join("ckpt2");
    config.ckpt_dir = uninterrupted_dir;
    let straight = train(
        &config,
        &RunOptions {
            stop_after: None,
            print: false,
        },
    )
    .unwrap();
    let resumed_vs_straight =
        largest_difference(&weights(&resumed.model), &weights(&straight.model));
    assert_eq!(
        resumed_vs_straight, 0.0,
        "resumed weights differ from the uninterrupted run's"
    );

    // Another rank count is another data order: the checkpoint is refused, not mixed in.
    config.ckpt_dir = ckpt;
    config.gpus = vec![0];
    let err = train(&config, &quiet).err().unwrap();
    assert!(format!("{err:#}").contains("ranks"), "{err:#}");
}
