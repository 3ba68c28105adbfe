//! `bert-train convert`: all-MiniLM-L6-v2 stored in float16 is half the size, keeps the
//! directory's other files, and `bert-embed` on it gives sentence-transformers' float32 vectors
//! to within the rounding of the weights.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;

/// `bert-train convert --model MODEL --dtype DTYPE --output-dir OUT`.
fn convert(model: &Path, dtype: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bert-train"))
        .arg("convert")
        .arg("--model")
        .arg(model)
        .args(["--dtype", dtype, "--output-dir"])
        .arg(out)
        .output()
        .expect("run bert-train")
}

#[test]
fn float16_copy_is_half_the_size_and_embeds_like_float32() {
    let model = minilm_dir();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("f16");
    let out = convert(&model, "float16", &out_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("re-encoded as float16"),
        "{}",
        stderr(&out)
    );

    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64;
    let ratio = size(&out_dir.join("model.safetensors")) / size(&model.join("model.safetensors"));
    assert!((0.49..0.51).contains(&ratio), "size ratio {ratio}");
    for kept in [
        "config.json",
        "tokenizer.json",
        "vocab.txt",
        "sentence_bert_config.json",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        assert_eq!(
            std::fs::read(out_dir.join(kept)).unwrap(),
            std::fs::read(model.join(kept)).unwrap(),
            "{kept}"
        );
    }

    // The reference sentences, embedded from the float16 copy, against sentence-transformers'
    // float32 vectors (the fixture of cli.rs / minilm_fidelity.rs).
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("minilm_reference.json")).unwrap())
            .unwrap();
    let tensors = Tensors::read(&fixture("minilm_reference.safetensors"));
    let flat = tensors.f32("sentence_embedding");
    let indices = reference["batches"][""].as_array().unwrap();
    let sentences: Vec<&str> = indices
        .iter()
        .map(|i| {
            reference["sentences"][i.as_u64().unwrap() as usize]
                .as_str()
                .unwrap()
        })
        .collect();
    let mut args = vec![
        "--model",
        out_dir.to_str().unwrap(),
        "--no-token-embeddings",
    ];
    args.push("--sentences");
    args.extend(&sentences);
    let out = Command::new(env!("CARGO_BIN_EXE_bert-embed"))
        .args(&args)
        .output()
        .unwrap();
    let rows = json_rows(&out);
    assert_eq!(rows.len(), sentences.len());
    let mut worst = 1.0f32;
    for (row, expected) in rows.iter().zip(flat.chunks(384)) {
        let ours = floats(&row["sentence_embedding"]);
        worst = worst.min(cosine(&ours, expected));
        assert!(max_abs_diff(&ours, expected) < 5e-3);
    }
    eprintln!("float16 weights vs sentence-transformers float32: lowest cosine {worst:.6}");
    assert!(worst > 0.9999, "lowest cosine {worst}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let model = minilm_dir();
    let tmp = tempfile::tempdir().unwrap();
    let out = convert(tmp.path(), "float16", &tmp.path().join("out"));
    expect_error(&out, &["without config.json"]);
    let no_weights = tmp.path().join("no-weights");
    std::fs::create_dir(&no_weights).unwrap();
    std::fs::copy(model.join("config.json"), no_weights.join("config.json")).unwrap();
    let out = convert(&no_weights, "float16", &tmp.path().join("out"));
    expect_error(&out, &["no model.safetensors"]);

    let inside = model.join("f16");
    let out = convert(&model, "float16", &inside);
    expect_error(&out, &["inside --model"]);
    assert!(!inside.exists());

    let out = convert(&model, "int4", &tmp.path().join("x"));
    expect_error(&out, &["float16", "bfloat16"]);
}
