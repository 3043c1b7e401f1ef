//! Admissions and concurrency leases a process takes from a shared store in blocks and hands out itself.
//!
//! Asking the store for every request costs a transaction (or a round trip) per request, under the key's lock.
//! Where the limits leave room for it, a key of a [`Limiter`](crate::Limiter) with a store instead takes a
//! block of admissions ([`WindowStore::admit_block`](crate::WindowStore::admit_block)), recorded in the store as
//! made at the end of a short hold ([`HOLD`]), and hands them out until the hold ends; and it keeps the
//! concurrency leases of requests that ended for the requests to come, up to a share of the cap.
//!
//! What this costs the limits, and what it keeps:
//! - **Windows stay exact for every request actually sent.** A block's admissions are checked against every
//!   window at the moment it is taken, counting every admission recorded later than that moment too, and are
//!   recorded no earlier than the last moment one may be handed out, so every window counts each of them at
//!   least as long as it counts the request it admits. A block is at most half the room the tightest window
//!   has left, and at most `1/BLOCK_SHARE` of its limit, so small limits (GitHub's tiers) are admitted one
//!   request at a time as before. Admissions a block did not hand out before its hold ended (within
//!   [`SWEEP_EVERY`] of its end), or before the block was ended (new limits, a 429, the limiter dropped), are
//!   given back to the store
//!   ([`WindowStore::give_back`](crate::WindowStore::give_back)), and count until then: a store that cannot
//!   take them back keeps them, which only makes the windows stricter. The block's size follows the
//!   request rate measured over the last hold or more (what it hands out in three quarters of a hold), so at a
//!   steady rate each block runs out before its hold ends and none is left unused, and a short burst takes
//!   none: admissions are taken one at a time until a rate of more than one per hold has been measured.
//! - **The concurrency cap stays exact.** A lease kept for later still counts in the store as a request in
//!   flight (a reset of the key keeps it, as it keeps the leases of requests in flight), so other processes
//!   see the cap as stricter by the leases a process keeps, at most `cap / LEASE_SHARE`. A lease lapses in the
//!   state file [`LEASE`](crate::store::LEASE) after the store granted it, so a kept lease reused for a request
//!   lapses up to [`IDLE_LEASE_FOR`] sooner than a fresh one would. When the key's limits change, the leases
//!   kept beyond what the new limits allow go back at once. A lease goes back to the store once it has been
//!   held for [`IDLE_LEASE_FOR`] since the store granted it, once its key has had no admission for
//!   [`QUIET_FOR`], and when the key's limiter is dropped. Caps under `LEASE_SHARE` keep no lease.
//! - **Token budgets** need each request's tokens in the store, so a key with one is admitted one request at a
//!   time, as before.
//! - A 429 another process recorded in the store reaches this one's next block (within [`HOLD`]); this
//!   process's own 429s block it at once and end its block.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::state::Lease;
use crate::store::{BlockAdmission, BlockWant, StoreLink};
use crate::{Denied, LimitKey, LimitSpec, Wait};

/// How long a block's admissions may be handed out after the block is taken.
pub const HOLD: Duration = Duration::from_millis(50);

/// The most admissions one block takes.
const MAX_BLOCK: u32 = 256;

/// A block is at most this fraction of the tightest request window's limit.
const BLOCK_SHARE: u64 = 32;

/// The leases kept for later are at most this fraction of the concurrency cap.
const LEASE_SHARE: u32 = 16;

/// How long a lease is kept for later before it is given back to the store.
pub const IDLE_LEASE_FOR: Duration = Duration::from_secs(30);

/// A key with no admission for this long gives every lease it keeps back to the store.
pub const QUIET_FOR: Duration = Duration::from_secs(1);

/// How often a limiter's sweeping thread gives back what its keys no longer use
/// ([`Limiter::sweep`](crate::Limiter::sweep)).
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// How a spec is admitted against a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocks {
    /// The most admissions a block may take (1: one at a time, recorded when admitted).
    max_block: u32,
    /// How many leases may be kept for later.
    spare: u32,
}

