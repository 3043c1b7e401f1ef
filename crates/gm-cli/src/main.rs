//! `gm`: evaluate, prototype and monitor language models over GitHub Models and OpenAI-compatible APIs.
//!
//! Standard output carries only each command's result; progress, notices and logs go to standard error.
//! Exit codes: 0 success; 1 an evaluation ran and some tests failed; 2 a usage, configuration or local file
//! problem; 3 the provider or network failed (a retired service included), or a run stopped before its end;
//! 130 interrupted by Ctrl-C.

mod cli;
mod commands;
mod context;
mod exit;
mod progress;
mod style;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::parse();
    init_logging(args.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            style::error(format!("could not start the async runtime: {e}"));
            return ExitCode::from(exit::USAGE);
        }
    };
    let outcome = runtime.block_on(commands::dispatch(args));
    let code = match outcome {
        Ok(code) => code,
        // A reader that went away (`gm models list | head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            style::error(error_text(&e));
            ExitCode::from(exit::code_for(&e))
        }
    };
    context::print_held_notice();
    code
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message before it already
/// carries (many errors repeat their source in their own message, which would otherwise print twice).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut last = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if part.is_empty() || last.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
        last = part;
    }
    text
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GM_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,hyper_util=warn,rustls=warn"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Above the progress bars, when some are drawn, rather than into them.
        .with_writer(progress::LogWriter)
        // Coloured as gm's own messages are: on a terminal, unless NO_COLOR (or CLICOLOR=0, TERM=dumb) says not.
        .with_ansi(anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("the request has 58 input tokens")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Repeats(#[source] Inner);

    #[test]
    fn a_cause_repeated_in_its_message_is_printed_once() {
        let e = anyhow::Error::new(Repeats(Inner));
        assert_eq!(error_text(&e), "the request has 58 input tokens");
        let e = anyhow::Error::new(Repeats(Inner)).context("gm run failed");
        assert_eq!(error_text(&e), "gm run failed: the request has 58 input tokens");
    }

    #[test]
    fn a_client_error_keeps_its_cause_and_prints_it_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        let e = gm_http::Error::Connect {
            url: "http://127.0.0.1:9/v1/chat/completions".into(),
            message: "tcp connect error: Connection refused (os error 111)".into(),
            cause: Some(Box::new(refused)),
        };
        let e = anyhow::Error::new(gm_http::Error::Shared(std::sync::Arc::new(e)));
        assert_eq!(e.chain().count(), 2, "the cause is kept");
        assert_eq!(
            error_text(&e),
            "could not connect to http://127.0.0.1:9/v1/chat/completions: tcp connect error: Connection refused (os \
             error 111)"
        );
    }

    #[test]
    fn distinct_causes_are_all_printed() {
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(error_text(&e), "outer: middle: inner");
    }
}
