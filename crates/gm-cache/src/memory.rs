//! The memory tier: an LRU bounded by entries and bytes, with a TTL per entry.

use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;
use serde::ser::SerializeStruct;

use crate::flight::{Fetched, Origin, SingleFlight};
use crate::key::RequestKey;

/// The bytes an entry costs beyond its value: the key, the expiry, the LRU node and its links, the
/// hash-table slot, and allocator slack (measured at about 164 bytes per entry at 1M entries; see the
/// `cache` benchmark).
///
/// An entry's size, for the byte budget, is its value's [`CacheValue::byte_size`] plus this.
pub const ENTRY_OVERHEAD: u64 = 160;

/// A value the cache can hold: cheap to clone (a hit hands out a clone) and able to tell its size in bytes.
pub trait CacheValue: Clone + Send + Sync + 'static {
    /// The bytes this value accounts for in the byte budget (its payload; [`ENTRY_OVERHEAD`] is added).
    fn byte_size(&self) -> usize;
}

impl CacheValue for Bytes {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

impl CacheValue for Arc<[u8]> {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

impl CacheValue for Arc<str> {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

impl CacheValue for Arc<String> {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

impl CacheValue for Arc<Vec<u8>> {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

/// The budgets of a [`MemoryCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// The most entries kept; the least recently used go first. Zero disables the cache.
    pub max_entries: usize,
    /// The most bytes kept, counting each entry as its value's size plus [`ENTRY_OVERHEAD`].
    pub max_bytes: u64,
    /// The time to live of entries stored without their own TTL; `None` keeps them until evicted.
    pub default_ttl: Option<Duration>,
}

impl Default for CacheConfig {
    /// 10,000 entries, 256 MiB, and a TTL of 7 days (the CLI's default).
    fn default() -> Self {
        Self { max_entries: 10_000, max_bytes: 256 << 20, default_ttl: Some(Duration::from_secs(7 * 24 * 3600)) }
    }
}

/// Statistics of a cache tier. Counters are cumulative since the cache was made (or [`MemoryCache::reset_stats`]);
/// `entries` and `bytes` are the current contents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing, or only an expired entry.
    pub misses: u64,
    /// Entries removed because their TTL had run out (found on lookup, by `purge_expired`, or at eviction).
    pub expirations: u64,
    /// Live entries removed to stay within a budget.
    pub evictions: u64,
    /// Values stored (new entries and replacements).
    pub inserts: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now, counted as for the budget.
    pub bytes: u64,
}

impl CacheStats {
    /// Hits over lookups, in [0, 1]; 0 before the first lookup.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }

    /// Hits plus misses.
    pub fn lookups(&self) -> u64 {
        self.hits + self.misses
    }

    fn add(&mut self, other: &CacheStats) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.expirations += other.expirations;
        self.evictions += other.evictions;
        self.inserts += other.inserts;
        self.entries += other.entries;
        self.bytes += other.bytes;
    }
}

impl serde::Serialize for CacheStats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("CacheStats", 8)?;
        st.serialize_field("hits", &self.hits)?;
        st.serialize_field("misses", &self.misses)?;
        st.serialize_field("hit_rate", &self.hit_rate())?;
        st.serialize_field("expirations", &self.expirations)?;
        st.serialize_field("evictions", &self.evictions)?;
        st.serialize_field("inserts", &self.inserts)?;
        st.serialize_field("entries", &self.entries)?;
        st.serialize_field("bytes", &self.bytes)?;
        st.end()
    }
}

/// Keys are already uniform hashes, so the table needs only a cheap mix (which also spreads keys built
/// with [`RequestKey::from_u128`] from small numbers) rather than SipHash.
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = mix(self.0 ^ u64::from_le_bytes(word));
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = mix(v as u64 ^ mix((v >> 64) as u64));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A folded multiply: every input bit reaches the high and the low output bits.
fn mix(x: u64) -> u64 {
    let full = u128::from(x) * 0x9E37_79B9_7F4A_7C15;
    (full as u64) ^ ((full >> 64) as u64)
}

type KeyHash = BuildHasherDefault<KeyHasher>;

struct Entry<V> {
    value: V,
    expires_at: Option<Instant>,
    size: u64,
}

impl<V> Entry<V> {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
}

struct Shard<V> {
    lru: LruCache<RequestKey, Entry<V>, KeyHash>,
    bytes: u64,
    max_entries: usize,
    max_bytes: u64,
    stats: CacheStats,
}

impl<V: CacheValue> Shard<V> {
    /// Looks up `key`, removing it if expired. Counts expirations but not hits or misses.
    fn lookup(&mut self, key: &RequestKey, now: Instant) -> Option<V> {
        let entry = self.lru.get(key)?;
        if entry.is_expired(now) {
            self.remove(key);
            self.stats.expirations += 1;
            return None;
        }
        Some(entry.value.clone())
    }

    fn remove(&mut self, key: &RequestKey) -> Option<V> {
        let entry = self.lru.pop(key)?;
        self.bytes -= entry.size;
        Some(entry.value)
    }

