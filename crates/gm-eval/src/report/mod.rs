//! Reports of a run: gh-models' human output, JUnit XML, Markdown, JSON Lines and one HTML page.
//!
//! Every renderer is a pure function of one or several [`EvaluationSummary`] values (or one case, for
//! [`jsonl_line`]) that writes to any [`Write`](std::io::Write); the only errors are the writer's. Nothing
//! here reads the clock, the environment or the network, so the same summary always renders the same bytes.
//!
//! - [`human`]: the text `gh models eval` prints, then a short block of gm's figures.
//! - [`json`]: the `--json` document, with gh-models' keys (one object, or an array for several files).
//! - [`junit`]: JUnit XML for CI test reporters: one `<testsuite>` per file, one `<testcase>` per row.
//! - [`markdown`]: a report fit for a GitHub Actions step summary.
//! - [`jsonl_line`]: one JSON object per case, for a file written as cases finish.
//! - [`html`]: one self-contained page (inline CSS and SVG, no scripts, no external assets).
//! - [`write_atomically`] and [`AtomicFile`]: a report file written whole or not at all.
//!
//! Text from the model or the test rows is escaped for each format: XML and HTML entities, Markdown
//! table cells (`|`, newlines, inline markup). Control characters other than tab, newline and carriage
//! return, which XML 1.0 cannot carry at all and a browser would hide, are written as visible `\u{..}`
//! escapes; the human output drops them, so a response cannot send escape sequences to the terminal.
//!
//! # Example
//! ```
//! use gm_eval::report;
//! use gm_eval::run::{EvaluationSummary, RunFigures, Summary};
//!
//! let summary = EvaluationSummary {
//!     name: "empty".into(),
//!     description: "no rows yet".into(),
//!     model: "openai/gpt-4.1".into(),
//!     test_results: vec![],
//!     summary: Summary { total_tests: 0, passed_tests: 0, failed_tests: 0, pass_rate: 100.0 },
//!     gm: RunFigures {
//!         provider: "demo".into(),
//!         latency_p50_ms: None,
//!         latency_p95_ms: None,
//!         latency_p99_ms: None,
//!         tokens_in: 0,
//!         tokens_out: 0,
//!         tokens_estimated: 0,
//!         latency_from_server: 0,
//!         queue_p50_ms: None,
//!         tokens_per_second: None,
//!         tokens_per_second_wall: None,
//!         cost_usd: None,
//!         cache_hits: 0,
//!         retries: 0,
//!         rate_limited: 0,
//!         requests: 0,
//!         wall_ms: 0.0,
//!         cases: vec![],
//!         repeat: None,
//!         timing: None,
//!     },
//! };
//! let mut out = Vec::new();
//! report::human(&summary, &mut out).unwrap();
//! let text = String::from_utf8(out).unwrap();
//! // A demo run says so before anything else.
//! assert!(text.starts_with(report::DEMO_NOTE));
//! assert!(text.contains("\nRunning evaluation: empty\n"));
//! assert!(text.contains("🎉 All tests passed!"));
//! ```

mod bench_html;
mod file;
mod html;
mod human;
mod json;
mod jsonl;
mod junit;
mod markdown;
#[cfg(test)]
mod tests;

pub use bench_html::{bench_fragment, bench_html, BENCH_STYLE};
pub use file::{write_atomically, AtomicFile};
pub use html::html;
pub use human::{human, human_with, HumanOptions};
pub use json::json;
pub use jsonl::jsonl_line;
pub use junit::junit;
pub use markdown::markdown;

use serde_json::{Map, Value};

use crate::run::{EvaluationSummary, RunFigures, Timing};

/// What every report of a run on the demo provider says where a reader looks first: the human report's first
/// line, the Markdown and HTML headings, the JUnit suite names.
pub const DEMO_NOTE: &str = "DEMO RUN: the offline demo provider computed these answers; no model was asked, so \
    nothing here measures a model";

/// Whether a run's provider (as its figures name it) is the demo provider.
pub fn is_demo(provider: &str) -> bool {
    provider == gm_core::ProviderKind::Demo.as_str()
}

/// Characters of a model response shown where a report previews it (as gh-models does on failure).
pub const RESPONSE_PREVIEW_CHARS: usize = 100;

/// Characters of a test row shown where a report names a test case by its input.
pub const INPUT_PREVIEW_CHARS: usize = 60;

