//! The pure per-key state: sliding logs of admissions, token reservations, the concurrency count and what
//! the server said. Every method takes `now`; nothing here reads a clock, locks or allocates on admission
//! once the logs have grown to their size.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{LimitError, LimitSpec, TokenCount, Window, HISTORY_CAP, HISTORY_SPAN};

/// Windows longer than this are treated as this long, so that `Instant + span` can never overflow.
const MAX_SPAN: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Why a request has to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// A request window is full.
    Requests(Window),
    /// A token budget is spent.
    Tokens(Window),
    /// As many requests as allowed are in flight.
    Concurrency(u32),
    /// The server answered 429 and asked to wait; `daily` when it said the day's quota is spent.
    Server {
        /// Whether the server said the daily quota is spent.
        daily: bool,
    },
    /// The server answered 429 without saying how long to wait: the key backs off for a short, growing
    /// time (see [`UNTOLD_BACKOFF_FIRST`](crate::UNTOLD_BACKOFF_FIRST)).
    Backoff,
    /// Other requests for the same key wait ahead of this one (admission is first come, first served).
    Queue(usize),
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::Requests(w) => write!(f, "{} requests per {} are used", w.limit, crate::duration::human(w.per)),
            WaitReason::Tokens(w) => write!(f, "{} tokens per {} are used", w.limit, crate::duration::human(w.per)),
            WaitReason::Concurrency(n) => write!(f, "{n} requests are in flight, the most allowed at once"),
            WaitReason::Server { daily: true } => f.write_str("the server said the daily quota is spent"),
            WaitReason::Server { daily: false } => f.write_str("the server answered 429 and asked to wait"),
            WaitReason::Backoff => {
                f.write_str("the server answered 429 without saying how long to wait, so gm backs off")
            }
            WaitReason::Queue(n) => write!(f, "{n} requests wait ahead of this one"),
        }
    }
}

/// When a request may be admitted, and why not now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// The earliest instant at which the request may be admitted; `None` when that depends on a request in
    /// flight finishing (concurrency) or on the requests queued ahead.
    pub until: Option<Instant>,
    /// The limit in the way (the one that frees last, when several are).
    pub reason: WaitReason,
}

impl Wait {
    /// How long from `now` until [`Wait::until`].
    pub fn after(&self, now: Instant) -> Option<Duration> {
        self.until.map(|u| u.saturating_duration_since(now))
    }
}

