//! `gm serve`: a GitHub-Models- and OpenAI-compatible gateway.
//!
//! Use this crate if you want to put gm's client guarantees behind a URL: clients of the retired GitHub
//! Models API or of OpenAI change only their base URL and key; each model id they send is routed to a live
//! upstream (with ordered fallback on 5xx, connection failures, timeouts and quota waits longer than
//! allowed); every upstream call passes gm's limiter, so an upstream never sees more than its quota;
//! identical requests are answered from the cache; each client key has its own windows and budgets; and
//! `--public` serves a showcase with per-visitor limits. `/metrics` speaks the Prometheus text format.
//!
//! The gateway is a front end beside the CLI, and a library: it never reads the environment (the credentials
//! a routing file names come through the lookup given to [`Routing::from_toml`]) and writes only its access
//! log, where [`ServeConfig::log`] says.
//!
//! The gateway's state (the state file or a Redis server, the response cache, the default upstream limits and
//! the longest wait for quota) is a [`gm_app::Session`]: each upstream's client is built by it, so the
//! gateway counts and caches exactly as every other front end of gm does.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), gm_serve::ServeError> {
//! use gm_app::{Session, SessionConfig};
//! use gm_serve::{Gateway, Routing, ServeConfig};
//!
//! let mut config = ServeConfig::new(Routing::demo());
//! config.addr = "127.0.0.1:0".parse().unwrap();
//! // Everything in memory; give the session a data folder (or a Redis URL) to keep keys, counts and answers.
//! let gateway = Gateway::bind(config, Session::new(SessionConfig::default())).await?;
//! let stop = gm_serve::shutdown_signal(); // before announcing: a signal sent at once stops it gracefully
//! eprintln!("listening on http://{}", gateway.local_addr());
//! gateway.run(stop).await
//! # }
//! ```

mod access;
mod config;
mod error;
pub mod keys;
pub mod metrics;
mod salvage;
mod server;
pub mod ui;
mod upstream;
pub mod wire;

pub use config::{
    LogTarget, PublicLimits, RouteConfig, Routing, ServeConfig, Target, UpstreamConfig, DEFAULT_PUBLIC_LIMITS,
    DEFAULT_VISITOR_LIMITS,
};
pub use error::ServeError;
pub use server::{api_router, observed, serve, shutdown_signal, AppState, Gateway};