/// The first `max` characters of `text`, with `...` appended when it was cut.
pub(crate) fn preview(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// A short, one-line form of a test row: its `input` when it has one, else its `key: value` pairs.
pub(crate) fn input_preview(row: &Map<String, Value>) -> String {
    let full = match row.get("input") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => row
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    preview(&one_line(&full), INPUT_PREVIEW_CHARS)
}

/// `text` on one line: runs of whitespace (newlines included) become one space.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes a control character (other than tab, newline and carriage return) as a visible escape.
///
/// XML 1.0 has no way to carry them, not even as character references, and in HTML they are invisible.
pub(crate) fn push_control(out: &mut String, c: char) {
    out.push_str(&format!("\\u{{{:x}}}", c as u32));
}

/// Whether `c` is a character that must be written with [`push_control`] in XML and HTML.
pub(crate) fn is_unsafe_control(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// A duration in milliseconds for people: `850 ms`, `1.25 s`.
pub(crate) fn fmt_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// An optional latency, `n/a` when no call was sent (every answer came from the cache).
pub(crate) fn fmt_opt_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "n/a".to_string(), fmt_ms)
}

/// Milliseconds as seconds for a machine-read attribute; 0 for a value that is not a finite number.
pub(crate) fn secs(ms: f64) -> f64 {
    if ms.is_finite() {
        ms / 1000.0
    } else {
        0.0
    }
}

/// The pass rate as a percentage with two decimals.
pub(crate) fn fmt_rate(rate: f64) -> String {
    format!("{rate:.2}%")
}

/// Tokens per second, `n/a` when unknown.
pub(crate) fn fmt_tps(tps: Option<f64>) -> String {
    tps.map_or_else(|| "n/a".to_string(), |t| format!("{t:.1}"))
}

/// The figures of a run as label/value pairs, in the order every report shows them.
pub(crate) fn figure_rows(figures: &RunFigures) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("Provider", figures.provider.clone()),
        ("Latency p50", fmt_opt_ms(figures.latency_p50_ms)),
        ("Latency p95", fmt_opt_ms(figures.latency_p95_ms)),
        ("Latency p99", fmt_opt_ms(figures.latency_p99_ms)),
        ("Queue wait p50", fmt_opt_ms(figures.queue_p50_ms)),
        ("Tokens in", estimated(figures.tokens_in, figures.tokens_estimated)),
        ("Tokens out", estimated(figures.tokens_out, figures.tokens_estimated)),
        ("Tokens/s per request", fmt_tps(figures.tokens_per_second)),
        ("Tokens/s over wall time", fmt_tps(figures.tokens_per_second_wall)),
        ("Cost", fmt_cost(figures.cost_usd, &figures.provider)),
        ("Cache hits", figures.cache_hits.to_string()),
        ("Retries", figures.retries.to_string()),
        ("429s", figures.rate_limited.to_string()),
        ("Requests", figures.requests.to_string()),
        match figures.timing {
            Some(Timing::Recorded) => ("Wall time", "n/a (recorded answers)".to_string()),
            None => ("Wall time", fmt_ms(figures.wall_ms)),
        },
    ];
    if let Some(r) = &figures.repeat {
        let join = |m: &std::collections::BTreeMap<u32, f64>| {
            m.iter().map(|(k, v)| format!("k={k}: {v:.3}")).collect::<Vec<_>>().join(", ")
        };
        rows.push(("pass@k", join(&r.pass_at_k)));
        rows.push(("pass^k", join(&r.pass_hat_k)));
    }
    rows
}

/// A cost to the millionth of a dollar; `n/a` without a price, labelled for the demo provider, which has none.
pub(crate) fn fmt_cost(cost: Option<f64>, provider: &str) -> String {
    match cost {
        Some(c) => format!("${c:.6}"),
        None if is_demo(provider) => "n/a (demo provider: no model was asked)".to_string(),
        None => "n/a".to_string(),
    }
}

/// A token count, marked when some calls' counts are estimates (the server sent no usage).
fn estimated(tokens: u64, calls: u64) -> String {
    match calls {
        0 => tokens.to_string(),
        1 => format!("{tokens} (estimated for 1 call)"),
        n => format!("{tokens} (estimated for {n} calls)"),
    }
}

/// Totals over several files: (tests, passed, failed).
pub(crate) fn totals(summaries: &[EvaluationSummary]) -> (usize, usize, usize) {
    summaries.iter().fold((0, 0, 0), |(t, p, f), s| {
        (t + s.summary.total_tests, p + s.summary.passed_tests, f + s.summary.failed_tests)
    })
}

/// The pass rate of `passed` out of `total`, 100 when there are no tests (as gh-models' JSON).
pub(crate) fn pass_rate(passed: usize, total: usize) -> f64 {
    if total == 0 {
        100.0
    } else {
        passed as f64 / total as f64 * 100.0
    }
}
