//! What every shared window store guarantees, whichever server or file keeps its windows: the tests of
//! `redis.rs` and `sqlite.rs` run each check against their store, given a way to open a connection to it.

// Each test binary uses the checks its store has.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gm_core::{Clock, ManualClock};
use gm_limits::{
    Denied, LimitKey, LimitSpec, Limiter, LimitsConfig, ServerSignal, StoreAdmission, TokenCount, WaitReason, Window,
    WindowStore,
};

/// The key every check admits under.
pub fn key() -> LimitKey {
    LimitKey::for_token("github", "ghp_shared", "openai/gpt-4.1")
}

/// An instant far from the epoch, where the checks that keep their own time start.
pub fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// The most admissions within any half-open interval of length `per`.
pub fn most_within(times: &[SystemTime], per: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    (0..sorted.len()).map(|i| sorted[i..].iter().take_while(|&&b| b < sorted[i] + per).count()).max().unwrap_or(0)
}

/// Two threads, each with a connection of its own (as two processes would have), make 300 attempts over 30 s
/// under 5/3s and 20/1m: together they never pass either window, and the minute lets exactly 20 through.
/// Returns the instants of the admissions, as the callers saw them.
pub fn two_connections_never_exceed_the_window_together<S: WindowStore + 'static>(
    open: impl Fn() -> S + Send + Sync + 'static,
) -> Vec<SystemTime> {
    let spec = LimitSpec::parse("5/3s,20/1m,margin=0s").unwrap();
    // A shared clock in microseconds that every attempt moves forward by 100 ms.
    let clock = Arc::new(AtomicU64::new(0));
    let open = Arc::new(open);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (open, spec, clock) = (open.clone(), spec.clone(), clock.clone());
            std::thread::spawn(move || {
                let store = open();
                let mut admitted = Vec::new();
                for _ in 0..150 {
                    let at = start() + Duration::from_micros(clock.fetch_add(100_000, Ordering::SeqCst));
                    match store.admit(&key(), &spec, 0, at).unwrap() {
                        StoreAdmission::Admitted { .. } => admitted.push(at),
                        StoreAdmission::Wait { until, reason } => assert!(until > at, "{reason:?}"),
                        other => panic!("{other:?}"),
                    }
                }
                admitted
            })
        })
        .collect();
    let times: Vec<SystemTime> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    // The store records an admission no earlier than the key's latest, so the recorded instants are at least
    // these; checking the callers' instants is the stricter test.
    assert!(most_within(&times, Duration::from_secs(3)) <= 5, "{times:?}");
    assert!(most_within(&times, Duration::from_secs(60)) <= 20, "{times:?}");
    assert_eq!(times.len(), 20, "the shared windows let every allowed attempt through");
    assert_eq!(open().count(&key(), Duration::from_secs(60), start() + Duration::from_secs(30)).unwrap(), 20);
    times
}

/// Two limiters under `spec`, on one clock, each with a connection of its own to the store.
pub fn two_limiters(spec: &str, clock: &ManualClock, open: impl Fn() -> Arc<dyn WindowStore>) -> (Limiter, Limiter) {
    let config = LimitsConfig::uniform(LimitSpec::parse(spec).unwrap());
    let a = Limiter::with_store(config.clone(), Arc::new(clock.clone()), open());
    (a, Limiter::with_store(config, Arc::new(clock.clone()), open()))
}

/// Two limiters on one store under 3/10s: a window filled by both holds the fourth, a 429 one of them sees
/// (for the day or not) blocks the other, and a reset by one frees the other.
pub fn two_limiters_share_windows_blocks_and_resets(open: impl Fn() -> Arc<dyn WindowStore>) {
    let clock = ManualClock::new();
    let (a, b) = two_limiters("3/10s,margin=0s", &clock, open);
    let k = key();
    let now = clock.now();
    let held = [
        a.try_acquire(&k, TokenCount::ZERO, now).unwrap(),
        b.try_acquire(&k, TokenCount::ZERO, now).unwrap(),
        a.try_acquire(&k, TokenCount::ZERO, now).unwrap(),
    ];
    // B has admitted only one itself, but the shared window is full.
    let Err(Denied::Wait(w)) = b.try_acquire(&k, TokenCount::ZERO, now) else { panic!("admitted a fourth") };
    assert_eq!(w.reason, WaitReason::Requests(Window::new(3, Duration::from_secs(10))));
    let wait = w.after(now).unwrap();
    assert!(wait > Duration::from_millis(9_900) && wait <= Duration::from_secs(10), "{wait:?}");
    drop(held);
    // After the window, both may go again; a 429 seen by one blocks the other.
    clock.advance(Duration::from_secs(11));
    let now = clock.now();
    for (signal, daily) in [
        (ServerSignal::new(429).header("retry-after", "30"), false),
        (ServerSignal::new(429).header("retry-after", "30").header("x-ratelimit-type", "UserByModelByDay"), true),
    ] {
        a.observe(&k, &signal, now);
        let Err(Denied::Wait(w)) = b.try_acquire(&k, TokenCount::ZERO, now) else { panic!("the block was not shared") };
        assert_eq!(w.reason, WaitReason::Server { daily });
        a.reset(&k);
        assert!(b.try_acquire(&k, TokenCount::ZERO, now).is_ok());
    }
}

/// A token budget (1,000 a minute) counted by two connections: a reservation by one holds the other's until
/// the minute is over, and settling it at the tokens used lets the other through.
pub fn token_budgets_are_shared_and_settled<S: WindowStore>(open: impl Fn() -> S) {
    let (store, other) = (open(), open());
    let spec = LimitSpec::parse("tpm=1000,margin=0s").unwrap();
    let t = start();
    let StoreAdmission::Admitted { id } = store.admit(&key(), &spec, 800, t).unwrap() else { panic!() };
    let StoreAdmission::Wait { until, reason } = other.admit(&key(), &spec, 300, t).unwrap() else { panic!() };
    assert_eq!(until, t + Duration::from_secs(60));
    assert!(matches!(reason, WaitReason::Tokens(_)), "{reason:?}");
    store.settle(&key(), id, 500).unwrap();
    assert!(matches!(other.admit(&key(), &spec, 300, t).unwrap(), StoreAdmission::Admitted { .. }));
    assert_eq!(other.count(&key(), Duration::from_secs(60), t).unwrap(), 2);
}

/// Five admissions under 6/1m, one under 2/1s, then 6/1m again: the short window's admission must not make
/// the store forget the minute's history, so the minute is full and the count says six.
pub fn a_shorter_spec_never_cuts_the_history_a_longer_one_counts(store: &dyn WindowStore) {
    let (long, short) = (LimitSpec::parse("6/1m,margin=0s").unwrap(), LimitSpec::parse("2/1s,margin=0s").unwrap());
    let t0 = start();
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
