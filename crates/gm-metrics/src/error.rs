//! The error type of gm-metrics.

/// Everything that can go wrong in gm-metrics.
///
/// A poor model answer is never an error: it is a low score. Errors are about the input the
/// caller gave (arguments, metric names, patterns, schemas, malformed input lines) or about IO.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// pass@k or pass^k arguments out of range.
    #[error("invalid pass@k arguments n = {n}, c = {c}, k = {k}: need c <= n and 1 <= k <= n")]
    PassKArguments {
        /// Samples per problem.
        n: u64,
        /// Passing samples.
        c: u64,
        /// Samples drawn.
        k: u64,
    },
    /// A metric name that is not in the registry.
    #[error("unknown metric `{name}`; valid metrics are: {valid} (see `gm score --list`)")]
    UnknownMetric {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// No metric was requested.
    #[error("no metrics requested; pass one or more names from `gm score --list`")]
    NoMetrics,
    /// A regular expression that does not compile.
    #[error("invalid regular expression `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern given.
        pattern: String,
        /// Why it does not compile.
        reason: String,
    },
    /// A JSON schema that is not JSON or not a valid schema.
    #[error("invalid JSON schema: {reason}")]
    InvalidSchema {
        /// Why it was rejected.
        reason: String,
    },
    /// An input line that cannot be scored; `line` counts from 1.
    #[error("line {line}: {reason}")]
    MalformedLine {
        /// The line number, counting from 1.
        line: u64,
        /// What is wrong with it and what was expected.
        reason: String,
    },
    /// Statistics asked of an empty list, or of paired lists of different lengths.
    #[error("cannot aggregate: {reason}")]
    Aggregate {
        /// What was wrong with the values.
        reason: &'static str,
    },
    /// Reading the input or writing the output failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
