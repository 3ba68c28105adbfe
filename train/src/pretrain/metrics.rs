//! What training reports every `--log-interval` steps: one line on stderr and the same numbers
//! as one JSON object per line in `CKPT_DIR/metrics.jsonl`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::loss::BatchStats;

/// One row of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub step: u64,
    pub lr: f64,
    pub mlm_loss: f64,
    pub nsp_loss: f64,
    pub mlm_acc: f64,
    pub nsp_acc: f64,
    pub seq_per_s: f64,
    pub tokens_per_s: f64,
    /// Global gradient norm before clipping, averaged over the interval's steps.
    pub grad_norm: f64,
    /// Several processes: seconds per step spent summing gradients across them (waiting for
    /// the slowest included), averaged over the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_s_per_step: Option<f64>,
}

impl MetricsRow {
    /// The figures shown beside the progress bar.
    pub fn brief(&self) -> String {
        format!(
            "mlm_loss {:.3} mlm_acc {:.3} nsp_acc {:.3}",
            self.mlm_loss, self.mlm_acc, self.nsp_acc
        )
    }

    pub fn line(&self, num_steps: u64) -> String {
        format!(
            "step {}/{num_steps}  lr {:.3e}  mlm_loss {:.4}  nsp_loss {:.4}  mlm_acc {:.4}  \
             nsp_acc {:.4}  {:.1} seq/s  {:.0} tok/s  grad_norm {:.3}",
            self.step,
            self.lr,
            self.mlm_loss,
            self.nsp_loss,
            self.mlm_acc,
            self.nsp_acc,
            self.seq_per_s,
            self.tokens_per_s,
            self.grad_norm
        ) + &self
            .sync_s_per_step
            .map(|s| format!("  sync {s:.3} s/step"))
            .unwrap_or_default()
    }
}

/// Sums over the micro-batches since the last report.
#[derive(Debug)]
pub struct Interval {
    start: Instant,
    mlm_loss: f64,
    mlm_correct: f64,
    mlm_weight: f64,
    nsp_loss: f64,
    nsp_correct: f64,
    sequences: u64,
    tokens: u64,
    grad_norm: f64,
    steps: u64,
    sync_seconds: f64,
}

impl Default for Interval {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            mlm_loss: 0.0,
            mlm_correct: 0.0,
            mlm_weight: 0.0,
            nsp_loss: 0.0,
            nsp_correct: 0.0,
            sequences: 0,
            tokens: 0,
            grad_norm: 0.0,
            steps: 0,
            sync_seconds: 0.0,
        }
    }
}

impl Interval {
    /// Count a micro-batch's sequences and real tokens (for the throughput).
    pub fn add_sizes(&mut self, sequences: usize, tokens: usize) {
        self.sequences += sequences as u64;
        self.tokens += tokens as u64;
    }

    /// Losses are averaged per masked token (MLM) and per sequence (NSP), not per batch.
    pub fn add_stats(&mut self, stats: &BatchStats) {
        self.mlm_loss += stats.mlm_loss * stats.mlm_weight;
        self.mlm_correct += stats.mlm_correct;
        self.mlm_weight += stats.mlm_weight;
        self.nsp_loss += stats.nsp_loss * stats.sequences;
        self.nsp_correct += stats.nsp_correct;
    }

    /// The whole job's figures: every process's losses, counts and sizes summed (the gradient
    /// norm and the steps are the same in every process).
    pub fn sum_over(&mut self, job: &dyn crate::training::collective::Collective) {
        if job.size() == 1 {
            return;
        }
        let mut sums = [
            self.mlm_loss,
            self.mlm_correct,
            self.mlm_weight,
            self.nsp_loss,
            self.nsp_correct,
            self.sequences as f64,
            self.tokens as f64,
        ];
        job.sum_f64(&mut sums);
        [
            self.mlm_loss,
            self.mlm_correct,
            self.mlm_weight,
            self.nsp_loss,
            self.nsp_correct,
        ] = [sums[0], sums[1], sums[2], sums[3], sums[4]];
        self.sequences = sums[5] as u64;
        self.tokens = sums[6] as u64;
    }

