//! The demo page (web/) in headless Chromium: the wasm build of the encoder, on WebGPU
//! (SwiftShader) and on the CPU fallback, against native `bert-train` embeddings and stored
//! sentence-transformers vectors; the wasm tokenizer against the native one; the page's heat
//! map and search ranking; and a screenshot per backend.
//!
//! Needs what CI installs (.ci/run): `wasm-embed/build.sh` run (web/pkg/), `npm ci` in web/,
//! Debian's chromium, node, and all-MiniLM-L6-v2 in models/. Missing pieces fail the test with
//! how to get them; outside CI, `BERT_SKIP_BROWSER=1` skips it, loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

use bert_model::checkpoint::convert::StorageDtype;
use bert_model::checkpoint::load_tokenizer;
use bert_model::embed::BertEmbedding;
use bert_train::cli::convert;
use burn::tensor::Device;
use serde_json::{Value, json};
use test_support::hub_mock::{HubMock, MockRepo};
use test_support::{MINILM_COMMIT, cosine, max_abs};

const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// What is missing for the browser run, with how to get it.
fn missing_prerequisites(root: &Path) -> Vec<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let checks = [
        (
            root.join("web/pkg/wasm_embed_bg.wasm"),
            "build the browser package: wasm-embed/build.sh",
        ),
        (
            root.join("web/node_modules/playwright-core/package.json"),
            "install the test driver: (cd web && npm ci)",
        ),
        (
            PathBuf::from(&chromium),
            "install Chromium: apt-get install -y chromium",
        ),
        (
            root.join("models/all-MiniLM-L6-v2/model.safetensors"),
            "fetch the model: train/scripts/fetch_minilm.sh",
        ),
    ];
    let mut missing: Vec<String> = checks
        .iter()
        .filter(|(path, _)| !path.exists())
        .map(|(path, how)| format!("{} is missing; {how}", path.display()))
        .collect();
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node is missing; apt-get install -y nodejs npm".into());
    }
    missing
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array of strings")
        .iter()
        .map(|x| x.as_str().expect("a string").to_string())
        .collect()
}

/// An array of vectors from results.json.
fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .expect("an array of vectors")
        .iter()
        .map(floats)
        .collect()
}

/// Each vector of `got` against `want`: cosine >= 0.9999 and max-abs <= 1e-3.
fn assert_close(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_close_within(what, got, want, 1e-3);
}

/// Each vector of `got` against `want`: cosine >= 0.9999 and max-abs <= `max_abs_limit`.
fn assert_close_within(what: &str, got: &[Vec<f32>], want: &[Vec<f32>], max_abs_limit: f32) {
    assert_eq!(got.len(), want.len(), "{what}: number of vectors");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: width of vector {i}");
        let (c, m) = (cosine(g, w), max_abs(g, w));
        assert!(
            c >= 0.9999 && m <= max_abs_limit,
            "{what}: sentence {i} differs: cosine {c}, max-abs {m}"
        );
    }
}

