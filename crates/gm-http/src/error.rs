//! Errors of the client, grouped by phase: never sent, maybe sent, sent and rejected.

use std::fmt;
use std::time::Duration;

use gm_core::{ErrorBody, ProviderKind};

use crate::transport::BoxError;

/// The date GitHub Models was retired.
pub const GITHUB_MODELS_RETIRED_ON: &str = "2026-07-30";

/// An error answer from the API: the status, the parsed body and the raw body.
#[derive(Clone)]
#[non_exhaustive]
pub struct ApiError {
    /// The provider that answered.
    pub provider: ProviderKind,
    /// The HTTP status.
    pub status: u16,
    /// The parsed error body, when the body had a recognisable one.
    pub body: Option<ErrorBody>,
    /// The raw body as text (capped at 4 KiB).
    pub raw: String,
    /// How long the server asked us to wait, from headers or the body.
    pub retry_after: Option<Duration>,
    /// `x-ratelimit-type`, when the server sent it (`UserByModelByMinute`, `UserByModelByDay`).
    pub rate_limit_type: Option<String>,
    /// Where the credential sent with the request came from (`the GM_API_KEY environment variable`), or
    /// `None` when the request carried none.
    pub credential: Option<String>,
    /// The base URL the request went to.
    pub base_url: String,
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("provider", &self.provider)
            .field("status", &self.status)
            .field("code", &self.code())
            .field("message", &self.message())
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl ApiError {
    /// The machine-readable code, if the body had one.
    pub fn code(&self) -> Option<&str> {
        self.body.as_ref().and_then(|b| b.code.as_deref())
    }

    /// The server's message, or the start of the raw body.
    pub fn message(&self) -> &str {
        match &self.body {
            Some(b) if !b.message.is_empty() => &b.message,
            _ => self.raw.trim(),
        }
    }

    /// Whether the server says a daily quota is spent.
    pub fn is_daily_limit(&self) -> bool {
        self.rate_limit_type.as_deref().is_some_and(|t| t.contains("ByDay"))
            || self.message().contains("ByDay")
            || self.message().contains("per 86400s")
    }

    fn hint(&self) -> Option<String> {
        let keyed =
            matches!(self.provider, ProviderKind::OpenAi | ProviderKind::Azure | ProviderKind::OpenAiCompatible);
        let base = self.base_url.trim_end_matches('/');
        match (self.provider, self.status) {
            (ProviderKind::Github, 401 | 403) => Some(
                "the token needs the `models: read` permission (a fine-grained PAT or GitHub App token) or the \
                 `models` scope; in GitHub Actions add `permissions: models: read`"
                    .into(),
            ),
            (_, 401 | 403) if keyed => Some(match &self.credential {
                Some(source) => {
                    format!("the server refused the key from {source}; check it (`gm auth status` shows which key gm found)")
                }
                None => format!("no API key was sent: {}", crate::auth::credential_hint(self.provider)),
            }),
            // Some proxies (LiteLLM among them) answer a request without a key with a bare 500.
            (_, 500) if keyed && self.credential.is_none() && self.raw.trim().is_empty() => Some(format!(
                "the answer had no body and no API key was sent, so a missing key is a likely cause: {}",
                crate::auth::credential_hint(self.provider)
            )),
            (_, 404) if keyed && !base.is_empty() && !base.ends_with("/v1") => Some(format!(
                "the base URL {base} does not end in /v1, where OpenAI-compatible servers answer; try --base-url {base}/v1"
            )),
            (_, 404) if self.code() == Some("unknown_model") || self.message().to_lowercase().contains("model") => {
                Some("run `gm models list` to see the models this provider offers".into())
            }
            (_, 413) => Some("shorten the prompt or lower max_tokens; the per-request token cap was exceeded".into()),
            (_, 429) if self.is_daily_limit() => Some("the daily quota for this model is spent".into()),
            (_, 429) if self.retry_after.is_none() => Some(
                "the server did not say how long to wait; try again in a minute, or lower --limits so gm spaces \
                 the requests"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered {}", self.provider, self.status)?;
        // Some servers send the status again as the code (`"code": 400`): it is shown once.
        if let Some(code) = self.code().filter(|c| *c != self.status.to_string()) {
            write!(f, " {code}")?;
        }
        let hint = self.hint();
        let msg = self.message();
        // The provider's sentence runs on into the hint: its closing period would stand before the semicolon.
        let msg = if hint.is_some() { msg.trim_end().trim_end_matches('.') } else { msg };
        if !msg.is_empty() {
            write!(f, ": {msg}")?;
        }
        if let Some(h) = hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

/// Where a request was when it failed; retries depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The request never left: invalid input, missing credentials, a refused connection.
    NeverSent,
    /// The request may have reached the server: a timeout or a dropped connection.
    MaybeSent,
    /// The server answered and refused, or its answer could not be used.
    Rejected,
}

/// An error of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Never sent: the request is not valid (a bad model id, a bad URL, a missing base URL).
    #[error("{0}")]
    InvalidRequest(String),
    /// Never sent: no credential was found for a provider that needs one.
    #[error("no credentials for {provider}: {hint}")]
    MissingCredentials {
        /// The provider.
        provider: ProviderKind,
        /// Where a credential can come from.
        hint: String,
    },
    /// Never sent: answers are replayed from a recorded answers file, and it holds none for this request.
    #[error("{0}")]
    NotRecorded(Box<NotRecorded>),
    /// Never sent: the connection could not be made.
    #[error("could not connect to {url}: {message}")]
    Connect {
        /// The URL (no credentials in it).
        url: String,
        /// What failed, with the chain of causes.
        message: String,
        /// The underlying error, returned by `source()` (its text is already in `message`).
        #[source]
        cause: Option<BoxError>,
    },
    /// Maybe sent: a deadline passed.
    #[error("the request to {url} timed out: {message}")]
    Timeout {
        /// The URL.
        url: String,
        /// Which deadline.
        message: String,
    },
    /// Maybe sent: the connection failed after it was made, or the response body was cut short.
    #[error("the connection to {url} failed: {message}")]
    Io {
        /// The URL.
        url: String,
        /// What failed, with the chain of causes.
        message: String,
        /// The underlying error, returned by `source()` (its text is already in `message`).
        #[source]
        cause: Option<BoxError>,
    },
    /// Sent and rejected: the API answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// Sent and rejected: GitHub Models is retired (HTTP 410); never retried.
    #[error(
        "GitHub Models was retired on {retired_on} and answers 410 Gone{code}; use --provider azure \
         (Azure AI Foundry), --provider openai, --provider openai-compatible --base-url URL (Ollama, vLLM, \
         llama.cpp), or --provider demo"
    )]
    Retired {
        /// The retirement date.
        retired_on: &'static str,
        /// The error code shown, e.g. ` (github_models_retirement_brownout)`.
        code: String,
        /// The full API error.
        api: Box<ApiError>,
    },
    /// Sent: the server asked us to wait longer than the retry policy allows.
    #[error("{api}; the server asks to wait {}, longer than the {} the retry policy allows (--max-wait); try again then, or raise it", fmt_duration(*wait), fmt_duration(*cap))]
    WaitTooLong {
        /// The requested wait.
        wait: Duration,
        /// The policy's cap on one wait.
        cap: Duration,
        /// The answer that asked for it.
        api: Box<ApiError>,
    },
    /// Sent: the answer could not be understood.
    #[error("{provider} sent an answer that could not be read: {message}")]
    Decode {
        /// The provider.
        provider: ProviderKind,
        /// What was wrong, with the start of the body.
        message: String,
    },
    /// Sent: the stream ended before `[DONE]` or carried an error.
    #[error("the answer stream from {provider} broke off: {message}")]
    Stream {
        /// The provider.
        provider: ProviderKind,
        /// What happened.
        message: String,
    },
    /// Never sent: the rate limiter refused the request (over a per-request cap, a spent quota, a wait
    /// longer than allowed). Its message says by how much or when the quota frees.
    #[error("{0}")]
    Limit(#[from] gm_limits::LimitError),
    /// The same failure shared by identical requests that were sent once (the cache's single flight): it
    /// shows and has the causes of the shared error.
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
    /// Sent: the server answered with a success status, but its body is an error envelope (`{"error": …}`);
    /// nothing of it is used or cached.
    #[error("{provider} answered {status} with an error instead of an answer: {message}; nothing was recorded, try again later")]
    ErrorAnswer {
        /// The provider.
        provider: ProviderKind,
        /// The (success) status it came with.
        status: u16,
        /// The server's message (credentials taken out).
        message: String,
    },
    /// The response was larger than the configured cap.
    #[error(
        "the answer from {url} is larger than the cap of {limit} bytes; raise the cap (--max-response-bytes) if \
         answers this large are expected"
    )]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: usize,
    },
}