/// Why `try_acquire` did not admit a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Denied {
    /// Not now; try again as the [`Wait`] says.
    Wait(Wait),
    /// Never: the request is over a per-request cap or a whole token budget.
    Refused(LimitError),
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Wait(w) => write!(f, "not now: {}", w.reason),
            Denied::Refused(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Denied {}

fn span_of(w: &Window, margin: crate::Margin) -> Duration {
    margin.apply(w.per).min(MAX_SPAN)
}

/// The last `limit` admissions of one window, oldest first, each kept as the instant it stops counting
/// (admission + span). A request is allowed when fewer than `limit` admissions still count, i.e. when the
/// log is not full or its oldest entry has expired.
#[derive(Debug, Clone)]
pub(crate) struct RequestLog {
    pub(crate) window: Window,
    span: Duration,
    cap: usize,
    ring: VecDeque<Instant>,
}

impl RequestLog {
    fn new(window: Window, span: Duration) -> Self {
        let cap = usize::try_from(window.limit).unwrap_or(usize::MAX);
        Self { window, span, cap, ring: VecDeque::new() }
    }

    /// When the next request may pass this window, if not now.
    #[inline]
    fn free_at(&self, now: Instant) -> Option<Instant> {
        if self.ring.len() < self.cap {
            return None;
        }
        let free = *self.ring.front()?;
        (free > now).then_some(free)
    }

    /// Records an admission. Entries never go backwards: a caller whose `now` is older than the newest
    /// entry's (two threads racing) is recorded as admitted with the newest, which only makes the window
    /// stricter.
    #[inline]
    fn record(&mut self, now: Instant) {
        let expires = now + self.span;
        let t = match self.ring.back() {
            Some(&last) if last > expires => last,
            _ => expires,
        };
        if self.ring.len() >= self.cap {
            self.ring.pop_front();
        }
        self.ring.push_back(t);
    }

    /// Admissions that still count at `now`.
    fn used(&self, now: Instant) -> u64 {
        let expired = self.ring.partition_point(|&t| t <= now);
        (self.ring.len() - expired) as u64
    }

    /// The earliest instant the request `ahead + 1` places from now could pass this window, assuming
    /// those ahead of it pass as early as they can. A lower bound, used to fail fast.
    fn earliest_after(&self, ahead: usize, now: Instant) -> Option<Instant> {
        let m = self.ring.len();
        let bound = if ahead < self.cap {
            // Among the old entries, at most cap-1-ahead may still count when this request passes.
            let j = (m + ahead).checked_sub(self.cap)?;
            *self.ring.get(j)?
        } else {
            let head = if m >= self.cap { self.ring.front().copied() } else { None };
            let head = head.filter(|&t| t > now).unwrap_or(now);
            let rounds = u32::try_from(ahead / self.cap).unwrap_or(u32::MAX);
            head + self.span.saturating_mul(rounds).min(MAX_SPAN)
        };
        (bound > now).then_some(bound)
    }
}

/// Token reservations within one budget window, oldest first, with their running sum.
#[derive(Debug, Clone)]
pub(crate) struct TokenLog {
    pub(crate) window: Window,
    span: Duration,
    entries: VecDeque<(Instant, u64, u64)>,
    used: u64,
}

impl TokenLog {
    fn new(window: Window, span: Duration) -> Self {
        Self { window, span, entries: VecDeque::new(), used: 0 }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(t, _, n)) = self.entries.front() {
            if t + self.span > now {
                break;
            }
            self.used -= n;
            self.entries.pop_front();
        }
    }

    /// When `tokens` more fit in the budget, if not now. Call after [`TokenLog::prune`].
    fn free_at(&self, tokens: u64) -> Option<Instant> {
        if self.used + tokens <= self.window.limit {
            return None;
        }
        let mut used = self.used;
        for &(t, _, n) in &self.entries {
            used -= n;
            if used + tokens <= self.window.limit {
                return Some(t + self.span);
            }
        }
        // Cannot happen for a request within the budget (checked before): all entries expire in the end.
        self.entries.back().map(|&(t, _, _)| t + self.span)
    }

    fn record(&mut self, now: Instant, id: u64, tokens: u64) {
        let t = match self.entries.back() {
            Some(&(last, _, _)) if last > now => last,
            _ => now,
        };
        self.entries.push_back((t, id, tokens));
        self.used += tokens;
    }

    /// Replaces reservation `id` by `actual` tokens; returns whether fewer tokens are now counted.
    fn settle(&mut self, id: u64, actual: u64) -> bool {
        let Ok(i) = self.entries.binary_search_by_key(&id, |&(_, id, _)| id) else {
            return false; // already out of the window
        };
        let old = self.entries[i].2;
        self.entries[i].2 = actual;
        self.used = self.used - old + actual;
        actual < old
    }
}

/// A waiter in a key's first-come-first-served queue.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) ticket: u64,
    pub(crate) wake: Arc<tokio::sync::Notify>,
}

