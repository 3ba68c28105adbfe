//! `bert-serve` end to end: the real binary on an ephemeral loopback port serving the real
//! all-MiniLM-L6-v2, called over HTTP by many clients at once; its vectors against
//! `BertEmbedding`'s; a classifier fine-tuned by `finetune-classifier` against its
//! `--only-inference` labels; bad requests; SIGTERM with requests in flight.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bert_model::{BackendKind, BertEmbedding};
use serde_json::{Value, json};
use test_support::{max_abs, minilm_dir};

/// Tests take turns where timing matters: most share (read), the SIGTERM test runs alone (write).
static TURN: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A turn beside the other tests (a failed test's poisoned lock still gives one).
fn shared_turn() -> std::sync::RwLockReadGuard<'static, ()> {
    TURN.read().unwrap_or_else(|e| e.into_inner())
}

/// A running `bert-serve` and its address.
struct Served {
    child: Child,
    url: String,
    /// What it printed before it listened.
    startup: Vec<String>,
}

impl Served {
    fn start(extra: &[&str]) -> Self {
        Self::start_model(&minilm_dir(), extra)
    }

    fn start_model(model: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bert-serve"))
            .args([
                "--model",
                model.to_str().unwrap(),
                "--port",
                "0",
                "--backend",
                "cpu",
            ])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting bert-serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut startup = Vec::new();
        let url = loop {
            let line = lines
                .next()
                .expect("bert-serve ended before listening")
                .unwrap();
            if let Some(at) = line.find("listening on ") {
                break line[at + "listening on ".len()..].trim().to_string();
            }
            startup.push(line);
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url,
            startup,
        }
    }

