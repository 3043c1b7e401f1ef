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

/// The exit code for an error: the first cause that is the CLI's own usage error, or that gm's crates say is the
/// caller's to fix ([`gm_app::is_usage_error`]), gives 2; a cause they say is not, and anything else, gives 3.
pub fn code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if let Some(usage) = gm_app::is_usage_error(cause) {
            return if usage { USAGE } else { PROVIDER };
        }
    }
    PROVIDER
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
