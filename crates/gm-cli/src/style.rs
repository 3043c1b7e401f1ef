//! gm's own messages on standard error (`error:`, `warning:`, `note:`) and its reports' marks, coloured through
//! anstream: colour on a terminal, plain text when `NO_COLOR` is set or the stream is a pipe or a file.

use std::fmt::Display;

use anstyle::{AnsiColor, Style};

const ERROR: Style = AnsiColor::Red.on_default().bold();
const WARNING: Style = AnsiColor::Yellow.on_default().bold();
const NOTE: Style = AnsiColor::Cyan.on_default().bold();

/// Prints `error: MESSAGE` on standard error.
pub fn error(message: impl Display) {
    prefixed(ERROR, "error", &message.to_string());
}

/// Prints `warning: MESSAGE` on standard error.
pub fn warning(message: impl Display) {
    prefixed(WARNING, "warning", &message.to_string());
}

/// Prints `note: MESSAGE` on standard error.
pub fn note(message: impl Display) {
    prefixed(NOTE, "note", &message.to_string());
}

/// The message after its prefix, each further line indented under the first, written at once so that nothing
/// else printed meanwhile runs into it.
fn prefixed(style: Style, prefix: &str, message: &str) {
    let indent = " ".repeat(prefix.len() + 2);
    let body = message.lines().collect::<Vec<_>>().join(&format!("\n{indent}"));
    anstream::eprintln!("{style}{prefix}:{style:#} {body}");
}
