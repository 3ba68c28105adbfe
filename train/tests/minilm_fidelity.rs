//! all-MiniLM-L6-v2 against an independent reference made by PyTorch/transformers and
//! sentence-transformers (`train/scripts/make_reference.py`, fixtures in `tests/fixtures`):
//! hidden states of a padded batch on the CPU and wgpu backends, token ids, sentence vectors.

use crate::common::*;
use bert_model::checkpoint::{load_model_dir, load_tokenizer};
use bert_model::{BackendKind, BertEmbedding, BertInput, Precision};
use burn::prelude::*;

const TOLERANCE: f32 = 1e-4;

struct Reference {
    tensors: Tensors,
    json: serde_json::Value,
}

fn reference() -> Reference {
    let json_path = fixture("minilm_reference.json");
    let text = std::fs::read_to_string(&json_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (made by train/scripts/make_reference.py)",
            json_path.display()
        )
    });
    Reference {
        tensors: Tensors::read(&fixture("minilm_reference.safetensors")),
        json: serde_json::from_str(&text).unwrap(),
    }
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

impl Reference {
    fn sentences(&self) -> Vec<String> {
        self.json["sentences"]
            .as_array()
            .expect("sentences")
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }

    /// A padded batch (`prefix` "" or "long_") exactly as HF's tokenizer made it.
    fn input(&self, prefix: &str, device: &Device) -> BertInput {
        let shape = self.tensors.shape(&format!("{prefix}input_ids"));
        let [b, t] = [shape[0], shape[1]];
        let ids = self.tensors.i64(&format!("{prefix}input_ids"));
        let mask = self.tensors.i64(&format!("{prefix}attention_mask"));
        BertInput {
            input_ids: Tensor::from_data(TensorData::new(ids, [b, t]), device),
            attention_mask: Tensor::from_data(TensorData::new(mask, [b, t]), device),
            token_type_ids: Tensor::zeros([b, t], device),
        }
    }

    /// sentence-transformers' vectors in the order of `sentences()`.
    fn sentence_embeddings(&self) -> Vec<f32> {
        let mut rows: Vec<(usize, Vec<f32>)> = Vec::new();
        for (prefix, indices) in self.json["batches"].as_object().unwrap() {
            let flat = self.tensors.f32(&format!("{prefix}sentence_embedding"));
            for (row, i) in indices.as_array().unwrap().iter().enumerate() {
                rows.push((
                    i.as_u64().unwrap() as usize,
                    flat[row * 384..(row + 1) * 384].to_vec(),
                ));
            }
        }
        rows.sort_by_key(|(i, _)| *i);
        rows.into_iter().flat_map(|(_, v)| v).collect()
    }
}

/// Largest difference over the real (unpadded) tokens, and over all positions.
fn hidden_state_error(kind: BackendKind) -> (f32, f32) {
    let reference = reference();
    let device = device(kind);
    let (model, _, _) = load_model_dir(&minilm_dir(), &device).unwrap();
    let (mut real, mut all) = (0.0f32, 0.0f32);
    for prefix in ["", "long_"] {
        let ours = to_vec(
            model
                .forward(reference.input(prefix, &device))
                .last_hidden_state,
        );
        let theirs = reference.tensors.f32(&format!("{prefix}last_hidden_state"));
        let mask = reference.tensors.i64(&format!("{prefix}attention_mask"));
        let h = 384;
        for (pos, m) in mask.iter().enumerate() {
            if *m == 1 {
                real = real.max(max_abs_diff(
                    &ours[pos * h..(pos + 1) * h],
                    &theirs[pos * h..(pos + 1) * h],
                ));
            }
        }
        all = all.max(max_abs_diff(&ours, &theirs));
    }
    (real, all)
}

#[test]
fn padded_batch_matches_transformers_on_cpu() {
    let _turn = crate::common::rng_turn();
    let (real, all) = hidden_state_error(BackendKind::Cpu);
    eprintln!("cpu: max |ours - transformers| = {real:.3e} on real tokens, {all:.3e} everywhere");
    assert!(real < TOLERANCE, "cpu hidden states differ by {real}");
    assert!(
        all < TOLERANCE,
        "cpu hidden states (padding positions included) differ by {all}"
    );
}

#[test]
fn padded_batch_matches_transformers_on_the_gpu_backend() {
    let _turn = crate::common::rng_turn();
    let (real, all) = hidden_state_error(GPU);
    eprintln!("{GPU}: max |ours - transformers| = {real:.3e} on real tokens, {all:.3e} everywhere");
    assert!(real < TOLERANCE, "{GPU} hidden states differ by {real}");
    assert!(
        all < TOLERANCE,
        "{GPU} hidden states (padding positions included) differ by {all}"
    );
}

