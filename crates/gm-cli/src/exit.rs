//! Exit codes and the errors that choose them.

/// An evaluation ran and some tests failed.
pub const TESTS_FAILED: u8 = 1;
/// A usage, configuration or local file problem: a bad flag, a missing or malformed file, no credentials, a state
/// folder that cannot be written.
pub const USAGE: u8 = 2;
/// The provider or the network failed, or a run stopped before its end (`--resume` continues it).
pub const PROVIDER: u8 = 3;
/// Interrupted by Ctrl-C; what was recorded stays, and `--resume` continues it.
pub const INTERRUPTED: u8 = 130;

/// An error that is the user's to fix: a bad flag value, a malformed file, missing credentials.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Builds a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The exit code for an error: 3 when the first cause that gm's crates classify is a failure of the provider or
/// the network ([`gm_app::is_provider_error`]), 2 for everything else: the CLI's own usage errors, the caller's
/// input, and local files and state (a missing input file, a report that cannot be written).
pub fn code_for(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if cause.downcast_ref::<gm_serve::ServeError>().is_some_and(|s| s.is_usage()) {
            return USAGE;
        }
        if let Some(provider) = gm_app::is_provider_error(cause) {
            return if provider { PROVIDER } else { USAGE };
        }
    }
    USAGE
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn scoring_and_local_file_errors_are_never_the_providers() {
        let unknown = gm_eval::Metric::parse_list("bleu,nope").unwrap_err();
        assert_eq!(code_for(&anyhow::Error::new(unknown)), USAGE);
        let malformed: anyhow::Result<()> =
            Err(gm_metrics::Error::MalformedLine { line: 3, reason: "not JSON".into() }).context("cannot score input");
        assert_eq!(code_for(&malformed.unwrap_err()), USAGE);
        let io = gm_metrics::Error::Io(std::io::Error::other("disk full"));
        assert_eq!(code_for(&anyhow::Error::new(io)), USAGE);
        let missing: anyhow::Result<()> =
            Err(std::io::Error::from(std::io::ErrorKind::NotFound)).context("cannot open missing.jsonl");
        assert_eq!(code_for(&missing.unwrap_err()), USAGE);
    }

    #[test]
    fn gm_eval_errors_are_local() {
        let empty = gm_eval::stats::bootstrap_mean(&[], gm_eval::stats::BootstrapOptions::default()).unwrap_err();
        assert_eq!(code_for(&anyhow::Error::new(gm_eval::Error::from(empty))), USAGE);
        let io = gm_eval::Error::from(gm_metrics::Error::Io(std::io::Error::other("disk full")));
        assert_eq!(code_for(&anyhow::Error::new(io)), USAGE);
        assert_eq!(code_for(&anyhow::Error::new(gm_eval::Error::CodeExecutionDisabled)), USAGE);
    }

    #[test]
    fn provider_failures_exit_3_through_any_context() {
        let timeout = gm_http::Error::Timeout { url: "http://x/v1".into(), message: "no answer in 60s".into() };
        let e: anyhow::Result<()> = Err(gm_app::Error::from(timeout)).context("gm run failed");
        assert_eq!(code_for(&e.unwrap_err()), PROVIDER);
    }
}