    fn post(&self, path: &str, body: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        let mut response = agent
            .post(&format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .send(body)
            .expect("an HTTP answer");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    fn get(&self, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .get(&format!("{}{path}", self.url))
            .call()
            .expect("an HTTP answer");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    fn json(&self, path: &str, body: Value) -> Value {
        let (status, text) = self.post(path, &body.to_string());
        assert_eq!(status, 200, "{path} {body}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sentences of many lengths: SST-2 dev's first 120, and a few long ones.
fn sentences() -> Vec<String> {
    let tsv = std::fs::read_to_string(
        test_support::repo_root().join("../shared/data/glue/SST-2/dev.tsv"),
    )
    .expect("../shared/data/glue/SST-2/dev.tsv");
    let mut out: Vec<String> = tsv
        .lines()
        .skip(1)
        .take(120)
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    let long = out[..12].join(" ");
    out.push(long.clone());
    out.push(format!("{long} {long}"));
    out
}

fn vector(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn concurrent_clients_get_the_librarys_vectors_in_batches() {
    let _turn = shared_turn();
    let served = Arc::new(Served::start(&[]));
    let texts = Arc::new(sentences());
    let device = BackendKind::Cpu.device().unwrap();
    let (library, _) = BertEmbedding::from_dir(&minilm_dir(), &device).unwrap();
    let library = library.with_normalize(true).with_token_embeddings(false);
    let expected: Arc<Vec<Vec<f32>>> = Arc::new(
        library
            .embed(&texts)
            .unwrap()
            .into_iter()
            .map(|e| e.sentence_embedding)
            .collect(),
    );

    // 64 clients, 2,000 requests of 1-4 inputs, with truncation for the long ones.
    let (clients, requests) = (64usize, 2000usize);
    let started = Instant::now();
    let worst = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (served, texts, expected) = (served.clone(), texts.clone(), expected.clone());
                s.spawn(move || {
                    let mut worst = 0.0f32;
                    for r in (c..requests).step_by(clients) {
                        let n = 1 + r % 4;
                        let picked: Vec<usize> =
                            (0..n).map(|k| (r * 7 + k * 13) % texts.len()).collect();
                        let inputs: Vec<&str> = picked.iter().map(|&i| texts[i].as_str()).collect();
                        let body = json!({ "inputs": inputs, "truncate": true });
                        let answer = served.json("/embed", body);
                        let rows = answer.as_array().unwrap();
                        assert_eq!(rows.len(), n);
                        for (row, &i) in rows.iter().zip(&picked) {
                            worst = worst.max(max_abs(&vector(row), &expected[i]));
                        }
                    }
                    worst
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold(0.0, f32::max)
    });
    eprintln!(
        "{requests} requests from {clients} clients in {:.1} s; largest difference from BertEmbedding {worst:.2e}",
        started.elapsed().as_secs_f64()
    );
    assert!(worst <= 1e-5, "{worst}");

    let (status, metrics) = served.get("/metrics");
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{metrics}"))
            .parse()
            .unwrap()
    };
    let (inputs, batches) = (
        value("te_batch_next_size_sum"),
        value("te_batch_next_size_count"),
    );
    assert!(
        inputs / batches > 1.5,
        "{inputs} inputs in {batches} batches"
    );
    assert!(value("te_request_success") >= requests as f64);
}

#[test]
fn openai_and_tei_shapes() {
    let _turn = shared_turn();
    let served = Served::start(&[]);
    let floats = served.json(
        "/v1/embeddings",
        json!({ "input": ["A man is eating.", "Hi"], "model": "m" }),
    );
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["model"], "m");
    let data = floats["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert!(floats["usage"]["prompt_tokens"].as_u64().unwrap() >= 8);
    let encoded = served.json(
        "/v1/embeddings",
        json!({ "input": "A man is eating.", "encoding_format": "base64" }),
    );
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, vector(&data[0]["embedding"]));
    // TEI's /embed of one string: a list of one vector, normalised by default.
    let one = served.json("/embed", json!({ "inputs": "A man is eating." }));
    assert_eq!(vector(&one[0]), decoded);
    let raw = served.json(
        "/embed",
        json!({ "inputs": "A man is eating.", "normalize": false }),
    );
    let norm: f32 = vector(&raw[0]).iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 1e-3, "not normalised: {norm}");
    let tokens = served.json("/embed_all", json!({ "inputs": ["A man is eating."] }));
    assert_eq!(
        tokens[0].as_array().unwrap().len(),
        7,
        "[CLS] a man is eating . [SEP]"
    );
    let pieces = served.json("/tokenize", json!({ "inputs": "A man" }));
    let texts: Vec<&str> = pieces[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["[CLS]", "A", "man", "[SEP]"]);
    let (status, info) = served.get("/info");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["dimension"], 384);
    assert_eq!(info["max_input_length"], 256);
    assert_eq!(info["model_type"]["embedding"]["pooling"], "mean");
}

/// A GPU set-up on the CPU: warm-up before listening (2 padded lengths x 2 batch sizes),
/// float16 weights, batches padded to 32 — vectors within float16's bound of float32's.
#[test]
fn warmed_up_float16_server_serves_close_vectors() {
    let _turn = shared_turn();
    let full = Served::start(&[]);
    let half = Served::start(&[
        "--max-input-length",
        "64",
        "--pad-to-multiple-of",
        "32",
        "--dtype",
        "float16",
        "--warmup",
    ]);
    assert!(
        half.startup
            .iter()
            .any(|l| l.contains("warmed up with 4 batches")),
        "{:?}",
        half.startup
    );
    assert!(
        !full.startup.iter().any(|l| l.contains("warmed up")),
        "no warm-up on the CPU by default: {:?}",
        full.startup
    );
    let info = |served: &Served| -> Value { serde_json::from_str(&served.get("/info").1).unwrap() };
    let (full_info, half_info) = (info(&full), info(&half));
    assert_eq!(full_info["model_dtype"], "float32");
    assert_eq!(half_info["model_dtype"], "float16");
    assert_eq!(full_info["max_batch_requests"], 32, "the CPU's default");
    let body =
        json!({ "inputs": ["A man is eating.", "The stock market fell sharply on Monday."] });
    let (a, b) = (full.json("/embed", body.clone()), half.json("/embed", body));
    for i in 0..2 {
        let diff = test_support::max_abs(&vector(&a[i]), &vector(&b[i]));
        assert!(
            diff < 1e-3,
            "input {i}: float16 vs float32 differ by {diff}"
        );
    }
}

#[test]
fn bad_requests_are_clear_errors_and_the_server_goes_on() {
    let _turn = shared_turn();
    let served = Served::start(&["--max-client-batch-size", "2", "--max-input-length", "16"]);
    let long = "word ".repeat(40);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/embed", "{not json".into(), 422, "as JSON"),
        ("/embed", json!({ "inputs": 5 }).to_string(), 422, "inputs"),
        ("/embed", json!({}).to_string(), 422, "inputs"),
        (
            "/embed",
            json!({ "inputs": [] }).to_string(),
            422,
            "cannot be empty",
        ),
        (
            "/embed",
            json!({ "inputs": [""] }).to_string(),
            422,
            "`inputs[0]` is empty",
        ),
        (
            "/embed",
            json!({ "inputs": ["a", "b", "c"] }).to_string(),
            422,
            "maximum allowed batch size 2",
        ),
        (
            "/embed",
            json!({ "inputs": long }).to_string(),
            422,
            "must have less than 16 tokens",
        ),
        (
            "/embed",
            json!({ "inputs": "a", "colour": 1 }).to_string(),
            422,
            "colour",
        ),
        (
            "/embed",
            json!({ "inputs": "a", "prompt_name": "q" }).to_string(),
            422,
            "prompt",
        ),
        (
            "/v1/embeddings",
            json!({ "input": "a", "encoding_format": "hex" }).to_string(),
            422,
            "encoding_format",
        ),
        (
            "/v1/embeddings",
            json!({ "input": "a", "dimensions": 10 }).to_string(),
            422,
            "384",
        ),
        (
            "/predict",
            json!({ "inputs": "a" }).to_string(),
            424,
            "fine-tuned classifier",
        ),
        // One byte over the 2 MiB limit, not more: the server reads the body up to the limit,
        // answers and closes, and bytes still unread then would reset the connection under
        // the answer (a client sending 3 MiB sometimes got a broken pipe instead of 413).
        (
            "/embed",
            format!("{{\"inputs\": \"{}\"}}", "x".repeat((2 << 20) + 1 - 14)),
            413,
            "",
        ),
    ];
    for (path, body, status, needle) in cases {
        let (got, text) = served.post(path, &body);
        assert_eq!(
            got,
            status,
            "{path} {}: {text}",
            &body[..body.len().min(80)]
        );
        if status != 413 {
            let error: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON error: {text}"));
            let message = error["error"].as_str().unwrap();
            assert!(message.contains(needle), "{needle:?} not in {message:?}");
            assert!(error["error_type"].is_string());
        }
    }
    // Truncation on request instead of an error.
    let cut = served.json("/embed", json!({ "inputs": long, "truncate": true }));
    assert_eq!(cut[0].as_array().unwrap().len(), 384);
    assert_eq!(served.get("/health").0, 200);
    let (_, metrics) = served.get("/metrics");
    assert!(
        metrics.contains("te_request_failure{err=\"validation\"}"),
        "{metrics}"
    );
}

#[test]
fn a_full_queue_is_429_and_sigterm_answers_the_requests_in_flight() {
    // Alone: on two cores busy with the other tests' servers, a connection could still sit in
    // the listen backlog when SIGTERM closes it (reset, never in flight).
    let _turn = TURN.write().unwrap_or_else(|e| e.into_inner());
    let mut served = Served::start(&["--max-concurrent-requests", "2"]);
    let long = "the quick brown fox jumps over the lazy dog ".repeat(20);
    let body = json!({ "inputs": vec![long.as_str(); 32], "truncate": true }).to_string();
    let started = std::sync::atomic::AtomicUsize::new(0);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(|| {
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    served.post("/embed", &body).0
                })
            })
            .collect();
        // Stop once the requests are in: every client has started, and the server has had a
        // moment to accept the connections (one still in the listen backlog at SIGTERM would
        // be reset, never in flight).
        let deadline = Instant::now() + Duration::from_secs(30);
        while started.load(std::sync::atomic::Ordering::SeqCst) < 12 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(500));
        let pid = served.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let answered = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(answered + refused, statuses.len(), "{statuses:?}");
    assert!(answered >= 2, "{statuses:?}");
    assert!(
        refused >= 1,
        "a queue of 2 refuses some of 12 at once: {statuses:?}"
    );
    let status = served.child.wait().unwrap();
    assert!(status.success(), "bert-serve exited with {status}");
}

