//! The shared limiter: a map from keys to their state, admission now or after waiting in line.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gm_core::{Clock, Usage};
use serde::Serialize;
use tokio::sync::Notify;

use crate::pool::{Blocks, Pool};
use crate::state::{ser_opt_ms, Admission, KeyState, Lease, Waiter};
use crate::store::{StoreAdmission, StoreLink, WindowStore};
use crate::{Denied, LimitError, LimitKey, LimitSpec, LimitsConfig, Observation, ServerSignal, TokenCount};
use crate::{Wait, WaitReason, WindowStatus};

const SHARDS: usize = 16;

/// The Fx hash (rustc's), eight bytes at a step: keys are short and chosen by the program, not by an
/// adversary, so a fast hash is enough, and hashing a key is most of the cost of looking it up.
#[derive(Default)]
struct Fx(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Fx {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let word = rest.iter().enumerate().fold(0u64, |w, (i, b)| w | (u64::from(*b) << (8 * i)));
            self.add(word);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
}

/// The keys' hashes are computed once per lookup (they also pick the shard), so the map itself is keyed
/// by the hash and does not hash again.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in rather than lose it.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

fn hash_key(key: &LimitKey) -> u64 {
    BuildHasherDefault::<Fx>::default().hash_one(key)
}

/// Keys by hash; a hash shared by several keys keeps them all.
type Shard = RwLock<HashMap<u64, Vec<Arc<KeyShared>>, BuildHasherDefault<Prehashed>>>;

/// The clock that agrees with tokio's timers, including paused time in tests
/// (`#[tokio::test(start_paused = true)]`). The default clock of a [`Limiter`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

#[derive(Debug)]
pub(crate) struct KeyShared {
    key: LimitKey,
    state: Mutex<KeyState>,
    /// Requests admitted and not finished; grows only under the state's lock (see `KeyState::try_admit`).
    in_flight: AtomicU32,
    /// The length of the state's queue, so a finishing request knows without the lock whether to wake anyone.
    queued: AtomicUsize,
    /// The store shared with other processes, if any.
    store: Option<StoreLink>,
    /// Admissions and leases taken from the store in blocks (see [`crate::pool`]).
    pool: Pool,
}

impl Drop for KeyShared {
    fn drop(&mut self) {
        if let Some(link) = &self.store {
            self.pool.give_all_back(link, &self.key);
        }
    }
}

impl KeyShared {
    fn new(key: LimitKey, spec: LimitSpec, store: Option<StoreLink>) -> Self {
        Self {
            key,
            state: Mutex::new(KeyState::new(spec)),
            in_flight: AtomicU32::new(0),
            queued: AtomicUsize::new(0),
            store,
            pool: Pool::new(),
        }
    }

    #[inline]
    fn try_admit(&self, st: &mut KeyState, now: Instant, tokens: &TokenCount) -> Result<Admission, Denied> {
        let Some(link) = &self.store else {
            return st.try_admit(now, tokens, &self.in_flight);
        };
        st.try_admit_with(now, tokens, &self.in_flight, |spec| {
            // Limits that count nothing the store keeps (no request window, no token budget, no concurrency cap)
            // need no record there: no process would ever read it, and the store would only grow.
            if !spec.counts_in_store() {
                return Ok((None, None));
            }
            if let Some(blocks) = Blocks::of(spec).filter(|_| link.blocks) {
                return self.pool.take(link, &self.key, spec, blocks, now);
            }
            let wall = link.wall(now);
            match link.store.admit(&self.key, spec, tokens.total(), wall) {
                Ok(StoreAdmission::Admitted { id }) => {
                    let lease = spec.concurrency.map(|_| Lease { id, taken: now, from_block: false });
                    Ok((Some(id), lease))
                }
                Ok(StoreAdmission::Wait { until, reason }) => {
                    Err(Denied::Wait(Wait { until: Some(link.instant(now, wall, until)), reason }))
                }
                Err(e) => Err(Denied::Refused(e)),
            }
        })
    }

    fn sync_queued(&self, st: &KeyState) {
        self.queued.store(st.queue.len(), Ordering::SeqCst);
    }

    fn lock(&self) -> MutexGuard<'_, KeyState> {
        // A panic while the lock was held cannot leave the counts inconsistent in a way that matters more
        // than refusing all further requests would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn wake_front(st: &KeyState) {
    if let Some(w) = st.queue.front() {
        w.wake.notify_one();
    }
}

/// A rate limiter for many keys, shared by cloning (clones share the same state).
///
/// Each key has its own limits (from the [`LimitsConfig`], or set with [`Limiter::set_limits`]) and its own
/// state behind a mutex; admission for one key never waits for another. See the crate docs for the
/// guarantee and an example.
#[derive(Debug, Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

struct Inner {
    config: LimitsConfig,
    clock: Arc<dyn Clock>,
    shards: Box<[Shard]>,
    store: Option<StoreLink>,
    /// The thread that gives back what the keys' pools no longer use (with a store), woken when the limiter
    /// is dropped so that it ends.
    sweeper: std::sync::OnceLock<std::thread::Thread>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = self.sweeper.get() {
            t.unpark();
        }
        // Every key gives back what it holds now, even a key something else still holds (a permit, a sweep
        // under way), so nothing the limiter took is left counting once it is dropped.
        if let Some(link) = &self.store {
            for e in self.entries() {
                e.pool.give_all_back(link, &e.key);
            }
        }
    }
}

