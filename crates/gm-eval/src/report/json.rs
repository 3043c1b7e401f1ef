//! gh-models' `--json` document.

use std::io::{self, Write};

use crate::run::EvaluationSummary;

/// Writes the `--json` document: one file's summary as one object, several files' as an array.
///
/// As `gh models eval --json`, the JSON is indented by two spaces and followed by a newline, with
/// gh-models' keys (`name`, `description`, `model`, `testResults`, `summary`) and gm's figures under
/// `gm`. No files give an empty array.
pub fn json<W: Write + ?Sized>(summaries: &[EvaluationSummary], out: &mut W) -> io::Result<()> {
    match summaries {
        [one] => serde_json::to_writer_pretty(&mut *out, one)?,
        many => serde_json::to_writer_pretty(&mut *out, many)?,
    }
    writeln!(out)
}
