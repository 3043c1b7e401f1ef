//! Windows shared through a SQLite file: connections in different threads (as different processes would)
//! never exceed a window together.
#![cfg(feature = "sqlite")]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gm_core::{Clock, ManualClock};
use gm_limits::{
    BlockAdmission, BlockWant, Denied, LimitError, LimitKey, LimitSpec, Limiter, LimitsConfig, ServerSignal,
    SqliteWindows, StoreAdmission, TokenCount, WaitReason, WindowStore,
};
use gm_testkit::{child_test, StateFile};

mod stores;
use stores::{key, most_within};

/// A connection to the state file at `path`, for the checks that open several.
fn opener(path: &std::path::Path) -> impl Fn() -> Arc<dyn WindowStore> + '_ {
    move || Arc::new(SqliteWindows::open(path).unwrap())
}

#[test]
fn two_connections_in_two_threads_never_exceed_the_window_together() {
    let file = StateFile::new("limits-threads");
    let path = file.to_path_buf();
    stores::two_connections_never_exceed_the_window_together(move || SqliteWindows::open(&path).unwrap());
    // What the file recorded keeps the windows too, under the one key.
    let store = SqliteWindows::open(file.path()).unwrap();
    let times: Vec<SystemTime> = store.admissions(&key()).unwrap().into_iter().map(|(t, _)| t).collect();
    assert!(most_within(&times, Duration::from_secs(3)) <= 5, "{times:?}");
    assert!(most_within(&times, Duration::from_secs(60)) <= 20);
    assert_eq!(store.keys().unwrap(), vec![key()]);
}

#[test]
fn two_limiters_share_windows_blocks_and_resets() {
    let file = StateFile::new("limits-limiters");
    stores::two_limiters_share_windows_blocks_and_resets(opener(file.path()));
}

