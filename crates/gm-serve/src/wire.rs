//! What goes back to clients: JSON answers and errors in the envelope each client expects.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};

/// Which protocol a client speaks, from the path it called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/v1/...`: OpenAI's `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// GitHub Models' paths: `{"error": {"code", "message", "details"}}`.
    Github,
}

/// An error answer, before it is put in an envelope.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    /// The status.
    pub status: StatusCode,
    /// A machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// For 429 and 503: how long until trying again makes sense.
    pub retry_after: Option<Duration>,
    /// More headers for the answer (`x-ratelimit-*`).
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl ApiFailure {
    /// A failure with no wait.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None, headers: Vec::new() }
    }

    /// 429 with an exact wait.
    pub fn rate_limited(message: impl Into<String>, wait: Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limit_exceeded",
            message: message.into(),
            retry_after: Some(wait),
            headers: Vec::new(),
        }
    }

    fn openai_type(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "invalid_request_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        }
    }

    /// The answer in `dialect`'s envelope, with `retry-after` (whole seconds, rounded up) and `retry-after-ms`.
    pub fn into_response(self, dialect: Dialect) -> Response {
        let body = match dialect {
            Dialect::OpenAi => serde_json::json!({"error": {
                "message": self.message, "type": self.openai_type(), "param": null, "code": self.code}}),
            Dialect::Github => {
                serde_json::json!({"error": {"code": self.code, "message": self.message, "details": self.message}})
            }
        };
        let mut r = json_response(self.status, Bytes::from(body.to_string()));
        if let Some(wait) = self.retry_after {
            set_retry_after(r.headers_mut(), wait);
        }
        for (k, v) in self.headers {
            r.headers_mut().insert(k, v);
        }
        r
    }
}

/// Sets `retry-after` (whole seconds, rounded up, so a client that waits that long is admitted) and
/// `retry-after-ms` (exact to the millisecond, rounded up).
pub fn set_retry_after(h: &mut http::HeaderMap, wait: Duration) {
    let ms = wait.as_nanos().div_ceil(1_000_000);
    let secs = ms.div_ceil(1000);
    h.insert(http::header::RETRY_AFTER, HeaderValue::from(secs as u64));
    h.insert("retry-after-ms", HeaderValue::from(ms as u64));
}

static JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON answer.
pub fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, JSON.clone());
    r
}

/// The failure to answer for an upstream error, and whether the next upstream of the route may be tried.
pub fn upstream_failure(e: &gm_http::Error) -> (ApiFailure, bool) {
    use gm_http::Error as E;
    match e {
        E::Api(api) => {
            let status = StatusCode::from_u16(api.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let code = match api.status {
                400 => "invalid_request",
                401 => "upstream_unauthorized",
                403 => "upstream_forbidden",
                404 => "unknown_model",
                413 => "tokens_limit_reached",
                422 => "invalid_request",
                429 => "rate_limit_exceeded",
                _ => "upstream_error",
            };
            let mut f = ApiFailure::new(status, code, api.message().to_string());
            f.retry_after = api.retry_after;
            // A 4xx is the request's own fault: another upstream would refuse it too. A 429 is the upstream's
            // quota (one the limits did not know), which another upstream may have room for.
            (f, api.status >= 500 || api.status == 429)
        }
        E::Retired { .. } => (ApiFailure::new(StatusCode::BAD_GATEWAY, "upstream_retired", e.to_string()), true),
        E::WaitTooLong { wait, .. } => (
            ApiFailure::rate_limited(
                "the upstream asks to wait longer than this gateway's --max-wait; retry after the time given",
                *wait,
            ),
            true,
        ),
        E::Limit(l) if l.is_wait() => {
            let wait = l.retry_in().unwrap_or(Duration::from_secs(1));
            let message = format!(
                "the upstream's quota for this model is spent for now; it frees in {}: retry after the time given",
                gm_http::fmt_duration(wait)
            );
            (ApiFailure::rate_limited(message, wait), true)
        }
        E::Limit(l) if l.is_request_too_large() => {
            (ApiFailure::new(StatusCode::PAYLOAD_TOO_LARGE, "tokens_limit_reached", l.to_string()), false)
        }
        E::Limit(l) => (ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, "limits_unavailable", l.to_string()), true),
        E::Connect { .. } | E::Io { .. } | E::Stream { .. } | E::Decode { .. } => {
            (ApiFailure::new(StatusCode::BAD_GATEWAY, "upstream_unreachable", e.to_string()), true)
        }
        E::Timeout { .. } => (ApiFailure::new(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", e.to_string()), true),
        E::InvalidRequest(m) => (ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_request", m.clone()), false),
        _ => (ApiFailure::new(StatusCode::BAD_GATEWAY, "upstream_error", e.to_string()), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_so_waiting_that_long_is_enough() {
        let mut h = http::HeaderMap::new();
        set_retry_after(&mut h, Duration::from_micros(59_000_001));
        assert_eq!(h["retry-after"], "60");
        assert_eq!(h["retry-after-ms"], "59001");
        set_retry_after(&mut h, Duration::from_secs(3));
        assert_eq!(h["retry-after"], "3");
    }
}
