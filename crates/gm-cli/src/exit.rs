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
        if let Some(e) = cause.downcast_ref::<gm_app::Error>() {
            return if e.is_usage() { USAGE } else { PROVIDER };
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
            return match e {
                gm_eval::Error::Metrics(m) => metrics_code(m),
                _ => USAGE,
            };
        }
        if let Some(e) = cause.downcast_ref::<gm_metrics::Error>() {
            return metrics_code(e);
        }
    }
    PROVIDER
}

/// Bad input to a scorer (an unknown metric, a malformed line) is the user's to fix; a failed read or write is not.
fn metrics_code(e: &gm_metrics::Error) -> u8 {
    if matches!(e, gm_metrics::Error::Io(_)) {
        PROVIDER
    } else {
        USAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn scoring_errors_are_usage_errors_unless_io_failed() {
        let unknown = gm_eval::Metric::parse_list("bleu,nope").unwrap_err();
        assert_eq!(code_for(&anyhow::Error::new(unknown)), USAGE);
        let malformed: anyhow::Result<()> =
            Err(gm_metrics::Error::MalformedLine { line: 3, reason: "not JSON".into() }).context("cannot score input");
        assert_eq!(code_for(&malformed.unwrap_err()), USAGE);
        let io = gm_metrics::Error::Io(std::io::Error::other("disk full"));
        assert_eq!(code_for(&anyhow::Error::new(io)), PROVIDER);
    }

    #[test]
    fn gm_eval_errors_keep_their_codes() {
        let empty = gm_eval::stats::bootstrap_mean(&[], gm_eval::stats::BootstrapOptions::default()).unwrap_err();
        assert_eq!(code_for(&anyhow::Error::new(gm_eval::Error::from(empty))), USAGE);
        let io = gm_eval::Error::from(gm_metrics::Error::Io(std::io::Error::other("disk full")));
        assert_eq!(code_for(&anyhow::Error::new(io)), PROVIDER);
        assert_eq!(code_for(&anyhow::Error::new(gm_eval::Error::CodeExecutionDisabled)), USAGE);
    }
}
