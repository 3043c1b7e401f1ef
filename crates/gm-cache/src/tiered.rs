//! The two-tier cache: memory in front of a persistent store.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::error::Error;
use crate::flight::{Fetched, Origin};
use crate::key::RequestKey;
use crate::memory::{CacheConfig, CacheStats, MemoryCache};
use crate::store::PersistentStore;

/// Statistics of a [`Cache`], tier by tier.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TieredStats {
    /// The memory tier.
    pub memory: CacheStats,
    /// The persistent tier, when there is one and its statistics could be read.
    pub persistent: Option<CacheStats>,
    /// `sqlite` or `redis`, when there is a persistent tier.
    pub persistent_name: Option<&'static str>,
    /// Persistent-tier operations that failed and were treated as misses (by `get_or_fetch`).
    pub persistent_errors: u64,
    /// Lookups answered by either tier over all lookups, in [0, 1].
    pub hit_rate: f64,
}

/// Memory in front of an optional persistent tier (SQLite or Redis), with single-flight loading.
///
/// A lookup tries memory, then the persistent tier; a persistent hit is copied into memory for the time
/// it has left. A store writes both tiers. This is the cache the client puts in front of a provider.
///
/// Time is an `Instant` (`now`), as for [`MemoryCache`]; the persistent tier needs wall-clock time, which
/// the cache derives from `now` and a pair of (`Instant`, `SystemTime`) taken when it was made (see
/// [`with_time_anchor`](Self::with_time_anchor)), so a `ManualClock` drives both tiers.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use gm_cache::{Cache, CacheConfig, RequestKey};
/// use gm_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let cache = Cache::new(CacheConfig::default());
/// let key = RequestKey::from_u128(1);
/// cache.set(key, Bytes::from("Paris."), Some(Duration::from_secs(60)), clock.now()).unwrap();
/// let hit = cache.get(&key, clock.now()).unwrap().unwrap();
/// assert!(hit.origin.is_cached());
/// assert_eq!(cache.stats().memory.hits, 1);
/// ```
#[derive(Debug)]
pub struct Cache {
    memory: MemoryCache<Bytes>,
    persistent: Option<Arc<dyn PersistentStore>>,
    anchor: (Instant, SystemTime),
    persistent_errors: AtomicU64,
}

impl Cache {
    /// A memory-only cache.
    pub fn new(config: CacheConfig) -> Self {
        Self::from_parts(MemoryCache::new(config), None)
    }

    /// A memory tier with these budgets in front of `store`.
    pub fn with_store(config: CacheConfig, store: impl PersistentStore + 'static) -> Self {
        Self::from_parts(MemoryCache::new(config), Some(Arc::new(store)))
    }

    /// A cache from its tiers (a sharded memory tier, or a store shared with something else).
    pub fn from_parts(memory: MemoryCache<Bytes>, persistent: Option<Arc<dyn PersistentStore>>) -> Self {
        Self { memory, persistent, anchor: (Instant::now(), SystemTime::now()), persistent_errors: AtomicU64::new(0) }
    }

    /// Sets the pair of instants that map `now` arguments to wall-clock time for the persistent tier:
    /// `instant` corresponds to `wall`. Tests use it to make persistent expiry deterministic.
    pub fn with_time_anchor(mut self, instant: Instant, wall: SystemTime) -> Self {
        self.anchor = (instant, wall);
        self
    }

    /// The memory tier.
    pub fn memory(&self) -> &MemoryCache<Bytes> {
        &self.memory
    }

    /// The persistent tier, if any.
    pub fn persistent(&self) -> Option<&dyn PersistentStore> {
        self.persistent.as_deref()
    }

    /// The wall-clock time that `now` stands for.
    pub fn wall_time(&self, now: Instant) -> SystemTime {
        let (instant, wall) = self.anchor;
        if now >= instant {
            wall + (now - instant)
        } else {
            wall - (instant - now)
        }
    }

    /// The cached value under `key`: from memory, else from the persistent tier (then copied into memory).
    pub fn get(&self, key: &RequestKey, now: Instant) -> Result<Option<Fetched<Bytes>>, Error> {
        if let Some(value) = self.memory.get(key, now) {
            return Ok(Some(Fetched { value, origin: Origin::Memory }));
        }
        Ok(self.get_persistent(key, now)?.map(|value| Fetched { value, origin: Origin::Persistent }))
    }

