//! The error type of gm-eval.

/// Everything that can go wrong in gm-eval outside a run (runs have [`RunError`](crate::run::RunError)).
///
/// A poor model answer is never an error: it is a low score. Errors are about the input the
/// caller gave (arguments, metric names, patterns, schemas, malformed input lines), about IO, or
/// about running generated code that was not allowed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scorer, the metric registry, the statistics or the `gm score` engine refused its input
    /// or failed to read or write (see [`gm_metrics::Error`]).
    #[error(transparent)]
    Metrics(#[from] gm_metrics::Error),
    /// Running generated code was asked for but not enabled (see [`crate::sandbox::SandboxPolicy`]).
    #[cfg(feature = "code-exec")]
    #[error(
        "code execution is disabled: pass --allow-code-exec (or set `allowCodeExec: true` in the task's `execute:` \
         scorer) to run generated code; the sandbox is not a security boundary"
    )]
    CodeExecutionDisabled,
}
