//! A local server that speaks the GitHub Models and OpenAI-compatible wire protocols.
//!
//! Use this crate if you need a stand-in for GitHub Models or an OpenAI-style server on loopback: for tests
//! (it is the network of gm's own tests), for benchmarks, or as an offline target for your own application.
//!
//! It serves GitHub's paths (`GET /catalog/models`, `POST /inference/chat/completions`,
//! `POST /orgs/{org}/inference/chat/completions`, `POST /inference/embeddings`, and the org form) and the
//! OpenAI-style paths (`GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/embeddings`, and the same
//! under `/openai/v1` as Azure serves them). Answers are deterministic: the chat answer echoes the last user
//! message, embeddings are hashed bag-of-words vectors. It answers with the real error bodies: 401 without a
//! token on GitHub paths, 404 `unknown_model`, 413 `tokens_limit_reached` over the tier's input cap, 410 on every
//! path when retired, and any status queued as a [`Fault`] (429 with its headers, 500, a stream dropped midway).
//!
//! It is written independently of gm-http's client, so a client bug cannot hide itself.
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use gm_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
//! assert!(emu.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(emu.stats().total, 0);
//! emu.shutdown().await;
//! # });
//! ```
//!
//! # Crate features
//! None.

mod bodies;
mod limits;
mod server;

pub use limits::{github_tier, EmulatorLimits, Window};
pub use server::{Emulator, EmulatorConfig, EmulatorStats, Fault, FaultKind};
