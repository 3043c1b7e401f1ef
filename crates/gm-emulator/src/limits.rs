//! The emulator's own rate limits: a plain sliding-window count per token and model.
//!
//! Deliberately simple and independent of gm-limits, so a limiter bug cannot hide itself in tests: a request
//! is refused when `N` requests of the same token and model were admitted in the last `W`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One window: at most `limit` requests in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The most requests admitted in any interval of length `window`.
    pub limit: u64,
    /// The interval.
    pub window: Duration,
    /// Whether this is the daily window (its 429 says `UserByModelByDay`).
    pub daily: bool,
}

/// Limits enforced per token and model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmulatorLimits {
    /// Request windows.
    pub windows: Vec<Window>,
    /// The most requests in flight at once.
    pub concurrency: Option<usize>,
}

/// GitHub Models' published tiers, free plan: (requests per minute, per day, concurrent).
pub fn github_tier(tier: &str) -> Option<(u64, u64, usize)> {
    match tier {
        "low" => Some((15, 150, 5)),
        "high" => Some((10, 50, 2)),
        "embeddings" => Some((15, 150, 5)),
        // The per-model rows (o1, o3, gpt-5, DeepSeek-R1, …): the tightest published, one a minute.
        "custom" => Some((1, 8, 1)),
        _ => None,
    }
}

impl EmulatorLimits {
    /// A tier of GitHub Models' free plan with time scaled down by `scale` (30 makes a minute last 2 s).
    pub fn tier(tier: &str, scale: f64) -> Option<Self> {
        let (rpm, rpd, conc) = github_tier(tier)?;
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
        Some(Self {
            windows: vec![
                Window { limit: rpm, window: Duration::from_secs_f64(60.0 / scale), daily: false },
                Window { limit: rpd, window: Duration::from_secs_f64(86400.0 / scale), daily: true },
            ],
            concurrency: Some(conc),
        })
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The window's limit (or the concurrency cap).
    pub limit: u64,
    /// The window's length, `None` for concurrency.
    pub window: Option<Duration>,
    /// `UserByModelByMinute`, `UserByModelByDay` or `UserByModelConcurrentRequests`.
    pub kind: &'static str,
    /// How long until a request would be admitted.
    pub wait: Duration,
}

#[derive(Debug, Default)]
struct KeyState {
    admitted: Vec<VecDeque<Instant>>,
    in_flight: Arc<AtomicUsize>,
}

/// Counts per key.
#[derive(Debug, Default)]
pub struct Counter {
    keys: Mutex<HashMap<(String, String), KeyState>>,
}

/// Held while a request is in flight; dropping it frees the concurrency slot.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Counter {
    /// Forgets every count (requests in flight keep their slots until they end).
    pub fn clear(&self) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Admits a request of `token` for `model` at `now`, or says why not.
    pub fn admit(&self, limits: &EmulatorLimits, token: &str, model: &str, now: Instant) -> Result<InFlight, Refusal> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let st = keys.entry((token.to_string(), model.to_lowercase())).or_default();
        if st.admitted.len() != limits.windows.len() {
            st.admitted = vec![VecDeque::new(); limits.windows.len()];
        }
        let mut refusal: Option<Refusal> = None;
        for (w, log) in limits.windows.iter().zip(st.admitted.iter_mut()) {
            while log.front().is_some_and(|t| now.duration_since(*t) >= w.window) {
                log.pop_front();
            }
            if log.len() as u64 >= w.limit {
                let oldest = log.front().copied().unwrap_or(now);
                let wait = w.window.saturating_sub(now.duration_since(oldest));
                if refusal.as_ref().is_none_or(|r| wait > r.wait) {
                    let kind = if w.daily { "UserByModelByDay" } else { "UserByModelByMinute" };
                    refusal = Some(Refusal { limit: w.limit, window: Some(w.window), kind, wait });
                }
            }
        }
        if let Some(r) = refusal {
            return Err(r);
        }
        if let Some(cap) = limits.concurrency {
            if st.in_flight.load(Ordering::SeqCst) >= cap {
                return Err(Refusal {
                    limit: cap as u64,
                    window: None,
                    kind: "UserByModelConcurrentRequests",
                    wait: Duration::from_millis(100),
                });
            }
        }
        for log in st.admitted.iter_mut() {
            log.push_back(now);
        }
        st.in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(InFlight(st.in_flight.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_refuses_the_n_plus_first() {
        let limits = EmulatorLimits {
            windows: vec![Window { limit: 2, window: Duration::from_secs(1), daily: false }],
            concurrency: None,
        };
        let c = Counter::default();
        let t0 = Instant::now();
        let a = c.admit(&limits, "t", "m", t0).unwrap();
        let b = c.admit(&limits, "t", "m", t0 + Duration::from_millis(500)).unwrap();
        let r = c.admit(&limits, "t", "m", t0 + Duration::from_millis(900)).unwrap_err();
        assert_eq!(r.wait, Duration::from_millis(100));
        assert!(c.admit(&limits, "other", "m", t0 + Duration::from_millis(900)).is_ok(), "keys are per token");
        assert!(c.admit(&limits, "t", "m", t0 + Duration::from_millis(1000)).is_ok());
        drop((a, b));
    }

    #[test]
    fn concurrency_is_capped_until_a_request_ends() {
        let limits = EmulatorLimits { windows: vec![], concurrency: Some(1) };
        let c = Counter::default();
        let now = Instant::now();
        let held = c.admit(&limits, "t", "m", now).unwrap();
        assert_eq!(c.admit(&limits, "t", "m", now).unwrap_err().kind, "UserByModelConcurrentRequests");
        drop(held);
        assert!(c.admit(&limits, "t", "m", now).is_ok());
    }

    #[test]
    fn scaled_tier() {
        let l = EmulatorLimits::tier("low", 30.0).unwrap();
        assert_eq!(l.windows[0], Window { limit: 15, window: Duration::from_secs(2), daily: false });
        assert_eq!(l.concurrency, Some(5));
    }
}
