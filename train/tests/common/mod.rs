//! Helpers shared by the integration tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use bert_model::checkpoint::export::{NamedTensor, serialize_safetensors};
use bert_model::{BackendKind, BertInput};
use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

/// burn's CPU backend has one random generator per process, seeded per micro-batch: tests that
/// initialise models, draw dropout masks or train in this process take turns, or they would take
/// each other's numbers (and an exact-resume comparison would differ by luck).
static RNG_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Wait for this test's turn at the random generator (held until the guard drops).
pub fn rng_turn() -> std::sync::MutexGuard<'static, ()> {
    RNG_TURN.lock().unwrap_or_else(|e| e.into_inner())
}

pub use test_support::{
    cosine, expect_error, max_abs as max_abs_diff, minilm_dir, reference_python, repo_root,
    run_bin, stderr,
};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The GPU backend the tests compare on Mesa's lavapipe (or a real GPU): WGSL through wgpu, or,
/// in a build with feature `vulkan`, kernels compiled to SPIR-V (CI runs the fidelity tests both
/// ways).
pub const GPU: BackendKind = if cfg!(feature = "vulkan") {
    BackendKind::Vulkan
} else {
    BackendKind::Wgpu
};

/// The rows of a successful `bert-embed --format json` (one JSON object per line).
pub fn json_rows(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "bert-embed failed:\n{}", stderr(out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A JSON array of numbers.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

pub fn device(kind: BackendKind) -> Device {
    kind.device().unwrap_or_else(|e| panic!("{e}"))
}

/// A safetensors file held in memory, read by tensor name.
pub struct Tensors(Vec<u8>);

impl Tensors {
    pub fn read(path: &Path) -> Self {
        Self(std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    fn view(&self, name: &str) -> safetensors::tensor::TensorView<'_> {
        SafeTensors::deserialize(&self.0)
            .unwrap()
            .tensor(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Every tensor's name, sorted.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = SafeTensors::deserialize(&self.0)
            .unwrap()
            .names()
            .into_iter()
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.view(name).shape().to_vec()
    }

    pub fn f32(&self, name: &str) -> Vec<f32> {
        let view = self.view(name);
        assert_eq!(view.dtype(), Dtype::F32, "{name}");
        view.data()
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    pub fn i64(&self, name: &str) -> Vec<i64> {
        let view = self.view(name);
        assert_eq!(view.dtype(), Dtype::I64, "{name}");
        view.data()
            .chunks(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

/// Serialize named tensors (`F32` or `I64` little-endian bytes) into a safetensors container.
pub fn write_safetensors(path: &Path, tensors: &[NamedTensor]) {
    let metadata = HashMap::from([("format".into(), "pt".into())]);
    std::fs::write(
        path,
        serialize_safetensors(tensors, Some(metadata)).unwrap(),
    )
    .unwrap();
}

/// A batch's ids, attention mask and token types, as the int64 tensors the Python checkers read.
pub fn write_bert_inputs(path: &Path, input: BertInput) {
    let shape = input.input_ids.dims().to_vec();
    let ints =
        |t: Tensor<2, Int>| i64_bytes(&t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap());
    write_safetensors(
        path,
        &[
            (
                "input_ids".into(),
                Dtype::I64,
                shape.clone(),
                ints(input.input_ids),
            ),
            (
                "attention_mask".into(),
                Dtype::I64,
                shape.clone(),
                ints(input.attention_mask),
            ),
            (
                "token_type_ids".into(),
                Dtype::I64,
                shape,
                ints(input.token_type_ids),
            ),
        ],
    );
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `bert-train` with `args`.
pub fn bert_train(args: &[&str]) -> Output {
    run_bin(env!("CARGO_BIN_EXE_bert-train"), args)
}

/// `bert-embed` with `args`.
pub fn bert_embed(args: &[&str]) -> Output {
    run_bin(env!("CARGO_BIN_EXE_bert-embed"), args)
}

/// `train/scripts/check_hf_roundtrip.py`: transformers loads `export`, runs `inputs` and must
/// give `outputs` (with `head`, through the AutoModelFor... class of that head).
pub fn check_hf_roundtrip(export: &Path, inputs: &Path, outputs: &Path, head: Option<&str>) {
    let python = reference_python();
    let script = repo_root().join("train/scripts/check_hf_roundtrip.py");
    let mut command = std::process::Command::new(&python);
    command.arg(&script).arg(export).arg(inputs).arg(outputs);
    if let Some(head) = head {
        command.args(["--head", head]);
    }
    let result = command.output().unwrap_or_else(|e| {
        panic!("cannot run {python} (set BERT_PYTHON to a python with torch + transformers): {e}")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    eprintln!("{text}");
    assert!(
        result.status.success(),
        "{python} {} failed:\n{text}",
        script.display()
    );
}