/// The tokenizer sample: every SST-2 dev sentence, Chinese XNLI premises (CJK splitting),
/// and the hand-made edge cases of train's reference fixture (accents, combining marks,
/// emoji, control characters, a text longer than the truncation limit).
fn tokenizer_sample(root: &Path) -> Vec<String> {
    let shared = root.join("../shared/data");
    let mut texts = Vec::new();
    let sst = std::fs::read_to_string(shared.join("glue/SST-2/dev.tsv"))
        .expect("../shared/data/glue/SST-2/dev.tsv");
    texts.extend(
        sst.lines()
            .skip(1)
            .filter_map(|l| l.split('\t').next())
            .map(str::to_string),
    );
    let xnli =
        std::fs::read_to_string(shared.join("xnli/dev.tsv")).expect("../shared/data/xnli/dev.tsv");
    let mut premises: Vec<&str> = xnli
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    premises.dedup();
    texts.extend(premises.into_iter().take(300).map(str::to_string));
    let reference = read_json(&root.join("train/tests/fixtures/minilm_reference.json"));
    texts.extend(strings(&reference["sentences"]));
    texts.extend(
        reference["tokenizer_cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap().to_string()),
    );
    texts
}

#[test]
fn demo_page_in_headless_chromium_matches_native_and_sentence_transformers() {
    let root = bert_tests::repo_root();
    let missing = missing_prerequisites(&root);
    if !missing.is_empty() {
        let list = missing.join("\n  ");
        if std::env::var_os("CI").is_none() && std::env::var_os("BERT_SKIP_BROWSER").is_some() {
            eprintln!("SKIPPED the browser test (BERT_SKIP_BROWSER is set):\n  {list}");
            return;
        }
        panic!(
            "the browser test cannot run:\n  {list}\n(outside CI, BERT_SKIP_BROWSER=1 skips it)"
        );
    }

    let fixture = read_json(&root.join("tests/fixtures/browser_minilm.json"));
    let sentences = strings(&fixture["sentences"]);
    let query = fixture["query"].as_str().unwrap().to_string();
    let st = vectors(&fixture["embeddings"]);
    let tokenize = tokenizer_sample(&root);

    // The model in float16 (`bert-train convert`), half the download, served beside it.
    let model_dir = root.join("models/all-MiniLM-L6-v2");
    let float16_dir = root.join("models/all-MiniLM-L6-v2-f16");
    convert::run(convert::ConvertArgs {
        model: model_dir.display().to_string(),
        bert_dataset: String::new(),
        revision: None,
        dtype: StorageDtype::Float16,
        output_dir: float16_dir,
    })
    .unwrap();

    // The model on a loopback hub, loaded by id; the page stops it before reloading.
    let hub = HubMock::start(vec![MockRepo::from_dir(MINILM, MINILM_COMMIT, &model_dir)]);

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-demo");
    std::fs::create_dir_all(&out).unwrap();
    let input = out.join("input.json");
    std::fs::write(
        &input,
        json!({
            "sentences": sentences,
            "query": query,
            "tokenize": tokenize,
            "float16Model": "../models/all-MiniLM-L6-v2-f16/",
            "hub": { "endpoint": hub.url(), "repo": MINILM },
        })
        .to_string(),
    )
    .unwrap();
    let status = Command::new("node")
        .arg(root.join("web/tests/browser_check.mjs"))
        .arg(&input)
        .arg(&out)
        .current_dir(&root)
        .status()
        .expect("running node");
    assert!(status.success(), "web/tests/browser_check.mjs failed");
    let results = read_json(&out.join("results.json"));

    // Native: the same encoder and pooling, sentence-transformers' defaults from the model dir.
    let (native, _) = BertEmbedding::from_dir(&model_dir, &Device::flex()).unwrap();
    let native = native.with_token_embeddings(false);
    let mut texts = sentences.clone();
    texts.push(query.clone());
    let mut native_vectors: Vec<Vec<f32>> = native
        .embed(&texts)
        .unwrap()
        .into_iter()
        .map(|e| e.sentence_embedding)
        .collect();
    let native_query = native_vectors.pop().unwrap();
    // Independent reference first: our native encoder against sentence-transformers.
    assert_close("native vs sentence-transformers", &native_vectors, &st);

    let runs = results["runs"].as_array().unwrap();
    let run = |name: &str| {
        runs.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} run in results.json"))
    };

    // Without navigator.gpu, asking for WebGPU is a clear error on the page, not a crash.
    let no_gpu = run("no-gpu");
    assert_eq!(no_gpu["state"], "error", "{no_gpu}");
    assert!(
        no_gpu["status"]
            .as_str()
            .unwrap()
            .contains("no WebGPU adapter"),
        "{no_gpu}"
    );

    let mut order: Vec<usize> = (0..sentences.len()).collect();
    let native_scores: Vec<f32> = native_vectors
        .iter()
        .map(|v| cosine(&native_query, v))
        .collect();
    order.sort_by(|&a, &b| native_scores[b].total_cmp(&native_scores[a]));

    for (name, backend) in [("cpu", "cpu"), ("webgpu", "webgpu")] {
        let r = run(name);
        assert_eq!(
            r["backend"], backend,
            "{name}: the page chose {}",
            r["backend"]
        );
        let status = r["status"].as_str().unwrap();
        assert!(
            status.contains(&format!("Backend: {backend}")) && status.contains("loaded in"),
            "{name}: status line {status:?}"
        );
        // The default build has both backends (WASM_EMBED_FEATURES builds one).
        assert_eq!(
            r["built"],
            json!(["webgpu", "cpu"]),
            "{name}: built backends"
        );
        // The CPU backend runs in Web Workers (one per core); WebGPU on the page's thread.
        let threads = r["threads"].as_u64().unwrap();
        if backend == "cpu" {
            assert!(
                threads >= 1,
                "{name}: the CPU encoder did not run in workers"
            );
        } else {
            assert_eq!(threads, 0, "{name}: WebGPU should not start workers");
        }
        let browser = vectors(&r["embeddings"]);
        assert_close(&format!("{name} vs native"), &browser, &native_vectors);
        assert_close(&format!("{name} vs sentence-transformers"), &browser, &st);

        // The heat map shows the native cosines.
        for (i, row) in r["heatmap"].as_array().unwrap().iter().enumerate() {
            for (j, c) in floats(row).into_iter().enumerate() {
                let want = cosine(&native_vectors[i], &native_vectors[j]);
                assert!(
                    (c - want).abs() <= 1e-3,
                    "{name}: heat map ({i}, {j}) is {c}, native cosine {want}"
                );
            }
        }
        // The search lists every sentence, closest first, as native vectors rank them.
        let ranking: Vec<usize> = r["ranking"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["index"].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            ranking, order,
            "{name}: search ranking (native scores {native_scores:?})"
        );
        assert!(
            Path::new(r["screenshot"].as_str().unwrap()).is_file(),
            "{name}: no screenshot"
        );
        eprintln!(
            "{name}: {} — {} — screenshot {}",
            status,
            r["timing"].as_str().unwrap_or(""),
            r["screenshot"].as_str().unwrap()
        );
    }

    // The float16 download gives the float32 vectors, to within the rounding of the weights.
    let r = run("cpu-float16");
    assert_eq!(
        r["backend"], "cpu",
        "cpu-float16: the page chose {}",
        r["backend"]
    );
    let browser = vectors(&r["embeddings"]);
    assert_close_within(
        "cpu-float16 vs native float32",
        &browser,
        &native_vectors,
        5e-3,
    );
    eprintln!("cpu-float16: {}", r["status"].as_str().unwrap_or(""));

    // A hub id: downloaded with progress, equal to native; after the hub stopped, the reload
    // came from Cache Storage with the same vectors.
    let r = run("hub");
    let first = vectors(&r["first"]["embeddings"]);
    assert_close("hub vs native", &first, &native_vectors);
    assert_eq!(
        vectors(&r["reload"]["embeddings"]),
        first,
        "the reload from the browser cache gives the same vectors"
    );
    let progress = r["first"]["progress"].as_array().unwrap();
    let weights = progress
        .iter()
        .rfind(|p| p["file"] == "model.safetensors")
        .expect("progress reported for the weights");
    let size = std::fs::metadata(model_dir.join("model.safetensors"))
        .unwrap()
        .len();
    assert_eq!(weights["loaded"].as_u64(), Some(size), "{weights}");
    assert_eq!(weights["total"].as_u64(), Some(size), "{weights}");
    assert!(
        progress.iter().all(|p| p["cached"] == false),
        "first load downloads"
    );
    let reload = r["reload"]["progress"].as_array().unwrap();
    assert!(
        !reload.is_empty() && reload.iter().all(|p| p["cached"] == true),
        "reload from the cache: {reload:?}"
    );
    let requests = hub.requests();
    let resolve = format!("GET /{MINILM}/resolve/main/model.safetensors");
    assert_eq!(
        requests.iter().filter(|r| **r == resolve).count(),
        1,
        "the weights were fetched once: {requests:?}"
    );
    eprintln!("hub: {}", r["status"].as_str().unwrap_or(""));

    // The wasm tokenizer (fancy-regex) gives native's (oniguruma) ids on the whole sample.
    let tokenizer = load_tokenizer(&model_dir, 256, None).unwrap();
    let wasm_ids = run("cpu")["tokenIds"].as_array().unwrap();
    assert_eq!(wasm_ids.len(), tokenize.len());
    for (text, ids) in tokenize.iter().zip(wasm_ids) {
        let want = tokenizer
            .encode(text.as_str(), true)
            .unwrap()
            .get_ids()
            .to_vec();
        let got: Vec<u32> = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(got, want, "token ids of {text:?}");
    }
    eprintln!(
        "wasm tokenizer matched native on {} texts; artifacts in {}",
        tokenize.len(),
        out.display()
    );
}
