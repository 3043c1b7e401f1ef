//! The memory tier against a plain reference model: a list in recency order with expiry times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gm_cache::{CacheConfig, CacheStats, MemoryCache, RequestKey, ENTRY_OVERHEAD};
use gm_core::{Clock, ManualClock};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Set { key: u8, len: usize, ttl_ms: Option<u64> },
    Get { key: u8 },
    Remove { key: u8 },
    Advance { ms: u64 },
    Purge,
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..10, 0usize..300, prop::option::of(0u64..60)).prop_map(|(key, len, ttl_ms)| Op::Set { key, len, ttl_ms }),
        4 => (0u8..10).prop_map(|key| Op::Get { key }),
        1 => (0u8..10).prop_map(|key| Op::Remove { key }),
        2 => (0u64..40).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Purge),
        1 => Just(Op::Clear),
    ]
}

struct ModelEntry {
    key: u8,
    value: Arc<[u8]>,
    expires_at: Option<Instant>,
}

impl ModelEntry {
    fn size(&self) -> u64 {
        self.value.len() as u64 + ENTRY_OVERHEAD
    }
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
}

/// The obvious implementation: a vector, most recently used first, scanned linearly.
struct Model {
    entries: Vec<ModelEntry>,
    config: CacheConfig,
    hits: u64,
    misses: u64,
    expirations: u64,
    evictions: u64,
    inserts: u64,
}

impl Model {
    fn bytes(&self) -> u64 {
        self.entries.iter().map(ModelEntry::size).sum()
    }

    fn position(&self, key: u8) -> Option<usize> {
        self.entries.iter().position(|e| e.key == key)
    }

    fn get(&mut self, key: u8, now: Instant) -> Option<Arc<[u8]>> {
        let Some(i) = self.position(key) else {
            self.misses += 1;
            return None;
        };
        let e = self.entries.remove(i);
        if e.expired(now) {
            self.expirations += 1;
            self.misses += 1;
            return None;
        }
        let v = e.value.clone();
        self.entries.insert(0, e);
        self.hits += 1;
        Some(v)
    }

    fn set(&mut self, key: u8, value: Arc<[u8]>, ttl: Option<Duration>, now: Instant) -> bool {
        if let Some(i) = self.position(key) {
            self.entries.remove(i);
        }
        let entry = ModelEntry { key, value, expires_at: ttl.or(self.config.default_ttl).map(|t| now + t) };
        if self.config.max_entries == 0 || entry.size() > self.config.max_bytes {
            return false;
        }
        self.entries.insert(0, entry);
        self.inserts += 1;
        while self.entries.len() > self.config.max_entries || self.bytes() > self.config.max_bytes {
            let old = self.entries.pop().unwrap();
            if old.expired(now) {
                self.expirations += 1;
            } else {
                self.evictions += 1;
            }
        }
        true
    }

    fn purge(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !e.expired(now));
        let n = before - self.entries.len();
        self.expirations += n as u64;
        n
    }

    fn check(&self, cache: &MemoryCache<Arc<[u8]>>) -> Result<(), TestCaseError> {
        let s: CacheStats = cache.stats();
        prop_assert_eq!(
            (s.hits, s.misses, s.expirations, s.evictions, s.inserts),
            (self.hits, self.misses, self.expirations, self.evictions, self.inserts)
        );
        prop_assert_eq!(s.entries, self.entries.len() as u64);
        prop_assert_eq!(s.bytes, self.bytes());
        prop_assert!(s.entries <= self.config.max_entries as u64, "entry budget exceeded");
        prop_assert!(s.bytes <= self.config.max_bytes, "byte budget exceeded");
        let order: Vec<RequestKey> = self.entries.iter().map(|e| k(e.key)).collect();
        prop_assert_eq!(cache.keys_by_recency(), order);
        Ok(())
    }
}

fn k(key: u8) -> RequestKey {
    RequestKey::from_u128(u128::from(key) * 0x0123_4567_89ab_cdef_0011_2233_4455_6677)
}

