//! The browser's code path on the host (what wasm-embed calls): all-MiniLM-L6-v2 from bytes,
//! embedded with the async read-back, on burn's CPU backend and on wgpu (Mesa lavapipe here, WebGPU in the browser),
//! against sentence-transformers' vectors (tests/fixtures/browser_minilm.json).

use std::path::PathBuf;

use bert_model::{BertEmbedding as Embedder, EmbedOptions};
use burn::tensor::Device;
use test_support::repo_root as root;
use test_support::{block_on, browser_fixture as fixture};

fn model_dir() -> PathBuf {
    let dir = root().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no all-MiniLM-L6-v2; run train/scripts/fetch_minilm.sh",
        dir.display()
    );
    dir
}

fn read(name: &str) -> Vec<u8> {
    let path = model_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(device: &Device, max_length: Option<usize>) -> anyhow::Result<Embedder> {
    let config = String::from_utf8(read("config.json")).unwrap();
    Embedder::from_bytes(
        read("model.safetensors"),
        &config,
        &read("tokenizer.json"),
        max_length,
        device,
    )
}

fn check_against_sentence_transformers(device: &Device) {
    let embedder = load(device, Some(256)).unwrap();
    assert_eq!(embedder.dim(), 384);
    let (sentences, want) = fixture();
    // Batches of 2 so that padding (and its mask) is exercised.
    let options = EmbedOptions {
        batch_size: 2,
        ..EmbedOptions::default()
    };
    let got = block_on(embedder.embed_async(&sentences, options)).unwrap();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let dot: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
        let max_abs = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            dot >= 0.9999 && max_abs <= 1e-3,
            "sentence {i}: cosine {dot}, max-abs {max_abs}"
        );
    }
}

#[test]
fn cpu_backend_matches_sentence_transformers() {
    check_against_sentence_transformers(&Device::flex());
}

#[test]
fn wgpu_backend_matches_sentence_transformers() {
    let device = block_on(Device::wgpu_options().init_async()).unwrap_or_else(|e| {
        panic!(
            "no wgpu adapter ({e}); install Mesa's lavapipe: apt-get install mesa-vulkan-drivers"
        )
    });
    check_against_sentence_transformers(&device);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let device = Device::flex();
    let config = String::from_utf8(read("config.json")).unwrap();
    let tokenizer = read("tokenizer.json");

    let err = Embedder::from_bytes(
        b"not safetensors".to_vec(),
        &config,
        &tokenizer,
        None,
        &device,
    )
    .err()
    .unwrap();
    assert!(format!("{err:#}").contains("model.safetensors"), "{err:#}");

    let err = Embedder::from_bytes(read("model.safetensors"), "{", &tokenizer, None, &device)
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("config.json"), "{err:#}");

    let err = Embedder::from_bytes(read("model.safetensors"), &config, b"{}", None, &device)
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("tokenizer.json"), "{err:#}");

    let err = load(&device, Some(513)).err().unwrap();
    assert!(format!("{err:#}").contains("between 2 and"), "{err:#}");

    let embedder = load(&device, Some(8)).unwrap();
    let ids = embedder
        .tokenize(&["one two three four five six seven eight nine ten".into()])
        .unwrap();
    assert_eq!(ids[0].len(), 8, "truncated to max_length with [CLS]/[SEP]");
    let err = block_on(embedder.embed_async(
        &["x".into()],
        EmbedOptions {
            batch_size: 0,
            ..EmbedOptions::default()
        },
    ))
    .err()
    .unwrap();
    assert!(format!("{err:#}").contains("batch size"), "{err:#}");
}
