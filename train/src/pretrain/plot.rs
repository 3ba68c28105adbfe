//! `metrics.svg`: the training curves of `metrics.jsonl`, drawn at the end of a run as plain SVG
//! (no plotting dependency): losses on the left, accuracies on the right, against the step.

use std::fmt::Write;
use std::path::Path;

use anyhow::Result;

use super::metrics::MetricsRow;

const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 260.0;
const MARGIN: f64 = 50.0;

/// One panel: the named series (label, colour, values) against `steps`, y from 0 to its max.
fn panel(svg: &mut String, x0: f64, title: &str, steps: &[f64], series: &[(&str, &str, Vec<f64>)]) {
    let (min_step, max_step) = (steps[0], steps[steps.len() - 1].max(steps[0] + 1.0));
    let y_max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let x =
        |s: f64| x0 + MARGIN + (s - min_step) / (max_step - min_step) * (PANEL_W - MARGIN - 10.0);
    let y = |v: f64| 30.0 + (1.0 - v / y_max) * (PANEL_H - 60.0);
    let (left, right, top, bottom) = (x(min_step), x(max_step), y(y_max), y(0.0));
    let _ = write!(
        svg,
        r##"<text x="{}" y="18" font-size="14" text-anchor="middle">{title}</text>
<path d="M{left},{top} L{left},{bottom} L{right},{bottom}" stroke="#444" fill="none"/>
<text x="{}" y="{}" font-size="10" text-anchor="end">{y_max:.3}</text>
<text x="{}" y="{}" font-size="10" text-anchor="end">0</text>
<text x="{left}" y="{}" font-size="10">{min_step}</text>
<text x="{right}" y="{}" font-size="10" text-anchor="end">step {max_step}</text>
"##,
        x0 + PANEL_W / 2.0,
        left - 4.0,
        top + 4.0,
        left - 4.0,
        bottom,
        bottom + 14.0,
        bottom + 14.0,
    );
    for (i, (label, colour, values)) in series.iter().enumerate() {
        let points: Vec<String> = steps
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_finite())
            .map(|(&s, &v)| format!("{:.1},{:.1}", x(s), y(v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" stroke="{colour}" fill="none" stroke-width="1.5"/>
<text x="{}" y="{}" font-size="11" fill="{colour}">{label}</text>
"#,
            points.join(" "),
            right - 90.0,
            top + 14.0 * (i as f64 + 1.0),
        );
    }
}

/// The SVG document for `rows` (which must not be empty).
pub fn svg(rows: &[MetricsRow]) -> String {
    let steps: Vec<f64> = rows.iter().map(|r| r.step as f64).collect();
    let col = |f: fn(&MetricsRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{PANEL_H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
"#,
        2.0 * PANEL_W
    );
    panel(
        &mut svg,
        0.0,
        "loss",
        &steps,
        &[
            ("MLM", "#1f77b4", col(|r| r.mlm_loss)),
            ("NSP", "#d62728", col(|r| r.nsp_loss)),
        ],
    );
    panel(
        &mut svg,
        PANEL_W,
        "accuracy",
        &steps,
        &[
            ("MLM", "#1f77b4", col(|r| r.mlm_acc)),
            ("NSP", "#d62728", col(|r| r.nsp_acc)),
        ],
    );
    svg.push_str("</svg>\n");
    svg
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
