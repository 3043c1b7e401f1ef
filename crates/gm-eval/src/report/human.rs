//! gh-models' human output.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};

use super::{figure_rows, preview, RESPONSE_PREVIEW_CHARS};
use crate::run::{EvaluationSummary, TestResult};

/// How [`human_with`] writes a report; the default is [`human`]'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HumanOptions {
    /// Colour the pass and fail marks with ANSI escapes. A front end that writes through a stream that strips
    /// them where colour is not wanted (a pipe, `NO_COLOR`), such as anstream's, may always set it.
    pub color: bool,
    /// The run is shown again from the store: each case is headed `Test case i/N`, not gh-models'
    /// `Running test case i/N...`.
    pub stored: bool,
}

const PASSED: Style = AnsiColor::Green.on_default().bold();
const FAILED: Style = AnsiColor::Red.on_default().bold();

/// The separator gh-models prints before each test case.
const SEPARATOR: &str = "-------------------------";

/// Writes `summary` as `gh models eval` prints it on a terminal, then gm's figures.
///
/// The lines are gh-models' own: `Running evaluation: <name>`, `Description:`, `Model:`, `Test cases: N`;
/// per test a separator, `Running test case i/N...`, the `Result` row (with a `Model Response` preview of
/// at most 100 characters when the test failed) and the `EVALUATION  RESULT  SCORE  CRITERIA` table
/// (scores with two decimals); then `Evaluation Summary:`, `Passed: p/t (xx.xx%)` and
/// `🎉 All tests passed!` or `❌ Some tests failed.`. Tables are aligned the way gh-models' terminal
/// table printer aligns them (columns two spaces apart), without colours, trailing spaces, or line breaks
/// inside a cell (a newline in a response or a detail is shown as a space). As in gh-models, an empty
/// suite reads `Passed: 0/0 (0.00%)` and counts as all passed.
///
/// A case answered from the response cache has `(cached)` after its result.
///
/// gm's figures follow after a blank line, under their own `gm figures` heading, so a reader (or a
/// script matching gh-models' lines) can tell them apart. A run on the demo provider begins with
/// [`DEMO_NOTE`](super::DEMO_NOTE) and a blank line.
pub fn human<W: Write + ?Sized>(summary: &EvaluationSummary, out: &mut W) -> io::Result<()> {
    human_with(summary, HumanOptions::default(), out)
}

/// Writes `summary` as [`human`] does, with colour or as a stored run per `options`.
pub fn human_with<W: Write + ?Sized>(
    summary: &EvaluationSummary,
    options: HumanOptions,
    out: &mut W,
) -> io::Result<()> {
    let total = summary.test_results.len();
    if super::is_demo(&summary.gm.provider) {
        writeln!(out, "{}", super::DEMO_NOTE)?;
        writeln!(out)?;
    }
    writeln!(out, "Running evaluation: {}", summary.name)?;
    writeln!(out, "Description: {}", summary.description)?;
    writeln!(out, "Model: {}", summary.model)?;
    writeln!(out, "Test cases: {total}")?;
    writeln!(out)?;
    for (i, result) in summary.test_results.iter().enumerate() {
        writeln!(out, "{SEPARATOR}")?;
        if options.stored {
            writeln!(out, "Test case {}/{}", i + 1, total)?;
        } else {
            writeln!(out, "Running test case {}/{}...", i + 1, total)?;
        }
        let cached = summary.gm.cases.get(i).is_some_and(|c| c.cached);
        test_result(result, cached, options.color, out)?;
    }
    writeln!(out, "Evaluation Summary:")?;
    if summary.summary.total_tests == 0 {
        writeln!(out, "Passed: 0/0 (0.00%)")?;
    } else {
        writeln!(
            out,
            "Passed: {}/{} ({:.2}%)",
            summary.summary.passed_tests, summary.summary.total_tests, summary.summary.pass_rate
        )?;
    }
    if summary.summary.passed_tests == summary.summary.total_tests {
        writeln!(out, "🎉 All tests passed!")?;
    } else {
        writeln!(out, "❌ Some tests failed.")?;
    }
    writeln!(out)?;
    writeln!(out, "gm figures:")?;
    let rows: Vec<Vec<Cell>> = figure_rows(&summary.gm)
        .into_iter()
        .map(|(label, value)| vec![format!("  {label}").into(), value.into()])
        .collect();
    table(&rows, false, out)
}

