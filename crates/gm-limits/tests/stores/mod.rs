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

/// A store that counts what it is asked, around another.
#[derive(Debug)]
pub struct Counting {
    pub inner: Arc<dyn WindowStore>,
    /// Calls to `admit` and `admit_block`.
    pub asked: AtomicU64,
    /// Calls to `release`.
    pub released: AtomicU64,
}

impl Counting {
    pub fn new(inner: Arc<dyn WindowStore>) -> Arc<Self> {
        Arc::new(Self { inner, asked: AtomicU64::new(0), released: AtomicU64::new(0) })
    }
}

impl WindowStore for Counting {
    fn admit(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        tokens: u64,
        now: SystemTime,
    ) -> Result<StoreAdmission, gm_limits::LimitError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.inner.admit(key, spec, tokens, now)
    }
    fn admit_block(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        want: gm_limits::BlockWant,
        now: SystemTime,
    ) -> Result<gm_limits::BlockAdmission, gm_limits::LimitError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.inner.admit_block(key, spec, want, now)
    }
    fn settle(&self, key: &LimitKey, id: i64, tokens: u64) -> Result<(), gm_limits::LimitError> {
        self.inner.settle(key, id, tokens)
    }
    fn block(&self, key: &LimitKey, until: SystemTime, daily: bool) -> Result<(), gm_limits::LimitError> {
        self.inner.block(key, until, daily)
    }
    fn reset(&self, key: &LimitKey) -> Result<(), gm_limits::LimitError> {
        self.inner.reset(key)
    }
    fn count(&self, key: &LimitKey, within: Duration, now: SystemTime) -> Result<u64, gm_limits::LimitError> {
        self.inner.count(key, within, now)
    }
    fn release(&self, key: &LimitKey, id: i64) -> Result<(), gm_limits::LimitError> {
        self.released.fetch_add(1, Ordering::SeqCst);
        self.inner.release(key, id)
    }
    fn give_back(&self, key: &LimitKey, ids: std::ops::RangeInclusive<i64>) -> Result<(), gm_limits::LimitError> {
        self.inner.give_back(key, ids)
    }
}

/// A steady 2,000 requests a second for one second under the gateway benchmark's limits
/// (`1000000/1m,concurrency=1000`), each ending at once: the limiter takes admissions and leases from the
/// store a block at a time, so once it has measured the rate it asks the store a few times in 1,000, ends no
/// lease in the store while it runs, and the store records every admission it handed out (and at most one
/// block more, given back when the limiter is dropped).
pub fn a_steady_stream_takes_the_store_a_block_at_a_time(open: impl Fn() -> Arc<dyn WindowStore>) {
    let clock = ManualClock::new();
    let store = Counting::new(open());
    let config = LimitsConfig::uniform(LimitSpec::parse("1000000/1m,concurrency=1000,margin=0s").unwrap());
    let limiter = Limiter::with_store(config, Arc::new(clock.clone()), store.clone());
    let k = key();
    let mut asked_at_half = 0;
    for i in 0..2000 {
        if i == 1000 {
            asked_at_half = store.asked.load(Ordering::SeqCst);
        }
        clock.advance(Duration::from_micros(500));
        let permit = limiter.try_acquire(&k, TokenCount::ZERO, clock.now()).unwrap();
        drop(permit);
    }
    // The first 50 ms measure the rate one admission at a time; from then on a block lasts most of a hold.
    let asked = store.asked.load(Ordering::SeqCst) - asked_at_half;
    assert!(asked <= 20, "asked the store {asked} times for the second 1,000 admissions");
    assert_eq!(store.released.load(Ordering::SeqCst), 0, "a lease was ended in the store");
    let counted = || open().count(&k, Duration::from_secs(3600), SystemTime::now() + Duration::from_secs(60)).unwrap();
    let recorded = counted();
    assert!((2000..=2000 + 100).contains(&recorded), "{recorded} admissions recorded for 2,000");
    // Dropping the limiter gives the store back the leases it kept and the admissions it did not hand out.
    drop(limiter);
    assert!(store.released.load(Ordering::SeqCst) >= 1);
    assert_eq!(counted(), 2000);
}

/// What one step of [`blocks_keep_every_window_and_the_cap`] does.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Time passes, then a limiter tries to admit a request.
    Admit { gap_us: u64, limiter: usize },
    /// A limiter's oldest request in flight ends.
    End { limiter: usize },
    /// A limiter's newest request in flight ends.
    EndNewest { limiter: usize },
}

