//! Where each rate-limit key stands, and forgetting its counts.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use gm_limits::WindowStore;
use serde::Serialize;

use crate::error::Error;
use crate::notice::Notice;
use crate::session::Session;

/// The rate-limit keys counted in the state file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitsStatus {
    /// The state file that counts them.
    pub state_file: PathBuf,
    /// Each key (provider, credential fingerprint, model), in the store's order.
    pub keys: Vec<KeyStatus>,
}

/// One key's counts against its limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStatus {
    /// `PROVIDER:CREDENTIAL:MODEL`, as `reset` accepts it.
    pub key: String,
    /// The provider.
    pub provider: String,
    /// The credential's fingerprint (never the credential).
    pub credential: String,
    /// The model.
    pub model: String,
    /// The limits that apply, as a spec (without the margin); for a GitHub model without configured limits,
    /// its catalog tier's.
    pub limits: String,
    /// The margin added to every window for the time a request spends in transit (`100ms+0.1%`), when limits
    /// apply.
    pub margin: Option<String>,
    /// Admissions the store still keeps (it keeps each as long as the longest window that counts it).
    pub counted: usize,
    /// Requests admitted recently.
    pub requests: RecentRequests,
    /// Each configured window: how much of it is used.
    pub windows: Vec<WindowUse>,
    /// Each token window (a budget of tokens, or of whatever unit the key counts, such as a server's
    /// micro-dollars): how much of it is used, in that unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_windows: Vec<WindowUse>,
    /// A block the server asked for (a 429), while it lasts.
    pub blocked: Option<Blocked>,
}

/// Requests admitted in the last minute, hour and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecentRequests {
    /// In the last minute.
    pub last_minute: usize,
    /// In the last hour.
    pub last_hour: usize,
    /// In the last day.
    pub last_day: usize,
}

/// One window of a key's limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowUse {
    /// Requests allowed per window.
    pub limit: u64,
    /// The window's length (`1m`, `1d`).
    pub per: String,
    /// Requests admitted within the window.
    pub used: u64,
    /// Requests the window still allows.
    pub remaining: u64,
    /// Seconds until the oldest admission counted leaves the window, when one is counted.
    pub next_frees_in_s: Option<f64>,
}

/// A block the server asked for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Blocked {
    /// Seconds until it lifts.
    pub for_s: f64,
    /// Whether a daily quota is spent (rather than a shorter wait asked for).
    pub daily_quota_spent: bool,
}

impl Session {
    /// Every key counted in the state file at `now`, against the limits configured for it.
    ///
    /// With Redis configured the windows are counted there; this still shows the state file's counts (and a
    /// notice says so). Only reads: a state file that does not exist yet has no keys, and nothing is created.
    pub fn limits_status(&self, now: SystemTime) -> Result<LimitsStatus, Error> {
        self.limits_status_with(now, &|_| None)
    }

