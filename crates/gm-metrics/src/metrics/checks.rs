//! Pass/fail checks: the string evaluators of `gh models eval`, regular expressions, JSON
//! validity and JSON-schema validation.
//!
//! Each check scores 1.0 or 0.0; with several references the prediction passes when it passes
//! against any of them.

use regex::Regex;

use crate::Error;

/// Lowercases one character at a time, as Go's `strings.ToLower` does (no context-dependent
/// final sigma, and `İ` becomes a plain `i`), so that `gh models eval` checks agree.
///
/// The case-insensitive checks compare through it, and so does anything else that must match
/// text the way `gh models eval` does (gm-eval's LLM judges, when they look for a choice).
///
/// ```
/// use gm_metrics::metrics::simple_lowercase;
///
/// assert_eq!(simple_lowercase("İSTANBUL ΣΊΣΥΦΟΣ"), "istanbul σίσυφοσ");
/// ```
pub fn simple_lowercase(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if c == '\u{130}' {
            out.push('i');
        } else {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) => out.push(l),
                _ => out.push(c),
            }
        }
    }
    out
}

fn score(pass: bool) -> f64 {
    if pass {
        1.0
    } else {
        0.0
    }
}

/// `equals`: the prediction is exactly a reference (case-sensitive).
///
/// ```
/// use gm_metrics::metrics::equals;
/// assert_eq!(equals("Paris", &["Paris"]), 1.0);
/// assert_eq!(equals("paris", &["Paris"]), 0.0);
/// ```
pub fn equals<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    score(references.iter().any(|r| r.as_ref() == prediction))
}

fn any_lowercase<S: AsRef<str>>(prediction: &str, references: &[S], test: impl Fn(&str, &str) -> bool) -> f64 {
    if references.is_empty() {
        return 0.0;
    }
    let pred = simple_lowercase(prediction);
    score(references.iter().any(|r| test(&pred, &simple_lowercase(r.as_ref()))))
}

/// `contains`: the prediction contains a reference, ignoring case.
///
/// ```
/// use gm_metrics::metrics::contains;
/// assert_eq!(contains("The answer is PARIS.", &["paris"]), 1.0);
/// ```
pub fn contains<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    any_lowercase(prediction, references, |p, r| p.contains(r))
}

/// `startsWith`: the prediction starts with a reference, ignoring case.
pub fn starts_with<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    any_lowercase(prediction, references, |p, r| p.starts_with(r))
}

/// `endsWith`: the prediction ends with a reference, ignoring case.
pub fn ends_with<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    any_lowercase(prediction, references, |p, r| p.ends_with(r))
}

/// Compiles a pattern for [`regex_match`] (Rust `regex` syntax).
///
/// # Errors
/// [`Error::InvalidPattern`] when the pattern does not compile.
pub fn compile_pattern(pattern: &str) -> Result<Regex, Error> {
    Regex::new(pattern).map_err(|e| Error::InvalidPattern { pattern: pattern.to_owned(), reason: e.to_string() })
}

/// Whether any of the patterns matches somewhere in the prediction (a search, not a full
/// match; anchor the pattern with `^...$` for that).
///
/// ```
/// use gm_metrics::metrics::regex_match;
/// assert_eq!(regex_match("Answer: 42", &[r"\b42\b"]).unwrap(), 1.0);
/// assert!(regex_match("x", &["("]).is_err());
/// ```
///
/// # Errors
/// [`Error::InvalidPattern`] for the first pattern that does not compile.
pub fn regex_match<S: AsRef<str>>(prediction: &str, patterns: &[S]) -> Result<f64, Error> {
    let mut pass = false;
    for p in patterns {
        pass |= compile_pattern(p.as_ref())?.is_match(prediction);
    }
    Ok(score(pass))
}

/// Whether the prediction is one JSON value (surrounding whitespace allowed).
///
/// ```
/// use gm_metrics::metrics::json_valid;
/// assert_eq!(json_valid(r#" {"a": [1, 2]} "#), 1.0);
/// assert_eq!(json_valid("{'a': 1}"), 0.0);
/// ```
pub fn json_valid(prediction: &str) -> f64 {
    score(serde_json::from_str::<serde::de::IgnoredAny>(prediction).is_ok())
}

/// A compiled JSON schema, for validating many predictions against it.
pub struct JsonSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema").finish_non_exhaustive()
    }
}

impl JsonSchema {
    /// Compiles a schema given as JSON text. Only references inside the schema resolve;
    /// nothing is fetched from the network or the file system.
    ///
    /// # Errors
    /// [`Error::InvalidSchema`] when the text is not JSON or not a valid schema.
    pub fn compile(schema: &str) -> Result<Self, Error> {
        let value: serde_json::Value =
            serde_json::from_str(schema).map_err(|e| Error::InvalidSchema { reason: e.to_string() })?;
        let validator =
            jsonschema::validator_for(&value).map_err(|e| Error::InvalidSchema { reason: e.to_string() })?;
        Ok(JsonSchema { validator })
    }

    /// 1.0 when the prediction is JSON that the schema accepts, else 0.0.
    pub fn score(&self, prediction: &str) -> f64 {
        match serde_json::from_str::<serde_json::Value>(prediction) {
            Ok(value) => score(self.validator.is_valid(&value)),
            Err(_) => 0.0,
        }
    }
}

/// Whether the prediction is JSON that one of the schemas (given as JSON text) accepts.
///
/// ```
/// use gm_metrics::metrics::json_schema_valid;
/// let schema = r#"{"type": "object", "required": ["name"]}"#;
/// assert_eq!(json_schema_valid(r#"{"name": "x"}"#, &[schema]).unwrap(), 1.0);
/// assert_eq!(json_schema_valid(r#"{"age": 3}"#, &[schema]).unwrap(), 0.0);
/// ```
///
/// # Errors
/// [`Error::InvalidSchema`] for the first schema that does not compile.
pub fn json_schema_valid<S: AsRef<str>>(prediction: &str, schemas: &[S]) -> Result<f64, Error> {
    let mut pass = false;
    for s in schemas {
        pass |= JsonSchema::compile(s.as_ref())?.score(prediction) == 1.0;
    }
    Ok(score(pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_checks_follow_gh_models() {
        assert_eq!(starts_with("YES, because", &["yes"]), 1.0);
        assert_eq!(ends_with("so the answer is B", &["b"]), 1.0);
        assert_eq!(ends_with("so the answer is B.", &["b"]), 0.0);
        assert_eq!(contains("abc", &["x", "B"]), 1.0);
        assert_eq!(contains::<&str>("abc", &[]), 0.0);
        assert_eq!(equals("a", &["b", "a"]), 1.0);
        assert_eq!(contains("İSTANBUL", &["istanbul"]), 1.0);
    }

    #[test]
    fn invalid_schema_is_an_error() {
        assert!(JsonSchema::compile("{").is_err());
        assert!(JsonSchema::compile(r#"{"type": 12}"#).is_err());
    }
}
