//! What a key is allowed: request windows, concurrency, per-request token caps, token budgets, and the margin.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::{format_duration, parse_duration};
use crate::{LimitError, TokenCount};

/// "`limit` per `per`": at most `limit` requests (or tokens) in any interval of length `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// How many requests (or tokens) the window allows.
    pub limit: u64,
    /// The window's length.
    pub per: Duration,
}

impl Window {
    /// `limit` per `per`.
    pub const fn new(limit: u64, per: Duration) -> Self {
        Self { limit, per }
    }
    /// `limit` per second.
    pub const fn per_second(limit: u64) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }
    /// `limit` per minute.
    pub const fn per_minute(limit: u64) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }
    /// `limit` per hour.
    pub const fn per_hour(limit: u64) -> Self {
        Self::new(limit, Duration::from_secs(3600))
    }
    /// `limit` per day (86 400 s, as GitHub Models counts it).
    pub const fn per_day(limit: u64) -> Self {
        Self::new(limit, Duration::from_secs(86_400))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, format_duration(self.per))
    }
}

/// Extra length added to every window so that the server, which sees each request a little later than the
/// client sends it, never counts more than the limit.
///
/// A request admitted at `t` reaches the server at `t + d`, with `d` varying from request to request. Two
/// requests the client admits `W + margin` apart arrive at least `W + margin - (d_max - d_min)` apart, so a
/// margin as large as the variation in transit time keeps the server's sliding count within the limit.
/// The margin is `fixed + per × ppm / 1 000 000`; the default, 20 ms + 0.1 %, covers ordinary jitter on
/// short windows (a 2 s window becomes 2.022 s, costing 1.1 % of its rate) and clock-rate differences on
/// long ones (a day gains 86 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Margin {
    /// A fixed length added to every window.
    pub fixed: Duration,
    /// A share of the window's length, in parts per million, added on top.
    pub ppm: u32,
}

impl Margin {
    /// No margin: windows are exactly as long as configured.
    pub const ZERO: Margin = Margin { fixed: Duration::ZERO, ppm: 0 };
    /// The default: 20 ms plus 0.1 % of the window.
    pub const DEFAULT: Margin = Margin { fixed: Duration::from_millis(20), ppm: 1000 };

    /// The window's length with the margin added.
    pub fn apply(&self, per: Duration) -> Duration {
        let share = per.as_nanos() * u128::from(self.ppm) / 1_000_000;
        let share = Duration::from_nanos(u64::try_from(share).unwrap_or(u64::MAX));
        per.saturating_add(self.fixed).saturating_add(share)
    }

    /// Parses `50ms`, `0.5%` or `20ms+0.1%`.
    pub fn parse(s: &str) -> Result<Margin, LimitError> {
        let mut m = Margin::ZERO;
        for part in s.split('+').map(str::trim) {
            if let Some(pct) = part.strip_suffix('%') {
                let v: f64 = pct.trim().parse().map_err(|_| LimitError::InvalidDuration {
                    input: s.to_string(),
                    why: format!("`{part}` is not a percentage"),
                })?;
                if !(0.0..=100.0).contains(&v) {
                    return Err(LimitError::InvalidDuration {
                        input: s.to_string(),
                        why: "a percentage must lie between 0% and 100%".into(),
                    });
                }
                m.ppm = (v * 10_000.0).round() as u32;
            } else {
                m.fixed = parse_duration(part)?;
            }
        }
        Ok(m)
    }
}

impl Default for Margin {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Margin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = || {
            let s = format!("{:.4}", f64::from(self.ppm) / 10_000.0);
            let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
            format!("{s}%")
        };
        match (self.fixed.is_zero(), self.ppm == 0) {
            (true, true) => f.write_str("0s"),
            (false, true) => f.write_str(&format_duration(self.fixed)),
            (true, false) => f.write_str(&pct()),
            (false, false) => write!(f, "{}+{}", format_duration(self.fixed), pct()),
        }
    }
}