/// Three limiters (three processes) admitting under limits large enough for blocks, on one store and one
/// clock, in the order `steps` gives: every request window holds across the three for the requests actually
/// admitted, and so does the concurrency cap at every moment.
pub fn blocks_keep_every_window_and_the_cap(open: impl Fn() -> Arc<dyn WindowStore>, spec: &str, steps: &[Step]) {
    let spec = LimitSpec::parse(spec).unwrap();
    let clock = ManualClock::new();
    let config = LimitsConfig::uniform(spec.clone());
    let limiters: Vec<Limiter> =
        (0..3).map(|_| Limiter::with_store(config.clone(), Arc::new(clock.clone()), open())).collect();
    let k = key();
    let t0 = clock.now();
    let mut admitted: Vec<SystemTime> = Vec::new();
    let mut in_flight: Vec<Vec<gm_limits::Permit>> = (0..3).map(|_| Vec::new()).collect();
    for step in steps {
        match *step {
            Step::Admit { gap_us, limiter } => {
                clock.advance(Duration::from_micros(gap_us));
                let now = clock.now();
                match limiters[limiter % 3].try_acquire(&k, TokenCount::ZERO, now) {
                    Ok(p) => {
                        // The oracle's time: the shared clock as an offset from a common origin.
                        admitted.push(start() + (now - t0));
                        in_flight[limiter % 3].push(p);
                        let open: usize = in_flight.iter().map(Vec::len).sum();
                        if let Some(cap) = spec.concurrency {
                            assert!(open <= cap as usize, "{open} requests in flight under a cap of {cap}");
                        }
                    }
                    Err(Denied::Wait(w)) => assert!(w.until.is_none_or(|u| u >= now), "{w:?}"),
                    Err(other) => panic!("refused: {other:?}"),
                }
            }
            Step::End { limiter } => {
                let list = &mut in_flight[limiter % 3];
                if !list.is_empty() {
                    drop(list.remove(0));
                }
            }
            Step::EndNewest { limiter } => {
                in_flight[limiter % 3].pop();
            }
        }
    }
    for w in &spec.windows {
        let most = most_within(&admitted, w.per);
        assert!(most as u64 <= w.limit, "{most} admissions within {:?} under {spec}", w.per);
    }
}

/// Ten requests at one instant under `100/1m,1000/1d` (room for blocks): a burst shorter than a hold takes no
/// block, so the store records exactly the ten admissions and counts them exactly.
pub fn a_short_burst_is_admitted_one_request_at_a_time(open: impl Fn() -> Arc<dyn WindowStore>) {
    let clock = ManualClock::new();
    let store = Counting::new(open());
    let config = LimitsConfig::uniform(LimitSpec::parse("100/1m,1000/1d,margin=0s").unwrap());
    let limiter = Limiter::with_store(config, Arc::new(clock.clone()), store.clone());
    let permits: Vec<_> =
        (0..10).map(|_| limiter.try_acquire(&key(), TokenCount::ZERO, clock.now()).unwrap()).collect();
    assert_eq!(store.asked.load(Ordering::SeqCst), 10);
    let counted = open().count(&key(), Duration::from_secs(60), SystemTime::now() + Duration::from_secs(1)).unwrap();
    assert_eq!(counted, 10);
    drop(permits);
}

/// A block of 8 under `64/1m` of which 4 are handed out, 3 single admissions by another connection after it,
/// then the block's last 4 given back: the store counts 7, and lets exactly 57 more through the minute (the
/// state file numbers a key's admissions to find the N-th most recent: giving back must keep the numbers
/// consecutive).
pub fn giving_back_a_blocks_unused_admissions_frees_their_places<S: WindowStore>(open: impl Fn() -> S) {
    let (a, b) = (open(), open());
    let spec = LimitSpec::parse("64/1m,margin=0s").unwrap();
    let t = start();
    let want = gm_limits::BlockWant { requests: 8, leases: 0, hold: Duration::from_millis(50) };
    let gm_limits::BlockAdmission::Granted { requests: 8, first, .. } = a.admit_block(&key(), &spec, want, t).unwrap()
    else {
        panic!("no block of 8")
    };
    for _ in 0..3 {
        assert!(matches!(b.admit(&key(), &spec, 0, t).unwrap(), StoreAdmission::Admitted { .. }));
    }
    a.give_back(&key(), first + 4..=first + 7).unwrap();
    assert_eq!(b.count(&key(), Duration::from_secs(60), t).unwrap(), 7);
    let more =
        (0..100).take_while(|_| matches!(b.admit(&key(), &spec, 0, t).unwrap(), StoreAdmission::Admitted { .. }));
    assert_eq!(more.count(), 57);
}

