//! A Markdown report for a CI step summary.

use std::io::{self, Write};

use super::{figure_rows, fmt_rate, input_preview, is_unsafe_control, pass_rate, push_control, totals};
use crate::run::EvaluationSummary;

/// Writes the files' results as GitHub-flavoured Markdown, ready for `$GITHUB_STEP_SUMMARY`.
///
/// A headline with the pass counts over all files; then per file a heading (✅ or ❌, name, model), its
/// description, a table of the test cases (index, ✅/❌ and `(cached)` for an answer from the cache, input preview, the failed evaluators with their
/// scores and details) and a table of the run's figures. Text in cells is escaped: `|` and inline markup
/// are backslash-escaped, `<`, `>` and `&` become entities, line breaks become `<br>` and other control
/// characters visible `\u{..}` escapes.
pub fn markdown<W: Write + ?Sized>(summaries: &[EvaluationSummary], out: &mut W) -> io::Result<()> {
    let (tests, passed, failed) = totals(summaries);
    let mark = if failed == 0 { "✅" } else { "❌" };
    let files = if summaries.len() == 1 { "file" } else { "files" };
    writeln!(
        out,
        "## {mark} gm eval: {passed}/{tests} tests passed ({}), {failed} failed, {} {files}",
        fmt_rate(pass_rate(passed, tests)),
        summaries.len()
    )?;
    if summaries.iter().any(|s| super::is_demo(&s.gm.provider)) {
        writeln!(out)?;
        writeln!(out, "> **{}**", super::DEMO_NOTE)?;
    }
    for s in summaries {
        let mark = if s.all_passed() { "✅" } else { "❌" };
        writeln!(out)?;
        writeln!(out, "### {mark} {} ({})", inline(&s.name), inline(&s.model))?;
        writeln!(out)?;
        if !s.description.trim().is_empty() {
            writeln!(out, "{}", inline(&s.description))?;
            writeln!(out)?;
        }
        writeln!(
            out,
            "Passed: {}/{} ({})",
            s.summary.passed_tests,
            s.summary.total_tests,
            fmt_rate(s.summary.pass_rate)
        )?;
        writeln!(out)?;
        if s.test_results.is_empty() {
            writeln!(out, "_No test cases._")?;
        } else {
            writeln!(out, "| # | Result | Input | Failed evaluators |")?;
            writeln!(out, "| ---: | :---: | --- | --- |")?;
            for (i, r) in s.test_results.iter().enumerate() {
                let failed: Vec<String> = r
                    .evaluation_results
                    .iter()
                    .filter(|e| !e.passed)
                    .map(|e| {
                        let mut c = format!("**{}** ({:.2})", inline(&e.evaluator_name), e.score);
                        if let Some(d) = e.details.as_deref().filter(|d| !d.is_empty()) {
                            c.push_str(": ");
                            c.push_str(&inline(d));
                        }
                        c
                    })
                    .collect();
                let cached = if s.gm.cases.get(i).is_some_and(|c| c.cached) { " (cached)" } else { "" };
                writeln!(
                    out,
                    "| {} | {}{cached} | {} | {} |",
                    i + 1,
                    if r.passed() { "✅" } else { "❌" },
                    inline(&input_preview(&r.test_case)),
                    failed.join("<br>")
                )?;
            }
        }
        writeln!(out)?;
        let figures = figure_rows(&s.gm);
        let labels: Vec<&str> = figures.iter().map(|(l, _)| *l).collect();
        let values: Vec<String> = figures.iter().map(|(_, v)| inline(v)).collect();
        writeln!(out, "| {} |", labels.join(" | "))?;
        writeln!(out, "|{}", " ---: |".repeat(labels.len()))?;
        writeln!(out, "| {} |", values.join(" | "))?;
    }
    Ok(())
}

/// Escapes text for a Markdown table cell or a line of its own.
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("<br>");
                }
            }
            '\n' => out.push_str("<br>"),
            '\t' => out.push(' '),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if is_unsafe_control(c) => push_control(&mut out, c),
            c => out.push(c),
        }
    }
    out
}
