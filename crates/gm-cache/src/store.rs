//! The interface of a persistent tier, shared by the SQLite and Redis stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::error::Error;
use crate::key::RequestKey;
use crate::memory::CacheStats;

/// A value read from a persistent tier, with the wall-clock time at which it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    /// The value.
    pub value: Bytes,
    /// When it expires; `None` for never.
    pub expires_at: Option<SystemTime>,
}

/// A cache tier that outlives the process: a SQLite file, or a Redis server.
///
/// Unlike the memory tier, time here is wall-clock time (`SystemTime`), since entries must keep their
/// expiry across restarts and machines. Methods block briefly on disk or network I/O.
pub trait PersistentStore: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `redis`, for messages and statistics.
    fn name(&self) -> &'static str;

    /// The value under `key`, if present and not expired at `now` (an expired value is removed).
    fn get(&self, key: &RequestKey, now: SystemTime) -> Result<Option<StoredValue>, Error>;

    /// Stores `value` under `key` until `now + ttl` (`None`: until evicted), evicting to stay within the
    /// store's size cap. A value larger than the cap is not stored (and any previous value is removed).
    fn set(&self, key: RequestKey, value: &[u8], ttl: Option<Duration>, now: SystemTime) -> Result<(), Error>;

    /// Removes the value under `key`; returns whether there was one.
    fn remove(&self, key: &RequestKey) -> Result<bool, Error>;

    /// Removes every value of this cache (and nothing else that shares the file or server); returns how many.
    fn clear(&self) -> Result<u64, Error>;

    /// Removes the values that have expired at `now`; returns how many.
    fn purge_expired(&self, now: SystemTime) -> Result<u64, Error>;

    /// The statistics: counters of this process, entries and bytes of the whole store.
    fn stats(&self) -> Result<CacheStats, Error>;

    /// Every value not expired at `now`, by key (for exporting a cache), sorted by key. Counts no hit.
    fn entries(&self, now: SystemTime) -> Result<Vec<(RequestKey, StoredValue)>, Error>;
}

/// Milliseconds since the Unix epoch (negative before it), the time unit of the stores.
#[cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]
pub(crate) fn from_unix_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// `now + ttl` in milliseconds, or `None` (never) when there is no TTL or it overflows.
#[cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]
pub(crate) fn expiry_ms(now: SystemTime, ttl: Option<Duration>) -> Option<i64> {
    let ttl_ms = i64::try_from(ttl?.as_millis()).ok()?;
    unix_ms(now).checked_add(ttl_ms)
}

/// Counters kept in the process for a store (entries and bytes come from the store itself).
#[cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub hits: std::sync::atomic::AtomicU64,
    pub misses: std::sync::atomic::AtomicU64,
    pub expirations: std::sync::atomic::AtomicU64,
    pub evictions: std::sync::atomic::AtomicU64,
    pub inserts: std::sync::atomic::AtomicU64,
}

#[cfg_attr(not(any(feature = "sqlite", feature = "redis")), allow(dead_code))]
impl Counters {
    pub fn bump(counter: &std::sync::atomic::AtomicU64, by: u64) {
        counter.fetch_add(by, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn snapshot(&self, entries: u64, bytes: u64) -> CacheStats {
        use std::sync::atomic::Ordering::Relaxed;
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            expirations: self.expirations.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            inserts: self.inserts.load(Relaxed),
            entries,
            bytes,
        }
    }
}