/// Everything known about one key.
#[derive(Debug)]
pub(crate) struct KeyState {
    pub(crate) spec: LimitSpec,
    windows: Vec<RequestLog>,
    tokens: Vec<TokenLog>,
    blocked: Option<(Instant, bool)>,
    /// Whether the block in force is gm's own backoff after a 429 that said nothing about waiting.
    backing_off: bool,
    /// 429s in a row that said nothing about how long to wait.
    pub(crate) untold_429s: u32,
    next_reservation: u64,
    pub(crate) next_ticket: u64,
    pub(crate) queue: VecDeque<Waiter>,
    /// Every admission (instant, reservation id, tokens) within `horizon`, oldest first: what a change of
    /// limits needs to fill its new windows, whichever limits were in force when each was admitted.
    history: VecDeque<(Instant, u64, u64)>,
    /// How far back the history reaches: [`HISTORY_SPAN`], or the longest span of any window this key has
    /// had if longer.
    horizon: Duration,
}

/// What an admission reserved, for the permit to give back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    pub(crate) reservation: Option<u64>,
    /// The admission's id in the shared store, if there is one.
    pub(crate) store_id: Option<i64>,
    /// The concurrency lease the store holds for it, if the key has a cap.
    pub(crate) lease: Option<Lease>,
}

/// A concurrency lease in a shared store, held by one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Its id in the store.
    pub(crate) id: i64,
    /// When this process took it from the store.
    pub(crate) taken: Instant,
    /// Whether it came in a block, and may be kept for a later request when this one ends.
    pub(crate) from_block: bool,
}

impl KeyState {
    pub(crate) fn new(spec: LimitSpec) -> Self {
        let margin = spec.margin();
        Self {
            windows: spec.windows.iter().map(|w| RequestLog::new(*w, span_of(w, margin))).collect(),
            tokens: spec.token_windows.iter().map(|w| TokenLog::new(*w, span_of(w, margin))).collect(),
            horizon: spec
                .windows
                .iter()
                .chain(&spec.token_windows)
                .map(|w| span_of(w, margin))
                .fold(HISTORY_SPAN, Duration::max),
            spec,
            blocked: None,
            backing_off: false,
            untold_429s: 0,
            next_reservation: 0,
            next_ticket: 0,
            queue: VecDeque::new(),
            history: VecDeque::new(),
        }
    }

    /// Records an admission in the history and forgets what fell out of it (older than the horizon, or
    /// past [`HISTORY_CAP`] entries).
    fn remember(&mut self, now: Instant, id: u64, tokens: u64) {
        let at = self.history.back().map_or(now, |&(last, _, _)| last.max(now));
        self.history.push_back((at, id, tokens));
        while let Some(&(t, _, _)) = self.history.front() {
            if t + self.horizon > now && self.history.len() <= HISTORY_CAP {
                break;
            }
            self.history.pop_front();
        }
    }

    /// Admits a request now, or says how long to wait, or refuses it for good.
    /// All-or-nothing: nothing is recorded unless every limit allows the request.
    ///
    /// `in_flight` lives outside the state so that a finishing request can give its slot back without the
    /// lock; it only ever grows here, under the lock, after the check, so it never exceeds the cap.
    #[inline]
    pub(crate) fn try_admit(
        &mut self,
        now: Instant,
        tokens: &TokenCount,
        in_flight: &AtomicU32,
    ) -> Result<Admission, Denied> {
        self.try_admit_with(now, tokens, in_flight, |_| Ok((None, None)))
    }

