//! What the server says about its limits: status, rate-limit headers and the error body.

use std::time::{Duration, SystemTime};

use gm_core::ErrorBody;

/// The longest a key is blocked after 429s that never say how long to wait: the backoff that starts at
/// [`UNTOLD_BACKOFF_FIRST`] and doubles with each such 429 in a row stops growing here.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long a key is blocked after a first 429 that says nothing about how long to wait; each further one
/// in a row doubles it, up to [`DEFAULT_RETRY_AFTER`], and any answer that is not a 429 starts it over.
pub const UNTOLD_BACKOFF_FIRST: Duration = Duration::from_secs(1);

/// The block after the `n`-th untold 429 in a row (counting from 1).
pub(crate) fn untold_backoff(n: u32) -> Duration {
    UNTOLD_BACKOFF_FIRST.saturating_mul(1u32 << n.saturating_sub(1).min(16)).min(DEFAULT_RETRY_AFTER)
}

/// The default of `--max-wait`: how long one request may wait for quota before it fails.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(120);

/// How long a daily quota is blocked when the server says it is spent but not for how long.
pub const DEFAULT_DAILY_BLOCK: Duration = Duration::from_secs(86_400);

/// A response's rate-limit signals, as [`Limiter::observe`](crate::Limiter::observe) reads them.
///
/// Build it from any HTTP stack: give the status, offer every header to [`ServerSignal::header`] (those the
/// limiter does not read are dropped), and add the body of an error response.
///
/// ```
/// use gm_limits::ServerSignal;
/// let body = br#"{"error":{"code":"RateLimitReached","message":"Rate limit of 10 per 60s exceeded for UserByModelByMinute. Please wait 46 seconds before retrying."}}"#;
/// let sig = ServerSignal::new(429).header("Retry-After", "46").body(body);
/// let seen = sig.interpret();
/// assert_eq!(seen.retry_after, Some(std::time::Duration::from_secs(46)));
/// assert!(!seen.daily);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerSignal {
    /// The HTTP status.
    pub status: u16,
    /// `retry-after`: seconds or an HTTP date.
    pub retry_after: Option<String>,
    /// `retry-after-ms` (Azure).
    pub retry_after_ms: Option<String>,
    /// `x-ratelimit-timeremaining` (GitHub Models): seconds.
    pub time_remaining: Option<String>,
    /// `x-ratelimit-type` (GitHub Models): `UserByModelByMinute`, `UserByModelByDay`, …
    pub limit_type: Option<String>,
    /// `x-ratelimit-limit-requests`.
    pub limit_requests: Option<String>,
    /// `x-ratelimit-remaining-requests`.
    pub remaining_requests: Option<String>,
    /// `x-ratelimit-limit-tokens`.
    pub limit_tokens: Option<String>,
    /// `x-ratelimit-remaining-tokens`.
    pub remaining_tokens: Option<String>,
    /// `date`: the server's clock, against which an HTTP-date `retry-after` is measured.
    pub date: Option<String>,
    /// The parsed error body, if any.
    pub error: Option<ErrorBody>,
    /// The wall clock when the response arrived, for an HTTP-date `retry-after` without a `date` header.
    pub received_at: Option<SystemTime>,
}

impl ServerSignal {
    /// A signal with a status and nothing else.
    pub fn new(status: u16) -> Self {
        Self { status, ..Self::default() }
    }