    /// As [`Session::limits_status`], with the limits of some keys given by `spec_of` (a key as
    /// `PROVIDER:CREDENTIAL:MODEL`) instead of the configured ones: a server shows the windows of the limits it
    /// sets itself (its client keys' and visitors') from the same counts.
    pub fn limits_status_with(
        &self,
        now: SystemTime,
        spec_of: &dyn Fn(&str) -> Option<gm_limits::LimitSpec>,
    ) -> Result<LimitsStatus, Error> {
        if self.config().redis_url.is_some() {
            self.notice(Notice::WindowsInRedis);
        }
        let config = self.limits_config()?;
        let state_file = self.config().state_file().ok_or(Error::NoStateFile { what: "the rate-limit status" })?;
        if self.existing_state_file()?.is_none() {
            return Ok(LimitsStatus { state_file, keys: Vec::new() });
        }
        let store = self.open_windows("the rate-limit status")?;
        let mut keys = Vec::new();
        for key in store.keys()? {
            // Without configured limits, a GitHub model's limits come from its catalog tier, which only a
            // request to the provider can tell.
            let given = spec_of(&key.to_string());
            let tier_limits = given.is_none() && key.provider == "github";
            let spec = given.unwrap_or_else(|| config.spec_for(&key.provider, &key.model));
            let tier_limits = tier_limits && spec.is_unlimited();
            // Every count comes from the key's admissions, read once: those made after `now - within` (later
            // ones, from a process whose clock runs ahead, count too), as the store itself counts them.
            let admissions = store.admissions(&key)?;
            let since = |within: Duration| now.checked_sub(within).unwrap_or(SystemTime::UNIX_EPOCH);
            let count = |within: Duration| admissions.iter().filter(|(at, _)| *at > since(within)).count();
            let last = |secs: u64| count(Duration::from_secs(secs));
            // A window's use: `weigh` says what one admission counts (1 against requests, its tokens against
            // tokens). The oldest admission still counted frees its place one window after it was made.
            let use_of = |w: &gm_limits::Window, weigh: fn(u64) -> u64| {
                let mut within = admissions.iter().filter(|(at, _)| *at > since(w.per)).peekable();
                let next_frees_in_s =
                    within.peek().and_then(|(at, _)| (*at + w.per).duration_since(now).ok()).map(|d| d.as_secs_f64());
                let used: u64 = within.map(|(_, tokens)| weigh(*tokens)).sum();
                WindowUse {
                    limit: w.limit,
                    per: gm_limits::format_duration(w.per),
                    used,
                    remaining: w.limit.saturating_sub(used),
                    next_frees_in_s,
                }
            };
            let token_windows = spec.token_windows.iter().map(|w| use_of(w, |tokens| tokens)).collect();
            let windows = spec.windows.iter().map(|w| use_of(w, |_| 1)).collect();
            let blocked = store.block_of(&key)?.filter(|(until, _)| *until > now).map(|(until, daily)| Blocked {
                for_s: until.duration_since(now).map(|d| d.as_secs_f64()).unwrap_or(0.0),
                daily_quota_spent: daily,
            });
            keys.push(KeyStatus {
                key: key.to_string(),
                provider: key.provider.clone(),
                credential: key.credential.clone(),
                model: key.model.clone(),
                limits: if tier_limits {
                    "the model's GitHub tier".to_string()
                } else {
                    gm_limits::LimitSpec { margin: None, ..spec.clone() }.to_string()
                },
                margin: spec.margin.filter(|_| tier_limits || !spec.is_unlimited()).map(|m| m.to_string()),
                counted: last(86_400 * 366),
                requests: RecentRequests { last_minute: last(60), last_hour: last(3_600), last_day: last(86_400) },
                windows,
                token_windows,
                blocked,
            });
        }
        Ok(LimitsStatus { state_file, keys })
    }

    /// Forgets the counts and server blocks of the keys that `which` names (a key as [`KeyStatus::key`] shows
    /// it, `PROVIDER:MODEL`, or `MODEL`; case ignored), or of every key. Returns how many were reset; naming a
    /// key that matches none is an [`Error::NoLimitKey`].
    pub fn reset_limits(&self, which: Option<&str>) -> Result<usize, Error> {
        if self.existing_state_file()?.is_none() {
            // No state file counts nothing: there is nothing to reset, and no reason to create it.
            self.config().state_file().ok_or(Error::NoStateFile { what: "resetting the rate limits" })?;
            return match which {
                Some(key) => Err(Error::NoLimitKey { key: key.to_string() }),
                None => Ok(0),
            };
        }
        let store = self.open_windows("resetting the rate limits")?;
        let which_lower = which.map(str::to_lowercase);
        let (provider, model) = match which_lower.as_deref() {
            None => (None, None),
            Some(k) => match k.split_once(':') {
                Some((p, m)) => (Some(p.to_string()), Some(m.to_string())),
                None => (None, Some(k.to_string())),
            },
        };
        let mut n = 0;
        for key in store.keys()? {
            let whole = which_lower.as_deref().is_some_and(|k| k == key.to_string().to_lowercase());
            if !whole
                && (provider.as_ref().is_some_and(|p| *p != key.provider)
                    || model.as_ref().is_some_and(|m| *m != key.model))
            {
                continue;
            }
            store.reset(&key)?;
            n += 1;
        }
        match which {
            Some(key) if n == 0 => Err(Error::NoLimitKey { key: key.to_string() }),
            _ => Ok(n),
        }
    }
}