/// What a sweep works on, taken from the limiter so that the sweep holds no reference to the limiter itself.
struct Sweep {
    link: StoreLink,
    now: Instant,
    entries: Vec<Arc<KeyShared>>,
}

impl Sweep {
    /// Every key's pool gives back what it no longer uses (see [`crate::pool`]).
    fn run(self) {
        for e in self.entries {
            e.pool.sweep(&self.link, &e.key, self.now);
        }
    }
}

impl Inner {
    fn entries(&self) -> Vec<Arc<KeyShared>> {
        let mut entries: Vec<Arc<KeyShared>> = Vec::new();
        for shard in self.shards.iter() {
            entries.extend(shard.read().unwrap_or_else(PoisonError::into_inner).values().flatten().cloned());
        }
        entries
    }

    /// A sweep of every key at the clock's now, if the limiter shares a store. The clock is read on the
    /// calling thread: the limiter's sweeping thread has no tokio runtime, so under paused tokio time it reads
    /// the real time (tests that pause time and need a sweep call [`Limiter::sweep`] themselves).
    fn sweep(&self) -> Option<Sweep> {
        let link = self.store.clone()?;
        Some(Sweep { link, now: self.clock.now(), entries: self.entries() })
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("config", &self.config).field("clock", &self.clock).finish_non_exhaustive()
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(LimitsConfig::default())
    }
}

impl Limiter {
    /// A limiter with the given configuration, timed by [`TokioClock`].
    pub fn new(config: LimitsConfig) -> Self {
        Self::with_clock(config, Arc::new(TokioClock))
    }

    /// A limiter with the given configuration and clock. [`Limiter::acquire`] sleeps on tokio's timers, so
    /// its clock must agree with them ([`TokioClock`] does, [`gm_core::SystemClock`] does outside paused
    /// tests); [`Limiter::try_acquire`] takes `now` and works with any clock.
    pub fn with_clock(config: LimitsConfig, clock: Arc<dyn Clock>) -> Self {
        let shards = (0..SHARDS).map(|_| RwLock::new(HashMap::default())).collect();
        Self { inner: Arc::new(Inner { config, clock, shards, store: None, sweeper: std::sync::OnceLock::new() }) }
    }