/// The limits of one key: any number of request windows, a concurrency cap, per-request token caps and
/// token budgets per window. Admission must satisfy all of them at once.
///
/// Written on the command line as a comma-separated list (`--limits 15/1m,150/1d,concurrency=5`):
///
/// | part | meaning |
/// | --- | --- |
/// | `N/DURATION` | at most N requests in any interval of DURATION (`500ms`, `2s`, `1m`, `1h`, `1d`) |
/// | `concurrency=N` | at most N requests in flight |
/// | `tokens_in=N`, `tokens_out=N` | caps on one request's input tokens and on its `max_tokens` |
/// | `tpm=N` | at most N tokens (input + output) per minute; `tokens=N/DURATION` for other windows |
/// | `margin=20ms+0.1%` | the safety margin added to every window (see [`Margin`]) |
/// | `none` | no limits |
///
/// ```
/// use gm_limits::LimitSpec;
/// let spec = LimitSpec::parse("15/1m,150/1d,concurrency=5").unwrap();
/// assert_eq!(spec.windows.len(), 2);
/// assert_eq!(spec.concurrency, Some(5));
/// assert_eq!(spec.to_string(), "15/1m,150/1d,concurrency=5");
/// let err = LimitSpec::parse("15/1m,burst=3").unwrap_err().to_string();
/// assert!(err.contains("`burst=3`") && err.contains("concurrency=N"), "{err}");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LimitSpec {
    /// Request windows, shortest first.
    pub windows: Vec<Window>,
    /// The most requests in flight at once.
    pub concurrency: Option<u32>,
    /// The most input tokens one request may carry.
    pub tokens_in: Option<u64>,
    /// The most output tokens one request may ask for.
    pub tokens_out: Option<u64>,
    /// Token budgets (input + output) per window, shortest first.
    pub token_windows: Vec<Window>,
    /// The safety margin; `None` means [`Margin::DEFAULT`].
    pub margin: Option<Margin>,
}

const FIX_ALL: &str = "write windows as N/DURATION (e.g. 15/1m) and settings as concurrency=N, tokens_in=N, \
                       tokens_out=N, tpm=N, tokens=N/DURATION or margin=DURATION";

