//! `GET /metrics` in Prometheus' text format, with text-embeddings-inference's names where it
//! has one (`te_*`): requests, batch sizes, queue and inference time, tokens.

use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the batch-size histogram.
const BATCH_BUCKETS: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

#[derive(Default)]
struct Counts {
    requests: u64,
    successes: u64,
    failures: std::collections::BTreeMap<&'static str, u64>,
    batches: u64,
    batch_inputs: u64,
    batch_histogram: [u64; BATCH_BUCKETS.len()],
    batch_tokens: u64,
    inference_seconds: f64,
    queue_seconds: f64,
    queued_requests: u64,
    busy_seconds: f64,
}

/// Counters shared by the handlers and the batcher.
#[derive(Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Counts)) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut counts);
    }

    pub fn request(&self) {
        self.with(|c| c.requests += 1);
    }

    pub fn success(&self) {
        self.with(|c| c.successes += 1);
    }

    /// A request answered with an error of `kind` (`validation`, `overloaded`, ...).
    pub fn failure(&self, kind: &'static str) {
        self.with(|c| *c.failures.entry(kind).or_default() += 1);
    }

    pub fn queue_time(&self, waited: Duration) {
        self.with(|c| {
            c.queue_seconds += waited.as_secs_f64();
            c.queued_requests += 1;
        });
    }

    /// One forward pass of `inputs` inputs holding `tokens` tokens.
    pub fn batch(&self, inputs: usize, tokens: usize, took: Duration) {
        self.with(|c| {
            c.batches += 1;
            c.batch_inputs += inputs as u64;
            c.batch_tokens += tokens as u64;
            c.inference_seconds += took.as_secs_f64();
            for (bound, count) in BATCH_BUCKETS.iter().zip(&mut c.batch_histogram) {
                if inputs <= *bound {
                    *count += 1;
                }
            }
        });
    }

    pub fn busy(&self, took: Duration) {
        self.with(|c| c.busy_seconds += took.as_secs_f64());
    }

    /// Every metric in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "te_request_count",
            "Requests received",
            c.requests.to_string(),
        );
        counter(
            "te_request_success",
            "Requests answered with 2xx",
            c.successes.to_string(),
        );
        counter(
            "te_embed_count",
            "Forward passes (batches) run",
            c.batches.to_string(),
        );
        counter(
            "te_batch_tokens_total",
            "Tokens run through the encoder",
            c.batch_tokens.to_string(),
        );
        counter(
            "te_busy_seconds_total",
            "Seconds the encoder worker was busy",
            format!("{:.6}", c.busy_seconds),
        );
        let _ = writeln!(
            out,
            "# HELP te_request_failure Requests answered with an error\n# TYPE te_request_failure counter"
        );
        for (kind, n) in &c.failures {
            let _ = writeln!(out, "te_request_failure{{err=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP te_batch_next_size Inputs per forward pass\n# TYPE te_batch_next_size histogram"
        );
        for (bound, n) in BATCH_BUCKETS.iter().zip(c.batch_histogram) {
            let _ = writeln!(out, "te_batch_next_size_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "te_batch_next_size_bucket{{le=\"+Inf\"}} {0}\nte_batch_next_size_sum {1}\nte_batch_next_size_count {0}",
            c.batches, c.batch_inputs
        );
        for (name, help, sum, count) in [
            (
                "te_queue_duration",
                "Seconds requests waited in the queue",
                c.queue_seconds,
                c.queued_requests,
            ),
            (
                "te_inference_duration",
                "Seconds per forward pass",
                c.inference_seconds,
                c.batches,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} summary\n{name}_sum {sum:.6}\n{name}_count {count}"
            );
        }
        out
    }
}
