//! JUnit XML.

use std::io::{self, Write};

use super::{input_preview, is_unsafe_control, preview, push_control, secs, totals, RESPONSE_PREVIEW_CHARS};
use crate::run::EvaluationSummary;

/// Writes the files' results as JUnit XML, the format CI test reporters read.
///
/// One `<testsuites>` holds a `<testsuite>` per file (named by the file's `name`, with `tests`,
/// `failures`, `errors="0"` and `time`, the run's wall time in seconds) whose `<properties>` give the
/// model, the provider and the description. Each test row is a `<testcase>` named `<index>: <input
/// preview>` (1-based, as in `Running test case i/N`) with the model call's latency as its `time`, and a
/// `cached` property when the answer came from the response cache. A
/// failed case has one `<failure>` whose message names the failed evaluators and whose text lists each
/// of them with its score and details, then a preview of the model's response; every case carries its
/// full response in `<system-out>`.
///
/// All text is escaped; control characters, which XML 1.0 cannot carry even as references, are written
/// as visible `\u{..}` escapes.
pub fn junit<W: Write + ?Sized>(summaries: &[EvaluationSummary], out: &mut W) -> io::Result<()> {
    let (tests, _, failures) = totals(summaries);
    let time: f64 = summaries.iter().map(|s| secs(s.gm.wall_ms)).sum();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<testsuites name="gm eval" tests="{tests}" failures="{failures}" errors="0" time="{time:.3}">"#)?;
    for s in summaries {
        // CI test views show suite names: a demo run's cannot be taken for a model's.
        let demo = super::is_demo(&s.gm.provider);
        let name = if demo { format!("{} [demo run]", s.name) } else { s.name.clone() };
        writeln!(
            out,
            r#"  <testsuite name="{}" tests="{}" failures="{}" errors="0" skipped="0" time="{:.3}">"#,
            attr(&name),
            s.summary.total_tests,
            s.summary.failed_tests,
            secs(s.gm.wall_ms)
        )?;
        writeln!(out, "    <properties>")?;
        for (name, value) in [("model", &s.model), ("provider", &s.gm.provider), ("description", &s.description)] {
            writeln!(out, r#"      <property name="{name}" value="{}"/>"#, attr(value))?;
        }
        if demo {
            writeln!(out, r#"      <property name="demo" value="{}"/>"#, attr(super::DEMO_NOTE))?;
        }
        writeln!(out, "    </properties>")?;
        for (i, result) in s.test_results.iter().enumerate() {
            let name = format!("{}: {}", i + 1, input_preview(&result.test_case));
            let latency = s.gm.cases.get(i).map_or(0.0, |c| secs(c.latency_ms));
            writeln!(
                out,
                r#"    <testcase name="{}" classname="{}" time="{latency:.3}">"#,
                attr(&name),
                attr(&s.name)
            )?;
            if s.gm.cases.get(i).is_some_and(|c| c.cached) {
                // The answer was not asked of the provider this time: say so where CI tools show properties.
                writeln!(out, r#"      <properties><property name="cached" value="true"/></properties>"#)?;
            }
            if !result.passed() {
                let failed: Vec<_> = result.evaluation_results.iter().filter(|r| !r.passed).collect();
                let names: Vec<&str> = failed.iter().map(|r| r.evaluator_name.as_str()).collect();
                let message = format!(
                    "{} of {} evaluators failed: {}",
                    failed.len(),
                    result.evaluation_results.len(),
                    names.join(", ")
                );
                let mut body = String::new();
                for r in &failed {
                    body.push_str(&format!("{} (score {:.2})", r.evaluator_name, r.score));
                    if let Some(d) = r.details.as_deref().filter(|d| !d.is_empty()) {
                        body.push_str(": ");
                        body.push_str(d);
                    }
                    body.push('\n');
                }
                body.push_str("Model Response: ");
                body.push_str(&preview(&result.model_response, RESPONSE_PREVIEW_CHARS));
                writeln!(
                    out,
                    r#"      <failure message="{}" type="evaluation">{}</failure>"#,
                    attr(&message),
                    text(&body)
                )?;
            }
            writeln!(out, "      <system-out>{}</system-out>", text(&result.model_response))?;
            writeln!(out, "    </testcase>")?;
        }
        writeln!(out, "  </testsuite>")?;
    }
    writeln!(out, "</testsuites>")
}

/// Escapes character data.
fn text(s: &str) -> String {
    escape(s, false)
}

/// Escapes an attribute value (quoted with `"`); whitespace other than spaces is kept as references,
/// which attribute-value normalisation would otherwise turn into spaces.
fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            c if is_unsafe_control(c) => push_control(&mut out, c),
            c => out.push(c),
        }
    }
    out
}