impl LimitSpec {
    /// The longest spec text [`LimitSpec::parse`] reads, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Whether nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        self.windows.is_empty()
            && self.concurrency.is_none()
            && self.tokens_in.is_none()
            && self.tokens_out.is_none()
            && self.token_windows.is_empty()
    }

    /// Whether a store shared between processes counts anything for these limits: a request window, a token
    /// budget or a concurrency cap. Per-request token caps are checked locally and need no store.
    pub fn counts_in_store(&self) -> bool {
        !self.windows.is_empty() || !self.token_windows.is_empty() || self.concurrency.is_some()
    }

    /// Parses a spec; see the type docs for the syntax. A spec longer than [`LimitSpec::MAX_LEN`] bytes is
    /// refused unread.
    pub fn parse(spec: &str) -> Result<Self, LimitError> {
        if spec.len() > Self::MAX_LEN {
            return Err(LimitError::InvalidSpec {
                spec: format!("{}…", &spec[..(0..=40).rev().find(|&i| spec.is_char_boundary(i)).unwrap_or(0)]),
                part: String::new(),
                why: format!("the spec is {} bytes long, more than the {} a spec may be", spec.len(), Self::MAX_LEN),
                fix: "give a few windows and settings, e.g. 15/1m,150/1d,concurrency=5".into(),
            });
        }
        let mut out = LimitSpec::default();
        let trimmed = spec.trim();
        if trimmed.is_empty() || ["none", "off", "unlimited"].contains(&trimmed.to_ascii_lowercase().as_str()) {
            return Ok(out);
        }
        for raw in trimmed.split(',') {
            let part = raw.trim();
            let bad = |why: String, fix: &str| LimitError::InvalidSpec {
                spec: spec.to_string(),
                part: part.to_string(),
                why,
                fix: fix.to_string(),
            };
            if part.is_empty() {
                return Err(bad("the part is empty".into(), "remove the extra comma"));
            }
            if let Some((name, value)) = part.split_once('=') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
                let count = |what: &str| -> Result<u64, LimitError> {
                    let n: u64 = value
                        .parse()
                        .map_err(|_| bad(format!("`{value}` is not a whole number"), &format!("write {what}=N")))?;
                    if n == 0 {
                        return Err(bad(
                            format!("{what} must be at least 1"),
                            "remove the part for no limit, or give a positive number",
                        ));
                    }
                    Ok(n)
                };
                match name.as_str() {
                    "concurrency" | "concurrent" => {
                        let n = count("concurrency")?;
                        out.concurrency = Some(u32::try_from(n).map_err(|_| {
                            bad("the number is too large".into(), "give a concurrency below 4294967296")
                        })?);
                    }
                    "tokens_in" | "tokens-in" => out.tokens_in = Some(count("tokens_in")?),
                    "tokens_out" | "tokens-out" => out.tokens_out = Some(count("tokens_out")?),
                    "tpm" => out.token_windows.push(Window::per_minute(count("tpm")?)),
                    "tpd" => out.token_windows.push(Window::per_day(count("tpd")?)),
                    "tokens" => {
                        let w = parse_window(value).map_err(|(why, fix)| bad(why, &fix))?;
                        out.token_windows.push(w);
                    }
                    "margin" => {
                        out.margin =
                            Some(Margin::parse(value).map_err(|e| {
                                bad(e.to_string(), "write margin=50ms, margin=0.5% or margin=20ms+0.1%")
                            })?);
                    }
                    _ => return Err(bad(format!("`{name}` is not a known setting"), FIX_ALL)),
                }
            } else if part.contains('/') {
                let w = parse_window(part).map_err(|(why, fix)| bad(why, &fix))?;
                out.windows.push(w);
            } else {
                return Err(bad("it is neither a window nor a setting".into(), FIX_ALL));
            }
        }
        for (list, what) in [(&mut out.windows, "request"), (&mut out.token_windows, "token")] {
            list.sort_by_key(|w| w.per);
            if let Some(pair) = list.windows(2).find(|p| p[0].per == p[1].per) {
                return Err(LimitError::InvalidSpec {
                    spec: spec.to_string(),
                    part: format!("{},{}", pair[0], pair[1]),
                    why: format!("two {what} windows have the same length"),
                    fix: "keep one window per length".into(),
                });
            }
        }
        Ok(out)
    }

    /// The margin in force (the configured one or [`Margin::DEFAULT`]).
    pub fn margin(&self) -> Margin {
        self.margin.unwrap_or_default()
    }

    /// Checks a request against the per-request caps and the token budgets, before anything is sent.
    ///
    /// An estimated input count is held against the input cap at its lower bound
    /// ([`TokenCount::input_at_least`]): a request is refused only when it is over the cap for sure, and
    /// otherwise the server has the last word. Budgets reserve the full estimate.
    ///
    /// ```
    /// use gm_limits::{LimitSpec, TokenCount};
    /// let spec = LimitSpec::parse("tokens_in=8000,tokens_out=4000").unwrap();
    /// let err = spec.check_request(&TokenCount::new(8500, 100)).unwrap_err();
    /// assert!(err.to_string().contains("500 over the cap of 8000"), "{err}");
    /// ```
    pub fn check_request(&self, tokens: &TokenCount) -> Result<(), LimitError> {
        if let Some(cap) = self.tokens_in {
            let least = tokens.input_at_least();
            if least > cap {
                let estimated = !tokens.method.is_exact();
                return Err(LimitError::InputTooLong { tokens: least, cap, over: least - cap, estimated });
            }
        }
        if let Some(cap) = self.tokens_out {
            if tokens.output > cap {
                return Err(LimitError::OutputTooLong { tokens: tokens.output, cap, over: tokens.output - cap });
            }
        }
        let total = tokens.total();
        if let Some(w) = self.token_windows.iter().find(|w| total > w.limit) {
            return Err(LimitError::OverTokenBudget { tokens: total, budget: w.limit, per: w.per });
        }
        Ok(())
    }

    /// The spec with the stricter of each limit of `self` and `other` (a window of the same length keeps the
    /// smaller count; windows of other lengths are all kept).
    pub fn stricter(&self, other: &LimitSpec) -> LimitSpec {
        fn merge(a: &[Window], b: &[Window]) -> Vec<Window> {
            let mut out: Vec<Window> = a.to_vec();
            for w in b {
                match out.iter_mut().find(|x| x.per == w.per) {
                    Some(x) => x.limit = x.limit.min(w.limit),
                    None => out.push(*w),
                }
            }
            out.sort_by_key(|w| w.per);
            out
        }
        fn min<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, None) => x,
                (None, y) => y,
            }
        }
        LimitSpec {
            windows: merge(&self.windows, &other.windows),
            concurrency: min(self.concurrency, other.concurrency),
            tokens_in: min(self.tokens_in, other.tokens_in),
            tokens_out: min(self.tokens_out, other.tokens_out),
            token_windows: merge(&self.token_windows, &other.token_windows),
            margin: self.margin.or(other.margin),
        }
    }
}