/// A table cell: its text, the style the text has when colour is on, and a plain suffix.
struct Cell {
    text: String,
    style: Style,
    suffix: &'static str,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, style: Style::new(), suffix: "" }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

/// A pass or fail mark, styled.
fn mark(passed: bool, text: &str) -> Cell {
    Cell { text: text.to_string(), style: if passed { PASSED } else { FAILED }, suffix: "" }
}

fn test_result<W: Write + ?Sized>(result: &TestResult, cached: bool, color: bool, out: &mut W) -> io::Result<()> {
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let suffix = if cached { " (cached)" } else { "" };
    if result.passed() {
        rows.push(vec!["Result".into(), Cell { suffix, ..mark(true, "✓ PASSED") }]);
    } else {
        rows.push(vec!["Result".into(), Cell { suffix, ..mark(false, "✗ FAILED") }]);
        rows.push(vec!["Model Response".into(), preview(&result.model_response, RESPONSE_PREVIEW_CHARS).into()]);
    }
    table(&rows, color, out)?;
    writeln!(out)?;
    let mut rows: Vec<Vec<Cell>> = vec![["EVALUATION", "RESULT", "SCORE", "CRITERIA"].map(Cell::from).into()];
    for r in &result.evaluation_results {
        let mut row: Vec<Cell> = vec![
            r.evaluator_name.clone().into(),
            mark(r.passed, if r.passed { "✓" } else { "✗" }),
            format!("{:.2}", r.score).into(),
        ];
        // gh-models leaves the cell out, rather than empty, when there are no details.
        if let Some(details) = r.details.as_deref().filter(|d| !d.is_empty()) {
            row.push(details.into());
        }
        rows.push(row);
    }
    table(&rows, color, out)?;
    writeln!(out)
}

/// Renders rows as gh's terminal table printer does: every column but the last of the first row padded
/// to its widest cell, columns two spaces apart. With `color`, each cell is styled after its padding is
/// measured, so escapes never shift a column.
fn table<W: Write + ?Sized>(rows: &[Vec<Cell>], color: bool, out: &mut W) -> io::Result<()> {
    let rows: Vec<Vec<(String, Style, &str)>> =
        rows.iter().map(|r| r.iter().map(|c| (cell(&c.text), c.style, c.suffix)).collect()).collect();
    let columns = rows.first().map_or(0, Vec::len);
    let mut widths = vec![0; rows.iter().map(Vec::len).max().unwrap_or(0)];
    for row in &rows {
        for (i, (c, _, suffix)) in row.iter().enumerate() {
            widths[i] = widths[i].max(display_width(c) + display_width(suffix));
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, (c, style, suffix)) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if color && *style != Style::new() {
                line.push_str(&format!("{style}{c}{style:#}"));
            } else {
                line.push_str(c);
            }
            line.push_str(suffix);
            if i + 1 < columns {
                let width = display_width(c) + display_width(suffix);
                line.extend(std::iter::repeat_n(' ', widths[i].saturating_sub(width)));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// A cell on one line: line breaks and tabs become spaces, other control characters are dropped.
fn cell(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Columns a terminal gives `text`: two for wide characters (CJK, emoji), none for combining marks and
/// variation selectors, one otherwise. An approximation of Unicode's East Asian Width, enough to align
/// the tables.
pub(crate) fn display_width(text: &str) -> usize {
    text.chars()
        .map(|c| match c as u32 {
            0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F | 0x20D0..=0x20FF => 0,
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x1F300..=0x1F64F
            | 0x1F680..=0x1F6FF
            | 0x1F900..=0x1F9FF
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}
