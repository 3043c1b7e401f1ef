//! The `gm bench` page: one self-contained HTML file with inline SVG charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use super::html::esc;
use crate::bench::BenchReport;
use crate::compare::{Comparison, Verdict};

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.5rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.75rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.best{font-weight:600}.bad{color:#cf222e;font-weight:600}.good{color:#1a7f37;font-weight:600}
svg text{font-size:11px;fill:#1f2328}
.demo{border:2px solid #9a6700;background:#fff8c5;padding:.5rem .75rem;font-weight:600}
";

const PALETTE: [&str; 8] = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#1b7c83", "#57606a"];

/// Writes a benchmark as one self-contained page: the best model and its reason, a model × task heat map of
/// quality, each model's latency distribution (a box plot over its calls), each cell's p50 and p95, quality
/// against cost, and, given comparisons with a baseline run (`(task, model, comparison)`), a chart and a table
/// of the changes. No scripts; nothing is loaded.
pub fn bench_html<W: Write + ?Sized>(
    report: &BenchReport,
    baseline: &[(String, String, Comparison)],
    out: &mut W,
) -> io::Result<()> {
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>gm bench</title>\n");
    let _ = writeln!(page, "<style>\n{STYLE}</style></head><body>");
    page.push_str(&bench_fragment(report, baseline));
    page.push_str("</body></html>\n");
    out.write_all(page.as_bytes())
}

/// The styles the bench page's fragment expects, for a page that embeds [`bench_fragment`].
pub const BENCH_STYLE: &str = STYLE;

/// The body of the bench page (everything [`bench_html`] draws, from its heading to the notes under the table of
/// cells), for a page of its own to embed: a dashboard shows a run with the same charts and tables as the file.
pub fn bench_fragment(report: &BenchReport, baseline: &[(String, String, Comparison)]) -> String {
    let models: Vec<&str> = dedup(report.cells.iter().map(|c| c.model.as_str()));
    let tasks: Vec<&str> = dedup(report.cells.iter().map(|c| c.task.as_str()));
    let s = &report.summary;
    let mut page = String::new();
    let _ = writeln!(page, "<h1>gm bench: {} models × {} tasks</h1>", models.len(), tasks.len());
    if super::is_demo(&report.provider) {
        let _ = writeln!(page, "<p class=\"demo\">{}</p>", esc(super::DEMO_NOTE));
    }
    let _ = writeln!(
        page,
        "<p class=\"best\">Best model: {}</p><p>{}</p><p><small>Rule: {}</small></p>",
        esc(s.best_model.as_deref().unwrap_or("-")),
        esc(&s.best_model_reason),
        esc(&s.best_model_rule)
    );

    // Heat map of quality.
    page.push_str("<h2>Quality by model and task</h2>\n");
    let (cw, ch, left, top) = (120.0, 28.0, 230.0, 24.0);
    let width = left + cw * tasks.len() as f64 + 10.0;
    let height = top + ch * models.len() as f64 + 10.0;
    let _ = writeln!(page, r#"<svg width="{width}" height="{height}" role="img" aria-label="quality heat map">"#);
    for (j, t) in tasks.iter().enumerate() {
        let _ = writeln!(
            page,
            r#"<text x="{}" y="16" text-anchor="middle">{}</text>"#,
            left + cw * (j as f64 + 0.5),
            esc(t)
        );
    }
    for (i, m) in models.iter().enumerate() {
        let y = top + ch * i as f64;
        let _ = writeln!(page, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 6.0, y + ch * 0.65, esc(m));
        for (j, t) in tasks.iter().enumerate() {
            let q = report.cells.iter().find(|c| c.model == *m && c.task == *t).map(|c| c.metrics.quality);
            let x = left + cw * j as f64;
            let fill = q.map_or("#eaeef2".to_string(), heat);
            let _ = writeln!(
                page,
                r##"<rect x="{x}" y="{y}" width="{}" height="{}" fill="{fill}" stroke="#ffffff"/>"##,
                cw - 2.0,
                ch - 2.0
            );
            let label = q.map_or("-".to_string(), |q| format!("{q:.2}"));
            let _ = writeln!(
                page,
                r#"<text x="{}" y="{}" text-anchor="middle">{label}</text>"#,
                x + cw / 2.0,
                y + ch * 0.65
            );
        }
    }
    page.push_str("</svg>\n");

    latency_distribution(&mut page, report, &models);

    // Latency per cell: p50 as a bar, p95 as a tick, one row per cell.
    page.push_str("<h2>Latency per cell</h2>\n");
    let rows: Vec<(String, f64, f64, usize)> = report
        .cells
        .iter()
        .map(|c| {
            let mi = models.iter().position(|m| *m == c.model).unwrap_or(0);
            (
                format!("{} · {}", c.model, c.task),
                c.metrics.latency_p50_ms.unwrap_or(0.0),
                c.metrics.latency_p95_ms.unwrap_or(0.0),
                mi,
            )
        })
        .collect();
    let max = rows.iter().map(|r| r.2.max(r.1)).fold(1.0f64, f64::max);
    let (bw, rh, left) = (420.0, 20.0, 330.0);
    let _ = writeln!(
        page,
        r#"<svg width="{}" height="{}" role="img" aria-label="latency per model">"#,
        left + bw + 90.0,
        rh * rows.len() as f64 + 10.0
    );
    for (i, (label, p50, p95, mi)) in rows.iter().enumerate() {
        let y = rh * i as f64 + 4.0;
        let color = PALETTE[mi % PALETTE.len()];
        let _ = writeln!(page, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 6.0, y + 12.0, esc(label));
        let _ =
            writeln!(page, r#"<rect x="{left}" y="{y}" width="{:.1}" height="14" fill="{color}"/>"#, bw * p50 / max);
        let _ = writeln!(
            page,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y}" y2="{}" stroke="#1f2328" stroke-width="2"/>"##,
            y + 14.0,
            x = left + bw * p95 / max
        );
        let _ = writeln!(
            page,
            r#"<text x="{:.1}" y="{}">{p50:.0} / {p95:.0} ms</text>"#,
            left + bw * p95.max(*p50) / max + 6.0,
            y + 12.0
        );
    }
    page.push_str("</svg>\n<p><small>Bars: median latency; ticks: 95th percentile.</small></p>\n");

    // Quality against cost.
    page.push_str("<h2>Quality against cost</h2>\n");
    let priced: Vec<(&str, &str, f64, f64, usize)> = report
        .cells
        .iter()
        .filter_map(|c| {
            let mi = models.iter().position(|m| *m == c.model).unwrap_or(0);
            c.metrics.cost_usd.map(|cost| (c.model.as_str(), c.task.as_str(), cost, c.metrics.quality, mi))
        })
        .collect();
    // A model the price table does not know has no cost: it is left out of the chart, and the page says so.
    let demo = super::is_demo(&report.provider);
    let unpriced: Vec<&str> = models.iter().copied().filter(|m| !priced.iter().any(|p| p.0 == *m)).collect();
    if demo {
        page.push_str("<p>No cell has a cost: the demo provider asks no model, so its answers have no price.</p>\n");
    } else if priced.is_empty() {
        page.push_str("<p>No cell has a price (the price table does not know these models).</p>\n");
    } else {
        let max_cost = priced.iter().map(|p| p.2).fold(f64::MIN_POSITIVE, f64::max);
        let (w, h, pad) = (520.0, 300.0, 50.0);
        let _ = writeln!(
            page,
            r#"<svg width="{}" height="{}" role="img" aria-label="quality against cost">"#,
            w + pad + 240.0,
            h + pad
        );
        let _ = writeln!(
            page,
            r##"<line x1="{pad}" y1="{h}" x2="{}" y2="{h}" stroke="#57606a"/><line x1="{pad}" y1="10" x2="{pad}" y2="{h}" stroke="#57606a"/>"##,
            pad + w
        );
        let _ = writeln!(
            page,
            r#"<text x="{}" y="{}" text-anchor="middle">cost (USD, up to {max_cost:.5})</text>"#,
            pad + w / 2.0,
            h + 30.0
        );
        let _ = writeln!(
            page,
            r#"<text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle">quality</text>"#,
            h / 2.0,
            h / 2.0
        );
        // The quality scale: 0 at the axis, 1 at the top.
        let _ = writeln!(
            page,
            r#"<text x="{}" y="{}" text-anchor="end">0</text><text x="{}" y="14" text-anchor="end">1</text><text x="{pad}" y="{}" text-anchor="middle">0</text>"#,
            pad - 4.0,
            h,
            pad - 4.0,
            h + 14.0
        );
        for (model, task, cost, q, mi) in &priced {
            let x = pad + w * cost / max_cost;
            let y = h - (h - 10.0) * q;
            let color = PALETTE[mi % PALETTE.len()];
            let _ = writeln!(
                page,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="{color}"><title>{} · {}: quality {q:.3}, ${cost:.5}</title></circle><text x="{:.1}" y="{:.1}" font-size="11" fill="#57606a">{}</text>"##,
                esc(model),
                esc(task),
                x + 9.0,
                y + 4.0,
                esc(task)
            );
        }
        for (row, (i, m)) in models.iter().enumerate().filter(|(_, m)| !unpriced.contains(m)).enumerate() {
            let y = 20.0 + 16.0 * row as f64;
            let _ = writeln!(
                page,
                r#"<circle cx="{}" cy="{}" r="5" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                pad + w + 20.0,
                y - 4.0,
                PALETTE[i % PALETTE.len()],
                pad + w + 30.0,
                y,
                esc(m)
            );
        }
        page.push_str("</svg>\n<p><small>Each dot is one task of one model, labelled with its task.</small></p>\n");
    }
    if !unpriced.is_empty() && !demo {
        let names: Vec<String> = unpriced.iter().map(|m| format!("<code>{}</code>", esc(m))).collect();
        let _ = writeln!(
            page,
            "<p>Left out for lack of a price: {} (add them to a price table with <code>--prices FILE</code>).</p>",
            names.join(", ")
        );
    }

    // Regressions against a baseline.
    page.push_str("<h2>Against the baseline</h2>\n");
    if baseline.is_empty() {
        page.push_str("<p>No baseline run was given (<code>gm runs show ID --html FILE --baseline ID</code>).</p>\n");
    } else {
        baseline_chart(&mut page, baseline);
        page.push_str("<table><tr><th>Model</th><th>Task</th><th>Mean before</th><th>Mean after</th><th>Difference (95%)</th><th>Verdict</th></tr>\n");
        for (task, model, c) in baseline {
            let (class, verdict) = match c.verdict {
                Verdict::Regression => ("bad", "regression"),
                Verdict::Improvement => ("good", "improvement"),
                Verdict::NoSignificantChange => ("", "no significant change"),
                Verdict::NothingShared => ("", "nothing shared"),
            };
            let _ = writeln!(
                page,
                r#"<tr><td>{}</td><td>{}</td><td class="num">{:.3}</td><td class="num">{:.3}</td><td class="num">{:+.3} [{:+.3}, {:+.3}]</td><td class="{class}">{verdict}</td></tr>"#,
                esc(model),
                esc(task),
                c.mean_before,
                c.mean_after,
                c.difference,
                c.interval.0,
                c.interval.1
            );
        }
        page.push_str("</table>\n");
    }

    // The cells.
    page.push_str("<h2>Every cell</h2>\n<table><tr><th>Model</th><th>Task</th><th>Quality</th><th>95% interval</th><th>Pass rate</th><th>p50</th><th>p95</th><th>Queue wait p50</th><th>Tokens/s per request</th><th>Tokens/s over wall time</th><th>Cost</th><th>Quality per $</th><th>Cached</th></tr>\n");
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    for c in &report.cells {
        let m = &c.metrics;
        let _ = writeln!(
            page,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{:.3}</td><td class="num">[{:.2}, {:.2}]</td><td class="num">{:.0}%</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            esc(&c.model),
            esc(&c.task),
            m.quality,
            m.quality_ci95[0],
            m.quality_ci95[1],
            m.pass_rate * 100.0,
            opt(m.latency_p50_ms, &|v| format!("{v:.0} ms")),
            opt(m.latency_p95_ms, &|v| format!("{v:.0} ms")),
            opt(m.queue_p50_ms, &|v| format!("{v:.0} ms")),
            opt(m.tokens_per_second, &|v| format!("{v:.0}")),
            opt(m.tokens_per_second_wall, &|v| format!("{v:.0}")),
            if demo { "n/a (demo)".to_string() } else { opt(m.cost_usd, &|v| format!("${v:.5}")) },
            opt(m.quality_per_dollar, &|v| format!("{v:.0}")),
            m.cache_hits,
        );
    }
    page.push_str("</table>\n");
    let estimated: u64 = report.cells.iter().map(|c| c.metrics.tokens_estimated).sum();
    if estimated > 0 {
        let _ = writeln!(
            page,
            "<p>The server sent no usage for {estimated} model calls: their tokens were estimated with the tokenizer.</p>"
        );
    }
    page.push_str(
        "<p><small>p50 and p95 are each call's service time where the server reports it, else the time from sending to \
         the last byte; the wait in gm before sending is the queue wait. Tokens/s per request is the mean over calls of \
         each call's output tokens over its latency; over wall time, the cell's output tokens over the bench's wall \
         time.</small></p>\n",
    );
    page
}

/// The `q`-quantile of sorted values, interpolating linearly between neighbours.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Every model's latencies over all its tasks, as a box plot: whiskers from the fastest to the slowest call, a
/// box from the 25th to the 75th percentile, the median as a line and the 95th percentile as a tick. Cached
/// answers took no time and are left out.
fn latency_distribution(page: &mut String, report: &BenchReport, models: &[&str]) {
    page.push_str("<h2>Latency distribution per model</h2>\n");
    let per_model: Vec<(&str, Vec<f64>)> = models
        .iter()
        .map(|m| {
            let mut v: Vec<f64> = report
                .cells
                .iter()
                .filter(|c| c.model == *m)
                .flat_map(|c| c.evaluation.gm.cases.iter().flat_map(|f| f.calls()))
                .filter(|call| !call.cached && call.latency_ms.is_finite())
                .map(|call| call.latency_ms)
                .collect();
            v.sort_by(f64::total_cmp);
            (*m, v)
        })
        .collect();
    if per_model.iter().all(|(_, v)| v.is_empty()) {
        page.push_str(
            "<p>Every answer came from the cache, so there are no latencies (<code>--refresh</code> asks again).</p>\n",
        );
        return;
    }
    let max = per_model.iter().filter_map(|(_, v)| v.last().copied()).fold(1.0f64, f64::max);
    let (bw, rh, left) = (480.0, 30.0, 230.0);
    let _ = writeln!(
        page,
        r#"<svg width="{}" height="{}" role="img" aria-label="latency distribution per model">"#,
        left + bw + 300.0,
        rh * per_model.len() as f64 + 34.0
    );
    let x = |ms: f64| left + bw * ms / max;
    for (i, (model, v)) in per_model.iter().enumerate() {
        let y = rh * i as f64 + 6.0;
        let mid = y + 10.0;
        let color = PALETTE[i % PALETTE.len()];
        let _ = writeln!(page, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, left - 6.0, mid + 4.0, esc(model));
        if v.is_empty() {
            let _ = writeln!(page, r#"<text x="{left}" y="{}">no calls sent (all cached)</text>"#, mid + 4.0);
            continue;
        }
        let [lo, q1, med, q3, p95, hi] = [0.0, 0.25, 0.5, 0.75, 0.95, 1.0].map(|q| quantile(v, q));
        let _ = writeln!(
            page,
            r#"<line x1="{:.1}" x2="{:.1}" y1="{mid}" y2="{mid}" stroke="{color}" stroke-width="2"/>"#,
            x(lo),
            x(hi)
        );
        let _ = writeln!(
            page,
            r##"<rect x="{:.1}" y="{y}" width="{:.1}" height="20" fill="{color}" fill-opacity="0.35" stroke="{color}"><title>{}: {} calls; min {lo:.0}, p25 {q1:.0}, median {med:.0}, p75 {q3:.0}, p95 {p95:.0}, max {hi:.0} ms</title></rect>"##,
            x(q1),
            (x(q3) - x(q1)).max(1.0),
            esc(model),
            v.len()
        );
        let _ = writeln!(
            page,
            r##"<line x1="{m:.1}" x2="{m:.1}" y1="{y}" y2="{}" stroke="#1f2328" stroke-width="2"/>"##,
            y + 20.0,
            m = x(med)
        );
        let _ = writeln!(
            page,
            r##"<line x1="{t:.1}" x2="{t:.1}" y1="{}" y2="{}" stroke="#cf222e" stroke-width="2"/>"##,
            y + 3.0,
            y + 17.0,
            t = x(p95)
        );
        let _ = writeln!(
            page,
            r#"<text x="{:.1}" y="{}">median {med:.0} ms, p95 {p95:.0} ms ({} calls)</text>"#,
            x(hi) + 8.0,
            mid + 4.0,
            v.len()
        );
    }
    let axis_y = rh * per_model.len() as f64 + 12.0;
    let _ = writeln!(
        page,
        r##"<line x1="{left}" x2="{}" y1="{axis_y}" y2="{axis_y}" stroke="#57606a"/><text x="{left}" y="{}">0 ms</text><text x="{}" y="{}" text-anchor="end">{max:.0} ms</text>"##,
        left + bw,
        axis_y + 14.0,
        left + bw,
        axis_y + 14.0
    );
    page.push_str(
        "</svg>\n<p><small>Whiskers: fastest to slowest call; box: 25th to 75th percentile; black: median; red: 95th percentile.</small></p>\n",
    );
}

/// The change of every cell against the baseline: a bar from zero to the difference in mean score, the 95%
/// interval as whiskers; red where the candidate is significantly worse, green where significantly better.
fn baseline_chart(page: &mut String, baseline: &[(String, String, Comparison)]) {
    let reach = baseline
        .iter()
        .flat_map(|(_, _, c)| [c.interval.0.abs(), c.interval.1.abs(), c.difference.abs()])
        .filter(|v| v.is_finite())
        .fold(0.05f64, f64::max);
    let (half, rh, left) = (220.0, 22.0, 330.0);
    let zero = left + half;
    let _ = writeln!(
        page,
        r#"<svg width="{}" height="{}" role="img" aria-label="changes against the baseline">"#,
        left + 2.0 * half + 180.0,
        rh * baseline.len() as f64 + 30.0
    );
    let x = |d: f64| zero + half * (d / reach).clamp(-1.0, 1.0);
    for (i, (task, model, c)) in baseline.iter().enumerate() {
        let y = rh * i as f64 + 4.0;
        let color = match c.verdict {
            Verdict::Regression => "#cf222e",
            Verdict::Improvement => "#1a7f37",
            _ => "#8c959f",
        };
        let _ = writeln!(
            page,
            r#"<text x="{}" y="{}" text-anchor="end">{} · {}</text>"#,
            left - 6.0,
            y + 12.0,
            esc(model),
            esc(task)
        );
        let (a, b) = (x(0.0).min(x(c.difference)), x(0.0).max(x(c.difference)));
        let _ = writeln!(
            page,
            r#"<rect x="{a:.1}" y="{y}" width="{:.1}" height="14" fill="{color}"><title>{} · {}: {:+.3} [{:+.3}, {:+.3}]</title></rect>"#,
            (b - a).max(1.0),
            esc(model),
            esc(task),
            c.difference,
            c.interval.0,
            c.interval.1
        );
        let _ = writeln!(
            page,
            r##"<line x1="{:.1}" x2="{:.1}" y1="{m}" y2="{m}" stroke="#1f2328"/>"##,
            x(c.interval.0),
            x(c.interval.1),
            m = y + 7.0
        );
        let _ =
            writeln!(page, r#"<text x="{:.1}" y="{}">{:+.3}</text>"#, left + 2.0 * half + 8.0, y + 12.0, c.difference);
    }
    let bottom = rh * baseline.len() as f64 + 6.0;
    let _ = writeln!(
        page,
        r##"<line x1="{zero}" x2="{zero}" y1="0" y2="{bottom}" stroke="#57606a"/><text x="{zero}" y="{}" text-anchor="middle">0</text><text x="{left}" y="{}">{:+.2}</text><text x="{}" y="{}" text-anchor="end">{:+.2}</text>"##,
        bottom + 14.0,
        bottom + 14.0,
        -reach,
        left + 2.0 * half,
        bottom + 14.0,
        reach
    );
    page.push_str(
        "</svg>\n<p><small>Bars: change in mean case score; whiskers: 95% paired bootstrap interval; red: significantly worse; green: significantly better.</small></p>\n",
    );
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for i in items {
        if seen.insert(i, ()).is_none() {
            out.push(i);
        }
    }
    out
}

/// A colour from red (0) through yellow to green (1).
fn heat(q: f64) -> String {
    let q = q.clamp(0.0, 1.0);
    let (r, g) = if q < 0.5 { (230.0, 90.0 + 300.0 * q) } else { (230.0 - 340.0 * (q - 0.5), 240.0) };
    format!("rgb({:.0},{:.0},110)", r.clamp(0.0, 255.0), g.clamp(0.0, 255.0))
}