    /// A limiter whose request windows and token budgets are also counted in `store`, shared with other
    /// processes (see [`WindowStore`]). The store's time is the wall clock, read once here and followed by
    /// `clock` from then on.
    ///
    /// Keys whose limits leave room for it take admissions and leases from the store in blocks
    /// ([`crate::pool`]); a thread of the limiter's own gives back, every [`crate::pool::SWEEP_EVERY`], what
    /// they no longer use, and ends when the limiter is dropped.
    pub fn with_store(config: LimitsConfig, clock: Arc<dyn Clock>, store: Arc<dyn WindowStore>) -> Self {
        Self::sharing(config, clock, store, true)
    }

    /// As [`Limiter::with_store`], but every admission asks the store, whatever the limits: what the store
    /// counts is then exactly the requests admitted at every moment, never a block ahead of them. For limits
    /// whose counts are shown to the clients they hold (a gateway's per-client limits, told in
    /// `x-ratelimit-remaining-*` headers), at the cost of a store transaction or round trip per request.
    pub fn with_store_per_request(config: LimitsConfig, clock: Arc<dyn Clock>, store: Arc<dyn WindowStore>) -> Self {
        Self::sharing(config, clock, store, false)
    }

    fn sharing(config: LimitsConfig, clock: Arc<dyn Clock>, store: Arc<dyn WindowStore>, blocks: bool) -> Self {
        let anchor = (clock.now(), std::time::SystemTime::now());
        let shards = (0..SHARDS).map(|_| RwLock::new(HashMap::default())).collect();
        let store = Some(StoreLink::new(store, anchor, blocks));
        let inner = Arc::new(Inner { config, clock, shards, store, sweeper: std::sync::OnceLock::new() });
        let weak = Arc::downgrade(&inner);
        if !blocks {
            return Self { inner };
        }
        // Without the thread (none could be started), what the pools hold goes back when it is next used.
        if let Ok(t) = std::thread::Builder::new().name("gm-limits-sweep".into()).spawn(move || loop {
            std::thread::park_timeout(crate::pool::SWEEP_EVERY);
            let Some(inner) = weak.upgrade() else { return };
            let sweep = inner.sweep();
            // The limiter may be dropped while the store is asked: it then gives everything back itself.
            drop(inner);
            if let Some(sweep) = sweep {
                sweep.run();
            }
        }) {
            let _ = inner.sweeper.set(t.thread().clone());
        }
        Self { inner }
    }

    /// The configuration the limiter was made with.
    pub fn config(&self) -> &LimitsConfig {
        &self.inner.config
    }

    /// The limiter's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The key's hash and its shard (picked by the top bits: Fx mixes upwards, the map uses the low ones).
    fn shard(&self, key: &LimitKey) -> (u64, &Shard) {
        let h = hash_key(key);
        (h, &self.inner.shards[(h >> 60) as usize % SHARDS])
    }

