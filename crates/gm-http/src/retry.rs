//! The retry policy: which answers are retried, and how long to wait before the next attempt.

use std::time::{Duration, SystemTime};

use gm_core::ErrorBody;
use http::HeaderMap;

/// When and how often a failed request is tried again.
///
/// Retried: 408, 429, 5xx (except 501 and 505) and connection failures before anything was sent.
/// Never retried: every other 4xx (400, 401, 403, 404, 410, 413, 422 …). Timeouts and connections
/// dropped after sending are retried only when `retry_maybe_sent` is on (chat completions are not
/// idempotent in cost, so it is on by default only because an answer is worth more than a token).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 disables retries).
    pub max_attempts: u32,
    /// The first backoff; it doubles with each attempt.
    pub initial_backoff: Duration,
    /// The cap on one computed backoff.
    pub max_backoff: Duration,
    /// The cap on one wait the server asks for; a longer wait fails at once and says how long.
    pub max_wait: Duration,
    /// Whether to retry timeouts and connections dropped after the request may have been sent.
    pub retry_maybe_sent: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_wait: Duration::from_secs(120),
            retry_maybe_sent: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// Whether an answer with this status may be retried.
    pub fn is_retryable_status(status: u16) -> bool {
        matches!(status, 408 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505)
    }

    /// The jittered exponential backoff before attempt `attempt + 1` (attempt counts from 1).
    ///
    /// "Full jitter": a uniform draw in [base/2, base], where base = initial · 2^(attempt-1), capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.initial_backoff.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let base = exp.min(self.max_backoff);
        let half = base / 2;
        half + Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64))
    }
}

/// The wait a server asks for: the longest of `retry-after-ms`, `retry-after` (seconds or an HTTP date, measured
/// from the `date` header or `now`), `x-ratelimit-timeremaining`, and "Please wait N seconds" in the body.
/// The same reading the rate limiter learns from ([`gm_limits::ServerSignal::requested_wait`]).
pub fn server_wait(headers: &HeaderMap, body: Option<&ErrorBody>, now: SystemTime) -> Option<Duration> {
    let mut signal = gm_limits::ServerSignal::new(0)
        .headers(headers.iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))));
    signal.error = body.cloned();
    signal.received_at(now).requested_wait()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(RetryPolicy::is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 413, 422, 501] {
            assert!(!RetryPolicy::is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(server_wait(&h(&[("retry-after", "46")]), None, now), Some(Duration::from_secs(46)));
        assert_eq!(server_wait(&h(&[("retry-after-ms", "1500")]), None, now), Some(Duration::from_millis(1500)));
        assert_eq!(server_wait(&h(&[("x-ratelimit-timeremaining", "30")]), None, now), Some(Duration::from_secs(30)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(120));
        assert_eq!(server_wait(&h(&[("retry-after", &date)]), None, now), Some(Duration::from_secs(120)));
        let body = ErrorBody { message: "Please wait 5631 seconds before retrying.".into(), ..Default::default() };
        assert_eq!(server_wait(&HeaderMap::new(), Some(&body), now), Some(Duration::from_secs(5631)));
        assert_eq!(server_wait(&HeaderMap::new(), None, now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..Default::default()
        };
        for attempt in 1..10 {
            let b = p.backoff(attempt);
            let base = Duration::from_millis(100 * (1 << (attempt - 1))).min(Duration::from_secs(1));
            assert!(b >= base / 2 && b <= base, "attempt {attempt}: {b:?}");
        }
    }
}
