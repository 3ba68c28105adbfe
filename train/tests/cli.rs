//! The `bert-embed` binary end to end: outputs in every format, defaults from the
//! sentence-transformers files, and clear errors for bad input.

use std::path::Path;

use crate::common::*;

fn minilm() -> String {
    minilm_dir().display().to_string()
}

#[test]
fn json_sentence_vectors_equal_sentence_transformers() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("minilm_reference.json")).unwrap())
            .unwrap();
    let sentences: Vec<String> = reference["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    // sentence-transformers' vectors, in sentence order (the long sentence is stored apart).
    let tensors = Tensors::read(&fixture("minilm_reference.safetensors"));
    let mut expected = vec![0.0f32; sentences.len() * 384];
    for (prefix, indices) in reference["batches"].as_object().unwrap() {
        let flat = tensors.f32(&format!("{prefix}sentence_embedding"));
        for (row, i) in indices.as_array().unwrap().iter().enumerate() {
            let i = i.as_u64().unwrap() as usize;
            expected[i * 384..(i + 1) * 384].copy_from_slice(&flat[row * 384..(row + 1) * 384]);
        }
    }

    let model = minilm();
    let mut args = vec![
        "--model",
        &model,
        "--pooling",
        "mean",
        "--normalize",
        "--batch-size",
        "4",
        "--sentences",
    ];
    args.extend(sentences.iter().map(String::as_str));
    let out = bert_embed(&args);
    let rows = json_rows(&out);
    assert_eq!(rows.len(), sentences.len());
    let ours: Vec<f32> = rows
        .iter()
        .flat_map(|r| floats(&r["sentence_embedding"]))
        .collect();
    let err = max_abs_diff(&ours, &expected);
    eprintln!("bert-embed vs sentence-transformers: max abs diff {err:.3e}");
    assert!(err < 1e-4, "{err}");
    for (row, sentence) in rows.iter().zip(&sentences) {
        assert_eq!(row["text"], sentence.as_str());
        let tokens = row["tokens"].as_array().unwrap();
        assert_eq!(tokens[0], "[CLS]");
        assert_eq!(
            row["token_embeddings"].as_array().unwrap().len(),
            tokens.len()
        );
    }
    // The long sentence in the reference is cut to 256 tokens, with one warning.
    assert_eq!(
        stderr(&out).matches("truncated").count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn file_dash_reads_standard_input() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bert-embed"))
        .args(["--model", &minilm(), "--no-token-embeddings", "--file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"A cat sat.\n\nDogs bark.\n")
        .unwrap();
    let piped = json_rows(&child.wait_with_output().unwrap());
    let given = json_rows(&bert_embed(&[
        "--model",
        &minilm(),
        "--no-token-embeddings",
        "--sentences",
        "A cat sat.",
        "Dogs bark.",
    ]));
    assert_eq!(piped, given);
}

#[test]
fn dtype_float16_gives_vectors_close_to_float32() {
    let run = |dtype: &str| {
        json_rows(&bert_embed(&[
            "--model",
            &minilm(),
            "--no-token-embeddings",
            "--dtype",
            dtype,
            "--pad-to-multiple-of",
            "16",
            "--sentences",
            "A cat sat on the mat.",
            "Stocks fell sharply on Monday.",
        ]))
    };
    let (half, full) = (run("float16"), run("float32"));
    for (h, f) in half.iter().zip(&full) {
        let diff = test_support::max_abs(
            &floats(&h["sentence_embedding"]),
            &floats(&f["sentence_embedding"]),
        );
        assert!(diff < 1e-3, "float16 vs float32: {diff}");
    }
    expect_error(
        &bert_embed(&["--model", &minilm(), "--dtype", "int8", "--sentences", "x"]),
        &["unknown --dtype \"int8\""],
    );
}

#[test]
fn defaults_come_from_the_sentence_transformers_files() {
    let model = minilm();
    let rows = json_rows(&bert_embed(&[
        "--model",
        &model,
        "--no-token-embeddings",
        "--sentences",
        "A cat sat.",
    ]));
    let v = floats(&rows[0]["sentence_embedding"]);
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        (norm - 1.0).abs() < 1e-5,
        "MiniLM's Normalize module is the default: {norm}"
    );
    assert!(rows[0].get("token_embeddings").is_none());

    let rows = json_rows(&bert_embed(&[
        "--model",
        &model,
        "--no-normalize",
        "--pooling",
        "cls",
        "--sentences",
        "A cat sat.",
    ]));
    let v = floats(&rows[0]["sentence_embedding"]);
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 1e-3, "--no-normalize: {norm}");
    // CLS pooling is the first token's vector.
    let first = floats(&rows[0]["token_embeddings"][0]);
    assert!(max_abs_diff(&first, &v) < 1e-6);
}

#[test]
fn oov_way_folds_word_pieces_into_words() {
    let model = minilm();
    let text = "Unaffable tokenizers embed Zürich.";
    let pieces = json_rows(&bert_embed(&["--model", &model, "--sentences", text]));
    let piece_tokens: Vec<&str> = pieces[0]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        piece_tokens.iter().any(|t| t.starts_with("##")),
        "{piece_tokens:?}"
    );

    for way in ["avg", "sum", "last"] {
        let rows = json_rows(&bert_embed(&[
            "--model",
            &model,
            "--oov-way",
            way,
            "--sentences",
            text,
        ]));
        let words: Vec<&str> = rows[0]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(
            words,
            ["Unaffable", "tokenizers", "embed", "Zürich", "."],
            "{way}"
        );
        assert_eq!(rows[0]["token_embeddings"].as_array().unwrap().len(), 5);
    }
    // avg of the pieces of the first word, checked against the unfolded output.
    let rows = json_rows(&bert_embed(&[
        "--model",
        &model,
        "--oov-way",
        "avg",
        "--sentences",
        text,
    ]));
    let n = piece_tokens
        .iter()
        .skip(2)
        .take_while(|t| t.starts_with("##"))
        .count()
        + 1;
    let mut mean = vec![0.0f32; 384];
    let vectors = pieces[0]["token_embeddings"].as_array().unwrap();
    for piece in &vectors[1..=n] {
        for (m, v) in mean.iter_mut().zip(floats(piece)) {
            *m += v / n as f32;
        }
    }
    assert!(max_abs_diff(&mean, &floats(&rows[0]["token_embeddings"][0])) < 1e-5);
}