fn config() -> impl Strategy<Value = CacheConfig> {
    (0usize..7, 0u64..5, 0u64..600, prop::option::of(1u64..50)).prop_map(|(max_entries, n, extra, ttl)| CacheConfig {
        max_entries,
        max_bytes: n * ENTRY_OVERHEAD + extra,
        default_ttl: ttl.map(Duration::from_millis),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn memory_cache_matches_the_reference_model(config in config(), ops in prop::collection::vec(op(), 1..80)) {
        let clock = ManualClock::new();
        let cache: MemoryCache<Arc<[u8]>> = MemoryCache::new(config);
        let mut model = Model { entries: Vec::new(), config, hits: 0, misses: 0, expirations: 0, evictions: 0, inserts: 0 };
        for (n, op) in ops.into_iter().enumerate() {
            let now = clock.now();
            match op {
                Op::Set { key, len, ttl_ms } => {
                    let value: Arc<[u8]> = vec![n as u8; len].into();
                    let ttl = ttl_ms.map(Duration::from_millis);
                    prop_assert_eq!(cache.set(k(key), value.clone(), ttl, now), model.set(key, value, ttl, now));
                }
                Op::Get { key } => {
                    let expected = model.get(key, now);
                    let got = cache.get(&k(key), now);
                    prop_assert_eq!(got, expected);
                }
                Op::Remove { key } => {
                    let expected = model.position(key).map(|i| model.entries.remove(i).value);
                    prop_assert_eq!(cache.remove(&k(key)), expected);
                }
                Op::Advance { ms } => clock.advance(Duration::from_millis(ms)),
                Op::Purge => prop_assert_eq!(cache.purge_expired(now), model.purge(now)),
                Op::Clear => {
                    cache.clear();
                    model.entries.clear();
                }
            }
            model.check(&cache)?;
        }
    }

    /// With several shards each shard keeps its share of the budgets, so the whole stays within them.
    #[test]
    fn sharded_cache_stays_within_budgets(config in config(), shards in 1usize..9, ops in prop::collection::vec(op(), 1..80)) {
        let clock = ManualClock::new();
        let cache: MemoryCache<Arc<[u8]>> = MemoryCache::with_shards(config, shards);
        let n = shards.next_power_of_two() as u64;
        for op in ops {
            let now = clock.now();
            match op {
                Op::Set { key, len, ttl_ms } => {
                    cache.set(k(key), vec![0u8; len].into(), ttl_ms.map(Duration::from_millis), now);
                }
                Op::Get { key } => {
                    if let Some(v) = cache.get(&k(key), now) {
                        prop_assert!(v.len() < 300);
                    }
                }
                Op::Remove { key } => { cache.remove(&k(key)); }
                Op::Advance { ms } => clock.advance(Duration::from_millis(ms)),
                Op::Purge => { cache.purge_expired(now); }
                Op::Clear => cache.clear(),
            }
            let s = cache.stats();
            prop_assert!(s.entries <= (config.max_entries as u64).div_ceil(n) * n);
            prop_assert!(s.bytes <= config.max_bytes.div_ceil(n) * n);
        }
    }

    /// A get at or after the TTL is a miss, whatever happened in between.
    #[test]
    fn get_after_ttl_is_a_miss(ttl_ms in 0u64..1000, wait_ms in 0u64..2000) {
        let clock = ManualClock::new();
        let cache: MemoryCache<Arc<[u8]>> = MemoryCache::new(CacheConfig { max_entries: 4, max_bytes: 1 << 20, default_ttl: None });
        cache.set(k(1), vec![1u8].into(), Some(Duration::from_millis(ttl_ms)), clock.now());
        clock.advance(Duration::from_millis(wait_ms));
        prop_assert_eq!(cache.get(&k(1), clock.now()).is_some(), wait_ms < ttl_ms);
    }
}

#[test]
fn stats_count_hits_misses_and_hit_rate() {
    let clock = ManualClock::new();
    let cache: MemoryCache = MemoryCache::new(CacheConfig { max_entries: 2, max_bytes: 1 << 20, default_ttl: None });
    assert_eq!(cache.stats().hit_rate(), 0.0);
    cache.set(k(1), "a".into(), None, clock.now());
    cache.set(k(2), "b".into(), None, clock.now());
    assert!(cache.get(&k(1), clock.now()).is_some());
    cache.set(k(3), "c".into(), None, clock.now()); // evicts 2, the least recently used
    assert!(cache.get(&k(2), clock.now()).is_none());
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.evictions, s.inserts, s.entries), (1, 1, 1, 3, 2));
    assert_eq!(s.hit_rate(), 0.5);
    assert_eq!(s.bytes, 2 * (1 + ENTRY_OVERHEAD));
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["hit_rate"], 0.5);
    cache.reset_stats();
    assert_eq!(cache.stats().hits, 0);
    assert_eq!(cache.stats().entries, 2);
}

#[test]
fn a_value_larger_than_the_byte_budget_is_not_kept_and_replaces_nothing() {
    let clock = ManualClock::new();
    let cache: MemoryCache = MemoryCache::new(CacheConfig { max_entries: 10, max_bytes: 200, default_ttl: None });
    assert!(cache.set(k(1), "small".into(), None, clock.now()));
    assert!(!cache.set(k(1), vec![0u8; 500].into(), None, clock.now()));
    assert!(cache.get(&k(1), clock.now()).is_none(), "a stale value must not outlive its replacement");
}

#[test]
fn duration_max_keeps_an_entry_until_evicted() {
    let clock = ManualClock::new();
    let cache: MemoryCache =
        MemoryCache::new(CacheConfig { default_ttl: Some(Duration::from_secs(1)), ..CacheConfig::default() });
    cache.set(k(1), "forever".into(), Some(Duration::MAX), clock.now());
    cache.set(k(2), "default".into(), None, clock.now());
    clock.advance(Duration::from_secs(365 * 24 * 3600));
    assert!(cache.get(&k(1), clock.now()).is_some());
    assert!(cache.get(&k(2), clock.now()).is_none());
}