    /// Looks a key up without creating it.
    fn find(&self, key: &LimitKey) -> Option<Arc<KeyShared>> {
        let (h, shard) = self.shard(key);
        let map = shard.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&h)?.iter().find(|e| e.key == *key).cloned()
    }

    fn entry(&self, key: &LimitKey) -> Arc<KeyShared> {
        if let Some(e) = self.find(key) {
            return e;
        }
        let (h, shard) = self.shard(key);
        let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
        let bucket = map.entry(h).or_default();
        if let Some(e) = bucket.iter().find(|e| e.key == *key) {
            return Arc::clone(e);
        }
        let spec = self.inner.config.spec_for(&key.provider, &key.model);
        let e = Arc::new(KeyShared::new(key.clone(), spec, self.inner.store.clone()));
        bucket.push(Arc::clone(&e));
        e
    }

    /// A handle on one key, which admits without looking the key up again: keep one per provider and model
    /// on hot paths.
    pub fn handle(&self, key: &LimitKey) -> KeyHandle {
        KeyHandle { shared: self.entry(key), clock: Arc::clone(&self.inner.clock) }
    }

    /// Sets a key's limits (e.g. its GitHub tier's, once the catalog is known), keeping what it has counted.
    pub fn set_limits(&self, key: &LimitKey, mut spec: LimitSpec) {
        if spec.margin.is_none() {
            spec.margin = self.inner.config.margin;
        }
        let e = self.entry(key);
        let mut st = e.lock();
        if st.spec != spec {
            if let Some(link) = &e.store {
                // What the pool holds was taken under the old limits: it goes back, and leases are kept only
                // as the new limits allow.
                e.pool.reconfigure(link, key, Blocks::of(&spec).filter(|_| link.blocks));
            }
            st.reconfigure(spec);
            wake_front(&st);
        }
    }

    /// A key's limits.
    pub fn limits(&self, key: &LimitKey) -> LimitSpec {
        self.entry(key).lock().spec.clone()
    }

    /// Checks a request against the key's per-request caps and token budgets, before anything is sent.
    pub fn check(&self, key: &LimitKey, tokens: &TokenCount) -> Result<(), LimitError> {
        self.entry(key).lock().spec.check_request(tokens)
    }

    /// Admits a request at `now` if every limit allows it, and otherwise says when to try again (or that the
    /// request can never pass). A request never jumps the queue of [`Limiter::acquire`] waiters.
    pub fn try_acquire(&self, key: &LimitKey, tokens: TokenCount, now: Instant) -> Result<Permit, Denied> {
        let (h, shard) = self.shard(key);
        {
            let map = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = map.get(&h).and_then(|b| b.iter().find(|e| e.key == *key)) {
                return try_acquire_on(e, tokens, now);
            }
        }
        try_acquire_on(&self.entry(key), tokens, now)
    }

    /// Waits until every limit allows the request, first come first served per key, and admits it.
    ///
    /// Fails at once when the request can never pass (over a cap) or when the quota frees later than
    /// `max_wait` from now (for a request queued behind others, when it surely frees later); fails when
    /// `max_wait` has passed without admission. Cancellation-safe: dropping the future gives up its place.
    pub async fn acquire(&self, key: &LimitKey, tokens: TokenCount, max_wait: Duration) -> Result<Permit, LimitError> {
        self.handle(key).acquire(tokens, max_wait).await
    }

    /// Learns from a response: a 429 blocks the key until the server's wait is over (and marks a spent
    /// daily quota), or, when it did not say how long, for a backoff that starts at
    /// [`UNTOLD_BACKOFF_FIRST`](crate::UNTOLD_BACKOFF_FIRST) and doubles with each such 429 in a row;
    /// remaining-count headers tighten the local counts. Returns what was learned, so the caller's retry
    /// policy can use the same wait.
    pub fn observe(&self, key: &LimitKey, signal: &ServerSignal, now: Instant) -> Observation {
        let mut seen = signal.interpret();
        let e = self.entry(key);
        let mut st = e.lock();
        if signal.status == 429 && seen.retry_after.is_none() {
            st.untold_429s = st.untold_429s.saturating_add(1);
            seen.retry_after = Some(crate::signal::untold_backoff(st.untold_429s));
        } else if signal.status != 429 {
            st.untold_429s = 0;
        }
        if let Some(wait) = seen.retry_after {
            let until = now.checked_add(wait).unwrap_or(now + crate::signal::DEFAULT_DAILY_BLOCK);
            st.block(until, seen.daily, seen.told);
            if let Some(link) = &e.store {
                // The local block holds even if the store cannot record it for the other processes.
                let _ = link.store.block(key, link.wall(until), seen.daily);
                if let Some(ids) = e.pool.end_block() {
                    let _ = link.store.give_back(key, ids);
                }
            }
        }
        if let Some(r) = seen.remaining_requests {
            st.correct_requests(r, seen.limit_requests, now);
        }
        if let Some(r) = seen.remaining_tokens {
            st.correct_tokens(r, seen.limit_tokens, now);
        }
        seen
    }

    /// Gives back to the shared store what the keys no longer use of what they took in blocks: admissions
    /// whose hold has ended and leases kept too long or by a quiet key (see [`crate::pool`]). The limiter's
    /// own thread does this every [`crate::pool::SWEEP_EVERY`]; without a store there is nothing to do.
    pub fn sweep(&self) {
        if let Some(sweep) = self.inner.sweep() {
            sweep.run();
        }
    }

    /// Where every key stands, at the clock's now.
    pub fn status(&self) -> Vec<KeyStatus> {
        self.status_at(self.inner.clock.now())
    }

    /// Where every key stands at `now`, sorted by key.
    pub fn status_at(&self, now: Instant) -> Vec<KeyStatus> {
        let mut entries: Vec<Arc<KeyShared>> = Vec::new();
        for shard in self.inner.shards.iter() {
            entries.extend(shard.read().unwrap_or_else(PoisonError::into_inner).values().flatten().cloned());
        }
        let mut out: Vec<KeyStatus> = entries.iter().map(|e| key_status(e, now)).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Where one key stands at `now`, if the limiter has seen it.
    pub fn key_status(&self, key: &LimitKey, now: Instant) -> Option<KeyStatus> {
        let e = self.find(key)?;
        Some(key_status(&e, now))
    }

    /// Forgets a key's admissions and server blocks (requests in flight and waiters stay). Returns whether
    /// the key was known.
    pub fn reset(&self, key: &LimitKey) -> bool {
        let Some(e) = self.find(key) else {
            return false;
        };
        let mut st = e.lock();
        st.reset();
        if let Some(link) = &e.store {
            let _ = link.store.reset(key);
            e.pool.reset();
        }
        wake_front(&st);
        true
    }

    /// Resets every key.
    pub fn reset_all(&self) {
        for shard in self.inner.shards.iter() {
            for e in shard.read().unwrap_or_else(PoisonError::into_inner).values().flatten() {
                let mut st = e.lock();
                st.reset();
                wake_front(&st);
            }
        }
    }
}

