//! Single-flight: identical concurrent requests make one upstream call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gm_cache::{CacheConfig, MemoryCache, Origin, RequestKey, SingleFlight};
use tokio::sync::watch;

#[derive(Debug, PartialEq)]
struct Upstream(&'static str);

fn cache() -> Arc<MemoryCache> {
    Arc::new(MemoryCache::new(CacheConfig { max_entries: 1000, max_bytes: 1 << 20, default_ttl: None }))
}

/// A gate the fetches wait on, so every caller is in flight before any fetch finishes.
fn gate() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

async fn pass(mut gate: watch::Receiver<bool>) {
    let _ = gate.wait_for(|open| *open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_callers_on_ten_keys_make_ten_upstream_calls() {
    let cache = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let (open, gate) = gate();
    let now = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..1000u128 {
        let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let key = RequestKey::from_u128(i % 10);
            cache
                .get_or_fetch(key, None, now, async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    pass(gate).await;
                    Ok::<_, Upstream>(Bytes::from(format!("answer {}", i % 10)))
                })
                .await
                .map(|f| (i % 10, f))
        }));
    }
    // Let the callers pile up behind the ten leaders before any leader may finish.
    while cache.flights().in_flight() < 10 {
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    open.send_replace(true);
    let mut upstream = 0;
    for t in tasks {
        let (k, fetched) = t.await.unwrap().unwrap();
        assert_eq!(fetched.value, Bytes::from(format!("answer {k}")));
        upstream += usize::from(fetched.origin == Origin::Upstream);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    assert_eq!(upstream, 10);
    assert_eq!(cache.flights().in_flight(), 0);
    let s = cache.stats();
    assert_eq!(s.hits + s.misses, 1000);
    assert_eq!((s.inserts, s.entries), (10, 10));
}

#[tokio::test]
async fn an_error_reaches_every_waiter_and_is_not_cached() {
    let cache = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let (open, gate) = gate();
    let key = RequestKey::from_u128(1);
    let now = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_fetch(key, None, now, async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    pass(gate).await;
                    Err::<Bytes, _>(Upstream("rate limited"))
                })
                .await
        }));
    }
    while cache.flights().in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    open.send_replace(true);
    let mut errors = Vec::new();
    for t in tasks {
        errors.push(t.await.unwrap().unwrap_err());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(errors.iter().all(|e| **e == Upstream("rate limited")));
    assert!(errors.iter().all(|e| Arc::ptr_eq(e, &errors[0])), "one error, shared");
    assert!(cache.is_empty());

    // The next call tries again.
    let ok = cache.get_or_fetch(key, None, now, async { Ok::<_, Upstream>(Bytes::from("fine")) }).await.unwrap();
    assert_eq!(ok.origin, Origin::Upstream);
}

#[tokio::test]
async fn a_lone_leader_gets_its_error_back_by_value() {
    let flights = SingleFlight::new();
    let err = flights.run::<u32, _, _>(RequestKey::from_u128(1), async { Err(Upstream("boom")) }).await.unwrap_err();
    assert_eq!(Arc::try_unwrap(err).unwrap(), Upstream("boom"));
}

#[tokio::test]
async fn a_cancelled_leader_hands_over_to_a_waiting_caller() {
    let cache = cache();
    let calls = Arc::new(AtomicUsize::new(0));
    let key = RequestKey::from_u128(9);
    let now = Instant::now();

    let leader = {
        let (cache, calls) = (cache.clone(), calls.clone());
        tokio::spawn(async move {
            cache
                .get_or_fetch(key, None, now, async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<Result<Bytes, Upstream>>().await
                })
                .await
        })
    };
    while cache.flights().in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let followers: Vec<_> = (0..5)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_or_fetch(key, None, now, async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Upstream>(Bytes::from("from a follower"))
                    })
                    .await
            })
        })
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(followers.iter().all(|f| !f.is_finished()), "followers wait for the leader");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let mut origins = Vec::new();
    for f in followers {
        let fetched = f.await.unwrap().unwrap();
        assert_eq!(fetched.value, Bytes::from("from a follower"));
        origins.push(fetched.origin);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "exactly one follower took over");
    assert_eq!(origins.iter().filter(|o| **o == Origin::Upstream).count(), 1);
    assert_eq!(cache.flights().in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_leader_dropped_by_a_timeout_does_not_strand_the_others() {
    let flights = Arc::new(SingleFlight::new());
    let key = RequestKey::from_u128(3);
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = {
        let (flights, calls) = (flights.clone(), calls.clone());
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(30),
                flights.run(key, async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<Result<u32, Upstream>>().await
                }),
            )
            .await
        })
    };
    while flights.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let waiter = {
        let (flights, calls) = (flights.clone(), calls.clone());
        tokio::spawn(async move {
            flights
                .run(key, async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Upstream>(7)
                })
                .await
        })
    };
    assert!(slow.await.unwrap().is_err(), "the leader timed out");
    let got = waiter.await.unwrap().unwrap();
    assert_eq!((got.value, got.origin), (7, Origin::Upstream));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_leader_does_not_strand_the_others() {
    let flights = Arc::new(SingleFlight::new());
    let key = RequestKey::from_u128(4);
    let (open, gate) = gate();
    let leader = {
        let flights = flights.clone();
        tokio::spawn(async move {
            flights
                .run(key, async move {
                    pass(gate).await;
                    if true {
                        panic!("leader failed");
                    }
                    Ok::<u32, Upstream>(0)
                })
                .await
        })
    };
    while flights.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let waiter = {
        let flights = flights.clone();
        tokio::spawn(async move { flights.run(key, async { Ok::<_, Upstream>(5) }).await })
    };
    open.send_replace(true);
    assert!(leader.await.unwrap_err().is_panic());
    assert_eq!(waiter.await.unwrap().unwrap().value, 5);
    assert_eq!(flights.in_flight(), 0);
}

#[tokio::test]
async fn hits_skip_the_fetch_entirely() {
    let cache = cache();
    let now = Instant::now();
    let key = RequestKey::from_u128(5);
    cache.set(key, Bytes::from("cached"), None, now);
    let got = cache
        .get_or_fetch(key, None, now, async { panic!("must not fetch") as Result<Bytes, Upstream> })
        .await
        .unwrap();
    assert_eq!((got.origin, got.value), (Origin::Memory, Bytes::from("cached")));
    assert_eq!(cache.stats().hits, 1);
}

/// The client spawns requests on a multi-threaded runtime, so the caches and their futures must be `Send`.
#[test]
fn caches_and_their_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let memory = cache();
    let tiered = gm_cache::Cache::new(CacheConfig::default());
    let flights = SingleFlight::new();
    send_sync(&memory);
    send_sync(&tiered);
    send_sync(&flights);
    let now = Instant::now();
    let key = RequestKey::from_u128(1);
    send(memory.get_or_fetch(key, None, now, async { Ok::<_, Upstream>(Bytes::new()) }));
    send(tiered.get_or_fetch(key, None, now, async { Ok::<_, Upstream>(Bytes::new()) }));
    send(flights.run(key, async { Ok::<_, Upstream>(1u8) }));
}