/// A glue_data/RTE directory with the header and the first rows of each split.
fn rte_head(dir: &Path, splits: &[(&str, usize)]) -> PathBuf {
    let out = dir.join("RTE");
    std::fs::create_dir_all(&out).unwrap();
    for (split, n) in splits {
        let path = test_support::repo_root().join(format!("../shared/data/glue/RTE/{split}.tsv"));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().take(n + 1).collect();
        std::fs::write(out.join(format!("{split}.tsv")), lines.join("\n") + "\n").unwrap();
    }
    out
}

#[test]
fn predict_gives_the_labels_that_only_inference_gives() {
    let _turn = shared_turn();
    use bert_model::checkpoint::ModelSource;
    use bert_train::finetune::{ClassifierConfig, run_classifier};
    use bert_train::tasks::glue::Task;

    let tmp = tempfile::tempdir().unwrap();
    let data = rte_head(tmp.path(), &[("train", 32), ("dev", 8), ("test", 24)]);
    let mut tune = ClassifierConfig::new(Task::Rte, data.clone(), ModelSource::Dir(minilm_dir()));
    tune.epochs = 1;
    tune.batch_size = 8;
    tune.max_len = 64;
    tune.output_dir = tmp.path().join("tuned");
    tune.print = false;
    let best = run_classifier(&tune)
        .unwrap()
        .best_dir
        .expect("a best model");

    let mut again = ClassifierConfig::new(Task::Rte, data.clone(), ModelSource::Dir(best.clone()));
    again.only_inference = true;
    again.max_len = 64;
    again.output_dir = tmp.path().join("again");
    again.print = false;
    let predictions = run_classifier(&again).unwrap().predictions;
    let submission = std::fs::read_to_string(&predictions[0]).unwrap();
    let expected: Vec<&str> = submission
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();

    let served = Served::start_model(&best, &["--max-input-length", "64"]);
    let test = std::fs::read_to_string(data.join("test.tsv")).unwrap();
    let pairs: Vec<Value> = test
        .lines()
        .skip(1)
        .map(|l| {
            let columns: Vec<&str> = l.split('\t').collect();
            json!([columns[1], columns[2]])
        })
        .collect();
    let answer = served.json("/predict", json!({ "inputs": pairs, "truncate": true }));
    let labels: Vec<&str> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|scores| scores[0]["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, expected);
    // Probabilities by default, highest first; raw logits on request; one pair alone.
    let one = served.json("/predict", json!({ "inputs": pairs[0] }));
    let probabilities: Vec<f64> = one
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["score"].as_f64().unwrap())
        .collect();
    assert!((probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    assert!(probabilities[0] >= probabilities[1]);
    assert_eq!(one[0]["label"], expected[0]);
    let raw = served.json(
        "/predict",
        json!({ "inputs": pairs[0], "raw_scores": true }),
    );
    assert!(raw[0]["score"].as_f64().unwrap() != probabilities[0]);
    let (_, info) = served.get("/info");
    let info: Value = serde_json::from_str(&info).unwrap();
    let id2label = &info["model_type"]["classifier"]["id2label"];
    assert!(
        id2label["0"].is_string() && id2label["1"].is_string(),
        "{info}"
    );
    // Embedding routes on a classifier: a clear error, not vectors.
    let (status, text) = served.post("/embed", &json!({ "inputs": "a" }).to_string());
    assert_eq!(status, 424, "{text}");
    assert!(text.contains("/predict"), "{text}");
}

/// The `openai` Python package (in the test venv: tests/python/setup_venv.sh) against
/// `/v1/embeddings`, its default base64 encoding and floats: TEI's /embed vectors.
#[test]
fn the_openai_python_client_gets_the_same_vectors() {
    let _turn = shared_turn();
    let served = Served::start(&[]);
    let texts = ["A man is playing a guitar.", "Someone makes music.", "Hi"];
    let script = r#"
import json, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused", max_retries=0, timeout=120)
texts = json.loads(sys.argv[2])
default = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
floats = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
print(json.dumps({"default": [list(map(float, d.embedding)) for d in default.data],
                  "float": [d.embedding for d in floats.data],
                  "tokens": default.usage.prompt_tokens, "model": default.model}))
"#;
    let out = Command::new(test_support::reference_python())
        .args(["-c", script, &served.url, &json!(texts).to_string()])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .expect("python (tests/python/setup_venv.sh makes the venv)");
    assert!(
        out.status.success(),
        "the openai client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = served.json("/embed", json!({ "inputs": texts }));
    for (encoding, rows) in [("default", &answer["default"]), ("float", &answer["float"])] {
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), texts.len(), "{encoding}");
        for (got, want) in rows.iter().zip(expected.as_array().unwrap()) {
            let difference = max_abs(&vector(got), &vector(want));
            assert!(difference <= 1e-6, "{encoding}: {difference}");
        }
    }
    assert_eq!(answer["model"], "all-MiniLM-L6-v2");
    assert!(answer["tokens"].as_u64().unwrap() >= 12, "{answer}");
}