#[test]
fn token_ids_match_hf_tokenizers() {
    let _turn = crate::common::rng_turn();
    let reference = reference();
    let dir = minilm_dir();
    // HF's reference keeps tokenizer.json's truncation (128 tokens) and disables its padding.
    let max_len = reference.json["tokenizer_max_length"].as_u64().unwrap() as usize;
    let tokenizer = load_tokenizer(&dir, max_len, None).unwrap();
    let mut cases: Vec<(String, Vec<u32>)> = reference
        .sentences()
        .into_iter()
        .zip(
            reference.json["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(ids_of),
        )
        .collect();
    for case in reference.json["tokenizer_cases"].as_array().unwrap() {
        cases.push((
            case["text"].as_str().unwrap().to_string(),
            ids_of(&case["input_ids"]),
        ));
    }
    assert!(cases.len() > 30);
    let mut truncated = 0;
    for (text, expected) in &cases {
        let encoding = tokenizer.encode(text.as_str(), true).unwrap();
        assert_eq!(
            encoding.get_ids(),
            expected.as_slice(),
            "token ids of {text:?}"
        );
        truncated += !encoding.get_overflowing().is_empty() as usize;
    }
    assert!(
        truncated >= 2,
        "the cases include text longer than the model's maximum"
    );

    // BertEmbedding truncates where sentence-transformers does (max_seq_length 256).
    let (embedder, _) = BertEmbedding::from_dir(&dir, &device(BackendKind::Cpu)).unwrap();
    assert_eq!(embedder.max_seq_length(), 256);
    let encodings = embedder.encode(&reference.sentences()).unwrap();
    for (encoding, expected) in encodings
        .iter()
        .zip(reference.json["st_input_ids"].as_array().unwrap())
    {
        assert_eq!(encoding.get_ids(), ids_of(expected).as_slice());
    }
}

fn sentence_embedding_error(kind: BackendKind, batch_size: usize) -> f32 {
    sentence_embedding_error_in(kind, batch_size, Precision::Float32, 1)
}

/// Max |ours - sentence-transformers| over all sentence vectors, computing in `precision`
/// with batches padded to multiples of `pad`.
fn sentence_embedding_error_in(
    kind: BackendKind,
    batch_size: usize,
    precision: Precision,
    pad: usize,
) -> f32 {
    let reference = reference();
    let device = device(kind);
    let (embedder, _) = BertEmbedding::from_dir(&minilm_dir(), &device).unwrap();
    let embedder = embedder
        .with_batch_size(batch_size)
        .unwrap()
        .with_token_embeddings(false)
        .with_precision(precision)
        .unwrap()
        .with_pad_multiple(pad)
        .unwrap();
    let rows = embedder.embed(&reference.sentences()).unwrap();
    let ours: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.sentence_embedding.clone())
        .collect();
    max_abs_diff(&ours, &reference.sentence_embeddings())
}

#[test]
fn sentence_vectors_match_sentence_transformers() {
    let _turn = crate::common::rng_turn();
    // The sentence-transformers defaults (mean pooling, normalised, 256 tokens) come from the
    // model directory; batch 3 mixes lengths so padding inside a batch is exercised too.
    for batch_size in [1, 3, 32] {
        let err = sentence_embedding_error(BackendKind::Cpu, batch_size);
        eprintln!("cpu, batch {batch_size}: max |ours - sentence-transformers| = {err:.3e}");
        assert!(err < TOLERANCE, "batch {batch_size}: {err}");
    }
    let err = sentence_embedding_error(GPU, 4);
    eprintln!("{GPU}, batch 4: max |ours - sentence-transformers| = {err:.3e}");
    assert!(err < TOLERANCE, "{GPU}: {err}");
}

/// `--pad-to-multiple-of` (the GPU default) changes no vector: padding is masked.
/// `--dtype float16|bfloat16` for inference: the weights cast once, the vectors pooled in
/// float32, within documented bounds of sentence-transformers' float32 vectors (normalised
/// vectors of 384 values: float16 keeps ~3 decimal digits, bfloat16 ~2).
#[test]
fn padded_and_half_precision_sentence_vectors_stay_close() {
    let _turn = crate::common::rng_turn();
    let padded = sentence_embedding_error_in(BackendKind::Cpu, 3, Precision::Float32, 32);
    eprintln!("cpu, padded to 32: {padded:.3e}");
    assert!(
        padded < TOLERANCE,
        "padding changed the vectors by {padded}"
    );
    for (precision, bound) in [(Precision::Float16, 1e-3), (Precision::BFloat16, 1e-2)] {
        let err = sentence_embedding_error_in(BackendKind::Cpu, 3, precision, 1);
        eprintln!("cpu, {precision}: max |ours - sentence-transformers| = {err:.3e}");
        assert!(err < bound, "{precision}: {err} (bound {bound})");
    }
    let device = device(GPU);
    if device.supports_dtype(burn::tensor::FloatDType::F16) {
        let err = sentence_embedding_error_in(GPU, 4, Precision::Float16, 32);
        eprintln!("{GPU}, float16, padded to 32: {err:.3e}");
        assert!(err < 1e-3, "{GPU} float16: {err}");
    } else {
        eprintln!("{GPU}: this adapter has no shader-f16; float16 there is refused:");
        let (embedder, _) = BertEmbedding::from_dir(&minilm_dir(), &device).unwrap();
        let refused = embedder.with_precision(Precision::Float16).unwrap_err();
        eprintln!("  {refused:#}");
        assert!(format!("{refused:#}").contains("has no float16 arithmetic"));
    }
}

#[test]
fn model_zoo_name_plus_weights_equals_the_model_directory() {
    let _turn = crate::common::rng_turn();
    // bert_6_384_12 is all-MiniLM-L6-v2's shape; its vocab.txt builds the same tokenizer.
    let reference = reference();
    let dir = minilm_dir();
    let device = device(BackendKind::Cpu);
    let (zoo, _) = BertEmbedding::from_zoo(
        "bert_6_384_12",
        &dir.join("model.safetensors"),
        &dir.join("vocab.txt"),
        true,
        &device,
    )
    .unwrap();
    let zoo = zoo
        .with_max_seq_length(256)
        .unwrap()
        .with_normalize(true)
        .with_token_embeddings(false);
    let rows = zoo.embed(&reference.sentences()).unwrap();
    let ours: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.sentence_embedding.clone())
        .collect();
    let err = max_abs_diff(&ours, &reference.sentence_embeddings());
    assert!(
        err < TOLERANCE,
        "zoo + weights vs sentence-transformers: {err}"
    );

    let err = BertEmbedding::from_zoo(
        "bert_7_7_7",
        &dir.join("model.safetensors"),
        &dir.join("vocab.txt"),
        true,
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bert_6_384_12"), "{err}");
}
