//! Windows shared through a SQLite file: connections in different threads (as different processes would)
//! never exceed a window together.
#![cfg(feature = "sqlite")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gm_core::{Clock, ManualClock};
use gm_limits::{
    Denied, LimitKey, LimitSpec, Limiter, LimitsConfig, ServerSignal, SqliteWindows, StoreAdmission, TokenCount,
    WaitReason, WindowStore,
};
use gm_testkit::{child_test, StateFile};

fn key() -> LimitKey {
    LimitKey::for_token("github", "ghp_shared", "openai/gpt-4.1")
}

/// The most admissions within any half-open interval of length `per`.
fn most_within(times: &[SystemTime], per: Duration) -> usize {
    let mut most = 0;
    for (i, &a) in times.iter().enumerate() {
        let n = times[i..].iter().take_while(|&&b| b < a + per).count();
        most = most.max(n);
    }
    most
}

#[test]
fn two_connections_in_two_threads_never_exceed_the_window_together() {
    let file = StateFile::new("limits-threads");
    let spec = LimitSpec::parse("5/3s,20/1m,margin=0s").unwrap();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // A shared clock in microseconds that every attempt moves forward by 100 ms.
    let clock = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (path, spec, clock) = (file.to_path_buf(), spec.clone(), clock.clone());
            std::thread::spawn(move || {
                let store = SqliteWindows::open(&path).unwrap();
                let mut admitted = 0;
                for _ in 0..150 {
                    let at = start + Duration::from_micros(clock.fetch_add(100_000, Ordering::SeqCst));
                    match store.admit(&key(), &spec, 0, at).unwrap() {
                        StoreAdmission::Admitted { .. } => admitted += 1,
                        StoreAdmission::Wait { until, reason } => {
                            assert!(until > at, "{reason:?}");
                        }
                        other => panic!("{other:?}"),
                    }
                }
                admitted
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let store = SqliteWindows::open(file.path()).unwrap();
    let times: Vec<SystemTime> = store.admissions(&key()).unwrap().into_iter().map(|(t, _)| t).collect();
    assert!(most_within(&times, Duration::from_secs(3)) <= 5, "{times:?}");
    assert!(most_within(&times, Duration::from_secs(60)) <= 20);
    // 300 attempts over 30 s: the minute window allows 20, and the shared windows let them all through.
    assert_eq!(admitted, 20);
    assert_eq!(store.keys().unwrap(), vec![key()]);
}

#[test]
fn two_limiters_share_windows_blocks_and_resets() {
    let file = StateFile::new("limits-limiters");
    let config = LimitsConfig::uniform(LimitSpec::parse("3/10s,margin=0s").unwrap());
    let clock = ManualClock::new();
    let a = Limiter::with_store(
        config.clone(),
        Arc::new(clock.clone()),
        Arc::new(SqliteWindows::open(file.path()).unwrap()),
    );
    let b = Limiter::with_store(config, Arc::new(clock.clone()), Arc::new(SqliteWindows::open(file.path()).unwrap()));
    let k = key();
    let now = clock.now();
    let p1 = a.try_acquire(&k, TokenCount::ZERO, now).unwrap();
    let p2 = b.try_acquire(&k, TokenCount::ZERO, now).unwrap();
    let p3 = a.try_acquire(&k, TokenCount::ZERO, now).unwrap();
    // B has admitted only one itself, but the shared window is full.
    let Err(Denied::Wait(w)) = b.try_acquire(&k, TokenCount::ZERO, now) else { panic!("admitted a fourth") };
    assert_eq!(w.reason, WaitReason::Requests(gm_limits::Window::new(3, Duration::from_secs(10))));
    let wait = w.after(now).unwrap();
    assert!(wait > Duration::from_millis(9_900) && wait <= Duration::from_secs(10), "{wait:?}");
    drop((p1, p2, p3));
    // After the window, both may go again; a 429 seen by one blocks the other.
    clock.advance(Duration::from_secs(11));
    let now = clock.now();
    a.observe(&k, &ServerSignal::new(429).header("retry-after", "30"), now);
    let Err(Denied::Wait(w)) = b.try_acquire(&k, TokenCount::ZERO, now) else { panic!("the block was not shared") };
    assert_eq!(w.reason, WaitReason::Server { daily: false });
    a.reset(&k);
    assert!(b.try_acquire(&k, TokenCount::ZERO, now).is_ok());
}

#[test]
fn the_concurrency_cap_is_shared_and_a_lost_lease_lapses() {
    let file = StateFile::new("limits-leases");
    let config = LimitsConfig::uniform(LimitSpec::parse("100/1m,concurrency=2,margin=0s").unwrap());
    let clock = ManualClock::new();
    let a = Limiter::with_store(
        config.clone(),
        Arc::new(clock.clone()),
        Arc::new(SqliteWindows::open(file.path()).unwrap()),
    );
    let b = Limiter::with_store(config, Arc::new(clock.clone()), Arc::new(SqliteWindows::open(file.path()).unwrap()));
    let k = key();
    let now = clock.now();
    let in_a = a.try_acquire(&k, TokenCount::ZERO, now).unwrap();
    let in_b = b.try_acquire(&k, TokenCount::ZERO, now).unwrap();
    // A has one request in flight itself, but two are in flight between the two.
    let Err(Denied::Wait(w)) = a.try_acquire(&k, TokenCount::ZERO, now) else { panic!("a third was admitted") };
    assert_eq!(w.reason, WaitReason::Concurrency(2));
    assert!(w.after(now).unwrap() <= gm_limits::store::LEASE_POLL, "{w:?}");
    // When B's request ends, A may send another.
    drop(in_b);
    let again = a.try_acquire(&k, TokenCount::ZERO, now).unwrap();
    // A request whose process died never ends its lease; the lease lapses instead.
    std::mem::forget(again);
    assert!(b.try_acquire(&k, TokenCount::ZERO, now).is_err());
    drop(in_a);
    clock.advance(gm_limits::store::LEASE + Duration::from_secs(1));
    let now = clock.now();
    let _one = b.try_acquire(&k, TokenCount::ZERO, now).unwrap();
    let _two = b.try_acquire(&k, TokenCount::ZERO, now).unwrap();
}

#[test]
fn an_unlimited_key_leaves_no_admission_in_the_store() {
    let file = StateFile::new("limits-unlimited");
    let clock = ManualClock::new();
    let store = Arc::new(SqliteWindows::open(file.path()).unwrap());
    // Per-request token caps are checked here, in the process: the store counts nothing for them either.
    let config = LimitsConfig::uniform(LimitSpec::parse("tokens-in=100000").unwrap());
    for config in [LimitsConfig::default(), config] {
        let limiter = Limiter::with_store(config, Arc::new(clock.clone()), store.clone());
        for _ in 0..50 {
            drop(limiter.try_acquire(&key(), TokenCount::ZERO, clock.now()).unwrap());
            clock.advance(Duration::from_millis(10));
        }
    }
    assert_eq!(store.admissions(&key()).unwrap(), vec![]);
    assert_eq!(store.keys().unwrap(), vec![]);
    // A 429 still blocks the key in this process, and is recorded for the processes that count it.
    let limiter = Limiter::with_store(LimitsConfig::default(), Arc::new(clock.clone()), store.clone());
    limiter.observe(&key(), &ServerSignal::new(429).header("retry-after", "30"), clock.now());
    let Err(Denied::Wait(w)) = limiter.try_acquire(&key(), TokenCount::ZERO, clock.now()) else { panic!() };
    assert_eq!(w.reason, WaitReason::Server { daily: false });
    assert_eq!(store.keys().unwrap(), vec![key()]);
}

#[test]
fn token_budgets_are_shared_and_settled() {
    let file = StateFile::new("limits-tokens");
    let store = SqliteWindows::open(file.path()).unwrap();
    let other = SqliteWindows::open(file.path()).unwrap();
    let spec = LimitSpec::parse("tpm=1000,margin=0s").unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let StoreAdmission::Admitted { id } = store.admit(&key(), &spec, 800, t).unwrap() else { panic!() };
    let StoreAdmission::Wait { until, .. } = other.admit(&key(), &spec, 300, t).unwrap() else { panic!() };
    assert_eq!(until, t + Duration::from_secs(60));
    store.settle(&key(), id, 500).unwrap();
    assert!(matches!(other.admit(&key(), &spec, 300, t).unwrap(), StoreAdmission::Admitted { .. }));
    assert_eq!(other.count(&key(), Duration::from_secs(60), t).unwrap(), 2);
}

/// Run by [`two_processes_never_exceed_the_window_together`] in child processes.
#[test]
#[ignore = "a child process of two_processes_never_exceed_the_window_together, which runs it"]
fn child_process_admits_for_its_parent() {
    let path = std::env::var_os("GM_LIMITS_TEST_CHILD_STATE").expect("set by its parent test");
    let store = SqliteWindows::open(PathBuf::from(path)).unwrap();
    let spec = LimitSpec::parse("5/3s,margin=0s").unwrap();
    for _ in 0..200 {
        store.admit(&key(), &spec, 0, SystemTime::now()).unwrap();
    }
}

#[test]
fn two_processes_never_exceed_the_window_together() {
    let file = StateFile::new("limits-processes");
    // Create the tables before the children race to.
    drop(SqliteWindows::open(file.path()).unwrap());
    let children: Vec<_> = (0..2)
        .map(|_| {
            child_test("child_process_admits_for_its_parent")
                .env("GM_LIMITS_TEST_CHILD_STATE", file.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = SqliteWindows::open(file.path()).unwrap();
    let times: Vec<SystemTime> = store.admissions(&key()).unwrap().into_iter().map(|(t, _)| t).collect();
    assert!(!times.is_empty());
    assert!(most_within(&times, Duration::from_secs(3)) <= 5, "{times:?}");
}

/// Run by [`a_killed_process_leaves_no_lease_that_counts`] in a child process: takes the only slot of a
/// concurrency cap of one and exits without giving it back, as a killed process would.
#[test]
#[ignore = "a child process of a_killed_process_leaves_no_lease_that_counts, which runs it"]
fn child_process_takes_a_slot_and_dies() {
    let path = std::env::var_os("GM_LIMITS_TEST_LEASE_STATE").expect("set by its parent test");
    let store = SqliteWindows::open(PathBuf::from(path)).unwrap();
    let spec = LimitSpec::parse("100/1m,concurrency=1,margin=0s").unwrap();
    assert!(matches!(store.admit(&key(), &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Admitted { .. }));
    std::process::exit(0);
}

#[test]
fn a_killed_process_leaves_no_lease_that_counts() {
    let file = StateFile::new("limits-dead-lease");
    let spec = LimitSpec::parse("100/1m,concurrency=1,margin=0s").unwrap();
    let store = SqliteWindows::open(file.path()).unwrap();
    // A live holder (this process) keeps the slot.
    assert!(matches!(store.admit(&key(), &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Admitted { .. }));
    assert!(matches!(store.admit(&key(), &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Wait { .. }));
    store.reset(&key()).unwrap();
    let out = child_test("child_process_takes_a_slot_and_dies")
        .env("GM_LIMITS_TEST_LEASE_STATE", file.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The child is gone, its lease with it: the slot is free long before the lease would lapse.
    assert!(matches!(store.admit(&key(), &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Admitted { .. }));
}

/// Five admissions under 6/1m, one under 2/1s, then 6/1m again: the short window's admission must not make
/// the store forget the minute's history, so the minute is full and the count says six.
#[test]
fn a_shorter_spec_never_cuts_the_history_a_longer_one_counts() {
    let file = StateFile::new("limits-horizon");
    let store = SqliteWindows::open(&file).unwrap();
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

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "proptest-regressions/sqlite.txt",
        ))),
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// The store admits exactly when every window of the spec in force has fewer than N admissions within
    /// its length, counting every earlier admission of the key whatever spec it passed under.
    #[test]
    fn the_store_keeps_the_guarantee_when_specs_change(
        specs in proptest::collection::vec(
            proptest::collection::vec((1u64..6, 1u64..4000), 1..4), 2..4),
        ops in proptest::collection::vec((0u64..1500, 0usize..4), 1..80),
    ) {
        use proptest::prelude::*;
        let specs: Vec<LimitSpec> = specs
            .into_iter()
            .map(|ws| {
                let mut spec = LimitSpec { margin: Some(gm_limits::Margin::ZERO), ..LimitSpec::default() };
                for (n, ms) in ws {
                    if !spec.windows.iter().any(|w| w.per == Duration::from_millis(ms)) {
                        spec.windows.push(gm_limits::Window::new(n, Duration::from_millis(ms)));
                    }
                }
                spec
            })
            .collect();
        let file = StateFile::new("limits-changing");
        let store = SqliteWindows::open(&file).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut now = t0;
        let mut admitted: Vec<SystemTime> = Vec::new();
        for (gap, pick) in ops {
            now += Duration::from_millis(gap);
            let spec = &specs[pick % specs.len()];
            let allowed = spec.windows.iter().all(|w| {
                admitted.iter().filter(|&&a| a <= now && a + w.per > now).count() < w.limit as usize
            });
            match store.admit(&key(), spec, 0, now).unwrap() {
                StoreAdmission::Admitted { .. } => {
                    prop_assert!(allowed, "admitted at {:?} under {} though a window was full", now.duration_since(t0), spec);
                    admitted.push(now);
                }
                StoreAdmission::Wait { until, .. } => {
                    prop_assert!(!allowed, "delayed at {:?} under {} though every window allowed it", now.duration_since(t0), spec);
                    prop_assert!(until > now);
                }
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