    /// As [`KeyState::try_admit`], asking `shared` (a store shared with other processes) last, once every
    /// local limit allows the request; the request is recorded locally only if `shared` admits it too.
    #[inline]
    pub(crate) fn try_admit_with(
        &mut self,
        now: Instant,
        tokens: &TokenCount,
        in_flight: &AtomicU32,
        shared: impl FnOnce(&LimitSpec) -> Result<(Option<i64>, Option<Lease>), Denied>,
    ) -> Result<Admission, Denied> {
        self.spec.check_request(tokens).map_err(Denied::Refused)?;
        let mut wait: Option<(Instant, WaitReason)> = None;
        let mut later = |until: Instant, reason: WaitReason| {
            if wait.is_none_or(|(u, _)| until > u) {
                wait = Some((until, reason));
            }
        };
        match self.blocked {
            Some((until, daily)) if until > now => later(until, self.block_reason(daily)),
            Some(_) => self.blocked = None,
            None => {}
        }
        for w in &self.windows {
            if let Some(free) = w.free_at(now) {
                later(free, WaitReason::Requests(w.window));
            }
        }
        let total = tokens.total();
        for t in &mut self.tokens {
            t.prune(now);
            if let Some(free) = t.free_at(total) {
                later(free, WaitReason::Tokens(t.window));
            }
        }
        if let Some((until, reason)) = wait {
            return Err(Denied::Wait(Wait { until: Some(until), reason }));
        }
        if let Some(cap) = self.spec.concurrency {
            if in_flight.load(Ordering::SeqCst) >= cap {
                return Err(Denied::Wait(Wait { until: None, reason: WaitReason::Concurrency(cap) }));
            }
        }
        let (store_id, lease) = shared(&self.spec)?;
        for w in &mut self.windows {
            w.record(now);
        }
        self.next_reservation += 1;
        let id = self.next_reservation;
        for t in &mut self.tokens {
            t.record(now, id, total);
        }
        self.remember(now, id, total);
        let reservation = (!self.tokens.is_empty()).then_some(id);
        in_flight.fetch_add(1, Ordering::SeqCst);
        Ok(Admission { reservation, store_id, lease })
    }

    /// Replaces a reservation's estimate by the actual usage; true when that frees tokens.
    pub(crate) fn settle(&mut self, reservation: u64, actual: u64) -> bool {
        let mut freed = false;
        for t in &mut self.tokens {
            freed |= t.settle(reservation, actual);
        }
        if let Ok(i) = self.history.binary_search_by_key(&reservation, |&(_, id, _)| id) {
            self.history[i].2 = actual;
        }
        freed
    }

    /// A lower bound on when the request `ahead + 1` places back could be admitted, with the reason.
    pub(crate) fn earliest_after(&self, ahead: usize, now: Instant) -> Option<(Instant, WaitReason)> {
        let mut best: Option<(Instant, WaitReason)> = None;
        if let Some((until, daily)) = self.blocked {
            if until > now {
                best = Some((until, self.block_reason(daily)));
            }
        }
        for w in &self.windows {
            if let Some(t) = w.earliest_after(ahead, now) {
                if best.is_none_or(|(b, _)| t > b) {
                    best = Some((t, WaitReason::Requests(w.window)));
                }
            }
        }
        best
    }

    /// Blocks the key until `until` (a 429; `told` when the server said how long); never shortens an
    /// existing block.
    pub(crate) fn block(&mut self, until: Instant, daily: bool, told: bool) {
        match &mut self.blocked {
            Some((u, d)) if *u >= until => *d |= daily,
            slot => {
                *slot = Some((until, daily));
                self.backing_off = !told;
            }
        }
    }

    fn block_reason(&self, daily: bool) -> WaitReason {
        if self.backing_off && !daily {
            WaitReason::Backoff
        } else {
            WaitReason::Server { daily }
        }
    }

    /// The server says `remaining` requests are left in the window allowing `limit` (or the shortest window
    /// when the limit is unknown or matches none): count phantom admissions until the local count agrees.
    /// Only ever tightens, since responses can arrive out of order and other processes share the quota.
    pub(crate) fn correct_requests(&mut self, remaining: u64, limit: Option<u64>, now: Instant) {
        let idx = limit
            .and_then(|l| self.windows.iter().position(|w| w.window.limit == l))
            .or(if self.windows.is_empty() { None } else { Some(0) });
        let Some(i) = idx else { return };
        let local_remaining = self.windows[i].window.limit.saturating_sub(self.windows[i].used(now));
        let extra = local_remaining.saturating_sub(remaining);
        for _ in 0..extra {
            self.windows[i].record(now);
        }
    }