impl Blocks {
    /// How `spec` is admitted in blocks; `None` when it is admitted one request at a time by
    /// [`WindowStore::admit`](crate::WindowStore::admit) (it has a token budget, or its limits are too small
    /// for blocks to take anything off the store).
    pub(crate) fn of(spec: &LimitSpec) -> Option<Self> {
        if !spec.token_windows.is_empty() {
            return None;
        }
        let max_block = spec
            .windows
            .iter()
            .map(|w| u32::try_from(w.limit / BLOCK_SHARE).unwrap_or(u32::MAX))
            .min()
            .unwrap_or(1)
            .clamp(1, MAX_BLOCK);
        let spare = spec.concurrency.map_or(0, |cap| cap / LEASE_SHARE);
        (max_block > 1 || spare > 0).then_some(Self { max_block, spare })
    }
}

/// What a pool gives back to the store once its lock is let go.
#[derive(Debug, Default)]
struct Leftovers {
    /// Leases kept too long.
    leases: Vec<i64>,
    /// A block's admissions not handed out in time.
    admissions: Option<std::ops::RangeInclusive<i64>>,
}

impl Leftovers {
    /// Gives it back to the store. A lease that cannot be ended here lapses in the store on its own;
    /// admissions that cannot be given back count until they leave the windows.
    fn give(self, link: &StoreLink, key: &LimitKey) {
        for id in self.leases {
            let _ = link.store.release(key, id);
        }
        if let Some(ids) = self.admissions {
            let _ = link.store.give_back(key, ids);
        }
    }
}

/// A key's admissions and leases taken from the store and not yet handed out.
#[derive(Debug)]
pub(crate) struct Pool {
    inner: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    /// Admissions recorded in the store and not yet handed out.
    credits: u32,
    /// The last instant they may be handed out.
    credits_until: Option<Instant>,
    /// The current block's admissions: the first one's id and how many; the ones not handed out are its last.
    block_first: i64,
    block_granted: u32,
    /// How many admissions the next block asks for.
    block: u32,
    /// The rate's measure: admissions handed out since `period_start`.
    period_start: Option<Instant>,
    period_count: u32,
    /// Leases kept for the requests to come.
    idle: Vec<Lease>,
    /// How many leases may be kept (from the spec last admitted under).
    spare: u32,
    /// The last admission handed out.
    last_take: Option<Instant>,
}

impl PoolState {
    /// Forgets the block's admissions not handed out, and says which they are, to give back to the store.
    fn forget_credits(&mut self) -> Option<std::ops::RangeInclusive<i64>> {
        let left = std::mem::take(&mut self.credits);
        self.credits_until = None;
        (left > 0).then(|| {
            let end = self.block_first + i64::from(self.block_granted) - 1;
            end - i64::from(left) + 1..=end
        })
    }

    /// What the pool no longer uses at `now`, taken out of it to give back to the store: the block's
    /// admissions once its hold has ended, the leases kept for longer than [`IDLE_LEASE_FOR`], and every
    /// lease when the key is `quiet`.
    fn leftovers(&mut self, now: Instant, quiet: bool) -> Leftovers {
        let mut back = Leftovers::default();
        if self.credits > 0 && self.credits_until.is_none_or(|u| now > u) {
            back.admissions = self.forget_credits();
        }
        // The oldest first: the ones kept too long are at the front.
        let stale = if quiet {
            self.idle.len()
        } else {
            self.idle.partition_point(|l| now.saturating_duration_since(l.taken) > IDLE_LEASE_FOR)
        };
        back.leases = self.idle.drain(..stale).map(|l| l.id).collect();
        back
    }