/// A limiter that takes blocks for 100 ms of a steady stream and then falls quiet gives back, when swept, the
/// admissions its last block did not hand out and every lease it kept, while it lives on: the store counts
/// exactly the requests sent.
pub fn a_quiet_limiter_gives_back_what_it_holds(open: impl Fn() -> Arc<dyn WindowStore>) {
    let clock = ManualClock::new();
    let store = Counting::new(open());
    let config = LimitsConfig::uniform(LimitSpec::parse("1000000/1m,concurrency=1000,margin=0s").unwrap());
    let limiter = Limiter::with_store(config, Arc::new(clock.clone()), store.clone());
    let k = key();
    for _ in 0..200 {
        clock.advance(Duration::from_micros(500));
        drop(limiter.try_acquire(&k, TokenCount::ZERO, clock.now()).unwrap());
    }
    clock.advance(gm_limits::pool::QUIET_FOR);
    limiter.sweep();
    let counted = open().count(&k, Duration::from_secs(3600), SystemTime::now() + Duration::from_secs(60)).unwrap();
    assert_eq!(counted, 200);
    assert!(store.released.load(Ordering::SeqCst) >= 1, "the kept leases were not given back");
    // It goes on admitting after the sweep.
    assert!(limiter.try_acquire(&k, TokenCount::ZERO, clock.now()).is_ok());
}

/// Under `concurrency=16`, A has a request in flight and keeps the lease of one that ended; B resets the key
/// (forgetting its admissions) and then gets 14 requests into flight, not 16: both of A's leases still count,
/// and A's next request takes its kept lease without passing the cap.
pub fn a_reset_keeps_the_leases_of_requests_in_flight_and_kept(open: impl Fn() -> Arc<dyn WindowStore>) {
    let clock = ManualClock::new();
    let (a, b) = two_limiters("concurrency=16", &clock, open);
    let (k, now) = (key(), clock.now());
    let in_flight = a.try_acquire(&k, TokenCount::ZERO, now).unwrap();
    drop(a.try_acquire(&k, TokenCount::ZERO, now).unwrap());
    // (B resets a key it knows.)
    let _ = b.limits(&k);
    assert!(b.reset(&k));
    let held: Vec<_> = (0..20).map_while(|_| b.try_acquire(&k, TokenCount::ZERO, now).ok()).collect();
    assert_eq!(held.len(), 14);
    let again = a.try_acquire(&k, TokenCount::ZERO, now).unwrap();
    drop((in_flight, again, held));
}

/// A key admitted in blocks under `1000/1m,concurrency=64` keeps leases of requests that ended; when its limits
/// change to `60/1m,concurrency=4` (one request at a time) it gives them back, so the new cap lets 4 in at once,
/// and a request of the old limits that ends later gives its lease back too.
pub fn new_limits_give_back_the_leases_kept_under_the_old(open: impl Fn() -> Arc<dyn WindowStore>) {
    let clock = ManualClock::new();
    let config = LimitsConfig::uniform(LimitSpec::parse("1000/1m,concurrency=64,margin=0s").unwrap());
    let limiter = Limiter::with_store(config, Arc::new(clock.clone()), open());
    let k = key();
    let mut ended: Vec<_> = (0..5).map(|_| limiter.try_acquire(&k, TokenCount::ZERO, clock.now()).unwrap()).collect();
    let still_out = ended.pop();
    drop(ended);
    limiter.set_limits(&k, LimitSpec::parse("60/1m,concurrency=4,margin=0s").unwrap());
    drop(still_out);
    let new: Vec<_> = (0..4).map(|_| limiter.try_acquire(&k, TokenCount::ZERO, clock.now()).unwrap()).collect();
    let Err(Denied::Wait(w)) = limiter.try_acquire(&k, TokenCount::ZERO, clock.now()) else { panic!("a fifth") };
    assert_eq!(w.reason, WaitReason::Concurrency(4));
    drop(new);
}

/// A limiter made to ask the store for every request does so whatever room its limits leave: 100 requests
/// under the gateway benchmark's limits are 100 asks, and the store counts each when it is admitted.
pub fn a_per_request_limiter_asks_the_store_every_time(open: impl Fn() -> Arc<dyn WindowStore>) {
    let clock = ManualClock::new();
    let store = Counting::new(open());
    let config = LimitsConfig::uniform(LimitSpec::parse("1000000/1m,concurrency=1000,margin=0s").unwrap());
    let limiter = Limiter::with_store_per_request(config, Arc::new(clock.clone()), store.clone());
    for i in 1..=100u64 {
        clock.advance(Duration::from_micros(500));
        drop(limiter.try_acquire(&key(), TokenCount::ZERO, clock.now()).unwrap());
        let counted =
            open().count(&key(), Duration::from_secs(60), SystemTime::now() + Duration::from_secs(1)).unwrap();
        assert_eq!(counted, i);
    }
    assert_eq!(store.asked.load(Ordering::SeqCst), 100);
    assert_eq!(store.released.load(Ordering::SeqCst), 100);
}
