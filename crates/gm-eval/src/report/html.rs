//! One self-contained HTML page.

use std::io::{self, Write};

use super::{
    figure_rows, fmt_ms, fmt_rate, input_preview, is_unsafe_control, one_line, pass_rate, preview, push_control,
    totals, RESPONSE_PREVIEW_CHARS,
};
use crate::run::EvaluationSummary;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.5rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.75rem 0;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:.5rem;margin:.25rem 0}
summary{cursor:pointer}
.figures td:first-child{width:12rem}
.demo{border:2px solid #9a6700;background:#fff8c5;padding:.5rem .75rem;font-weight:600}
svg text{font-size:11px;fill:#1f2328}
";

/// Writes the files' results as one self-contained HTML page.
///
/// The page has no scripts and loads nothing: the style sheet is inline and the charts are inline SVG.
/// A header gives the pass counts over all files; each file has a section with its model, description and
/// pass rate, a table of its test cases (index, ✓/✗, input, response preview, latency, tokens) whose rows
/// open, as `<details>`, onto each evaluator's result and the full response, a bar chart of each case's
/// model-call latency, and the run's figures. All text is escaped.
pub fn html<W: Write + ?Sized>(summaries: &[EvaluationSummary], out: &mut W) -> io::Result<()> {
    let (tests, passed, failed) = totals(summaries);
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, r#"<html lang="en"><head><meta charset="utf-8">"#)?;
    writeln!(out, r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)?;
    let mut title = match summaries {
        [one] => format!("gm eval: {}", one.name),
        _ => "gm eval".to_string(),
    };
    if summaries.iter().any(|s| super::is_demo(&s.gm.provider)) {
        title.push_str(" (demo run)");
    }
    writeln!(out, "<title>{}</title>", esc(&title))?;
    writeln!(out, "<style>\n{STYLE}</style></head><body>")?;
    writeln!(out, "<h1>{}</h1>", esc(&title))?;
    if summaries.iter().any(|s| super::is_demo(&s.gm.provider)) {
        writeln!(out, r#"<p class="demo">{}</p>"#, esc(super::DEMO_NOTE))?;
    }
    let class = if failed == 0 { "pass" } else { "fail" };
    writeln!(
        out,
        r#"<p class="{class}">{passed}/{tests} tests passed ({}), {failed} failed, {} file(s)</p>"#,
        fmt_rate(pass_rate(passed, tests)),
        summaries.len()
    )?;
    if summaries.len() > 1 {
        writeln!(out, "<table><tr><th>Suite</th><th>Model</th><th>Passed</th><th>Pass rate</th></tr>")?;
        for (i, s) in summaries.iter().enumerate() {
            writeln!(
                out,
                r##"<tr><td><a href="#suite-{}">{}</a></td><td>{}</td><td class="num">{}/{}</td><td class="num">{}</td></tr>"##,
                i + 1,
                esc(&s.name),
                esc(&s.model),
                s.summary.passed_tests,
                s.summary.total_tests,
                fmt_rate(s.summary.pass_rate)
            )?;
        }
        writeln!(out, "</table>")?;
    }
    for (n, s) in summaries.iter().enumerate() {
        suite(n + 1, s, out)?;
    }
    writeln!(out, "</body></html>")
}

fn suite<W: Write + ?Sized>(n: usize, s: &EvaluationSummary, out: &mut W) -> io::Result<()> {
    let class = if s.all_passed() { "pass" } else { "fail" };
    writeln!(out, r#"<section id="suite-{n}">"#)?;
    writeln!(out, "<h2>{}</h2>", esc(&s.name))?;
    writeln!(out, "<p>Model: <code>{}</code></p>", esc(&s.model))?;
    if !s.description.trim().is_empty() {
        writeln!(out, "<p>{}</p>", esc(&s.description))?;
    }
    writeln!(
        out,
        r#"<p class="{class}">Passed: {}/{} ({})</p>"#,
        s.summary.passed_tests,
        s.summary.total_tests,
        fmt_rate(s.summary.pass_rate)
    )?;
    if s.test_results.is_empty() {
        writeln!(out, "<p>No test cases.</p>")?;
    } else {
        writeln!(
            out,
            "<table><tr><th>#</th><th>Result</th><th>Input</th><th>Response and evaluators</th>\
             <th>Latency</th><th>Tokens in/out</th></tr>"
        )?;
        for (i, r) in s.test_results.iter().enumerate() {
            let (mark, class) = if r.passed() { ("✓ passed", "pass") } else { ("✗ failed", "fail") };
            let figures = s.gm.cases.get(i);
            let latency = figures.map_or_else(
                || "n/a".to_string(),
                |c| if c.cached { "cached".to_string() } else { fmt_ms(c.latency_ms) },
            );
            let tokens = figures.map_or_else(|| "n/a".to_string(), |c| format!("{}/{}", c.tokens_in, c.tokens_out));
            writeln!(
                out,
                r#"<tr id="suite-{n}-case-{}"><td class="num">{}</td><td class="{class}">{mark}</td><td>{}</td><td><details><summary>{}</summary>"#,
                i + 1,
                i + 1,
                esc(&input_preview(&r.test_case)),
                esc(&preview(&one_line(&r.model_response), RESPONSE_PREVIEW_CHARS))
            )?;
            writeln!(out, "<table><tr><th>Evaluator</th><th>Result</th><th>Score</th><th>Details</th></tr>")?;
            for e in &r.evaluation_results {
                let (mark, class) = if e.passed { ("✓", "pass") } else { ("✗", "fail") };
                writeln!(
                    out,
                    r#"<tr><td>{}</td><td class="{class}">{mark}</td><td class="num">{:.2}</td><td>{}</td></tr>"#,
                    esc(&e.evaluator_name),
                    e.score,
                    esc(e.details.as_deref().unwrap_or(""))
                )?;
            }
            writeln!(out, "</table>")?;
            writeln!(out, "<p>Test case:</p><pre>{}</pre>", esc(&row_text(&r.test_case)))?;
            writeln!(out, "<p>Model response:</p><pre>{}</pre>", esc(&r.model_response))?;
            writeln!(out, r#"</details></td><td class="num">{latency}</td><td class="num">{tokens}</td></tr>"#)?;
        }
        writeln!(out, "</table>")?;
        latency_chart(s, out)?;
    }
    writeln!(out, r#"<table class="figures"><tr><th colspan="2">Figures</th></tr>"#)?;
    for (label, value) in figure_rows(&s.gm) {
        writeln!(out, r#"<tr><td>{label}</td><td class="num">{}</td></tr>"#, esc(&value))?;
    }
    writeln!(out, "</table>")?;
    writeln!(out, "</section>")
}

/// A horizontal bar per case, its length the model call's latency relative to the slowest case.
fn latency_chart<W: Write + ?Sized>(s: &EvaluationSummary, out: &mut W) -> io::Result<()> {
    const BAR: f64 = 14.0;
    const LABEL: f64 = 48.0;
    const WIDTH: f64 = 420.0;
    let cases = &s.gm.cases;
    if cases.is_empty() {
        return Ok(());
    }
    let max = cases.iter().map(|c| c.latency_ms).filter(|l| l.is_finite()).fold(0.0_f64, f64::max);
    let height = BAR * cases.len() as f64 + 4.0;
    writeln!(out, "<p>Model-call latency per case:</p>")?;
    writeln!(
        out,
        r#"<svg role="img" aria-label="latency per case" width="{:.0}" height="{height:.0}" viewBox="0 0 {:.0} {height:.0}">"#,
        LABEL + WIDTH + 90.0,
        LABEL + WIDTH + 90.0
    )?;
    for (i, c) in cases.iter().enumerate() {
        let y = BAR * i as f64 + 2.0;
        let w = if max > 0.0 && c.latency_ms.is_finite() { c.latency_ms / max * WIDTH } else { 0.0 };
        let fill = match s.test_results.get(i) {
            Some(r) if !r.passed() => "#cf222e",
            _ => "#1a7f37",
        };
        let label = if c.cached { "cached".to_string() } else { fmt_ms(c.latency_ms) };
        writeln!(
            out,
            r#"<text x="0" y="{:.1}">#{}</text><rect x="{LABEL:.0}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{fill}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            y + BAR - 4.0,
            i + 1,
            BAR - 3.0,
            LABEL + w + 4.0,
            y + BAR - 4.0,
            esc(&label)
        )?;
    }
    writeln!(out, "</svg>")
}

/// A test row as `key: value` lines.
fn row_text(row: &serde_json::Map<String, serde_json::Value>) -> String {
    row.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}: {s}"),
            other => format!("{k}: {other}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_unsafe_control(c) => push_control(&mut out, c),
            c => out.push(c),
        }
    }
    out
}