fn key_status(e: &KeyShared, now: Instant) -> KeyStatus {
    let mut st = e.lock();
    let p = st.status(now, e.in_flight.load(Ordering::SeqCst));
    KeyStatus {
        key: e.key.clone(),
        limits: st.spec.clone(),
        requests: p.windows,
        tokens: p.tokens,
        in_flight: p.in_flight,
        concurrency: p.concurrency,
        waiting: p.waiting,
        blocked_for: p.blocked_for,
        daily_quota_spent: p.daily_quota_spent,
    }
}

#[inline]
fn try_acquire_on(e: &Arc<KeyShared>, tokens: TokenCount, now: Instant) -> Result<Permit, Denied> {
    let mut st = e.lock();
    if !st.queue.is_empty() {
        let ahead = st.queue.len();
        let until = st.earliest_after(ahead, now).map(|(u, _)| u);
        return Err(Denied::Wait(Wait { until, reason: WaitReason::Queue(ahead) }));
    }
    let a = e.try_admit(&mut st, now, &tokens)?;
    drop(st);
    Ok(Permit::new(e, a))
}

/// One key of a [`Limiter`], looked up once.
#[derive(Debug, Clone)]
pub struct KeyHandle {
    shared: Arc<KeyShared>,
    clock: Arc<dyn Clock>,
}

impl KeyHandle {
    /// The key.
    pub fn key(&self) -> &LimitKey {
        &self.shared.key
    }

    /// Whether a request's tokens must be counted for the key's limits: a cap on one request's tokens, or a
    /// token budget. Without either, counting them (a tokenizer pass) would be wasted.
    pub fn counts_tokens(&self) -> bool {
        let st = self.shared.lock();
        st.spec.tokens_in.is_some() || st.spec.tokens_out.is_some() || !st.spec.token_windows.is_empty()
    }

    /// As [`Limiter::check`].
    pub fn check(&self, tokens: &TokenCount) -> Result<(), LimitError> {
        self.shared.lock().spec.check_request(tokens)
    }

    /// As [`Limiter::try_acquire`].
    #[inline]
    pub fn try_acquire(&self, tokens: TokenCount, now: Instant) -> Result<Permit, Denied> {
        try_acquire_on(&self.shared, tokens, now)
    }