#[test]
fn npy_and_arrow_outputs() {
    let model = minilm();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(
        &input,
        "first sentence\n\nsecond one, longer than the first\r\nthird\n",
    )
    .unwrap();
    let input = input.display().to_string();

    let npy = dir.path().join("out.npy");
    let out = bert_embed(&[
        "--model",
        &model,
        "--file",
        &input,
        "--format",
        "npy",
        "--output",
        npy.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(String::from_utf8_lossy(&bytes[10..10 + header_len]).contains("(3, 384)"));
    assert_eq!(bytes.len(), 10 + header_len + 3 * 384 * 4);

    let arrow_path = dir.path().join("out.arrow");
    let out = bert_embed(&[
        "--model",
        &model,
        "--file",
        &input,
        "--format",
        "arrow",
        "--output",
        arrow_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reader =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&arrow_path).unwrap(), None)
            .unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    assert_eq!(batch.num_rows(), 3);
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["text", "tokens", "sentence_embedding", "token_embeddings"]
    );
    // No temporary files are left behind by the atomic writes.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}");
}

#[test]
fn bad_inputs_are_clear_errors_not_panics() {
    let model = minilm();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();

    std::fs::write(path("empty.txt"), "\n  \n").unwrap();
    expect_error(
        &bert_embed(&["--model", &model, "--file", &path("empty.txt")]),
        &["has no sentences"],
    );

    std::fs::write(path("latin1.txt"), b"ok line\ncaf\xe9\n").unwrap();
    expect_error(
        &bert_embed(&["--model", &model, "--file", &path("latin1.txt")]),
        &["not UTF-8", "line 2"],
    );

    expect_error(
        &bert_embed(&["--model", &model, "--file", &path("absent.txt")]),
        &["cannot read"],
    );
    expect_error(
        &bert_embed(&["--model", &path("nowhere"), "--sentences", "x"]),
        &["config.json"],
    );
    expect_error(
        &bert_embed(&["--model", &model, "--format", "npy", "--sentences", "x"]),
        &["--format npy writes binary data", "--output"],
    );
    // An output that cannot be written is refused before any work, leaving nothing behind.
    let missing_dir = path("no-such-dir/out.npy");
    let cases = [
        (&missing_dir, vec!["cannot write", "no-such-dir/out.npy"]),
        (&path(""), vec!["is a directory: give a file name"]),
    ];
    for (output, needles) in cases {
        expect_error(
            &bert_embed(&[
                "--model",
                &model,
                "--format",
                "npy",
                "--output",
                output,
                "--sentences",
                "x",
            ]),
            &needles,
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    expect_error(
        &bert_embed(&["--model", &model, "--backend", "tpu", "--sentences", "x"]),
        &["unknown backend"],
    );
    expect_error(
        &bert_embed(&[
            "--model",
            &model,
            "--max-seq-length",
            "9999",
            "--sentences",
            "x",
        ]),
        &["max_seq_length"],
    );

    // A config.json that disagrees with the weights: every missing tensor is named.
    let bad = dir.path().join("bad-model");
    std::fs::create_dir(&bad).unwrap();
    let src = minilm_dir();
    for f in ["model.safetensors", "tokenizer.json", "vocab.txt"] {
        link_or_copy(&src.join(f), &bad.join(f));
    }
    let config = std::fs::read_to_string(src.join("config.json"))
        .unwrap()
        .replace("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 7");
    std::fs::write(bad.join("config.json"), config).unwrap();
    expect_error(
        &bert_embed(&["--model", bad.to_str().unwrap(), "--sentences", "x"]),
        &[
            "num_hidden_layers 7 vs 6",
            "missing tensor encoder.layer.6.attention.self.query.weight",
            "missing tensor encoder.layer.6.output.LayerNorm.bias",
        ],
    );

    // NaN in the weights (a diverged run's, say): named, tensor by tensor, not NaN vectors.
    let nan = dir.path().join("nan-model");
    std::fs::create_dir(&nan).unwrap();
    for f in ["config.json", "tokenizer.json", "vocab.txt"] {
        link_or_copy(&src.join(f), &nan.join(f));
    }
    let mut weights = std::fs::read(src.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&weights[8..8 + header_len]).unwrap();
    let name = "embeddings.LayerNorm.weight";
    let entry = header
        .get(name)
        .or_else(|| header.get(format!("bert.{name}")))
        .expect("MiniLM has the embeddings' LayerNorm");
    assert_eq!(entry["dtype"], "F32");
    let start = 8 + header_len + entry["data_offsets"][0].as_u64().unwrap() as usize;
    weights[start + 12..start + 16].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(nan.join("model.safetensors"), weights).unwrap();
    expect_error(
        &bert_embed(&["--model", nan.to_str().unwrap(), "--sentences", "x"]),
        &[name, "1 of 384 values are NaN or infinite", "flat index 3"],
    );
}

fn link_or_copy(from: &Path, to: &Path) {
    #[cfg(unix)]
    if std::os::unix::fs::symlink(from, to).is_ok() {
        return;
    }
    std::fs::copy(from, to).unwrap();
}
