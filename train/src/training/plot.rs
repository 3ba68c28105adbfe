//! Training curves as plain SVG (no plotting dependency): panels side by side, each with its
//! named series against the optimizer step. Pretraining and fine-tuning draw `metrics.svg`
//! with it.

use std::fmt::Write;

const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 260.0;
const MARGIN: f64 = 50.0;

/// One panel: the named series (label, values) against `steps`, y from 0 to its max.
fn panel(svg: &mut String, x0: f64, title: &str, steps: &[f64], series: &[(&str, Vec<f64>)]) {
    let (min_step, max_step) = (steps[0], steps[steps.len() - 1].max(steps[0] + 1.0));
    let y_max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
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
    for (i, (label, values)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
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

/// Series colours, in order (matplotlib's first four).
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"];

/// A named series: its label and one value per step (non-finite values are left out).
pub type Series<'a> = (&'a str, Vec<f64>);

/// The SVG document of `panels` (title, series) against `steps` (which must not be empty).
pub fn figure(steps: &[f64], panels: &[(&str, Vec<Series<'_>>)]) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{PANEL_H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
"#,
        panels.len() as f64 * PANEL_W
    );
    for (i, (title, series)) in panels.iter().enumerate() {
        panel(&mut svg, i as f64 * PANEL_W, title, steps, series);
    }
    svg.push_str("</svg>\n");
    svg
}