    /// Offers a header (any case); keeps it when the limiter reads it.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.set_header(name, value);
        self
    }

    /// Offers a header (any case); keeps it when the limiter reads it.
    pub fn set_header(&mut self, name: &str, value: &str) {
        let slot = match name.to_ascii_lowercase().as_str() {
            "retry-after" => &mut self.retry_after,
            "retry-after-ms" => &mut self.retry_after_ms,
            "x-ratelimit-timeremaining" => &mut self.time_remaining,
            "x-ratelimit-type" => &mut self.limit_type,
            "x-ratelimit-limit-requests" => &mut self.limit_requests,
            "x-ratelimit-remaining-requests" => &mut self.remaining_requests,
            "x-ratelimit-limit-tokens" => &mut self.limit_tokens,
            "x-ratelimit-remaining-tokens" => &mut self.remaining_tokens,
            "date" => &mut self.date,
            _ => return,
        };
        *slot = Some(value.trim().to_string());
    }

    /// Offers every header of a response.
    pub fn headers<K: AsRef<str>, V: AsRef<str>>(mut self, headers: impl IntoIterator<Item = (K, V)>) -> Self {
        for (k, v) in headers {
            self.set_header(k.as_ref(), v.as_ref());
        }
        self
    }

    /// Adds the response body (kept only when it parses as an error body).
    pub fn body(mut self, body: &[u8]) -> Self {
        self.error = ErrorBody::parse(body);
        self
    }

    /// Adds an already parsed error body.
    pub fn error_body(mut self, body: ErrorBody) -> Self {
        self.error = Some(body);
        self
    }

    /// Sets the wall-clock time the response arrived.
    pub fn received_at(mut self, at: SystemTime) -> Self {
        self.received_at = Some(at);
        self
    }

    /// What the signal means for the limiter.
    ///
    /// For a 429, the wait is [`ServerSignal::requested_wait`]; with none given, [`DEFAULT_DAILY_BLOCK`] for a
    /// spent daily quota and otherwise nothing (`told` is false): the limiter then blocks the key for a short,
    /// growing backoff (see [`UNTOLD_BACKOFF_FIRST`]) rather than guess a long wait. The daily quota is spent
    /// when `x-ratelimit-type` names a day (`UserByModelByDay`) or the body speaks of `per 86400s` or `ByDay`.
    /// Other statuses only carry the remaining counts.
    pub fn interpret(&self) -> Observation {
        let remaining_requests = parse_count(self.remaining_requests.as_deref());
        let remaining_tokens = parse_count(self.remaining_tokens.as_deref());
        let limit_requests = parse_count(self.limit_requests.as_deref());
        let limit_tokens = parse_count(self.limit_tokens.as_deref());
        let mut out = Observation {
            retry_after: None,
            told: false,
            daily: false,
            remaining_requests,
            limit_requests,
            remaining_tokens,
            limit_tokens,
        };
        if self.status != 429 {
            return out;
        }
        let text = |s: &Option<String>| s.as_deref().map(str::to_ascii_lowercase).unwrap_or_default();
        let body_text = self
            .error
            .as_ref()
            .map(|e| format!("{} {}", e.message, e.details.as_deref().unwrap_or("")).to_ascii_lowercase())
            .unwrap_or_default();
        out.daily = text(&self.limit_type).contains("day")
            || body_text.contains("per 86400s")
            || body_text.contains("byday")
            || body_text.contains("per day");
        out.retry_after = match self.requested_wait() {
            Some(wait) => Some(wait),
            None if out.daily => Some(DEFAULT_DAILY_BLOCK),
            None => None,
        };
        out.told = out.retry_after.is_some();
        out
    }

    /// The wait the response asks for, whatever its status (a 503 may carry `retry-after` too); `None` when it
    /// gives none. `retry-after-ms` (Azure) is the same wait as `retry-after` to the millisecond, so it wins when
    /// present; otherwise the longest of `retry-after` (seconds or an HTTP date), `x-ratelimit-timeremaining` and
    /// "Please wait N seconds" in the body, which all count whole seconds.
    pub fn requested_wait(&self) -> Option<Duration> {
        if let Some(ms) = self.retry_after_ms.as_deref().and_then(parse_seconds) {
            return Some(Duration::from_secs_f64((ms / 1000.0).min(365.0 * 86_400.0)));
        }
        let waits = [
            self.retry_after.as_deref().and_then(|v| self.retry_after_value(v)),
            self.time_remaining.as_deref().and_then(parse_seconds),
            self.error.as_ref().and_then(ErrorBody::please_wait_seconds).map(|s| s as f64),
        ];
        let longest = waits.into_iter().flatten().filter(|s| s.is_finite() && *s >= 0.0).reduce(f64::max)?;
        Some(Duration::from_secs_f64(longest.min(365.0 * 86_400.0)))
    }

    fn retry_after_value(&self, v: &str) -> Option<f64> {
        if let Some(secs) = parse_seconds(v) {
            return Some(secs);
        }
        let at = httpdate::parse_http_date(v).ok()?;
        let reference = self.date.as_deref().and_then(|d| httpdate::parse_http_date(d).ok()).or(self.received_at)?;
        Some(at.duration_since(reference).unwrap_or(Duration::ZERO).as_secs_f64())
    }
}

