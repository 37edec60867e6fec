//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network) with the
//! held-out accuracy of every stage and the per-step curves of every training stage, read from
//! the stages' metrics.jsonl.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::rundir::Done;

/// One plotted series: (step, value) points.
pub type Series = Vec<(f64, f64)>;

/// The curves plotted for RL stages: (metrics.jsonl key, title).
const RL_CURVES: [(&str, &str); 6] = [
    ("reward/total/mean", "mean reward"),
    ("accuracy", "accuracy (rollouts)"),
    ("format_rate", "format rate"),
    ("completion_length/mean", "mean completion length (tokens)"),
    ("kl", "KL to the reference"),
    ("truncation_rate", "truncation rate"),
];

/// The curves plotted for supervised stages (SFT, distillation).
const SFT_CURVES: [(&str, &str); 1] = [("loss", "training loss")];

/// The (step, value) points of `key` over the lines of a metrics.jsonl (lines without the key,
/// or with a null or non-finite value, are skipped).
pub fn series(metrics_jsonl: &str, key: &str) -> Series {
    metrics_jsonl
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|v| Some((v.get("step")?.as_f64()?, v.get(key)?.as_f64()?)))
        .filter(|(s, y)| s.is_finite() && y.is_finite())
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A short number for axis labels.
fn tick(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else if v.abs() >= 1e-3 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

const W: f64 = 360.0;
const H: f64 = 200.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 30.0;

/// A line chart of one series as an inline SVG; an empty series gives a frame saying so.
pub fn line_chart(title: &str, points: &Series, note_when_empty: &str) -> String {
    let mut svg = format!("<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">", escape(title));
    let _ = write!(svg, "<text x=\"{LEFT}\" y=\"15\" class=\"title\">{}</text>", escape(title));
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    let _ = write!(svg, "<rect x=\"{x0}\" y=\"{y1}\" width=\"{}\" height=\"{}\" class=\"frame\"/>", x1 - x0, y0 - y1);
    if points.is_empty() {
        let _ = write!(svg, "<text x=\"{}\" y=\"{}\" class=\"empty\" text-anchor=\"middle\">{}</text></svg>", (x0 + x1) / 2.0, (y0 + y1) / 2.0, escape(note_when_empty));
        return svg;
    }
    let (min_x, max_x) = bounds(points.iter().map(|p| p.0));
    let (mut min_y, mut max_y) = bounds(points.iter().map(|p| p.1));
    if max_y - min_y < 1e-12 {
        // a flat series: a zero line sits at the bottom of [0, 1], others get +-10%
        let pad = if max_y == 0.0 { 1.0 } else { 0.1 * max_y.abs() };
        (min_y, max_y) = if max_y == 0.0 { (0.0, pad) } else { (min_y - pad, max_y + pad) };
    }
    let span_x = if max_x > min_x { max_x - min_x } else { 1.0 };
    let px = |x: f64| x0 + (x - min_x) / span_x * (x1 - x0);
    let py = |y: f64| y0 - (y - min_y) / (max_y - min_y) * (y0 - y1);
    let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
    let _ = write!(svg, "<polyline class=\"line\" points=\"{}\"/>", path.join(" "));
    if points.len() <= 40 {
        for &(x, y) in points {
            let _ = write!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" class=\"dot\"><title>step {x}: {}</title></circle>", px(x), py(y), tick(y));
        }
    }
    for (v, y) in [(max_y, y1), (min_y, y0)] {
        let _ = write!(svg, "<text x=\"{}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>", x0 - 4.0, y + 4.0, tick(v));
    }
    for (v, x, anchor) in [(min_x, x0, "start"), (max_x, x1, "end")] {
        let _ = write!(svg, "<text x=\"{x:.1}\" y=\"{}\" class=\"axis\" text-anchor=\"{anchor}\">step {}</text>", y0 + 16.0, tick(v));
    }
    svg.push_str("</svg>");
    svg
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// Held-out accuracy per stage as a bar chart (0 to 100%).
pub fn accuracy_bars(stages: &[(String, Option<f64>)]) -> String {
    let bar_w = 64.0;
    let width = LEFT + RIGHT + bar_w * stages.len().max(1) as f64;
    let (y0, y1) = (H - BOTTOM - 14.0, TOP);
    let mut svg = format!("<svg class=\"chart\" viewBox=\"0 0 {width} {H}\" width=\"{width}\" height=\"{H}\" role=\"img\" aria-label=\"held-out accuracy per stage\">");
    let _ = write!(svg, "<text x=\"{LEFT}\" y=\"15\" class=\"title\">held-out accuracy per stage</text>");
    let _ = write!(svg, "<rect x=\"{LEFT}\" y=\"{y1}\" width=\"{}\" height=\"{}\" class=\"frame\"/>", width - LEFT - RIGHT, y0 - y1);
    for (v, y) in [(1.0, y1), (0.5, (y0 + y1) / 2.0), (0.0, y0)] {
        let _ = write!(svg, "<text x=\"{}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{:.0}%</text>", LEFT - 4.0, y + 4.0, v * 100.0);
    }
    for (i, (name, accuracy)) in stages.iter().enumerate() {
        let cx = LEFT + bar_w * (i as f64 + 0.5);
        if let Some(a) = accuracy {
            let h = a.clamp(0.0, 1.0) * (y0 - y1);
            let _ = write!(svg, "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{}: {:.1}%</title></rect>", cx - bar_w * 0.35, y0 - h, bar_w * 0.7, escape(name), a * 100.0);
            let _ = write!(svg, "<text x=\"{cx:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">{:.1}%</text>", y0 - h - 3.0, a * 100.0);
        } else {
            let _ = write!(svg, "<text x=\"{cx:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">n/a</text>", y0 - 3.0);
        }
        let _ = write!(svg, "<text x=\"{cx:.1}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"middle\">{}</text>", y0 + 14.0, escape(name));
    }
    svg.push_str("</svg>");
    svg
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", 100.0 * v)).unwrap_or_else(|| "–".into())
}

/// The whole page. `metrics` gives each stage's metrics.jsonl text (when it has one).
pub fn render(recipe: &str, seed: u64, stages: &[Done], metrics: &dyn Fn(&Done) -> Option<String>) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>r1kit run: {}</title>\
<style>body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:8px 0 20px}}\
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
.chart{{margin:6px;background:#fafafa}}.title{{font-size:12px;font-weight:bold}}.axis{{font-size:10px;fill:#555}}\
.frame{{fill:none;stroke:#bbb}}.line{{fill:none;stroke:#1f77b4;stroke-width:1.5}}.dot{{fill:#1f77b4}}.bar{{fill:#2ca02c}}\
.empty{{font-size:11px;fill:#888}}.charts{{display:flex;flex-wrap:wrap}}</style></head><body>\n",
        escape(recipe)
    );
    let _ = write!(html, "<h1>r1kit run: {}</h1>\n<p>seed {seed}; {} stages</p>\n", escape(recipe), stages.len());
    html.push_str("<table id=\"stages\"><tr><th>stage</th><th>kind</th><th>held-out accuracy</th><th>format rate</th><th>pass@k</th><th>mean tokens</th><th>final mean reward</th><th>seconds</th></tr>\n");
    for d in stages {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td></tr>",
            escape(&d.name),
            escape(&d.kind),
            percent(d.heldout_number("accuracy")),
            percent(d.heldout_number("format_rate")),
            d.heldout_number("pass_at_k").map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into()),
            d.heldout_number("mean_completion_tokens").map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into()),
            d.final_mean_reward.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into()),
            d.seconds
        );
    }
    html.push_str("</table>\n");
    let bars: Vec<(String, Option<f64>)> = stages.iter().filter(|d| d.heldout.is_some()).map(|d| (d.name.clone(), d.heldout_number("accuracy"))).collect();
    html.push_str("<div class=\"charts\" id=\"heldout\">");
    html.push_str(&accuracy_bars(&bars));
    html.push_str("</div>\n");
    for d in stages {
        let curves: &[(&str, &str)] = match d.kind.as_str() {
            "grpo" => &RL_CURVES,
            "sft" | "distill" => &SFT_CURVES,
            _ => continue,
        };
        let Some(text) = metrics(d) else { continue };
        let _ = write!(html, "<h2>{} ({})</h2>\n<div class=\"charts\">", escape(&d.name), escape(&d.kind));
        for (key, title) in curves {
            let note = if *key == "kl" { "not computed (algorithm.beta = 0)" } else { "no data" };
            html.push_str(&line_chart(title, &series(&text, key), note));
        }
        html.push_str("</div>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// The metrics.jsonl of a stage's folder, when there is one.
pub fn read_metrics(stage_dir: &Path) -> Option<String> {
    std::fs::read_to_string(stage_dir.join("metrics.jsonl")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_skips_lines_without_the_key_and_nulls() {
        let text = "{\"step\":0,\"heldout_accuracy\":0.2}\n{\"step\":1,\"accuracy\":0.5,\"kl\":null}\nnot json\n{\"step\":2,\"accuracy\":0.75}\n";
        assert_eq!(series(text, "accuracy"), vec![(1.0, 0.5), (2.0, 0.75)]);
        assert!(series(text, "kl").is_empty());
    }

    #[test]
    fn chart_maps_points_into_the_frame_and_escapes_titles() {
        let svg = line_chart("a < b", &vec![(1.0, 0.0), (3.0, 1.0)], "none");
        assert!(svg.contains("a &lt; b") && !svg.contains("a < b"));
        // first point at the frame's bottom-left corner, the last at its top-right
        assert!(svg.contains(&format!("points=\"{LEFT:.1},{:.1} {:.1},{TOP:.1}\"", H - BOTTOM, W - RIGHT)), "{svg}");
        let empty = line_chart("kl", &vec![], "not computed");
        assert!(empty.contains("not computed") && !empty.contains("polyline"));
    }

    #[test]
    fn a_flat_zero_series_lies_on_the_bottom_edge() {
        let svg = line_chart("truncation", &vec![(1.0, 0.0), (2.0, 0.0)], "none");
        assert!(svg.contains(&format!("points=\"{LEFT:.1},{y:.1} {:.1},{y:.1}\"", W - RIGHT, y = H - BOTTOM)), "{svg}");
        assert!(svg.contains(">step 1<") && svg.contains(">step 2<"), "whole steps print without decimals: {svg}");
    }

    #[test]
    fn bars_scale_with_accuracy() {
        let svg = accuracy_bars(&[("a".into(), Some(0.5)), ("b".into(), Some(1.0)), ("c".into(), None)]);
        let full = H - BOTTOM - 14.0 - TOP;
        assert!(svg.contains(&format!("height=\"{:.1}\"><title>a: 50.0%", full / 2.0)), "{svg}");
        assert!(svg.contains(&format!("height=\"{full:.1}\"><title>b: 100.0%")), "{svg}");
        assert!(svg.contains(">n/a<"));
    }
}
