//! Rate limiting for model APIs.
//!
//! Use this crate if you call a model API with quotas ("15 requests a minute, 150 a day, 5 at once") and want
//! to never earn a 429 while still using every request the quota allows. Time is always an argument (or comes
//! from a [`gm_core::Clock`]), so the limiter is a plain data structure that is easy to test and to share.
//!
//! A [`Limiter`] keeps, for every [`LimitKey`] (provider, credential [`fingerprint`], model), any number of
//! request windows "N per W", a concurrency cap, per-request token caps and token budgets per window
//! ([`LimitSpec`]). A request is admitted only when every one of them allows it, and then counts in all of them.
//!
//! # The guarantee
//! Configured as N per W, the limiter never admits more than N requests in any interval of length W, and it
//! never delays a request that every window allows: a burst of N into an empty window passes at once, and
//! the next request passes the moment the oldest of the last N is W old. Each window keeps the instants of
//! its last N admissions in a ring; admission compares `now` with the oldest of them. This is not a token
//! bucket, which after an idle spell lets a full burst through on top of the last window's requests and so
//! admits up to 2N−1 in one window.
//!
//! The guarantee holds when a key's limits change (another run or process uses other `--limits` on the same
//! key): every key keeps a history of its admissions, whatever limits they passed under, so a window that
//! grows back counts every admission it covers. The history holds the admissions of the last
//! [`HISTORY_SPAN`] (or of the longest window the key has had, if longer), up to the latest
//! [`HISTORY_CAP`]; a window counting up to that many admissions is exact after any change.
//!
//! Each window is lengthened by a small [`Margin`] (20 ms + 0.1 % by default) so that the server, which sees
//! each request a little after it was sent, counts no more than N either.
//!
//! # Example
//! ```
//! use std::time::{Duration, Instant};
//! use gm_limits::{Denied, LimitKey, LimitSpec, Limiter, LimitsConfig, TokenCount};
//!
//! let limiter = Limiter::new(LimitsConfig::uniform(LimitSpec::parse("2/1m,concurrency=5").unwrap()));
//! let key = LimitKey::for_token("github", "ghp_example", "openai/gpt-4.1");
//! let t0 = Instant::now();
//! let a = limiter.try_acquire(&key, TokenCount::ZERO, t0).unwrap();
//! let b = limiter.try_acquire(&key, TokenCount::ZERO, t0).unwrap();
//! let Err(Denied::Wait(wait)) = limiter.try_acquire(&key, TokenCount::ZERO, t0) else { panic!() };
//! assert_eq!(wait.after(t0), Some(Duration::from_millis(60_080))); // 1 minute + 20 ms + 0.1 %
//! drop((a, b));
//!
//! // In async code, wait in line instead (at most two minutes here):
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let permit = limiter.acquire(&key, TokenCount::ZERO, Duration::from_secs(120)).await.unwrap();
//! permit.settle(1234); // the tokens the response says it used
//! # });
//! ```
//!
//! Learning from the server:
//! ```
//! # use std::time::{Duration, Instant};
//! # use gm_limits::*;
//! let limiter = Limiter::new(LimitsConfig::default());
//! let key = LimitKey::anonymous("github", "openai/gpt-4.1");
//! let now = Instant::now();
//! let body = br#"{"error":{"code":"RateLimitReached","message":"Rate limit of 50 per 86400s exceeded for UserByModelByDay. Please wait 5631 seconds before retrying."}}"#;
//! let seen = limiter.observe(&key, &ServerSignal::new(429).body(body), now);
//! assert!(seen.daily);
//! let Err(Denied::Wait(w)) = limiter.try_acquire(&key, TokenCount::ZERO, now) else { panic!() };
//! assert_eq!(w.after(now), Some(Duration::from_secs(5631)));
//! ```
//!
//! # Crate features
//! - `tokenizer`: exact input-token counts for OpenAI-family models with tiktoken-rs (its encodings are
//!   compiled in; no network at run time). Without it, [`count_tokens`] uses a conservative estimate.
//! - `sqlite`: `SqliteWindows`, a [`WindowStore`] in a SQLite file, so that every process on one machine
//!   shares the request windows and token budgets (rusqlite with the bundled SQLite; see [`store`]).
//! - `redis`: `RedisWindows`, a [`WindowStore`] in Redis for many machines sharing one quota; admission is
//!   one Lua script, which Redis runs atomically.

/// How long a key's admissions are kept at least, for limits with longer windows than the ones in force.
pub const HISTORY_SPAN: std::time::Duration = std::time::Duration::from_secs(86_400);

/// The most admissions a key's history keeps: windows allowing up to this many are exact whatever limits
/// the key had before.
pub const HISTORY_CAP: usize = 65_536;

mod config;
mod duration;
mod error;
mod key;
mod limiter;
pub mod pool;
pub mod presets;
mod signal;
mod spec;
mod state;
pub mod store;
mod tokens;
#[doc(hidden)]
pub mod untrusted;

pub use config::{LimitsConfig, ProviderLimits};
pub use duration::{format_duration, parse_duration};
pub use error::LimitError;
pub use key::{fingerprint, LimitKey};
pub use limiter::{KeyHandle, KeyStatus, Limiter, Permit, TokioClock};
pub use signal::{
    Observation, ServerSignal, DEFAULT_DAILY_BLOCK, DEFAULT_MAX_WAIT, DEFAULT_RETRY_AFTER, UNTOLD_BACKOFF_FIRST,
};
pub use spec::{LimitSpec, Margin, Window};
pub use state::{Denied, Wait, WaitReason, WindowStatus};
#[cfg(feature = "redis")]
pub use store::RedisWindows;
#[cfg(feature = "sqlite")]
pub use store::SqliteWindows;
pub use store::{BlockAdmission, BlockWant, StoreAdmission, WindowStore};
pub use tokens::{count_text_tokens, count_tokens, estimate_tokens, CountMethod, TokenCount};