    /// As [`KeyState::correct_requests`], for token budgets.
    pub(crate) fn correct_tokens(&mut self, remaining: u64, limit: Option<u64>, now: Instant) {
        let idx = limit
            .and_then(|l| self.tokens.iter().position(|w| w.window.limit == l))
            .or(if self.tokens.is_empty() { None } else { Some(0) });
        let Some(i) = idx else { return };
        let log = &mut self.tokens[i];
        log.prune(now);
        let local_remaining = log.window.limit.saturating_sub(log.used);
        let extra = local_remaining.saturating_sub(remaining);
        if extra > 0 {
            self.next_reservation += 1;
            log.record(now, self.next_reservation, extra);
        }
    }

    /// Changes the limits, keeping the admissions already counted.
    ///
    /// The new windows are filled from the key's history, which holds every admission within the longest
    /// window any of its limits ever had: limits that shrink and grow again (5/1m, then 2/1s, then 5/1m)
    /// still count every admission of the last minute.
    pub(crate) fn reconfigure(&mut self, spec: LimitSpec) {
        let mut next = KeyState::new(spec);
        next.horizon = next.horizon.max(self.horizon);
        next.history = std::mem::take(&mut self.history);
        for w in &mut next.windows {
            let keep = w.cap.min(next.history.len());
            // Ring entries are expiry instants.
            w.ring = next.history.iter().skip(next.history.len() - keep).map(|&(t, _, _)| t + w.span).collect();
        }
        for t in &mut next.tokens {
            t.entries = next.history.clone();
            t.used = t.entries.iter().map(|&(_, _, n)| n).sum();
        }
        next.blocked = self.blocked;
        next.backing_off = self.backing_off;
        next.untold_429s = self.untold_429s;
        next.next_reservation = self.next_reservation;
        next.next_ticket = self.next_ticket;
        next.queue = std::mem::take(&mut self.queue);
        *self = next;
    }

    /// Forgets every admission and every server block; requests in flight and waiters stay.
    pub(crate) fn reset(&mut self) {
        for w in &mut self.windows {
            w.ring.clear();
        }
        for t in &mut self.tokens {
            t.entries.clear();
            t.used = 0;
        }
        self.history.clear();
        self.blocked = None;
        self.untold_429s = 0;
    }

    pub(crate) fn status(&mut self, now: Instant, in_flight: u32) -> StatusParts {
        let windows = self
            .windows
            .iter()
            .map(|w| {
                let used = w.used(now);
                let oldest = w.ring.iter().find(|&&t| t > now);
                WindowStatus {
                    limit: w.window.limit,
                    per: w.window.per,
                    used,
                    remaining: w.window.limit.saturating_sub(used),
                    frees_in: if used >= w.window.limit {
                        w.free_at(now).map(|t| t - now)
                    } else {
                        oldest.map(|&t| t - now)
                    },
                    empty_in: w.ring.back().filter(|&&t| t > now).map(|&t| t - now),
                }
            })
            .collect();
        let tokens = self
            .tokens
            .iter_mut()
            .map(|t| {
                t.prune(now);
                WindowStatus {
                    limit: t.window.limit,
                    per: t.window.per,
                    used: t.used,
                    remaining: t.window.limit.saturating_sub(t.used),
                    frees_in: t.entries.front().map(|&(at, _, _)| at + t.span - now),
                    empty_in: t.entries.back().map(|&(at, _, _)| at + t.span - now),
                }
            })
            .collect();
        let blocked = self.blocked.filter(|(u, _)| *u > now);
        StatusParts {
            windows,
            tokens,
            in_flight,
            concurrency: self.spec.concurrency,
            waiting: self.queue.len(),
            blocked_for: blocked.map(|(u, _)| u - now),
            daily_quota_spent: blocked.is_some_and(|(_, d)| d),
        }
    }
}

