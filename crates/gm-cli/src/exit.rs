//! Exit codes and the errors that choose them.

/// An evaluation ran and some tests failed.
pub const TESTS_FAILED: u8 = 1;
/// Usage or configuration error.
pub const USAGE: u8 = 2;
/// The provider or the network failed.
pub const PROVIDER: u8 = 3;

/// An error that is the user's to fix: a bad flag value, a malformed file, missing credentials.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Builds a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The exit code for an error: usage errors give 2, everything else 3.
pub fn code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if let Some(r) = cause.downcast_ref::<gm_eval::run::RunError>() {
            return match (r.root(), r.client_error()) {
                (gm_eval::run::RunError::Budget { .. }, _) => PROVIDER,
                (_, Some(h)) if !h.is_usage() => PROVIDER,
                _ => USAGE,
            };
        }
        if cause.is::<gm_eval::evaluators::EvaluatorError>() {
            return USAGE;
        }
        if let Some(h) = cause.downcast_ref::<gm_http::Error>() {
            return if h.is_usage() { USAGE } else { PROVIDER };
        }
        if cause.is::<gm_eval::prompt::PromptError>() || cause.is::<gm_core::ModelIdError>() {
            return USAGE;
        }
        if let Some(e) = cause.downcast_ref::<gm_eval::Error>() {
            // Bad input (an unknown metric, a malformed line) is the user's to fix; a failed read or write is not.
            return if matches!(e, gm_eval::Error::Io(_)) { PROVIDER } else { USAGE };
        }
    }
    PROVIDER
}
