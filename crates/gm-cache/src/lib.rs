//! Response cache for model APIs.
//!
//! Use this crate if you repeat identical model requests (re-running an evaluation, sampling the same prompt)
//! and want the repeats to cost nothing: canonical request keys, an LRU bounded by entries and bytes with a
//! per-entry TTL and statistics, single-flight loading so identical concurrent requests make one upstream
//! call, and persistent tiers in SQLite (one machine, many processes) or Redis (many machines).
//!
//! Every type here is a plain data structure that takes the time as an argument; the HTTP client wraps
//! it around a transport.
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use bytes::Bytes;
//! use gm_cache::{Cache, CacheConfig, Origin, RequestKey};
//! use gm_core::{ChatMessage, ChatRequest, Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let cache = Cache::new(CacheConfig { max_entries: 1_000, max_bytes: 64 << 20, default_ttl: None });
//! let req = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("Capital of France?")]);
//! let key = RequestKey::for_chat("github", "https://models.github.ai", &req, 0);
//!
//! let ttl = Some(Duration::from_secs(7 * 24 * 3600));
//! let first = cache
//!     .get_or_fetch(key, ttl, clock.now(), async { Ok::<_, std::io::Error>(Bytes::from("Paris.")) })
//!     .await
//!     .unwrap();
//! assert_eq!(first.origin, Origin::Upstream);
//!
//! // The same request streamed: same key, answered from the cache.
//! let mut streamed = req.clone();
//! streamed.stream = Some(true);
//! let streamed = RequestKey::for_chat("github", "https://models.github.ai/", &streamed, 0);
//! assert_eq!(streamed, key);
//! let again = cache.get(&streamed, clock.now()).unwrap().unwrap();
//! assert!(again.origin.is_cached());
//! assert_eq!(cache.stats().memory.hits, 1);
//! # });
//! ```
//!
//! # Crate features
//! - `sqlite`: `SqliteCache`, the persistent tier in a SQLite file (SQLite is compiled in).
//! - `redis`: `RedisCache`, the shared tier in a Redis server.
//!
//! Neither is on by default.

mod error;
mod flight;
mod key;
mod memory;
pub mod recording;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod tiered;

pub use error::{BoxError, Error};
pub use flight::{Fetched, Origin, SingleFlight};
pub use key::{InvalidKey, RequestKey};
pub use memory::{CacheConfig, CacheStats, CacheValue, MemoryCache, ENTRY_OVERHEAD};
#[cfg(feature = "redis")]
pub use redis::RedisCache;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteCache, SqliteCacheBuilder, ROW_OVERHEAD, SCHEMA_VERSION};
pub use store::{PersistentStore, StoredValue};
pub use tiered::{Cache, TieredStats};