    fn get_persistent(&self, key: &RequestKey, now: Instant) -> Result<Option<Bytes>, Error> {
        let Some(store) = &self.persistent else { return Ok(None) };
        let wall = self.wall_time(now);
        let Some(stored) = store.get(key, wall)? else { return Ok(None) };
        let ttl = match stored.expires_at {
            Some(t) => t.duration_since(wall).unwrap_or(Duration::ZERO),
            None => Duration::MAX,
        };
        self.memory.set(*key, stored.value.clone(), Some(ttl), now);
        Ok(Some(stored.value))
    }

    /// Stores `value` under `key` in both tiers for `ttl` (`None`: the memory tier's default TTL).
    ///
    /// The memory tier is written first, so the value is served even when the persistent write fails.
    pub fn set(&self, key: RequestKey, value: Bytes, ttl: Option<Duration>, now: Instant) -> Result<(), Error> {
        let ttl = ttl.or(self.memory.config().default_ttl);
        self.memory.set(key, value.clone(), Some(ttl.unwrap_or(Duration::MAX)), now);
        if let Some(store) = &self.persistent {
            store.set(key, &value, ttl, self.wall_time(now))?;
        }
        Ok(())
    }

    /// Removes `key` from both tiers.
    pub fn remove(&self, key: &RequestKey) -> Result<(), Error> {
        self.memory.remove(key);
        if let Some(store) = &self.persistent {
            store.remove(key)?;
        }
        Ok(())
    }

    /// Empties both tiers (in the persistent tier, only this cache's entries).
    pub fn clear(&self) -> Result<(), Error> {
        self.memory.clear();
        if let Some(store) = &self.persistent {
            store.clear()?;
        }
        Ok(())
    }

    /// Removes expired entries from both tiers; returns how many were removed.
    pub fn purge_expired(&self, now: Instant) -> Result<u64, Error> {
        let mut n = self.memory.purge_expired(now) as u64;
        if let Some(store) = &self.persistent {
            n += store.purge_expired(self.wall_time(now))?;
        }
        Ok(n)
    }

    /// Statistics of both tiers. A persistent tier whose statistics cannot be read shows as `None`.
    pub fn stats(&self) -> TieredStats {
        let memory = self.memory.stats();
        let persistent = self.persistent.as_ref().and_then(|s| s.stats().ok());
        let lookups = memory.lookups();
        let hits = memory.hits + persistent.map_or(0, |p| p.hits);
        TieredStats {
            memory,
            persistent,
            persistent_name: self.persistent.as_ref().map(|s| s.name()),
            persistent_errors: self.persistent_errors.load(Ordering::Relaxed),
            hit_rate: if lookups == 0 { 0.0 } else { (hits as f64 / lookups as f64).min(1.0) },
        }
    }

    /// The cached value under `key`, or the result of `fetch` stored in both tiers for `ttl`, with
    /// identical concurrent calls sharing one `fetch` (see [`MemoryCache::get_or_fetch`] for the rules on
    /// errors and cancellation).
    ///
    /// A failing persistent tier does not fail the call: its errors count as misses (and in
    /// [`TieredStats::persistent_errors`]) and the value is still fetched and kept in memory.
    pub async fn get_or_fetch<E, F>(
        &self,
        key: RequestKey,
        ttl: Option<Duration>,
        now: Instant,
        fetch: F,
    ) -> Result<Fetched<Bytes>, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<Bytes, E>>,
    {
        let memory = &self.memory;
        if let Some(value) = memory.lookup_uncounted(&key, now) {
            memory.count_lookup(&key, true);
            return Ok(Fetched { value, origin: Origin::Memory });
        }
        // Not under the single-flight lock: a slow disk or network read must not hold up other keys.
        match self.get_persistent(&key, now) {
            Ok(Some(value)) => {
                memory.count_lookup(&key, false);
                return Ok(Fetched { value, origin: Origin::Persistent });
            }
            Ok(None) => {}
            Err(_) => {
                self.persistent_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let result = memory
            .flights()
            .run_with(
                key,
                // A leader stores into memory before it leaves the table, so memory is enough here.
                || memory.lookup_uncounted(&key, now).map(|v| (v, Origin::Memory)),
                |value: &Bytes| {
                    if self.set(key, value.clone(), ttl, now).is_err() {
                        self.persistent_errors.fetch_add(1, Ordering::Relaxed);
                    }
                },
                fetch,
            )
            .await;
        memory.count_lookup(&key, matches!(&result, Ok(f) if f.origin == Origin::Memory));
        result
    }
}
