//! The two-tier cache: memory in front of a persistent store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use gm_cache::{Cache, CacheConfig, CacheStats, Error, Origin, PersistentStore, RequestKey, StoredValue};
use gm_core::{Clock, ManualClock};

fn config() -> CacheConfig {
    CacheConfig { max_entries: 100, max_bytes: 1 << 20, default_ttl: Some(Duration::from_secs(3600)) }
}

/// A persistent tier whose every operation fails, as a full disk or a dropped connection would.
#[derive(Debug)]
struct Broken;

fn broken() -> Error {
    Error::Store { store: "sqlite", source: "disk I/O error".into() }
}

impl PersistentStore for Broken {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn get(&self, _: &RequestKey, _: SystemTime) -> Result<Option<StoredValue>, Error> {
        Err(broken())
    }
    fn set(&self, _: RequestKey, _: &[u8], _: Option<Duration>, _: SystemTime) -> Result<(), Error> {
        Err(broken())
    }
    fn remove(&self, _: &RequestKey) -> Result<bool, Error> {
        Err(broken())
    }
    fn clear(&self) -> Result<u64, Error> {
        Err(broken())
    }
    fn purge_expired(&self, _: SystemTime) -> Result<u64, Error> {
        Err(broken())
    }
    fn stats(&self) -> Result<CacheStats, Error> {
        Err(broken())
    }
    fn entries(&self, _: SystemTime) -> Result<Vec<(RequestKey, gm_cache::StoredValue)>, Error> {
        Err(broken())
    }
}

#[tokio::test]
async fn a_broken_persistent_tier_does_not_fail_requests() {
    let clock = ManualClock::new();
    let cache = Cache::with_store(config(), Broken);
    let key = RequestKey::from_u128(1);
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        let got = cache
            .get_or_fetch(key, None, clock.now(), async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Bytes::from("answer"))
            })
            .await
            .unwrap();
        assert_eq!(got.value, Bytes::from("answer"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "memory still serves repeats");
    let s = cache.stats();
    assert_eq!(s.persistent, None);
    assert_eq!(s.persistent_errors, 2, "one failed read and one failed write");
    assert!(cache.get(&RequestKey::from_u128(2), clock.now()).unwrap_err().to_string().contains("without the cache"));
}

#[test]
fn memory_only_cache_counts_hits() {
    let clock = ManualClock::new();
    let cache = Cache::new(config());
    let key = RequestKey::from_u128(1);
    assert!(cache.get(&key, clock.now()).unwrap().is_none());
    cache.set(key, Bytes::from("v"), None, clock.now()).unwrap();
    assert_eq!(cache.get(&key, clock.now()).unwrap().unwrap().origin, Origin::Memory);
    clock.advance(Duration::from_secs(3600));
    assert!(cache.get(&key, clock.now()).unwrap().is_none(), "the default TTL applies");
    let s = cache.stats();
    assert_eq!((s.memory.hits, s.memory.misses, s.persistent_name), (1, 2, None));
    assert!((s.hit_rate - 1.0 / 3.0).abs() < 1e-9);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["memory"]["hits"], 1);
}

#[cfg(feature = "sqlite")]
mod with_sqlite {
    use super::*;
    use gm_cache::SqliteCache;
    use gm_testkit::TempDir;
    use std::sync::Arc;

    /// Opens the cache with the clock's starting instant standing for a fixed wall-clock time, as a
    /// restarted process would see the same wall clock move on.
    fn open(path: &std::path::Path, clock: &ManualClock) -> Cache {
        let store = SqliteCache::open(path, 1 << 20).unwrap();
        let start = clock.now() - clock.elapsed();
        Cache::with_store(config(), store)
            .with_time_anchor(start, SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }

    #[tokio::test]
    async fn a_second_run_after_a_restart_makes_no_request() {
        let dir = TempDir::new("cache-tiered-restart");
        let path = dir.join("gm.sqlite");
        let clock = ManualClock::new();
        let calls = AtomicUsize::new(0);
        let key = RequestKey::from_u128(42);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from("the answer"))
        };
        {
            let cache = open(&path, &clock);
            let first = cache.get_or_fetch(key, Some(Duration::from_secs(600)), clock.now(), fetch()).await.unwrap();
            assert_eq!(first.origin, Origin::Upstream);
        }
        clock.advance(Duration::from_secs(100));
        let cache = open(&path, &clock);
        let second = cache.get_or_fetch(key, None, clock.now(), fetch()).await.unwrap();
        assert_eq!((second.origin, second.value), (Origin::Persistent, Bytes::from("the answer")));
        let third = cache.get_or_fetch(key, None, clock.now(), fetch()).await.unwrap();
        assert_eq!(third.origin, Origin::Memory, "promoted to memory");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // The promoted copy keeps the time the entry had left (600 s from the first run), not a fresh TTL.
        clock.advance(Duration::from_secs(500));
        assert!(cache.get(&key, clock.now()).unwrap().is_none());

        let s = cache.stats();
        let p = s.persistent.unwrap();
        assert_eq!((s.persistent_name, p.hits, p.expirations), (Some("sqlite"), 1, 1));
        assert_eq!((s.memory.hits, s.memory.misses), (1, 2));
    }

    #[test]
    fn clear_empties_both_tiers() {
        let dir = TempDir::new("cache-tiered-clear");
        let clock = ManualClock::new();
        let cache = open(&dir.join("gm.sqlite"), &clock);
        cache.set(RequestKey::from_u128(1), Bytes::from("v"), None, clock.now()).unwrap();
        assert_eq!(cache.stats().persistent.unwrap().entries, 1);
        cache.clear().unwrap();
        assert!(cache.get(&RequestKey::from_u128(1), clock.now()).unwrap().is_none());
        assert_eq!(cache.stats().persistent.unwrap().entries, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_identical_requests_reach_upstream_once() {
        let dir = TempDir::new("cache-tiered-flight");
        let clock = ManualClock::new();
        let cache = Arc::new(open(&dir.join("gm.sqlite"), &clock));
        let calls = Arc::new(AtomicUsize::new(0));
        let (open_gate, gate) = tokio::sync::watch::channel(false);
        let now = clock.now();
        let tasks: Vec<_> = (0..200u128)
            .map(|i| {
                let (cache, calls, mut gate) = (cache.clone(), calls.clone(), gate.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_fetch(RequestKey::from_u128(i % 4), None, now, async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let _ = gate.wait_for(|o| *o).await;
                            Ok::<_, std::io::Error>(Bytes::from(vec![i as u8 % 4; 10]))
                        })
                        .await
                })
            })
            .collect();
        while cache.memory().flights().in_flight() < 4 {
            tokio::task::yield_now().await;
        }
        open_gate.send_replace(true);
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(cache.stats().persistent.unwrap().entries, 4);
    }
}
