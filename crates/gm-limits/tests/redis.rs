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
use gm_testkit::{child_test, RedisServer};

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

#[test]
fn the_concurrency_cap_is_shared_and_renewed_while_held() {
    let Some(server) = RedisServer::start() else { return };
    let lease = Duration::from_secs(10);
    let a = RedisWindows::open_with_lease(&server.url(), "test", lease).unwrap();
    let b = RedisWindows::open_with_lease(&server.url(), "test", lease).unwrap();
    let spec = LimitSpec::parse("concurrency=2,margin=0s").unwrap();
    // The stores' own threads renew with the wall clock, which only lengthens leases from now on.
    // (In whole seconds, since the store keeps microseconds.)
    let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs());
    let StoreAdmission::Admitted { id: in_a } = a.admit(&key(), &spec, 0, t).unwrap() else { panic!() };
    let StoreAdmission::Admitted { id: in_b } = b.admit(&key(), &spec, 0, t).unwrap() else { panic!() };
    // One in flight in each, two in all: a third waits, and looks again shortly.
    let StoreAdmission::Wait { until, reason } = a.admit(&key(), &spec, 0, t).unwrap() else { panic!("a third") };
    assert_eq!((until, reason), (t + gm_limits::store::LEASE_POLL, WaitReason::Concurrency(2)));
    assert_eq!(a.in_flight(&key(), t).unwrap(), 2);
    // When B's request ends, A may send another.
    b.release(&key(), in_b).unwrap();
    let StoreAdmission::Admitted { .. } = a.admit(&key(), &spec, 0, t).unwrap() else { panic!("slot not freed") };
    a.release(&key(), in_a).unwrap();
    // A renews the lease it still holds, so it outlasts its first term.
    a.renew(t + Duration::from_secs(8)).unwrap();
    let later = t + Duration::from_secs(15);
    assert_eq!(b.in_flight(&key(), later).unwrap(), 1);
    let StoreAdmission::Admitted { .. } = b.admit(&key(), &spec, 0, later).unwrap() else { panic!() };
    assert!(matches!(b.admit(&key(), &spec, 0, later).unwrap(), StoreAdmission::Wait { .. }));
    // A lease nobody renews lapses: A's after its renewed term, B's after its own.
    let StoreAdmission::Admitted { .. } = b.admit(&key(), &spec, 0, t + Duration::from_secs(19)).unwrap() else {
        panic!("the renewed lease did not lapse")
    };
    assert_eq!(b.in_flight(&key(), t + Duration::from_secs(30)).unwrap(), 0);
}

#[test]
fn limiters_share_the_cap_through_redis() {
    let Some(server) = RedisServer::start() else { return };
    let config = LimitsConfig::uniform(LimitSpec::parse("concurrency=1,margin=0s").unwrap());
    let clock = ManualClock::new();
    let open = || Arc::new(RedisWindows::open(&server.url(), "gm:limits").unwrap());
    let a = Limiter::with_store(config.clone(), Arc::new(clock.clone()), open());
    let b = Limiter::with_store(config, Arc::new(clock.clone()), open());
    let now = clock.now();
    let held = a.try_acquire(&key(), TokenCount::ZERO, now).unwrap();
    let Err(Denied::Wait(w)) = b.try_acquire(&key(), TokenCount::ZERO, now) else { panic!("admitted a second") };
    assert_eq!(w.reason, WaitReason::Concurrency(1));
    drop(held);
    assert!(b.try_acquire(&key(), TokenCount::ZERO, now).is_ok());
}

/// Run by [`a_killed_holders_lease_lapses`] in a child process: takes the only slot of a concurrency cap of
/// one, says so, and waits to be killed.
#[test]
#[ignore = "a child process of a_killed_holders_lease_lapses, which runs it"]
fn child_process_holds_a_slot_until_killed() {
    let url = std::env::var("GM_LIMITS_TEST_REDIS").expect("set by its parent test");
    let store = RedisWindows::open_with_lease(&url, "test", Duration::from_secs(60)).unwrap();
    let spec = LimitSpec::parse("concurrency=1,margin=0s").unwrap();
    assert!(matches!(store.admit(&key(), &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Admitted { .. }));
    println!("holding");
    loop {
        std::thread::park();
    }
}

#[test]
fn a_killed_holders_lease_lapses() {
    use std::io::BufRead;
    let Some(server) = RedisServer::start() else { return };
    let mut child = child_test("child_process_holds_a_slot_until_killed")
        .arg("--nocapture")
        .env("GM_LIMITS_TEST_REDIS", server.url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("holding")), "the child never took the slot");
    let now = SystemTime::now();
    child.kill().unwrap(); // SIGKILL: nothing ends the lease
    child.wait().unwrap();
    let store = RedisWindows::open(&server.url(), "test").unwrap();
    let spec = LimitSpec::parse("concurrency=1,margin=0s").unwrap();
    let StoreAdmission::Wait { reason, .. } = store.admit(&key(), &spec, 0, now).unwrap() else {
        panic!("the killed process's lease did not count")
    };
    assert_eq!(reason, WaitReason::Concurrency(1));
    // Nobody renews the dead process's lease, so once its term is over the slot is free.
    let after = now + Duration::from_secs(61);
    assert_eq!(store.in_flight(&key(), after).unwrap(), 0);
    assert!(matches!(store.admit(&key(), &spec, 0, after).unwrap(), StoreAdmission::Admitted { .. }));
}