    fn set(&mut self, key: RequestKey, value: V, expires_at: Option<Instant>, now: Instant) -> bool {
        let size = value.byte_size() as u64 + ENTRY_OVERHEAD;
        if self.max_entries == 0 || size > self.max_bytes {
            // The new value supersedes the old one even though it cannot be kept.
            self.remove(&key);
            return false;
        }
        if let Some(old) = self.lru.put(key, Entry { value, expires_at, size }) {
            self.bytes -= old.size;
        }
        self.bytes += size;
        self.stats.inserts += 1;
        while self.lru.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some((_, old)) = self.lru.pop_lru() else { break };
            self.bytes -= old.size;
            if old.is_expired(now) {
                self.stats.expirations += 1;
            } else {
                self.stats.evictions += 1;
            }
        }
        true
    }

    fn purge_expired(&mut self, now: Instant) -> usize {
        let expired: Vec<RequestKey> = self.lru.iter().filter(|(_, e)| e.is_expired(now)).map(|(k, _)| *k).collect();
        for key in &expired {
            self.remove(key);
        }
        self.stats.expirations += expired.len() as u64;
        expired.len()
    }

    fn stats(&self) -> CacheStats {
        CacheStats { entries: self.lru.len() as u64, bytes: self.bytes, ..self.stats }
    }
}

/// The in-memory tier: an LRU bounded by entry count and by bytes, with a TTL per entry, statistics and
/// single-flight loading. Thread-safe; share it with an `Arc`.
///
/// Time is an argument (`now`), never read inside, so tests drive it with a `ManualClock`. Expired
/// entries are dropped when a lookup finds them, when an insert needs room, and by
/// [`purge_expired`](Self::purge_expired), which a long-lived process may call now and then.
///
/// With one shard (the default) the cache is one exact LRU behind one mutex. [`with_shards`](Self::with_shards)
/// splits it into independent LRUs, each with an equal share of the budgets, so that many threads do not
/// queue on one lock; eviction order is then least-recently-used within a shard.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use gm_cache::{CacheConfig, MemoryCache, RequestKey};
/// use gm_core::ManualClock;
/// use gm_core::Clock;
///
/// let clock = ManualClock::new();
/// let cache: MemoryCache = MemoryCache::new(CacheConfig { max_entries: 100, max_bytes: 1 << 20, default_ttl: None });
/// let key = RequestKey::from_u128(1);
/// cache.set(key, Bytes::from_static(b"Paris."), Some(Duration::from_secs(60)), clock.now());
/// assert_eq!(cache.get(&key, clock.now()).as_deref(), Some(&b"Paris."[..]));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(cache.get(&key, clock.now()), None);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses, stats.expirations), (1, 1, 1));
/// ```
pub struct MemoryCache<V = Bytes> {
    shards: Box<[Mutex<Shard<V>>]>,
    config: CacheConfig,
    flights: SingleFlight,
}