fn parse_window(s: &str) -> Result<Window, (String, String)> {
    let fix = || "write windows as N/DURATION, e.g. 15/1m, 150/1d or 5/500ms".to_string();
    let (n, d) = s.split_once('/').ok_or_else(|| ("a `/` is missing".to_string(), fix()))?;
    let limit: u64 = n.trim().parse().map_err(|_| (format!("`{}` is not a whole number", n.trim()), fix()))?;
    if limit == 0 {
        return Err(("a window must allow at least 1".into(), "remove the window for no limit".into()));
    }
    if limit > u64::from(u32::MAX) {
        return Err(("the count is too large".into(), "give a count below 4294967296".into()));
    }
    let per = parse_duration(d.trim()).map_err(|e| match e {
        LimitError::InvalidDuration { why, .. } => (format!("the duration `{}` is invalid: {why}", d.trim()), fix()),
        other => (other.to_string(), fix()),
    })?;
    if per.is_zero() {
        return Err(("the duration must be longer than zero".into(), fix()));
    }
    Ok(Window { limit, per })
}

impl fmt::Display for LimitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.windows.iter().map(Window::to_string).collect();
        if let Some(n) = self.concurrency {
            parts.push(format!("concurrency={n}"));
        }
        if let Some(n) = self.tokens_in {
            parts.push(format!("tokens_in={n}"));
        }
        if let Some(n) = self.tokens_out {
            parts.push(format!("tokens_out={n}"));
        }
        for w in &self.token_windows {
            if w.per == Duration::from_secs(60) {
                parts.push(format!("tpm={}", w.limit));
            } else if w.per == Duration::from_secs(86_400) {
                // `tpd=` takes any count; `tokens=N/1d` only those below 2^32.
                parts.push(format!("tpd={}", w.limit));
            } else {
                parts.push(format!("tokens={w}"));
            }
        }
        if let Some(m) = self.margin {
            parts.push(format!("margin={m}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

impl FromStr for LimitSpec {
    type Err = LimitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for LimitSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LimitSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LimitSpec::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Margin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Margin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Margin::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        LimitSpec::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_part() {
        let s = LimitSpec::parse("150/1d, 15/1m,concurrency=5,tokens_in=8000,tokens_out=4000,tpm=30000,margin=50ms")
            .unwrap();
        assert_eq!(s.windows, vec![Window::per_minute(15), Window::per_day(150)]);
        assert_eq!(s.concurrency, Some(5));
        assert_eq!((s.tokens_in, s.tokens_out), (Some(8000), Some(4000)));
        assert_eq!(s.token_windows, vec![Window::per_minute(30000)]);
        assert_eq!(s.margin(), Margin { fixed: Duration::from_millis(50), ppm: 0 });
        assert_eq!(s.to_string(), "15/1m,150/1d,concurrency=5,tokens_in=8000,tokens_out=4000,tpm=30000,margin=50ms");
        assert_eq!(LimitSpec::parse(&s.to_string()).unwrap(), s);
        let s = LimitSpec::parse("5/500ms,tokens=100000/1h").unwrap();
        assert_eq!(s.windows, vec![Window::new(5, Duration::from_millis(500))]);
        assert_eq!(s.to_string(), "5/500ms,tokens=100000/1h");
    }

    #[test]
    fn none_means_unlimited() {
        for s in ["", "none", " Unlimited ", "off"] {
            assert!(LimitSpec::parse(s).unwrap().is_unlimited(), "{s}");
        }
        assert_eq!(LimitSpec::unlimited().to_string(), "none");
    }

    #[test]
    fn decimal_durations_and_overlong_specs() {
        // `1/0.5s` said "a unit is missing".
        assert_eq!(LimitSpec::parse("1/0.5s").unwrap().windows[0].per, Duration::from_millis(500));
        assert_eq!(LimitSpec::parse("3/1.5m").unwrap().windows[0].per, Duration::from_secs(90));
        let long = format!("15/1m{}", ",concurrency=5".repeat(200));
        let e = err(&long);
        assert!(e.contains("more than the 1024 a spec may be"), "{e}");
        assert!(e.len() < 400, "the error does not repeat the whole spec: {e}");
    }

    #[test]
    fn errors_name_the_part_and_the_fix() {
        let e = err("15/1m,burst=3");
        assert!(e.contains("`burst=3`") && e.contains("`burst` is not a known setting") && e.contains("tpm=N"), "{e}");
        let e = err("15/1x");
        assert!(e.contains("`15/1x`") && e.contains("`x` is not a unit") && e.contains("e.g. 15/1m"), "{e}");
        let e = err("fifteen/1m");
        assert!(e.contains("`fifteen` is not a whole number"), "{e}");
        let e = err("0/1m");
        assert!(e.contains("at least 1") && e.contains("remove the window"), "{e}");
        let e = err("15/0s");
        assert!(e.contains("longer than zero"), "{e}");
        let e = err("15/1m,,150/1d");
        assert!(e.contains("empty") && e.contains("remove the extra comma"), "{e}");
        let e = err("concurrency=0");
        assert!(e.contains("at least 1"), "{e}");
        let e = err("concurrency=lots");
        assert!(e.contains("`lots` is not a whole number") && e.contains("concurrency=N"), "{e}");
        let e = err("15");
        assert!(e.contains("neither a window nor a setting"), "{e}");
        let e = err("15/1m,10/60s");
        assert!(e.contains("same length") && e.contains("keep one"), "{e}");
        let e = err("margin=5%%");
        assert!(e.contains("margin=50ms"), "{e}");
    }

    #[test]
    fn margins() {
        assert_eq!(Margin::parse("20ms+0.1%").unwrap(), Margin::DEFAULT);
        assert_eq!(Margin::DEFAULT.to_string(), "20ms+0.1%");
        assert_eq!(Margin::parse("0.5%").unwrap().to_string(), "0.5%");
        assert_eq!(Margin::ZERO.to_string(), "0s");
        assert_eq!(Margin::DEFAULT.apply(Duration::from_secs(2)), Duration::from_millis(2022));
        assert_eq!(Margin::DEFAULT.apply(Duration::from_secs(86_400)), Duration::from_millis(86_400_000 + 86_420));
        assert!(Margin::parse("150%").is_err());
    }

    #[test]
    fn request_caps_say_by_how_much() {
        let spec = LimitSpec::parse("tokens_in=8000,tokens_out=4000,tpm=10000").unwrap();
        assert!(spec.check_request(&TokenCount::new(8000, 2000)).is_ok());
        let e = spec.check_request(&TokenCount::new(8001, 0)).unwrap_err();
        assert!(matches!(e, LimitError::InputTooLong { over: 1, estimated: false, .. }));
        // An estimate is refused only when even its lower bound is over the cap.
        let guess = |input| TokenCount { input, output: 0, method: crate::CountMethod::Bytes };
        let input_only = LimitSpec::parse("tokens_in=8000").unwrap();
        assert!(input_only.check_request(&guess(12_000)).is_ok());
        let e = input_only.check_request(&guess(20_000)).unwrap_err().to_string();
        assert!(e.starts_with("the request has at least 10000 input tokens (estimated), 2000 over"), "{e}");
        let e = spec.check_request(&TokenCount::new(10, 5000)).unwrap_err().to_string();
        assert!(e.contains("1000 over the cap of 4000") && e.contains("max_tokens to 4000"), "{e}");
        let e = spec.check_request(&TokenCount::new(7000, 3500)).unwrap_err();
        assert!(matches!(e, LimitError::OverTokenBudget { tokens: 10500, budget: 10000, .. }), "{e}");
    }

    #[test]
    fn stricter_merges() {
        let a = LimitSpec::parse("15/1m,150/1d,concurrency=5").unwrap();
        let b = LimitSpec::parse("10/1m,300/1h,concurrency=8,tokens_in=100").unwrap();
        assert_eq!(a.stricter(&b).to_string(), "10/1m,300/1h,150/1d,concurrency=5,tokens_in=100");
    }

    #[test]
    fn serde_as_a_string() {
        let s = LimitSpec::parse("15/1m,concurrency=2").unwrap();
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#""15/1m,concurrency=2""#);
        assert_eq!(serde_json::from_str::<LimitSpec>(&j).unwrap(), s);
        assert!(serde_json::from_str::<LimitSpec>(r#""15/1q""#).unwrap_err().to_string().contains("15/1q"));
    }
}