#[test]
fn the_concurrency_cap_is_shared_and_a_lost_lease_lapses() {
    let file = StateFile::new("limits-leases");
    let clock = ManualClock::new();
    let (a, b) = stores::two_limiters("100/1m,concurrency=2,margin=0s", &clock, opener(file.path()));
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
    stores::token_budgets_are_shared_and_settled(|| SqliteWindows::open(file.path()).unwrap());
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
    // A live holder (this process) keeps the slot, through a reset, until it ends its lease.
    let StoreAdmission::Admitted { id } = store.admit(&key(), &spec, 0, SystemTime::now()).unwrap() else {
        panic!("the first request waits")
    };
    store.reset(&key()).unwrap();
    assert!(matches!(store.admit(&key(), &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Wait { .. }));
    store.release(&key(), id).unwrap();
    let out = child_test("child_process_takes_a_slot_and_dies")
        .env("GM_LIMITS_TEST_LEASE_STATE", file.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The child is gone, its lease with it: the slot is free long before the lease would lapse.
    assert!(matches!(store.admit(&key(), &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Admitted { .. }));
}

#[test]
fn a_shorter_spec_never_cuts_the_history_a_longer_one_counts() {
    let file = StateFile::new("limits-horizon");
    stores::a_shorter_spec_never_cuts_the_history_a_longer_one_counts(&SqliteWindows::open(&file).unwrap());
}

/// A file whose admissions were recorded before they were numbered: opening it numbers them, and its windows
/// count them as before.
#[test]
fn admissions_recorded_before_numbering_still_count() {
    let file = StateFile::new("limits-unnumbered");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let us = |t: SystemTime| i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros()).unwrap();
    {
        let conn = rusqlite::Connection::open(file.path()).unwrap();
        conn.execute_batch(
            "CREATE TABLE limits_admissions (
                 id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, at_us INTEGER NOT NULL,
                 tokens INTEGER NOT NULL DEFAULT 0
             );
             CREATE INDEX limits_admissions_key_at ON limits_admissions(key, at_us);",
        )
        .unwrap();
        // Three admissions of the key and one of another, out of order by id.
        for (k, ms) in [(key(), 200), (LimitKey::anonymous("github", "other"), 250), (key(), 100), (key(), 300)] {
            conn.execute(
                "INSERT INTO limits_admissions (key, at_us) VALUES (?1, ?2)",
                rusqlite::params![k.to_string(), us(t0 + Duration::from_millis(ms))],
            )
            .unwrap();
        }
    }
    let store = SqliteWindows::open(&file).unwrap();
    let spec = LimitSpec::parse("4/10s,margin=0s").unwrap();
    let at = t0 + Duration::from_secs(1);
    assert!(matches!(store.admit(&key(), &spec, 0, at).unwrap(), StoreAdmission::Admitted { .. }));
    // Four within 10 s now: the next waits until the oldest (100 ms) is 10 s old.
    let StoreAdmission::Wait { until, .. } = store.admit(&key(), &spec, 0, at).unwrap() else {
        panic!("admitted a fifth")
    };
    assert_eq!(until, t0 + Duration::from_millis(10_100));
    let three = LimitSpec::parse("3/10s,margin=0s").unwrap();
    let StoreAdmission::Wait { until, .. } = store.admit(&key(), &three, 0, at).unwrap() else { panic!() };
    assert_eq!(until, t0 + Duration::from_millis(10_200));
    assert_eq!(store.count(&key(), Duration::from_secs(10), at).unwrap(), 4);
}

/// Six threads, four sharing one connection and two another (as two processes would), take and end leases
/// under a cap of 3 as fast as they can: never more than 3 at once, and once every request has ended no
/// lease is left behind (three more pass at once).
#[test]
fn racing_releases_never_let_more_than_the_cap_in_and_leave_no_lease_behind() {
    let file = StateFile::new("limits-racing-leases");
    let spec = LimitSpec::parse("concurrency=3").unwrap();
    let stores = [Arc::new(SqliteWindows::open(&file).unwrap()), Arc::new(SqliteWindows::open(&file).unwrap())];
    let in_flight = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let (store, spec, in_flight, most) =
                (stores[usize::from(i >= 4)].clone(), spec.clone(), in_flight.clone(), most.clone());
            std::thread::spawn(move || {
                let mut done = 0;
                while done < 150 {
                    let StoreAdmission::Admitted { id } = store.admit(&key(), &spec, 0, SystemTime::now()).unwrap()
                    else {
                        std::thread::yield_now();
                        continue;
                    };
                    let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    store.release(&key(), id).unwrap();
                    done += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(most.load(Ordering::SeqCst) <= 3, "{} in flight at once", most.load(Ordering::SeqCst));
    let other = SqliteWindows::open(&file).unwrap();
    for _ in 0..3 {
        assert!(matches!(other.admit(&key(), &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Admitted { .. }));
    }
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
    /// its length, counting every earlier admission of the key whatever spec it passed under and whichever
    /// connection admitted it.
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
        // Two connections, as two processes would hold, take turns by the same pick.
        let stores = [SqliteWindows::open(&file).unwrap(), SqliteWindows::open(&file).unwrap()];
        let t0 = stores::start();
        let mut now = t0;
        let mut admitted: Vec<SystemTime> = Vec::new();
        for (gap, pick) in ops {
            now += Duration::from_millis(gap);
            let spec = &specs[pick % specs.len()];
            let store = &stores[pick % 2];
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

#[test]
fn a_steady_stream_takes_the_state_file_a_block_at_a_time() {
    let file = StateFile::new("limits-blocks-steady");
    stores::a_steady_stream_takes_the_store_a_block_at_a_time(opener(file.path()));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "proptest-regressions/sqlite-blocks.txt",
        ))),
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Three limiters taking blocks from one state file never let more requests through a window, nor more
    /// into flight, than the limits allow, whatever the order of admissions and ends.
    #[test]
    fn blocks_from_three_limiters_keep_every_window_and_the_cap(
        spec in proptest::sample::select(vec![
            "256/200ms,concurrency=32,margin=0s",
            "64/60ms,600/1s,margin=0s",
            "concurrency=48",
            "96/100ms,600/1s,concurrency=64,margin=0s",
            "128/80ms,margin=0s",
        ]),
        steps in proptest::collection::vec(
            proptest::prop_oneof![
                40 => proptest::strategy::Strategy::prop_map((0u64..500, 0usize..3), |(gap_us, limiter)| stores::Step::Admit { gap_us, limiter }),
                1 => proptest::strategy::Strategy::prop_map((0u64..300_000, 0usize..3), |(gap_us, limiter)| stores::Step::Admit { gap_us, limiter }),
                24 => proptest::strategy::Strategy::prop_map(0usize..3, |limiter| stores::Step::End { limiter }),
                8 => proptest::strategy::Strategy::prop_map(0usize..3, |limiter| stores::Step::EndNewest { limiter }),
            ],
            1..3000,
        ),
    ) {
        let file = StateFile::new("limits-blocks-oracle");
        stores::blocks_keep_every_window_and_the_cap(opener(file.path()), spec, &steps);
    }
}

#[test]
fn a_short_burst_is_admitted_one_request_at_a_time() {
    let file = StateFile::new("limits-blocks-burst");
    stores::a_short_burst_is_admitted_one_request_at_a_time(opener(file.path()));
}

#[test]
fn giving_back_a_blocks_unused_admissions_frees_their_places() {
    let file = StateFile::new("limits-blocks-give-back");
    let path = file.to_path_buf();
    stores::giving_back_a_blocks_unused_admissions_frees_their_places(move || SqliteWindows::open(&path).unwrap());
}

#[test]
fn a_quiet_limiter_gives_back_what_it_holds() {
    let file = StateFile::new("limits-blocks-quiet");
    stores::a_quiet_limiter_gives_back_what_it_holds(opener(file.path()));
}

#[test]
fn a_reset_keeps_the_leases_of_requests_in_flight_and_kept() {
    let file = StateFile::new("limits-blocks-reset");
    stores::a_reset_keeps_the_leases_of_requests_in_flight_and_kept(opener(file.path()));
}

#[test]
fn new_limits_give_back_the_leases_kept_under_the_old() {
    let file = StateFile::new("limits-blocks-new-limits");
    stores::new_limits_give_back_the_leases_kept_under_the_old(opener(file.path()));
}

#[test]
fn a_per_request_limiter_asks_the_state_file_every_time() {
    let file = StateFile::new("limits-per-request");
    stores::a_per_request_limiter_asks_the_store_every_time(opener(file.path()));
}

/// A store whose first `release` says when it is entered and then waits to be let go.
#[derive(Debug)]
struct Gated {
    inner: SqliteWindows,
    first: std::sync::atomic::AtomicBool,
    entered: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    gate: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl WindowStore for Gated {
    fn admit(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        tokens: u64,
        now: SystemTime,
    ) -> Result<StoreAdmission, LimitError> {
        self.inner.admit(key, spec, tokens, now)
    }
    fn admit_block(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        want: BlockWant,
        now: SystemTime,
    ) -> Result<BlockAdmission, LimitError> {
        self.inner.admit_block(key, spec, want, now)
    }
    fn give_back(&self, key: &LimitKey, ids: std::ops::RangeInclusive<i64>) -> Result<(), LimitError> {
        self.inner.give_back(key, ids)
    }
    fn settle(&self, key: &LimitKey, id: i64, tokens: u64) -> Result<(), LimitError> {
        self.inner.settle(key, id, tokens)
    }
    fn block(&self, key: &LimitKey, until: SystemTime, daily: bool) -> Result<(), LimitError> {
        self.inner.block(key, until, daily)
    }
    fn reset(&self, key: &LimitKey) -> Result<(), LimitError> {
        self.inner.reset(key)
    }
    fn count(&self, key: &LimitKey, within: Duration, now: SystemTime) -> Result<u64, LimitError> {
        self.inner.count(key, within, now)
    }
    fn release(&self, key: &LimitKey, id: i64) -> Result<(), LimitError> {
        if self.first.swap(false, Ordering::SeqCst) {
            let _ = self.entered.lock().unwrap().send(());
            let _ = self.gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
        }
        self.inner.release(key, id)
    }
}

/// The limiter's sweeping thread is held up ending a quiet key's lease when the limiter is dropped: the drop
/// still gives back at once what another key's block did not hand out (the sweep holds no reference to the
/// limiter that would put its end off until the sweep is done).
#[test]
fn a_limiter_dropped_during_a_sweep_gives_back_at_once() {
    let file = StateFile::new("limits-blocks-drop-sweep");
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (open_gate, gate) = std::sync::mpsc::channel();
    let store = Arc::new(Gated {
        inner: SqliteWindows::open(file.path()).unwrap(),
        first: std::sync::atomic::AtomicBool::new(true),
        entered: std::sync::Mutex::new(entered_tx),
        gate: std::sync::Mutex::new(gate),
    });
    let clock = ManualClock::new();
    let config = LimitsConfig::uniform(LimitSpec::parse("1000000/1m,concurrency=1000,margin=0s").unwrap());
    let limiter = Limiter::with_store(config, Arc::new(clock.clone()), store);
    let (quiet, busy) = (LimitKey::anonymous("p", "quiet"), LimitKey::anonymous("p", "busy"));
    let stream = |k: &LimitKey| {
        for _ in 0..200 {
            clock.advance(Duration::from_micros(500));
            drop(limiter.try_acquire(k, TokenCount::ZERO, clock.now()).unwrap());
        }
    };
    stream(&quiet);
    clock.advance(Duration::from_secs(2));
    stream(&busy);
    // The sweeping thread ends the quiet key's kept leases, and waits in the first.
    entered.recv_timeout(Duration::from_secs(10)).expect("the sweep ended no lease");
    drop(limiter);
    let check = SqliteWindows::open(file.path()).unwrap();
    let counted = check.count(&busy, Duration::from_secs(3600), SystemTime::now() + Duration::from_secs(60)).unwrap();
    let _ = open_gate.send(());
    assert_eq!(counted, 200, "the busy key's block was not given back when the limiter was dropped");
}