    /// Sizes the next block by the rate measured over the last hold or more: what that rate hands out in three
    /// quarters of a hold, so at a steady rate a block runs out (and the next is taken) before its hold ends
    /// unless the rate falls by a quarter. Until a whole hold has been measured the size stays as it was
    /// (one at first), so a short burst of requests takes no block.
    fn size_block(&mut self, now: Instant) {
        let Some(start) = self.period_start else {
            self.period_start = Some(now);
            self.period_count = 0;
            return;
        };
        let spent = now.saturating_duration_since(start);
        if spent >= HOLD {
            let rate = f64::from(self.period_count) / spent.as_secs_f64();
            // Bounded above by MAX_BLOCK before the cast, so it cannot wrap.
            self.block = (rate * HOLD.as_secs_f64() * 0.75).ceil().min(f64::from(MAX_BLOCK)) as u32;
            self.period_start = Some(now);
            self.period_count = 0;
        }
    }
}

impl Pool {
    pub(crate) fn new() -> Self {
        Self { inner: Mutex::new(PoolState { block: 1, ..PoolState::default() }) }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands out an admission (when `spec` has request windows) and a lease (when it has a cap) from what the
    /// pool holds, taking a block from the store first when it holds too little.
    pub(crate) fn take(
        &self,
        link: &StoreLink,
        key: &LimitKey,
        spec: &LimitSpec,
        blocks: Blocks,
        now: Instant,
    ) -> Result<(Option<i64>, Option<Lease>), Denied> {
        let mut back = Leftovers::default();
        let out = self.take_keeping(link, key, spec, blocks, now, &mut back);
        back.give(link, key);
        out
    }

    fn take_keeping(
        &self,
        link: &StoreLink,
        key: &LimitKey,
        spec: &LimitSpec,
        blocks: Blocks,
        now: Instant,
        back: &mut Leftovers,
    ) -> Result<(Option<i64>, Option<Lease>), Denied> {
        let mut p = self.lock();
        p.spare = blocks.spare;
        p.last_take = Some(now);
        // A block whose hold ended with admissions left gives them back, and the next block is sized by the
        // rate (below); leases kept too long go back too.
        *back = p.leftovers(now, false);
        let need_requests = !spec.windows.is_empty() && p.credits == 0;
        let cap = spec.concurrency;
        let need_lease = cap.is_some() && p.idle.is_empty();
        if need_requests || need_lease {
            if need_requests {
                p.size_block(now);
            }
            p.block = p.block.clamp(1, blocks.max_block);
            let want = BlockWant {
                requests: if need_requests { p.block } else { 0 },
                leases: if need_lease { (blocks.spare / 4).clamp(1, 16) } else { 0 },
                // One at a time, an admission is recorded when it is made, as `admit` would.
                hold: if blocks.max_block > 1 { HOLD } else { Duration::ZERO },
            };
            let wall = link.wall(now);
            match link.store.admit_block(key, spec, want, wall) {
                Ok(BlockAdmission::Granted { requests, first, until, leases }) => {
                    if need_requests {
                        p.credits = requests;
                        p.block_first = first;
                        p.block_granted = requests;
                        p.credits_until = Some(link.instant(now, wall, until));
                    }
                    p.idle.extend(leases.into_iter().map(|id| Lease { id, taken: now, from_block: true }));
                }
                Ok(BlockAdmission::Wait { until, reason }) => {
                    return Err(Denied::Wait(Wait { until: Some(link.instant(now, wall, until)), reason }));
                }
                Err(e) => return Err(Denied::Refused(e)),
            }
        }
        if !spec.windows.is_empty() {
            if p.credits == 0 {
                let e = "the store granted a block without an admission".to_string();
                return Err(Denied::Refused(crate::LimitError::Store(e.into())));
            }
            p.credits -= 1;
            p.period_count = p.period_count.saturating_add(1);
        }
        let lease = match cap {
            Some(_) => match p.idle.pop() {
                Some(l) => Some(l),
                None => {
                    let e = "the store granted a block without a lease".to_string();
                    return Err(Denied::Refused(crate::LimitError::Store(e.into())));
                }
            },
            None => None,
        };
        Ok((None, lease))
    }

    /// Takes back the lease of a request that ended; false when it must be ended in the store instead (it did
    /// not come in a block, or the pool keeps as many as the limits allow).
    pub(crate) fn keep(&self, lease: Lease) -> bool {
        let mut p = self.lock();
        if lease.from_block && p.idle.len() < p.spare as usize {
            // The oldest first, so the ones kept too long are at the front.
            let at = p.idle.partition_point(|l| l.taken <= lease.taken);
            p.idle.insert(at, lease);
            true
        } else {
            false
        }
    }

    /// Ends the block (the limits changed, or a 429 came): the next request takes a new block. Returns the
    /// admissions not handed out, to give back to the store.
    pub(crate) fn end_block(&self) -> Option<std::ops::RangeInclusive<i64>> {
        let mut p = self.lock();
        p.block = 1;
        p.forget_credits()
    }

    /// Forgets the block's admissions after the key's reset, which deleted them in the store (its leases
    /// stay, and so do the ones kept here).
    pub(crate) fn reset(&self) {
        let mut p = self.lock();
        p.credits = 0;
        p.credits_until = None;
        p.block = 1;
    }

    /// The key's limits changed to ones admitted by `blocks` (`None`: one request at a time): the block's
    /// admissions not handed out go back to the store, and so do the leases kept beyond what the new limits
    /// allow (all of them, one request at a time); a lease of a request still out is kept when it ends only
    /// as the new limits allow.
    pub(crate) fn reconfigure(&self, link: &StoreLink, key: &LimitKey, blocks: Option<Blocks>) {
        let back = {
            let mut p = self.lock();
            p.block = 1;
            p.spare = blocks.map_or(0, |b| b.spare);
            let keep = (p.spare as usize).min(p.idle.len());
            let extra: Vec<i64> = p.idle.drain(keep..).map(|l| l.id).collect();
            Leftovers { leases: extra, admissions: p.forget_credits() }
        };
        back.give(link, key);
    }

    /// Gives back to the store what the pool holds and no longer uses: a block's admissions once its hold
    /// has ended, leases kept for [`IDLE_LEASE_FOR`], and every lease once the key has been quiet for
    /// [`QUIET_FOR`]. A limiter's sweeping thread calls this every [`SWEEP_EVERY`], so a process that stops
    /// sending leaves nothing held for long.
    pub(crate) fn sweep(&self, link: &StoreLink, key: &LimitKey, now: Instant) {
        let back = {
            let mut p = self.lock();
            let quiet = p.last_take.is_none_or(|t| now.saturating_duration_since(t) >= QUIET_FOR);
            p.leftovers(now, quiet)
        };
        back.give(link, key);
    }

    /// Gives back to the store everything the pool holds: the block's admissions not handed out and the
    /// leases kept.
    pub(crate) fn give_all_back(&self, link: &StoreLink, key: &LimitKey) {
        let back = {
            let mut p = self.lock();
            Leftovers { admissions: p.forget_credits(), leases: p.idle.drain(..).map(|l| l.id).collect() }
        };
        back.give(link, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(spec: &str) -> Option<Blocks> {
        Blocks::of(&LimitSpec::parse(spec).unwrap())
    }

    /// GitHub's tiers, small caps and token budgets are admitted one request at a time, as without blocks.
    #[test]
    fn small_limits_and_token_budgets_take_no_blocks() {
        for spec in
            ["15/1m,150/1d,concurrency=5", "10/1m,50/1d,concurrency=2", "63/1m", "concurrency=15", "100000/1m,tpm=1000"]
        {
            assert_eq!(blocks(spec), None, "{spec}");
        }
    }

    #[test]
    fn a_block_is_a_small_share_of_the_tightest_window_and_of_the_cap() {
        assert_eq!(blocks("1000000/1m,concurrency=1000"), Some(Blocks { max_block: MAX_BLOCK, spare: 62 }));
        assert_eq!(blocks("640/1s,100000/1d"), Some(Blocks { max_block: 20, spare: 0 }));
        // Windows too small for blocks, with a cap large enough to keep leases: one admission at a time.
        assert_eq!(blocks("15/1m,concurrency=64"), Some(Blocks { max_block: 1, spare: 4 }));
        assert_eq!(blocks("concurrency=16"), Some(Blocks { max_block: 1, spare: 1 }));
    }
}