fn parse_seconds(v: &str) -> Option<f64> {
    let v = v.trim();
    let v = v.strip_suffix('s').unwrap_or(v);
    v.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0)
}

fn parse_count(v: Option<&str>) -> Option<u64> {
    v?.trim().parse().ok()
}

/// What the limiter learned from a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    /// For a 429: how long the key is blocked (also how long a retry should wait). From
    /// [`Limiter::observe`](crate::Limiter::observe) always set for a 429: the server's wait, or the backoff
    /// when it gave none.
    pub retry_after: Option<Duration>,
    /// For a 429: whether the server said how long to wait (or that the day's quota is spent); when false,
    /// `retry_after` is the limiter's own backoff.
    pub told: bool,
    /// For a 429: whether the server said the daily quota is spent.
    pub daily: bool,
    /// `x-ratelimit-remaining-requests`.
    pub remaining_requests: Option<u64>,
    /// `x-ratelimit-limit-requests`.
    pub limit_requests: Option<u64>,
    /// `x-ratelimit-remaining-tokens`.
    pub remaining_tokens: Option<u64>,
    /// `x-ratelimit-limit-tokens`.
    pub limit_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        gm_testkit::read_shared(&format!("fixtures/github-models/errors/{name}"))
    }

    #[test]
    fn the_minute_body_alone_says_46_seconds() {
        let seen = ServerSignal::new(429).body(&fixture("429-RateLimitReached.UserByModelByMinute.json")).interpret();
        assert_eq!(seen.retry_after, Some(Duration::from_secs(46)));
        assert!(!seen.daily);
    }

    #[test]
    fn the_day_body_marks_the_day_as_spent() {
        let seen = ServerSignal::new(429).body(&fixture("429-RateLimitReached.UserByModelByDay.json")).interpret();
        assert_eq!(seen.retry_after, Some(Duration::from_secs(5631)));
        assert!(seen.daily);
    }

    #[test]
    fn the_daily_header_marks_the_day_as_spent() {
        let seen = ServerSignal::new(429)
            .header("Retry-After", "24367")
            .header("X-RateLimit-Type", "UserByModelByDay")
            .interpret();
        assert_eq!((seen.retry_after, seen.daily), (Some(Duration::from_secs(24367)), true));
        let seen = ServerSignal::new(429).header("x-ratelimit-type", "UserByModelByDay").interpret();
        assert_eq!(seen.retry_after, Some(DEFAULT_DAILY_BLOCK));
    }

    #[test]
    fn every_wait_header_is_read_and_the_longest_wins() {
        let w = |name: &str, v: &str| ServerSignal::new(429).header(name, v).interpret().retry_after;
        assert_eq!(w("retry-after", "30"), Some(Duration::from_secs(30)));
        assert_eq!(w("retry-after-ms", "1500"), Some(Duration::from_millis(1500)));
        assert_eq!(w("x-ratelimit-timeremaining", "12"), Some(Duration::from_secs(12)));
        assert_eq!(w("x-unrelated", "12"), None);
        let both = ServerSignal::new(429).header("retry-after", "2").header("retry-after-ms", "2500").interpret();
        assert_eq!(both.retry_after, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let sig = ServerSignal::new(429)
            .header("Date", "Wed, 21 Oct 2015 07:28:00 GMT")
            .header("Retry-After", "Wed, 21 Oct 2015 07:29:30 GMT");
        assert_eq!(sig.interpret().retry_after, Some(Duration::from_secs(90)));
        let at = httpdate::parse_http_date("Wed, 21 Oct 2015 07:29:00 GMT").unwrap();
        let sig = ServerSignal::new(429).header("Retry-After", "Wed, 21 Oct 2015 07:29:30 GMT").received_at(at);
        assert_eq!(sig.interpret().retry_after, Some(Duration::from_secs(30)));
    }

    #[test]
    fn remaining_counts_on_any_status() {
        let seen = ServerSignal::new(200)
            .headers([("x-ratelimit-remaining-requests", "4"), ("x-ratelimit-limit-requests", "10")])
            .header("x-ratelimit-remaining-tokens", "900")
            .interpret();
        assert_eq!(
            (seen.remaining_requests, seen.limit_requests, seen.remaining_tokens),
            (Some(4), Some(10), Some(900))
        );
        assert_eq!(seen.retry_after, None);
    }
}
