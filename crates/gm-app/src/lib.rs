//! The use cases of gm, for every front end: a [`Session`] built from a typed [`SessionConfig`] owns the
//! client, the rate limiter, the response cache and the run store, and each use case is a method on it that
//! returns data and never prints.
//!
//! Use this crate to do from Rust what a `gm` command does (run `.prompt.yml` suites or a models × tasks bench
//! to the run store, list, show and compare runs, see or reset the rate limits, inspect or clear the cache,
//! read the model catalog), or to build another front end: the `gm` binary turns flags and environment into a
//! [`SessionConfig`] and renders what comes back; a server calls the same methods.
//!
//! The library never reads the environment, runs `gh` or prints: the credential comes in resolved, and what
//! the user should know comes back as [`Notice`]s, [`Observer`] events and errors with
//! [predicates](Error::is_usage).
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use gm_app::{Session, SessionConfig};
//!
//! // The demo provider, everything in memory: no state file, no network.
//! let session = Session::new(SessionConfig::demo());
//! let client = session.client().unwrap();
//! assert_eq!(client.provider(), gm_core::ProviderKind::Demo);
//! session.finish();
//! # });
//! ```
//!
//! # Crate features
//! None: the session uses the network transport (hyper), the SQLite state file and Redis, all always built.

mod bench;
mod cache;
mod config;
mod error;
mod eval;
pub mod init;
mod limits;
mod models;
mod notice;
mod progress;
mod runs;
mod session;
pub mod settings;

pub use bench::{BenchResult, BenchRun};
pub use cache::{CacheReport, Cleared, Held, MemoryTier, Moved};
pub use config::{
    CacheSettings, LimitsSettings, ModelPrice, PriceModels, Prices, Recording, SessionConfig, DEFAULT_CACHE_TTL,
    DEFAULT_MAX_WAIT, DEFAULT_TIMEOUT, STATE_FILE_NAME,
};
pub use error::{is_provider_error, is_usage_error, Error, Phase};
pub use eval::{SuiteResult, SuiteRun};
pub use limits::{Blocked, KeyStatus, LimitsStatus, RecentRequests, WindowUse};
pub use models::{AuthStatus, Catalog, CredentialStatus};
pub use notice::{HistoryKept, Notice};
pub use progress::{
    Cancel, CaseFinished, CellRef, CellStarted, Interrupted, Observer, Outcome, Resume, RunKind, RunStarted,
    SuiteFinished, STOP_GRACE,
};
pub use runs::{parse_day, utc_minutes, CellComparison, RunComparison, StoredBenchRun, StoredRun};
pub use session::Session;

/// An error an [`Observer`] returns to stop a run.
pub use gm_eval::evaluators::BoxError;
