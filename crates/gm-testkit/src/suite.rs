//! Prompt files the tests of several crates run.

use std::path::{Path, PathBuf};

/// A suite named `name` of sums (`What is {{a}} + {{b}}?` on `openai/gpt-4.1`), a test case for each `a` of
/// `rows` with the same `b`, and one check, `answers plainly` (the answer starts with "The answer"), which the
/// demo's plain answers pass and its wordy model (`openai/gpt-4.1-mini`) fails: one model is significantly
/// better than the other whatever their latencies.
///
/// ```
/// let yaml = gm_testkit::suite::sums("arith", 0..2, 7);
/// assert!(yaml.contains("  - {a: 1, b: 7}\n") && yaml.starts_with("name: arith\n"));
/// ```
pub fn sums(name: &str, rows: impl IntoIterator<Item = usize>, b: usize) -> String {
    let mut yaml = format!(
        "name: {name}\nmodel: openai/gpt-4.1\nmessages:\n  - role: user\n    content: \"What is {{{{a}}}} + {{{{b}}}}?\"\ntestData:\n"
    );
    for a in rows {
        yaml.push_str(&format!("  - {{a: {a}, b: {b}}}\n"));
    }
    yaml.push_str("evaluators:\n  - name: answers plainly\n    string: {startsWith: \"The answer\"}\n");
    yaml
}

/// Writes [`sums`] to `dir/{name}.prompt.yml` (making `dir` if need be) and returns the file's path.
pub fn write_sums(dir: &Path, name: &str, rows: impl IntoIterator<Item = usize>, b: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join(format!("{name}.prompt.yml"));
    std::fs::write(&path, sums(name, rows, b)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}