impl<V> std::fmt::Debug for MemoryCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache").field("config", &self.config).field("shards", &self.shards.len()).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock was held cannot leave an entry half-written: every update is a single
    // call into the LRU followed by counter updates, so the state is usable after poisoning.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<V: CacheValue> MemoryCache<V> {
    /// A cache with these budgets, as one exact LRU.
    pub fn new(config: CacheConfig) -> Self {
        Self::with_shards(config, 1)
    }

    /// A cache split into `shards` independent LRUs (rounded up to a power of two, at most 256), each
    /// with an equal share of the budgets. Use 8–16 shards when many threads hit the cache at once.
    pub fn with_shards(config: CacheConfig, shards: usize) -> Self {
        let n = shards.clamp(1, 256).next_power_of_two();
        let max_entries = config.max_entries.div_ceil(n);
        let max_bytes = config.max_bytes.div_ceil(n as u64);
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    lru: LruCache::unbounded_with_hasher(KeyHash::default()),
                    bytes: 0,
                    max_entries,
                    max_bytes,
                    stats: CacheStats::default(),
                })
            })
            .collect();
        Self { shards, config, flights: SingleFlight::new() }
    }

    /// The budgets this cache was made with.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    fn shard(&self, key: &RequestKey) -> &Mutex<Shard<V>> {
        // Bits 32.. of the mixed key: independent of the low bits the hash table uses for its buckets.
        let h = mix(key.as_u128() as u64 ^ mix((key.as_u128() >> 64) as u64));
        &self.shards[(h >> 32) as usize & (self.shards.len() - 1)]
    }

    /// The value stored under `key`, if it is there and has not expired at `now`. A hit makes the entry
    /// the most recently used; an expired entry is removed.
    pub fn get(&self, key: &RequestKey, now: Instant) -> Option<V> {
        let mut shard = lock(self.shard(key));
        let found = shard.lookup(key, now);
        if found.is_some() {
            shard.stats.hits += 1;
        } else {
            shard.stats.misses += 1;
        }
        found
    }

    /// Whether a live entry is stored under `key`, without touching its recency or the statistics.
    pub fn contains(&self, key: &RequestKey, now: Instant) -> bool {
        lock(self.shard(key)).lru.peek(key).is_some_and(|e| !e.is_expired(now))
    }

    /// Stores `value` under `key` for `ttl` from `now` (`None`: the configured default TTL;
    /// `Some(Duration::MAX)`: until evicted), replacing any previous value, then evicts least recently
    /// used entries until both budgets hold.
    ///
    /// Returns `false`, and removes any previous value, when the entry alone exceeds the byte budget or
    /// the cache holds no entries at all.
    pub fn set(&self, key: RequestKey, value: V, ttl: Option<Duration>, now: Instant) -> bool {
        let expires_at = match ttl.or(self.config.default_ttl) {
            Some(ttl) => now.checked_add(ttl),
            None => None,
        };
        lock(self.shard(&key)).set(key, value, expires_at, now)
    }

    /// Removes the entry under `key`, returning its value (even if expired).
    pub fn remove(&self, key: &RequestKey) -> Option<V> {
        lock(self.shard(key)).remove(key)
    }

    /// Removes every entry that has expired at `now`; returns how many.
    pub fn purge_expired(&self, now: Instant) -> usize {
        self.shards.iter().map(|s| lock(s).purge_expired(now)).sum()
    }

    /// Removes every entry. The counters are kept; see [`reset_stats`](Self::reset_stats).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let mut shard = lock(s);
            shard.lru.clear();
            shard.bytes = 0;
        }
    }

    /// The number of entries held, expired or not.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).lru.len()).sum()
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The statistics, summed over the shards.
    pub fn stats(&self) -> CacheStats {
        let mut total = CacheStats::default();
        for s in self.shards.iter() {
            total.add(&lock(s).stats());
        }
        total
    }

    /// Sets the counters (hits, misses, expirations, evictions, inserts) back to zero.
    pub fn reset_stats(&self) {
        for s in self.shards.iter() {
            lock(s).stats = CacheStats::default();
        }
    }

    /// The keys from most to least recently used (for tests and diagnostics; takes every lock in turn).
    pub fn keys_by_recency(&self) -> Vec<RequestKey> {
        let mut keys = Vec::new();
        for s in self.shards.iter() {
            keys.extend(lock(s).lru.iter().map(|(k, _)| *k));
        }
        keys
    }

    /// Looks up `key` without counting a hit or a miss.
    pub(crate) fn lookup_uncounted(&self, key: &RequestKey, now: Instant) -> Option<V> {
        lock(self.shard(key)).lookup(key, now)
    }

    pub(crate) fn count_lookup(&self, key: &RequestKey, hit: bool) {
        let mut shard = lock(self.shard(key));
        if hit {
            shard.stats.hits += 1;
        } else {
            shard.stats.misses += 1;
        }
    }

    /// The value under `key`, or the result of `fetch` stored for `ttl`, with identical concurrent calls
    /// sharing one `fetch`.
    ///
    /// Of the callers that miss on the same key at the same time, one (the leader) runs its `fetch`; the
    /// others wait and get a clone of its value, or its error, which is shared through an `Arc` (use
    /// [`Arc::try_unwrap`] to take it back when no one else holds it). Errors are not cached: the next call
    /// fetches again. If the leader is cancelled (its future dropped) or panics, one waiting caller takes
    /// over and runs its own `fetch`; no caller is left waiting on a fetch that no one runs.
    ///
    /// The entry's TTL counts from `now`, the time of the call. Hits and misses are counted once per call;
    /// a caller served by another caller's fetch counts as a miss.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::time::{Duration, Instant};
    /// use bytes::Bytes;
    /// use gm_cache::{CacheConfig, MemoryCache, Origin, RequestKey};
    ///
    /// let cache: MemoryCache = MemoryCache::new(CacheConfig::default());
    /// let key = RequestKey::from_u128(7);
    /// let now = Instant::now();
    /// let first = cache.get_or_fetch(key, None, now, async { Ok::<_, std::io::Error>(Bytes::from("42")) }).await.unwrap();
    /// assert_eq!(first.origin, Origin::Upstream);
    /// let again = cache.get_or_fetch(key, None, now, async { unreachable!("cached") as Result<Bytes, std::io::Error> }).await.unwrap();
    /// assert_eq!((again.origin, again.value), (Origin::Memory, Bytes::from("42")));
    /// # });
    /// ```
    pub async fn get_or_fetch<E, F>(
        &self,
        key: RequestKey,
        ttl: Option<Duration>,
        now: Instant,
        fetch: F,
    ) -> Result<Fetched<V>, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.lookup_uncounted(&key, now) {
            self.count_lookup(&key, true);
            return Ok(Fetched { value, origin: Origin::Memory });
        }
        let result = self
            .flights
            .run_with(
                key,
                || self.lookup_uncounted(&key, now).map(|v| (v, Origin::Memory)),
                |v: &V| {
                    self.set(key, v.clone(), ttl, now);
                },
                fetch,
            )
            .await;
        let hit = matches!(&result, Ok(f) if f.origin == Origin::Memory);
        self.count_lookup(&key, hit);
        result
    }

    /// The single-flight table of this cache (how many fetches are in flight).
    pub fn flights(&self) -> &SingleFlight {
        &self.flights
    }
}