    /// As [`Limiter::acquire`].
    pub async fn acquire(&self, tokens: TokenCount, max_wait: Duration) -> Result<Permit, LimitError> {
        let start = self.clock.now();
        let deadline = start.checked_add(max_wait);
        let too_late = |until: Instant| deadline.is_some_and(|d| until > d);
        let (ticket, wake) = {
            let mut st = self.shared.lock();
            if st.queue.is_empty() {
                match self.shared.try_admit(&mut st, start, &tokens) {
                    Ok(a) => {
                        drop(st);
                        return Ok(Permit::new(&self.shared, a));
                    }
                    Err(Denied::Refused(e)) => return Err(e),
                    Err(Denied::Wait(w)) => {
                        if let Some(u) = w.until.filter(|&u| too_late(u)) {
                            return Err(self.too_long(u - start, max_wait, w.reason));
                        }
                    }
                }
            } else if let Some((u, reason)) = st.earliest_after(st.queue.len(), start) {
                if too_late(u) {
                    return Err(self.too_long(u - start, max_wait, reason));
                }
            }
            let ticket = st.next_ticket;
            st.next_ticket += 1;
            let wake = Arc::new(Notify::new());
            st.queue.push_back(Waiter { ticket, wake: Arc::clone(&wake) });
            self.shared.sync_queued(&st);
            (ticket, wake)
        };
        let mut place = Place { shared: &self.shared, ticket, done: false };
        loop {
            let now = self.clock.now();
            let step = {
                let mut st = self.shared.lock();
                let pos = match st.queue.iter().position(|w| w.ticket == ticket) {
                    Some(pos) => pos,
                    None => {
                        // Nothing removes a live waiter, but if something did, take a place again at the
                        // back rather than act on someone else's.
                        st.queue.push_back(Waiter { ticket, wake: Arc::clone(&wake) });
                        self.shared.sync_queued(&st);
                        st.queue.len() - 1
                    }
                };
                if pos == 0 {
                    match self.shared.try_admit(&mut st, now, &tokens) {
                        Ok(a) => {
                            st.queue.pop_front();
                            self.shared.sync_queued(&st);
                            wake_front(&st);
                            Ok(a)
                        }
                        Err(Denied::Refused(e)) => return Err(e), // `place` leaves the queue on drop
                        Err(Denied::Wait(w)) => Err(w),
                    }
                } else {
                    let until = st.earliest_after(pos, now).map(|(u, _)| u);
                    Err(Wait { until, reason: WaitReason::Queue(pos) })
                }
            };
            let w = match step {
                Ok(a) => {
                    place.done = true;
                    return Ok(Permit::new(&self.shared, a));
                }
                Err(w) => w,
            };
            match w.until {
                Some(u) if too_late(u) => {
                    return Err(self.too_long(u.saturating_duration_since(now), max_wait, w.reason))
                }
                // The head sleeps until its time comes, or until something frees room earlier.
                Some(u) if !matches!(w.reason, WaitReason::Queue(_)) => {
                    let _ = tokio::time::timeout_at(tokio::time::Instant::from_std(u), wake.notified()).await;
                }
                // Everyone else sleeps until woken: by a request in flight finishing, or by becoming the head.
                _ => match deadline {
                    Some(d) => {
                        let woken = tokio::time::timeout_at(tokio::time::Instant::from_std(d), wake.notified()).await;
                        if woken.is_err() {
                            return Err(LimitError::WaitTimedOut {
                                key: self.shared.key.to_string(),
                                max_wait,
                                reason: w.reason,
                            });
                        }
                    }
                    None => wake.notified().await,
                },
            }
        }
    }

    fn too_long(&self, wait: Duration, max_wait: Duration, reason: WaitReason) -> LimitError {
        let key = self.shared.key.to_string();
        match reason {
            WaitReason::Server { daily: true } => LimitError::DailyQuotaSpent { key, wait },
            reason => LimitError::WouldWaitTooLong { key, wait, max_wait, reason },
        }
    }
}