/// Where one window of a key stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowStatus {
    /// Requests (or tokens) the window allows.
    pub limit: u64,
    /// The window's configured length (without the margin).
    #[serde(serialize_with = "ser_ms", rename = "per_ms")]
    pub per: Duration,
    /// Requests (or tokens) counted in the window now.
    pub used: u64,
    /// `limit - used`.
    pub remaining: u64,
    /// When the window next frees room: for a full window, when the next request may pass; otherwise when the
    /// oldest counted request stops counting. `None` when nothing is counted.
    #[serde(serialize_with = "ser_opt_ms", rename = "frees_in_ms")]
    pub frees_in: Option<Duration>,
    /// When nothing will count any more (the window resets completely), if nothing else is admitted.
    #[serde(serialize_with = "ser_opt_ms", rename = "empty_in_ms")]
    pub empty_in: Option<Duration>,
}

pub(crate) struct StatusParts {
    pub(crate) windows: Vec<WindowStatus>,
    pub(crate) tokens: Vec<WindowStatus>,
    pub(crate) in_flight: u32,
    pub(crate) concurrency: Option<u32>,
    pub(crate) waiting: usize,
    pub(crate) blocked_for: Option<Duration>,
    pub(crate) daily_quota_spent: bool,
}

pub(crate) fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn ser_opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_ms(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Margin;

    fn spec(s: &str) -> LimitSpec {
        let mut spec = LimitSpec::parse(s).unwrap();
        spec.margin = Some(Margin::ZERO);
        spec
    }

    const NONE: TokenCount = TokenCount::ZERO;

    /// The state with its own in-flight counter, as the limiter keeps them.
    struct Key {
        st: KeyState,
        in_flight: AtomicU32,
    }

    impl Key {
        fn new(spec: LimitSpec) -> Self {
            Self { st: KeyState::new(spec), in_flight: AtomicU32::new(0) }
        }
        fn try_admit(&mut self, now: Instant, tokens: &TokenCount) -> Result<Admission, Denied> {
            self.st.try_admit(now, tokens, &self.in_flight)
        }
        fn status(&mut self, now: Instant) -> StatusParts {
            let n = self.in_flight.load(Ordering::SeqCst);
            self.st.status(now, n)
        }
        fn release(&self) {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_burst_of_n_passes_and_the_next_waits_a_full_window() {
        let t0 = Instant::now();
        let mut st = Key::new(spec("3/10s"));
        for _ in 0..3 {
            st.try_admit(t0, &NONE).unwrap();
        }
        let Err(Denied::Wait(w)) = st.try_admit(t0 + Duration::from_secs(1), &NONE) else { panic!() };
        assert_eq!(w.until, Some(t0 + Duration::from_secs(10)));
        assert_eq!(w.reason, WaitReason::Requests(Window::new(3, Duration::from_secs(10))));
        assert!(st.try_admit(t0 + Duration::from_secs(10), &NONE).is_ok());
    }

    #[test]
    fn the_margin_lengthens_windows() {
        let t0 = Instant::now();
        let mut st = Key::new(LimitSpec::parse("1/1s,margin=50ms").unwrap());
        st.try_admit(t0, &NONE).unwrap();
        let Err(Denied::Wait(w)) = st.try_admit(t0 + Duration::from_secs(1), &NONE) else { panic!() };
        assert_eq!(w.until, Some(t0 + Duration::from_millis(1050)));
    }

    #[test]
    fn admission_is_all_or_nothing() {
        let t0 = Instant::now();
        let mut st = Key::new(spec("2/1s,3/1m"));
        st.try_admit(t0, &NONE).unwrap();
        st.try_admit(t0, &NONE).unwrap();
        // Denied by the 1 s window: the minute window must not count it.
        assert!(st.try_admit(t0, &NONE).is_err());
        let s = st.status(t0);
        assert_eq!(s.windows[1].used, 2);
        st.try_admit(t0 + Duration::from_secs(1), &NONE).unwrap();
        let Err(Denied::Wait(w)) = st.try_admit(t0 + Duration::from_secs(2), &NONE) else { panic!() };
        assert_eq!(w.until, Some(t0 + Duration::from_secs(60)));
        assert!(matches!(w.reason, WaitReason::Requests(Window { limit: 3, .. })));
    }

    #[test]
    fn token_budgets_reserve_and_settle() {
        let t0 = Instant::now();
        let mut st = Key::new(spec("tpm=1000"));
        let a = st.try_admit(t0, &TokenCount::new(400, 200)).unwrap();
        let Err(Denied::Wait(w)) = st.try_admit(t0, &TokenCount::new(300, 200)) else { panic!() };
        assert_eq!(w.until, Some(t0 + Duration::from_secs(60)));
        assert!(st.st.settle(a.reservation.unwrap(), 450));
        st.try_admit(t0, &TokenCount::new(300, 200)).unwrap();
        let Err(Denied::Refused(e)) = st.try_admit(t0, &TokenCount::new(900, 200)) else { panic!() };
        assert!(e.is_request_too_large());
    }

    #[test]
    fn concurrency_is_capped_and_released() {
        let t0 = Instant::now();
        let mut st = Key::new(spec("concurrency=1"));
        st.try_admit(t0, &NONE).unwrap();
        let Err(Denied::Wait(w)) = st.try_admit(t0, &NONE) else { panic!() };
        assert_eq!((w.until, w.reason), (None, WaitReason::Concurrency(1)));
        st.release();
        st.try_admit(t0, &NONE).unwrap();
    }

    #[test]
    fn racing_timestamps_never_go_backwards() {
        let t0 = Instant::now();
        let mut st = Key::new(spec("2/10s"));
        st.try_admit(t0 + Duration::from_secs(5), &NONE).unwrap();
        st.try_admit(t0, &NONE).unwrap(); // a thread that read the clock earlier
        let Err(Denied::Wait(w)) = st.try_admit(t0 + Duration::from_secs(10), &NONE) else { panic!() };
        assert_eq!(w.until, Some(t0 + Duration::from_secs(15)));
    }

    #[test]
    fn corrections_only_tighten() {
        let t0 = Instant::now();
        let mut st = Key::new(spec("10/1m,100/1d,tpm=1000"));
        st.try_admit(t0, &NONE).unwrap();
        st.st.correct_requests(5, Some(10), t0);
        assert_eq!(st.status(t0).windows[0].remaining, 5);
        st.st.correct_requests(8, None, t0);
        assert_eq!(st.status(t0).windows[0].remaining, 5);
        st.st.correct_requests(0, Some(100), t0);
        assert_eq!(st.status(t0).windows[1].remaining, 0);
        st.st.correct_tokens(100, None, t0);
        assert_eq!(st.status(t0).tokens[0].remaining, 100);
    }

    #[test]
    fn reconfigure_keeps_history() {
        let t0 = Instant::now();
        let mut st = Key::new(spec("5/1m,50/1d"));
        for _ in 0..4 {
            st.try_admit(t0, &NONE).unwrap();
        }
        st.st.reconfigure(spec("3/1m"));
        assert!(st.try_admit(t0, &NONE).is_err());
        assert_eq!(st.in_flight.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn lower_bound_for_queued_requests() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut st = Key::new(spec("2/10s"));
        st.try_admit(t0, &NONE).unwrap();
        st.try_admit(t0 + s(1), &NONE).unwrap();
        let now = t0 + s(2);
        assert_eq!(st.st.earliest_after(0, now).map(|x| x.0), Some(t0 + s(10)));
        assert_eq!(st.st.earliest_after(1, now).map(|x| x.0), Some(t0 + s(11)));
        assert_eq!(st.st.earliest_after(2, now).map(|x| x.0), Some(t0 + s(20)));
        assert_eq!(st.st.earliest_after(5, now).map(|x| x.0), Some(t0 + s(30)));
    }
}
