//! Windows shared through Redis. Each test starts its own `redis-server` on a free loopback port and stops
//! it afterwards; where `redis-server` is missing the skip policy of `gm_testkit::skip` applies.
#![cfg(feature = "redis")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gm_core::{Clock, ManualClock};
use gm_limits::{
    Denied, LimitKey, LimitSpec, Limiter, LimitsConfig, RedisWindows, ServerSignal, StoreAdmission, TokenCount,
    WaitReason, WindowStore,
};
use gm_testkit::RedisServer;

fn key() -> LimitKey {
    LimitKey::for_token("github", "ghp_shared", "openai/gpt-4.1")
}

#[test]
fn two_connections_in_two_threads_never_exceed_the_window_together() {
    let Some(server) = RedisServer::start() else { return };
    let spec = LimitSpec::parse("5/3s,20/1m,margin=0s").unwrap();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (url, spec, clock) = (server.url(), spec.clone(), clock.clone());
            std::thread::spawn(move || {
                let store = RedisWindows::open(&url, "test").unwrap();
                let mut admitted = Vec::new();
                for _ in 0..150 {
                    let at = start + Duration::from_micros(clock.fetch_add(100_000, Ordering::SeqCst));
                    match store.admit(&key(), &spec, 0, at).unwrap() {
                        StoreAdmission::Admitted { .. } => admitted.push(at),
                        StoreAdmission::Wait { until, .. } => assert!(until > at),
                        other => panic!("{other:?}"),
                    }
                }
                admitted
            })
        })
        .collect();
    let mut times: Vec<SystemTime> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    times.sort();
    assert_eq!(times.len(), 20);
    // The store records an admission no earlier than the key's latest, so the recorded times are at least
    // these; checking the callers' times is the stricter test.
    let store = RedisWindows::open(&server.url(), "test").unwrap();
    assert_eq!(store.count(&key(), Duration::from_secs(60), start + Duration::from_secs(30)).unwrap(), 20);
    for (i, &a) in times.iter().enumerate() {
        let within = times[i..].iter().take_while(|&&b| b < a + Duration::from_secs(3)).count();
        assert!(within <= 5, "{within} admissions within 3 s of {a:?}");
    }
}

#[test]
fn two_limiters_share_windows_blocks_and_resets() {
    let Some(server) = RedisServer::start() else { return };
    let config = LimitsConfig::uniform(LimitSpec::parse("3/10s,margin=0s").unwrap());
    let clock = ManualClock::new();
    let open = || Arc::new(RedisWindows::open(&server.url(), "gm:limits").unwrap());
    let a = Limiter::with_store(config.clone(), Arc::new(clock.clone()), open());
    let b = Limiter::with_store(config, Arc::new(clock.clone()), open());
    let k = key();
    let now = clock.now();
    let held = [
        a.try_acquire(&k, TokenCount::ZERO, now).unwrap(),
        b.try_acquire(&k, TokenCount::ZERO, now).unwrap(),
        a.try_acquire(&k, TokenCount::ZERO, now).unwrap(),
    ];
    let Err(Denied::Wait(w)) = b.try_acquire(&k, TokenCount::ZERO, now) else { panic!("admitted a fourth") };
    assert!(matches!(w.reason, WaitReason::Requests(_)), "{w:?}");
    drop(held);
    clock.advance(Duration::from_secs(11));
    let now = clock.now();
    a.observe(
        &k,
        &ServerSignal::new(429).header("retry-after", "30").header("x-ratelimit-type", "UserByModelByDay"),
        now,
    );
    let Err(Denied::Wait(w)) = b.try_acquire(&k, TokenCount::ZERO, now) else { panic!("the block was not shared") };
    assert_eq!(w.reason, WaitReason::Server { daily: true });
    a.reset(&k);
    assert!(b.try_acquire(&k, TokenCount::ZERO, now).is_ok());
}

#[test]
fn token_budgets_are_shared_and_settled() {
    let Some(server) = RedisServer::start() else { return };
    let store = RedisWindows::open(&server.url(), "test").unwrap();
    let other = RedisWindows::open(&server.url(), "test").unwrap();
    let spec = LimitSpec::parse("tpm=1000,margin=0s").unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let StoreAdmission::Admitted { id } = store.admit(&key(), &spec, 800, t).unwrap() else { panic!() };
    let StoreAdmission::Wait { until, reason } = other.admit(&key(), &spec, 300, t).unwrap() else { panic!() };
    assert_eq!(until, t + Duration::from_secs(60));
    assert!(matches!(reason, WaitReason::Tokens(_)));
    store.settle(&key(), id, 500).unwrap();
    assert!(matches!(other.admit(&key(), &spec, 300, t).unwrap(), StoreAdmission::Admitted { .. }));
}

/// Five admissions under 6/1m, one under 2/1s, then 6/1m again: the short window's admission must not make
/// the store forget the minute's history.
#[test]
fn a_shorter_spec_never_cuts_the_history_a_longer_one_counts() {
    let Some(server) = RedisServer::start() else { return };
    let store = RedisWindows::open(&server.url(), "test").unwrap();
    let (long, short) = (LimitSpec::parse("6/1m,margin=0s").unwrap(), LimitSpec::parse("2/1s,margin=0s").unwrap());
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for i in 0..5 {
        let at = t0 + Duration::from_millis(100 * i);
        assert!(matches!(store.admit(&key(), &long, 0, at).unwrap(), StoreAdmission::Admitted { .. }));
    }
    let at = t0 + Duration::from_secs(2);
    assert!(matches!(store.admit(&key(), &short, 0, at).unwrap(), StoreAdmission::Admitted { .. }));
    let later = t0 + Duration::from_secs(4);
    assert!(matches!(store.admit(&key(), &long, 0, later).unwrap(), StoreAdmission::Wait { .. }));
    assert_eq!(store.count(&key(), Duration::from_secs(60), later).unwrap(), 6);
}