    pub fn add_step(&mut self, grad_norm: f64, sync_seconds: f64) {
        self.grad_norm += grad_norm;
        self.sync_seconds += sync_seconds;
        self.steps += 1;
    }

    /// The row for `step`, and a fresh interval.
    pub fn finish(&mut self, step: u64, lr: f64) -> MetricsRow {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let per = |x: f64, n: f64| if n > 0.0 { x / n } else { 0.0 };
        let seqs = self.sequences as f64;
        let row = MetricsRow {
            step,
            lr,
            mlm_loss: per(self.mlm_loss, self.mlm_weight),
            nsp_loss: per(self.nsp_loss, seqs),
            mlm_acc: per(self.mlm_correct, self.mlm_weight),
            nsp_acc: per(self.nsp_correct, seqs),
            seq_per_s: seqs / secs,
            tokens_per_s: self.tokens as f64 / secs,
            grad_norm: per(self.grad_norm, self.steps as f64),
            // Exactly 0 in one process (`StepReport::sync_seconds`).
            sync_s_per_step: (self.sync_seconds > 0.0)
                .then(|| per(self.sync_seconds, self.steps as f64)),
        };
        *self = Self::default();
        row
    }
}

/// `metrics.jsonl`, appended to row by row.
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    /// Open the log of `ckpt_dir`, dropping rows past `resume_step`: a run killed after its last
    /// checkpoint logged steps that the resumed run does again.
    pub fn open(ckpt_dir: &Path, resume_step: u64) -> Result<Self> {
        let path = ckpt_dir.join("metrics.jsonl");
        if let Ok(text) = fs::read_to_string(&path) {
            let kept: Vec<&str> = text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|step| step <= resume_step)
                })
                .collect();
            let mut body = kept.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            bert_core::fsutil::write_atomic(&path, body.as_bytes())?;
        }
        Ok(Self { path })
    }

    pub fn append(&self, row: &impl Serialize) -> Result<()> {
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        let mut line = serde_json::to_string(row)?;
        line.push('\n');
        file.write_all(line.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_per_token_and_per_sequence() {
        let mut interval = Interval::default();
        let a = BatchStats {
            mlm_loss: 2.0,
            mlm_correct: 1.0,
            mlm_weight: 2.0,
            nsp_loss: 1.0,
            nsp_correct: 1.0,
            sequences: 1.0,
        };
        let b = BatchStats {
            mlm_loss: 5.0,
            mlm_correct: 3.0,
            mlm_weight: 6.0,
            nsp_loss: 0.0,
            nsp_correct: 3.0,
            sequences: 3.0,
        };
        interval.add_sizes(1, 10);
        interval.add_stats(&a);
        interval.add_sizes(3, 30);
        interval.add_stats(&b);
        interval.add_step(2.0, 0.0);
        let row = interval.finish(7, 1e-4);
        assert_eq!(row.step, 7);
        assert!((row.mlm_loss - (4.0 + 30.0) / 8.0).abs() < 1e-12);
        assert!((row.mlm_acc - 0.5).abs() < 1e-12);
        assert!((row.nsp_loss - 0.25).abs() < 1e-12);
        assert!((row.nsp_acc - 1.0).abs() < 1e-12);
        assert_eq!(row.grad_norm, 2.0);
        assert!(row.line(10).starts_with("step 7/10  lr 1.000e-4"));
    }

    #[test]
    fn resuming_drops_rows_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let log = MetricsLog::open(dir.path(), 0).unwrap();
        for step in [2u64, 4, 6] {
            log.append(&serde_json::json!({ "step": step })).unwrap();
        }
        MetricsLog::open(dir.path(), 4).unwrap();
        let text = fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
        assert_eq!(text, "{\"step\":2}\n{\"step\":4}\n");
    }
}