/// A request a recorded answers file holds no answer for, when the client replays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file} holds no answer for request {key} (model {model}, sample {sample}: {prompt:?}){hint}; record it with \
     --record-missing (which asks the provider), or record the run again with --record"
)]
pub struct NotRecorded {
    /// The recorded answers file.
    pub file: String,
    /// The request's key.
    pub key: String,
    /// The model asked.
    pub model: String,
    /// Which sample of a repeated request.
    pub sample: u32,
    /// The start of the last user message.
    pub prompt: String,
    /// Why the file may hold none (recorded from another provider or base URL), or empty.
    pub hint: String,
}

/// Formats a duration for people: `850ms`, `46s`, `1m 30s`, `2h 5m`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

impl Error {
    /// The phase the request was in when it failed.
    pub fn phase(&self) -> Phase {
        match self {
            Error::Shared(e) => e.phase(),
            Error::InvalidRequest(_)
            | Error::MissingCredentials { .. }
            | Error::NotRecorded(_)
            | Error::Connect { .. }
            | Error::Limit(_) => Phase::NeverSent,
            Error::Timeout { .. } | Error::Io { .. } => Phase::MaybeSent,
            _ => Phase::Rejected,
        }
    }

    /// The API error, if the server answered with an error status.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Shared(e) => e.api(),
            Error::Api(a) => Some(a),
            Error::Retired { api, .. } | Error::WaitTooLong { api, .. } => Some(api),
            _ => None,
        }
    }

    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        self.api().map(|a| a.status)
    }

    /// Whether a deadline passed.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Shared(e) => e.is_timeout(),
            e => matches!(e, Error::Timeout { .. }),
        }
    }

    /// Whether the service is retired.
    pub fn is_retired(&self) -> bool {
        match self {
            Error::Shared(e) => e.is_retired(),
            e => matches!(e, Error::Retired { .. }),
        }
    }

    /// Whether the request was refused by a rate limit.
    pub fn is_rate_limited(&self) -> bool {
        self.status() == Some(429)
    }

    /// Whether the caller's input or configuration is at fault (a usage error, not a provider failure).
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Shared(e) => e.is_usage(),
            Error::Limit(l) => matches!(
                l,
                gm_limits::LimitError::InputTooLong { .. }
                    | gm_limits::LimitError::OutputTooLong { .. }
                    | gm_limits::LimitError::OverTokenBudget { .. }
                    | gm_limits::LimitError::NotOnPlan { .. }
                    | gm_limits::LimitError::InvalidConfig(_)
            ),
            // The demo provider refuses a model outside its catalog: the caller named it.
            Error::Api(a) => a.provider == ProviderKind::Demo && a.code() == Some("unknown_model"),
            e => matches!(e, Error::InvalidRequest(_) | Error::MissingCredentials { .. }),
        }
    }

    /// Turns an error shared by a single flight back into an owned one where this was its only holder.
    pub fn from_shared(e: std::sync::Arc<Error>) -> Error {
        std::sync::Arc::try_unwrap(e).unwrap_or_else(Error::Shared)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::transport::{TransportError, TransportErrorKind};

    fn refused() -> BoxError {
        Box::new(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused"))
    }

    #[test]
    fn errors_holding_a_cause_return_it_as_their_source() {
        let url = "http://127.0.0.1:9/v1".to_string();
        let message = "tcp connect error: connection refused".to_string();
        let connect = Error::Connect { url: url.clone(), message: message.clone(), cause: Some(refused()) };
        assert_eq!(connect.source().map(ToString::to_string).as_deref(), Some("connection refused"));
        let io = Error::Io { url: url.clone(), message: message.clone(), cause: Some(refused()) };
        assert_eq!(io.source().map(ToString::to_string).as_deref(), Some("connection refused"));
        assert!(Error::Io { url, message: message.clone(), cause: None }.source().is_none());
        // A failure shared by a single flight is the same failure: same text, same cause.
        let shared = Error::Shared(std::sync::Arc::new(connect));
        assert_eq!(
            shared.to_string(),
            "could not connect to http://127.0.0.1:9/v1: tcp connect error: connection refused"
        );
        assert_eq!(shared.source().map(ToString::to_string).as_deref(), Some("connection refused"));
        let transport = TransportError::new(TransportErrorKind::Connect, message).with_source(refused());
        assert_eq!(transport.source().map(ToString::to_string).as_deref(), Some("connection refused"));
    }

    #[test]
    fn a_provider_sentence_runs_into_the_hint_without_its_period() {
        let raw = r#"{"error":{"code":"unknown_model","message":"The model `x` does not exist or you do not have access to it."}}"#;
        let api = ApiError {
            provider: ProviderKind::OpenAi,
            status: 404,
            body: gm_core::ErrorBody::parse(raw.as_bytes()),
            raw: raw.into(),
            retry_after: None,
            rate_limit_type: None,
            credential: Some("the OPENAI_API_KEY environment variable".into()),
            base_url: "https://api.openai.com/v1".into(),
        };
        assert_eq!(
            api.to_string(),
            "openai answered 404 unknown_model: The model `x` does not exist or you do not have access to it; run \
             `gm models list` to see the models this provider offers"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(fmt_duration(Duration::from_secs(46)), "46s");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(fmt_duration(Duration::from_secs(24367)), "6h 46m");
    }
}