/// A waiter's place in line; leaving it (by admission or by being dropped) lets the next one move up.
struct Place<'a> {
    shared: &'a KeyShared,
    ticket: u64,
    done: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.shared.lock();
        if let Some(pos) = st.queue.iter().position(|w| w.ticket == self.ticket) {
            st.queue.remove(pos);
            self.shared.sync_queued(&st);
            if pos == 0 {
                wake_front(&st);
            }
        }
    }
}

/// An admitted request. Dropping it frees its concurrency slot; [`Permit::settle`] first replaces its
/// token estimate by the actual usage. The request still counts in every window it was admitted to.
#[derive(Debug)]
#[must_use = "dropping the permit at once ends the request's concurrency slot"]
pub struct Permit {
    shared: Arc<KeyShared>,
    reservation: Option<u64>,
    store_id: Option<i64>,
    lease: Option<Lease>,
}

impl Permit {
    fn new(shared: &Arc<KeyShared>, a: Admission) -> Self {
        Self { shared: Arc::clone(shared), reservation: a.reservation, store_id: a.store_id, lease: a.lease }
    }

    /// The key the request was admitted under.
    pub fn key(&self) -> &LimitKey {
        &self.shared.key
    }

    /// Replaces the token reservation by the tokens the request actually used (input plus output), and
    /// ends the request.
    ///
    /// With a shared store, the store is updated too when the key has token budgets (without them nothing
    /// reads the count, and the write would cost every request); if that fails the store keeps the estimate,
    /// which only errs on the safe side.
    pub fn settle(self, actual_tokens: u64) {
        if let (Some(link), Some(id), Some(_)) = (&self.shared.store, self.store_id, self.reservation) {
            let _ = link.store.settle(&self.shared.key, id, actual_tokens);
        }
        if let Some(id) = self.reservation {
            let mut st = self.shared.lock();
            if st.settle(id, actual_tokens) {
                wake_front(&st);
            }
        }
    }

    /// [`Permit::settle`] with a response's `usage` (its `total_tokens`, or prompt plus completion).
    pub fn settle_usage(self, usage: &Usage) {
        let total =
            if usage.total_tokens > 0 { usage.total_tokens } else { usage.prompt_tokens + usage.completion_tokens };
        self.settle(total);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let (Some(link), Some(lease)) = (&self.shared.store, self.lease) {
            // Other processes count this request in flight until its lease ends (or lapses, if this fails), or
            // its lease is kept for the next request.
            if !self.shared.pool.keep(lease) {
                let _ = link.store.release(&self.shared.key, lease.id);
            }
        }
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        // A waiter that enqueued after this load re-checks the count before it sleeps, so no wake is lost.
        if self.shared.queued.load(Ordering::SeqCst) > 0 {
            wake_front(&self.shared.lock());
        }
    }
}

/// Where one key stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    /// The key.
    pub key: LimitKey,
    /// Its limits.
    pub limits: LimitSpec,
    /// Each request window, shortest first.
    pub requests: Vec<WindowStatus>,
    /// Each token budget, shortest first.
    pub tokens: Vec<WindowStatus>,
    /// Requests admitted and not yet finished.
    pub in_flight: u32,
    /// The concurrency cap, if any.
    pub concurrency: Option<u32>,
    /// Requests waiting in [`Limiter::acquire`].
    pub waiting: usize,
    /// How long the server's 429 still blocks the key.
    #[serde(serialize_with = "ser_opt_ms", rename = "blocked_for_ms")]
    pub blocked_for: Option<Duration>,
    /// Whether the server said the daily quota is spent (and the block lasts).
    pub daily_quota_spent: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_shards() {
        let l = Limiter::default();
        let mut used = std::collections::HashSet::new();
        for i in 0..64 {
            let k = LimitKey::anonymous("p", format!("model-{i}"));
            used.insert((hash_key(&k) >> 60) as usize % SHARDS);
            let _ = l.handle(&k);
        }
        assert!(used.len() > SHARDS / 2, "{used:?}");
        assert_eq!(l.status().len(), 64);
    }
}
