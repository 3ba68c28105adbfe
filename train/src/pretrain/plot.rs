//! Pretraining's `metrics.svg`: the curves of `metrics.jsonl`, drawn at the end of a run
//! (`training::plot`): losses on the left, accuracies on the right, against the step.

use std::path::Path;

use anyhow::Result;

use super::metrics::MetricsRow;
use crate::training::plot::figure;

/// The SVG document for `rows` (which must not be empty).
pub fn svg(rows: &[MetricsRow]) -> String {
    let steps: Vec<f64> = rows.iter().map(|r| r.step as f64).collect();
    let col = |f: fn(&MetricsRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    figure(
        &steps,
        &[
            (
                "loss",
                vec![("MLM", col(|r| r.mlm_loss)), ("NSP", col(|r| r.nsp_loss))],
            ),
            (
                "accuracy",
                vec![("MLM", col(|r| r.mlm_acc)), ("NSP", col(|r| r.nsp_acc))],
            ),
        ],
    )
}

/// Draw `CKPT_DIR/metrics.jsonl` into `CKPT_DIR/metrics.svg`; nothing when there are no rows.
pub fn write_metrics_svg(ckpt_dir: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(ckpt_dir.join("metrics.jsonl")) else {
        return Ok(());
    };
    // Evaluation rows have another shape and are skipped.
    let rows: Vec<MetricsRow> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    bert_core::fsutil::write_atomic(&ckpt_dir.join("metrics.svg"), svg(&rows).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: u64, loss: f64) -> MetricsRow {
        MetricsRow {
            step,
            lr: 1e-4,
            mlm_loss: loss,
            nsp_loss: loss / 10.0,
            mlm_acc: 1.0 / loss,
            nsp_acc: 0.5,
            seq_per_s: 1.0,
            tokens_per_s: 1.0,
            grad_norm: 1.0,
            sync_s_per_step: None,
        }
    }

    #[test]
    fn draws_one_line_per_series_through_every_row() {
        let svg = svg(&[row(10, 8.0), row(20, 4.0), row(30, 2.0)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        // The first loss is the panel's maximum: drawn at the top of the plot area.
        assert!(svg.contains("points=\"50.0,30.0 "), "{svg}");
        assert!(svg.contains("step 30"));
    }

    #[test]
    fn a_single_row_and_no_file_are_fine() {
        assert!(svg(&[row(5, 1.0)]).contains("<polyline"));
        let dir = tempfile::tempdir().unwrap();
        write_metrics_svg(dir.path()).unwrap();
        assert!(!dir.path().join("metrics.svg").exists());
    }
}
