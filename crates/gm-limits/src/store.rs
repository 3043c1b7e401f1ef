//! Windows shared between processes: a [`WindowStore`] counts admissions where every process sees them.
//!
//! A [`Limiter`](crate::Limiter) made with [`Limiter::with_store`](crate::Limiter::with_store) checks its own
//! limits first (per-request caps, concurrency, its local windows, server blocks) and then asks the store,
//! which admits only if the request windows and token budgets hold across every process sharing it. A key
//! whose limits count nothing there (no request window, token budget or concurrency cap) is admitted without
//! asking the store, so an unlimited key leaves no record to grow; a 429 it earns still blocks it in this
//! process, and is recorded in the store for the processes that count the key. Time in
//! a store is the wall clock (shared by the processes of one machine); the limiter maps its monotonic
//! instants onto it from one reading taken when it is made.
//!
//! A concurrency cap is shared by the stores that hold leases ([`WindowStore::release`]): `SqliteWindows`
//! records one per request in flight, with the process that holds it, so processes on one machine share the
//! cap; the lease of a process that was killed stops counting at once (where `/proc` tells), and any lease
//! lapses after [`LEASE`]. `RedisWindows` records one per request in flight with a short lease
//! (`REDIS_LEASE`) that the store renews while the request lasts, so processes on many machines share the
//! cap and a killed process's requests stop counting within one lease.
//! [`Limiter::status`](crate::Limiter::status) shows this process's view; a store's own methods
//! (`SqliteWindows::keys`, [`WindowStore::count`]) show what every process has counted.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::{LimitError, LimitKey, LimitSpec, WaitReason};

/// What a store says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreAdmission {
    /// Admitted and recorded under `id` (for [`WindowStore::settle`]).
    Admitted {
        /// The admission's id in the store.
        id: i64,
    },
    /// Not before `until`.
    Wait {
        /// The earliest wall-clock time at which the request may pass.
        until: SystemTime,
        /// The limit in the way.
        reason: WaitReason,
    },
}

/// What a process asks a store for in one step when it hands admissions out itself
/// ([`WindowStore::admit_block`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockWant {
    /// Request admissions to hand out (0: none, only leases).
    pub requests: u32,
    /// Concurrency leases to keep (0: none).
    pub leases: u32,
    /// How long after `now` the process may hand the admissions out; the store records them as made at the
    /// end of it, so each counts in every window for at least as long as the request it admits.
    pub hold: Duration,
}

/// What a store says about a [`BlockWant`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockAdmission {
    /// At least one of each kind asked for, and at most as many as asked.
    Granted {
        /// Request admissions the process may hand out until `until`.
        requests: u32,
        /// The id of the first admission; a block's admissions have the ids `first .. first + requests`.
        first: i64,
        /// The last moment the admissions may be handed out (at or before `now + hold`).
        until: SystemTime,
        /// Concurrency leases, by id (for [`WindowStore::release`]).
        leases: Vec<i64>,
    },
    /// Not before `until`.
    Wait {
        /// The earliest wall-clock time at which the request may pass.
        until: SystemTime,
        /// The limit in the way.
        reason: WaitReason,
    },
}

/// Request windows and token budgets counted in a place several processes share.
///
/// Implementations make [`WindowStore::admit`] atomic: the check of every window and the record of the
/// admission happen as one step, so two processes can never both take the last slot.
pub trait WindowStore: Send + Sync + fmt::Debug {
    /// Admits a request under `spec`'s request windows and token budgets (reserving `tokens`) at `now`, or
    /// says when it may pass. Windows are lengthened by `spec`'s margin.
    fn admit(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        tokens: u64,
        now: SystemTime,
    ) -> Result<StoreAdmission, LimitError>;

    /// Replaces an admission's token reservation by the tokens actually used.
    fn settle(&self, key: &LimitKey, id: i64, tokens: u64) -> Result<(), LimitError>;

    /// Blocks a key for every process until `until` (a 429); never shortens an existing block.
    fn block(&self, key: &LimitKey, until: SystemTime, daily: bool) -> Result<(), LimitError>;

    /// Forgets a key's admissions and blocks. Requests in flight keep their concurrency leases (and so do
    /// the leases processes keep for their next requests): they still count against the cap.
    fn reset(&self, key: &LimitKey) -> Result<(), LimitError>;

    /// Requests counted for a key within the last `within` before `now`.
    fn count(&self, key: &LimitKey, within: Duration, now: SystemTime) -> Result<u64, LimitError>;

    /// Ends admission `id`'s concurrency lease, for stores that share the concurrency cap (the default
    /// holds none).
    fn release(&self, key: &LimitKey, id: i64) -> Result<(), LimitError> {
        let _ = (key, id);
        Ok(())
    }

    /// Admits up to `want.requests` requests (token budgets are counted with no tokens) and takes up to
    /// `want.leases` concurrency leases in one atomic step, for a process to hand out itself without asking
    /// again: at least one of each kind asked for, or a wait. The admissions are recorded as made at
    /// `until` (`now + want.hold`), no earlier than any request they admit, so every window counts them at
    /// least as long as it would count the requests; the windows are checked at `now`, which counts every
    /// admission that may still fall inside them. Admissions a process never hands out count until it gives
    /// them back (they only make the windows stricter), and leases it keeps count as requests in flight
    /// until released.
    ///
    /// The default asks [`WindowStore::admit`] for one admission, recorded at `now`, to be handed out at once
    /// (`until` is `now`), with its lease when the key has a concurrency cap.
    ///
    /// A process gives back the admissions it did not hand out with [`WindowStore::give_back`].
    fn admit_block(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        want: BlockWant,
        now: SystemTime,
    ) -> Result<BlockAdmission, LimitError> {
        if want.requests == 0 && want.leases == 0 {
            return Ok(BlockAdmission::Granted { requests: 0, first: 0, until: now, leases: Vec::new() });
        }
        Ok(match self.admit(key, spec, 0, now)? {
            StoreAdmission::Admitted { id } => {
                let mut leases = Vec::new();
                if spec.concurrency.is_some() {
                    if want.leases > 0 {
                        leases.push(id);
                    } else {
                        self.release(key, id)?;
                    }
                }
                BlockAdmission::Granted { requests: want.requests.min(1), first: id, until: now, leases }
            }
            StoreAdmission::Wait { until, reason } => BlockAdmission::Wait { until, reason },
        })
    }

    /// Forgets admissions of a block (`ids`, the last ones of a block granted by
    /// [`WindowStore::admit_block`]) that the process never handed out and never will, so they stop
    /// counting. The default keeps them: they count until they leave the windows, which only makes the
    /// windows stricter.
    fn give_back(&self, key: &LimitKey, ids: std::ops::RangeInclusive<i64>) -> Result<(), LimitError> {
        let _ = (key, ids);
        Ok(())
    }
}

/// Whether process `pid` of this machine still runs (this process does). Where that cannot be told (no
/// `/proc`), it is taken to run, and a lease it holds lapses only when its time is up.
pub fn process_alive(pid: i64) -> bool {
    if pid == i64::from(std::process::id()) {
        return true;
    }
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// How long a concurrency lease holds when its request never ends it (its process was killed).
pub const LEASE: Duration = Duration::from_secs(600);

/// How soon a request held back by another process's requests in flight looks again.
pub const LEASE_POLL: Duration = Duration::from_millis(20);

/// The link from a limiter's monotonic time to a store's wall-clock time.
#[derive(Debug, Clone)]
pub(crate) struct StoreLink {
    pub(crate) store: std::sync::Arc<dyn WindowStore>,
    anchor: (Instant, SystemTime),
    /// Whether keys whose limits leave room take admissions in blocks (see [`crate::pool`]).
    pub(crate) blocks: bool,
}

impl StoreLink {
    pub(crate) fn new(store: std::sync::Arc<dyn WindowStore>, anchor: (Instant, SystemTime), blocks: bool) -> Self {
        Self { store, anchor, blocks }
    }

    /// The wall-clock time of a monotonic instant.
    pub(crate) fn wall(&self, at: Instant) -> SystemTime {
        let (i0, w0) = self.anchor;
        if at >= i0 {
            w0 + (at - i0)
        } else {
            w0 - (i0 - at)
        }
    }

    /// The monotonic instant of a wall-clock time, given a pair of the same moment.
    pub(crate) fn instant(&self, now: Instant, now_wall: SystemTime, at: SystemTime) -> Instant {
        match at.duration_since(now_wall) {
            Ok(ahead) => now + ahead,
            Err(e) => now.checked_sub(e.duration()).unwrap_or(now),
        }
    }
}

#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteWindows;

/// Microseconds of the wall clock since the Unix epoch (negative before it), as the stores record times.
#[cfg(any(feature = "sqlite", feature = "redis"))]
fn micros(t: SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`micros`].
#[cfg(any(feature = "sqlite", feature = "redis"))]
fn from_micros(us: i64) -> SystemTime {
    if us >= 0 {
        std::time::UNIX_EPOCH + Duration::from_micros(us.unsigned_abs())
    } else {
        std::time::UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

/// A window's length with the spec's margin, in microseconds.
#[cfg(any(feature = "sqlite", feature = "redis"))]
fn span_us(per: Duration, spec: &LimitSpec) -> i64 {
    i64::try_from(spec.margin().apply(per).as_micros()).unwrap_or(i64::MAX / 4)
}

#[cfg(feature = "redis")]
mod redis_windows;
#[cfg(feature = "redis")]
pub use self::redis_windows::{RedisWindows, REDIS_LEASE};

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::{process_alive, LEASE, LEASE_POLL};
    use std::path::Path;
    use std::sync::{Mutex, PoisonError};
    use std::time::{Duration, SystemTime};

    use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

    use super::{BlockAdmission, BlockWant, StoreAdmission, WindowStore};
    use crate::{LimitError, LimitKey, LimitSpec, WaitReason};

    fn store_err(e: rusqlite::Error) -> LimitError {
        LimitError::Store(Box::new(e))
    }

    use super::{from_micros, micros, span_us};

    /// Request windows and token budgets in a SQLite file, shared by every process that opens it.
    ///
    /// The file is in WAL mode; its tables are prefixed `limits_` so it can live beside other state.
    /// Each admission is one `BEGIN IMMEDIATE` transaction that checks every window and inserts the admission,
    /// so processes never exceed a window together. A key's admissions are numbered in order, so checking
    /// "N per W" is one index look-up (the admission N − 1 places before the newest), as cheap for a window
    /// of a million as for one of five; token budgets read the admissions within their window. Every
    /// process sharing a file must number its admissions (this version of gm or later). A request's
    /// concurrency lease is ended by the next transaction of the connection when another thread holds it
    /// ([`WindowStore::release`]), so under load releases cost no commit of their own; the log is
    /// checkpointed by a thread of the store's own every 250 ms, so no admission waits for a
    /// checkpoint's writes and sync (and repeated writes of the same pages are copied back once). Times are
    /// microseconds of the wall clock; an admission is recorded no earlier than the key's latest, so a
    /// process with a slightly stale clock reading only makes the windows stricter.
    #[derive(Debug)]
    pub struct SqliteWindows {
        conn: Mutex<Connection>,
        /// Concurrency leases whose requests have ended, waiting to be deleted: by the transaction of whoever
        /// holds the connection next (see [`SqliteWindows::release`]).
        ended: Mutex<Vec<(String, i64)>>,
        _checkpoints: Option<Checkpoints>,
    }

    /// How often the checkpointing thread copies the log back into the file.
    const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

    /// A thread with a connection of its own that checkpoints the file's log every [`CHECKPOINT_EVERY`]
    /// (`PASSIVE`: it never waits for, nor holds up, a writer), until dropped.
    #[derive(Debug)]
    struct Checkpoints {
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Checkpoints {
        fn start(path: &Path) -> Option<Self> {
            let conn = Connection::open(path).ok()?;
            conn.busy_timeout(Duration::from_secs(1)).ok()?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stopped = stop.clone();
            let thread = std::thread::Builder::new()
                .name("gm-limits-checkpoint".into())
                .spawn(move || {
                    while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                        std::thread::park_timeout(CHECKPOINT_EVERY);
                        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                })
                .ok()?;
            Some(Self { stop, thread: Some(thread) })
        }
    }

    impl Drop for Checkpoints {
        fn drop(&mut self) {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                t.thread().unpark();
                let _ = t.join();
            }
        }
    }

    /// The connection, locked; when let go, it deletes the leases ended meanwhile.
    struct Conn<'a> {
        guard: Option<std::sync::MutexGuard<'a, Connection>>,
        store: &'a SqliteWindows,
    }

    impl std::ops::Deref for Conn<'_> {
        type Target = Connection;
        fn deref(&self) -> &Connection {
            self.guard.as_deref().unwrap_or_else(|| unreachable!("the guard is taken only when dropped"))
        }
    }

    impl std::ops::DerefMut for Conn<'_> {
        fn deref_mut(&mut self) -> &mut Connection {
            self.guard.as_deref_mut().unwrap_or_else(|| unreachable!("the guard is taken only when dropped"))
        }
    }

    impl Drop for Conn<'_> {
        fn drop(&mut self) {
            drop(self.guard.take());
            self.store.end_leases_left();
        }
    }

    /// The latest time at which a limit in the way frees, and that limit: a request waits until every one has.
    #[derive(Default)]
    struct Latest(Option<(i64, WaitReason)>);

    impl Latest {
        fn later(&mut self, until: i64, reason: WaitReason) {
            if self.0.is_none_or(|(u, _)| until > u) {
                self.0 = Some((until, reason));
            }
        }
    }

    /// When a full concurrency cap is looked at again: a request ending frees it, which only a look can tell.
    fn poll_after(now: i64) -> i64 {
        now + i64::try_from(LEASE_POLL.as_micros()).unwrap_or(20_000)
    }

    fn delete_leases(tx: &rusqlite::Transaction<'_>, ended: &[(String, i64)]) -> Result<(), rusqlite::Error> {
        let mut st = tx.prepare_cached("DELETE FROM limits_inflight WHERE id = ?1 AND key = ?2")?;
        for (key, id) in ended {
            st.execute(params![id, key])?;
        }
        Ok(())
    }

    impl SqliteWindows {
        /// Opens (and creates if needed) the store in the file at `path`.
        pub fn open(path: impl AsRef<Path>) -> Result<Self, LimitError> {
            let path = path.as_ref();
            // Processes opening a new file at once can be told "locked" without waiting: try again.
            let busy = |e: &rusqlite::Error| e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy);
            let conn = gm_core::busy::retry_while_busy(Duration::from_secs(10), busy, || Self::prepare(path))
                .map_err(store_err)?;
            // The log is copied back into the file by a thread of its own, so no admission waits for a
            // checkpoint's writes and sync; without that thread, by the connection as usual.
            let checkpoints = Checkpoints::start(path);
            if checkpoints.is_some() {
                conn.execute_batch("PRAGMA wal_autocheckpoint=0").map_err(store_err)?;
            }
            Ok(Self { conn: Mutex::new(conn), ended: Mutex::new(Vec::new()), _checkpoints: checkpoints })
        }

        /// A connection to the file at `path` in WAL mode, with the store's tables and its admissions numbered.
        fn prepare(path: &Path) -> Result<Connection, rusqlite::Error> {
            let mut conn = Connection::open(path)?;
            // Other processes may hold the write lock for the length of one admission.
            conn.busy_timeout(Duration::from_secs(10))?;
            let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            conn.execute_batch(
                "PRAGMA synchronous=NORMAL;
                 CREATE TABLE IF NOT EXISTS limits_admissions (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     key TEXT NOT NULL,
                     at_us INTEGER NOT NULL,
                     tokens INTEGER NOT NULL DEFAULT 0
                 );
                 CREATE INDEX IF NOT EXISTS limits_admissions_key_at ON limits_admissions(key, at_us);
                 CREATE TABLE IF NOT EXISTS limits_blocks (
                     key TEXT PRIMARY KEY,
                     until_us INTEGER NOT NULL,
                     daily INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS limits_inflight (
                     id INTEGER PRIMARY KEY,
                     key TEXT NOT NULL,
                     until_us INTEGER NOT NULL,
                     pid INTEGER NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS limits_inflight_key ON limits_inflight(key, until_us);
                 CREATE TABLE IF NOT EXISTS limits_horizons (
                     key TEXT PRIMARY KEY,
                     span_us INTEGER NOT NULL
                 );",
            )?;
            Self::number_admissions(&mut conn)?;
            Ok(conn)
        }

        fn conn(&self) -> Conn<'_> {
            Conn { guard: Some(self.conn.lock().unwrap_or_else(PoisonError::into_inner)), store: self }
        }

        fn take_ended(&self) -> Vec<(String, i64)> {
            std::mem::take(&mut *self.ended.lock().unwrap_or_else(PoisonError::into_inner))
        }

        fn keep_ended(&self, ended: Vec<(String, i64)>) {
            self.ended.lock().unwrap_or_else(PoisonError::into_inner).extend(ended);
        }

        /// Deletes the ended leases nobody has deleted yet, unless another thread holds the connection: that
        /// thread does it when it lets go. Whoever lets go of the connection calls this, and a release adds
        /// its lease before it calls this, so no ended lease is left behind once the connection is free.
        fn end_leases_left(&self) {
            loop {
                if self.ended.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
                    return;
                }
                let mut conn = match self.conn.try_lock() {
                    Ok(c) => c,
                    Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => return,
                };
                let ended = self.take_ended();
                let done = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .and_then(|tx| delete_leases(&tx, &ended).and_then(|()| tx.commit()));
                drop(conn);
                if done.is_err() {
                    // Kept for the next transaction; the leases lapse on their own in the end.
                    self.keep_ended(ended);
                    return;
                }
            }
        }

        /// Gives every admission its place in its key's sequence (`seq`, 1, 2, 3, … in the order of `at_us`),
        /// adding the column to a file made before it existed. With it a window's check is two index look-ups
        /// whatever its size: the N-th most recent admission is the one whose `seq` is N − 1 below the newest.
        /// Admissions are removed from the old end of a key's sequence (expiry, the history cap), all at once
        /// (reset), or from a block given back, after which the key's later rows are numbered again
        /// ([`WindowStore::give_back`]), so the numbers of the rows left stay consecutive.
        fn number_admissions(conn: &mut Connection) -> Result<(), rusqlite::Error> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let has_seq =
                tx.prepare("SELECT 1 FROM pragma_table_info('limits_admissions') WHERE name = 'seq'")?.exists([])?;
            if !has_seq {
                tx.execute_batch("ALTER TABLE limits_admissions ADD COLUMN seq INTEGER")?;
            }
            tx.execute_batch(
                "UPDATE limits_admissions SET seq = numbered.n FROM (
                     SELECT id, ROW_NUMBER() OVER (PARTITION BY key ORDER BY at_us, id) AS n FROM limits_admissions
                     WHERE key IN (SELECT key FROM limits_admissions WHERE seq IS NULL)
                 ) AS numbered
                 WHERE limits_admissions.id = numbered.id;
                 CREATE INDEX IF NOT EXISTS limits_admissions_key_seq ON limits_admissions(key, seq);",
            )?;
            tx.commit()
        }

        /// Every key with admissions or a block in the store.
        pub fn keys(&self) -> Result<Vec<LimitKey>, LimitError> {
            let conn = self.conn();
            let mut stmt = conn
                .prepare("SELECT key FROM limits_admissions UNION SELECT key FROM limits_blocks ORDER BY 1")
                .map_err(store_err)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(store_err)?;
            let mut out = Vec::new();
            for k in rows {
                if let Ok(key) = k.map_err(store_err)?.parse() {
                    out.push(key);
                }
            }
            Ok(out)
        }

        /// Every admission recorded for a key, as (wall-clock time, tokens), oldest first.
        pub fn admissions(&self, key: &LimitKey) -> Result<Vec<(SystemTime, u64)>, LimitError> {
            let conn = self.conn();
            let mut stmt = conn
                .prepare("SELECT at_us, tokens FROM limits_admissions WHERE key = ?1 ORDER BY at_us, id")
                .map_err(store_err)?;
            let rows = stmt
                .query_map([key.to_string()], |r| Ok((from_micros(r.get(0)?), r.get::<_, i64>(1)?.unsigned_abs())))
                .map_err(store_err)?;
            rows.collect::<Result<_, _>>().map_err(store_err)
        }

        /// The server's block on a key, if one was recorded: until when, and whether the day's quota is spent.
        pub fn block_of(&self, key: &LimitKey) -> Result<Option<(SystemTime, bool)>, LimitError> {
            let conn = self.conn();
            conn.query_row("SELECT until_us, daily FROM limits_blocks WHERE key = ?1", [key.to_string()], |r| {
                Ok((from_micros(r.get(0)?), r.get::<_, bool>(1)?))
            })
            .optional()
            .map_err(store_err)
        }

        /// Runs an admission in one exclusive transaction, with the leases of requests that ended meanwhile
        /// deleted in it first, before anything is counted (kept for the next transaction if it fails).
        fn admitting<T>(
            &self,
            admit: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, rusqlite::Error>,
        ) -> Result<T, LimitError> {
            let mut conn = self.conn();
            let ended = self.take_ended();
            let out = conn.transaction_with_behavior(TransactionBehavior::Immediate).and_then(|tx| {
                delete_leases(&tx, &ended)?;
                let out = admit(&tx)?;
                tx.commit()?;
                Ok(out)
            });
            if out.is_err() {
                self.keep_ended(ended);
            }
            out.map_err(store_err)
        }

        fn admit_in(
            tx: &rusqlite::Transaction<'_>,
            key: &str,
            spec: &LimitSpec,
            tokens: u64,
            now: i64,
        ) -> Result<StoreAdmission, rusqlite::Error> {
            let mut wait = Latest::default();
            // Every statement here runs for each admission: each is prepared once per connection.
            Self::check_block(tx, key, now, &mut wait)?;
            let newest = Self::newest(tx, key)?;
            // The N-th most recent admission, if it still counts, fills the window; the window frees when it
            // expires. Admissions later than `now` (another process's clock ran ahead) count too. Times grow
            // with the sequence, so the N-th most recent is N - 1 places before the newest: one look-up in the
            // (key, seq) index, however many the window holds.
            let mut nth = tx.prepare_cached("SELECT at_us FROM limits_admissions WHERE key = ?1 AND seq = ?2")?;
            if let Some((last, _)) = newest {
                for w in &spec.windows {
                    let span = span_us(w.per, spec);
                    let back = i64::try_from(w.limit - 1).unwrap_or(i64::MAX);
                    let Some(seq) = last.checked_sub(back).filter(|&s| s >= 1) else { continue };
                    let at: Option<i64> = nth.query_row(params![key, seq], |r| r.get(0)).optional()?;
                    if let Some(at) = at.filter(|&at| at > now - span) {
                        wait.later(at + span, WaitReason::Requests(*w));
                    }
                }
            }
            Self::check_tokens(tx, key, spec, tokens, now, &mut wait)?;
            // Requests in flight in every process.
            if let Some(cap) = spec.concurrency {
                if Self::open_leases(tx, key, now)? >= u64::from(cap) {
                    wait.later(poll_after(now), WaitReason::Concurrency(cap));
                }
            }
            if let Some((until, reason)) = wait.0 {
                return Ok(StoreAdmission::Wait { until: from_micros(until), reason });
            }
            let (seq, at) = newest.map_or((1, now), |(seq, latest)| (seq + 1, latest.max(now)));
            tx.prepare_cached("INSERT INTO limits_admissions (key, at_us, tokens, seq) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![key, at, i64::try_from(tokens).unwrap_or(i64::MAX), seq])?;
            let id = tx.last_insert_rowid();
            if spec.concurrency.is_some() {
                Self::lease(tx, key, [id], now)?;
            }
            Self::forget_old(tx, key, spec, now, seq)?;
            Ok(StoreAdmission::Admitted { id })
        }

        /// A block the server put on the key (a 429) that has not ended by `now`.
        fn check_block(
            tx: &rusqlite::Transaction<'_>,
            key: &str,
            now: i64,
            wait: &mut Latest,
        ) -> Result<(), rusqlite::Error> {
            let block: Option<(i64, bool)> = tx
                .prepare_cached("SELECT until_us, daily FROM limits_blocks WHERE key = ?1")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((until, daily)) = block.filter(|(u, _)| *u > now) {
                wait.later(until, WaitReason::Server { daily });
            }
            Ok(())
        }

        /// The key's newest admission: its place in the sequence and its time.
        fn newest(tx: &rusqlite::Transaction<'_>, key: &str) -> Result<Option<(i64, i64)>, rusqlite::Error> {
            tx.prepare_cached("SELECT seq, at_us FROM limits_admissions WHERE key = ?1 ORDER BY seq DESC LIMIT 1")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        }

        /// Every token budget with room for `tokens` more (counting the admissions recorded later than `now`
        /// too); one without waits until enough of what it counts has left it.
        fn check_tokens(
            tx: &rusqlite::Transaction<'_>,
            key: &str,
            spec: &LimitSpec,
            tokens: u64,
            now: i64,
            wait: &mut Latest,
        ) -> Result<(), rusqlite::Error> {
            let mut recent = tx.prepare_cached(
                "SELECT at_us, tokens FROM limits_admissions WHERE key = ?1 AND at_us > ?2 ORDER BY at_us",
            )?;
            for w in &spec.token_windows {
                let span = span_us(w.per, spec);
                let rows: Vec<(i64, i64)> = recent
                    .query_map(params![key, now - span], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let mut used: u64 = rows.iter().map(|(_, n)| n.unsigned_abs()).sum();
                if used + tokens > w.limit {
                    let free = rows.iter().find_map(|(at, n)| {
                        used -= n.unsigned_abs();
                        (used + tokens <= w.limit).then_some(at + span)
                    });
                    wait.later(free.unwrap_or(now + span), WaitReason::Tokens(*w));
                }
            }
            Ok(())
        }

        /// Concurrency leases `ids` for this process until `now` plus [`LEASE`]; the key's lapsed leases go.
        fn lease(
            tx: &rusqlite::Transaction<'_>,
            key: &str,
            ids: impl IntoIterator<Item = i64>,
            now: i64,
        ) -> Result<(), rusqlite::Error> {
            let lapse = now + i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX / 4);
            let pid = i64::from(std::process::id());
            let mut insert =
                tx.prepare_cached("INSERT INTO limits_inflight (id, key, until_us, pid) VALUES (?1, ?2, ?3, ?4)")?;
            for id in ids {
                insert.execute(params![id, key, lapse, pid])?;
            }
            tx.prepare_cached("DELETE FROM limits_inflight WHERE key = ?1 AND until_us <= ?2")?
                .execute(params![key, now])?;
            Ok(())
        }

        /// The leases of requests in flight on a key at `now`, in every process. A lease whose process is gone
        /// (killed mid-request) no longer counts, and is dropped. Leases are counted per process, so each
        /// process is looked up once.
        fn open_leases(tx: &rusqlite::Transaction<'_>, key: &str, now: i64) -> Result<u64, rusqlite::Error> {
            let owners: Vec<(i64, u64)> = tx
                .prepare_cached(
                    "SELECT pid, COUNT(*) FROM limits_inflight WHERE key = ?1 AND until_us > ?2 GROUP BY pid",
                )?
                .query_map(params![key, now], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.unsigned_abs())))?
                .collect::<Result<_, _>>()?;
            let mut open = 0u64;
            for (pid, n) in owners {
                if process_alive(pid) {
                    open += n;
                } else {
                    tx.prepare_cached("DELETE FROM limits_inflight WHERE key = ?1 AND pid = ?2")?
                        .execute(params![key, pid])?;
                }
            }
            Ok(open)
        }

        /// Forgets what no window counts any more, once admissions up to `seq` are recorded. Processes (or runs)
        /// may use different limits on one key, so the history reaches back as far as the longest window any
        /// of them has used (the key's horizon), and at least a day, keeping the latest `HISTORY_CAP`
        /// admissions: a process with a short window never drops what another's long window still counts.
        fn forget_old(
            tx: &rusqlite::Transaction<'_>,
            key: &str,
            spec: &LimitSpec,
            now: i64,
            seq: i64,
        ) -> Result<(), rusqlite::Error> {
            let longest = spec.windows.iter().chain(&spec.token_windows).map(|w| span_us(w.per, spec)).max();
            let floor = i64::try_from(crate::HISTORY_SPAN.as_micros()).unwrap_or(i64::MAX);
            // Written only when it grows (a write costs a page of the log at every commit).
            let want = longest.unwrap_or(0).max(floor);
            let known: Option<i64> = tx
                .prepare_cached("SELECT span_us FROM limits_horizons WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?;
            let horizon = match known {
                Some(h) if h >= want => h,
                _ => {
                    tx.prepare_cached(
                        "INSERT INTO limits_horizons (key, span_us) VALUES (?1, ?2)
                         ON CONFLICT(key) DO UPDATE SET span_us = MAX(span_us, excluded.span_us)",
                    )?
                    .execute(params![key, want])?;
                    want.max(known.unwrap_or(0))
                }
            };
            tx.prepare_cached("DELETE FROM limits_admissions WHERE key = ?1 AND at_us <= ?2")?
                .execute(params![key, now.saturating_sub(horizon)])?;
            // The sequence tells how many rows the key keeps: those more than the cap behind the newest go.
            let cap = i64::try_from(crate::HISTORY_CAP).unwrap_or(i64::MAX);
            if seq > cap {
                tx.prepare_cached("DELETE FROM limits_admissions WHERE key = ?1 AND seq <= ?2")?
                    .execute(params![key, seq - cap])?;
            }
            Ok(())
        }

        /// [`WindowStore::admit_block`] in a transaction: how many admissions each window has room for at
        /// `now` (counting those recorded later than `now`), how many leases the cap has room for, then the
        /// grant: at most half of the tightest room (so one process leaves room for the others), at least one.
        fn admit_block_in(
            tx: &rusqlite::Transaction<'_>,
            key: &str,
            spec: &LimitSpec,
            want: BlockWant,
            now: i64,
        ) -> Result<BlockAdmission, rusqlite::Error> {
            let until = now.saturating_add(i64::try_from(want.hold.as_micros()).unwrap_or(i64::MAX / 4));
            let mut wait = Latest::default();
            Self::check_block(tx, key, now, &mut wait)?;
            let mut requests = want.requests;
            let newest = if want.requests > 0 { Self::newest(tx, key)? } else { None };
            if want.requests > 0 {
                // The oldest admission still in a window is its first after `now - span`; the window holds it and
                // every later one (their numbers follow their times).
                let mut first = tx.prepare_cached(
                    "SELECT seq FROM limits_admissions WHERE key = ?1 AND at_us > ?2 ORDER BY at_us, id LIMIT 1",
                )?;
                let mut nth = tx.prepare_cached("SELECT at_us FROM limits_admissions WHERE key = ?1 AND seq = ?2")?;
                for w in &spec.windows {
                    let span = span_us(w.per, spec);
                    let last = newest.map_or(0, |(last, _)| last);
                    let held = match newest {
                        None => 0,
                        Some(_) => first
                            .query_row(params![key, now - span], |r| r.get::<_, i64>(0))
                            .optional()?
                            .map_or(0, |oldest| u64::try_from(last - oldest + 1).unwrap_or(0)),
                    };
                    let room = w.limit.saturating_sub(held);
                    if room == 0 {
                        // Full: it frees when the N-th most recent admission expires.
                        let back = i64::try_from(w.limit - 1).unwrap_or(i64::MAX);
                        let at: Option<i64> = nth.query_row(params![key, last - back], |r| r.get(0)).optional()?;
                        wait.later(at.map_or(now, |at| at + span).max(now + 1), WaitReason::Requests(*w));
                    } else {
                        requests = requests.min(u32::try_from(room.div_ceil(2)).unwrap_or(u32::MAX));
                    }
                }
                // Handed out later, the admissions reserve no tokens: a token budget holds them only when
                // already spent.
                Self::check_tokens(tx, key, spec, 0, now, &mut wait)?;
            }
            let mut leases = want.leases;
            if let (Some(cap), true) = (spec.concurrency, want.leases > 0) {
                let room = u64::from(cap).saturating_sub(Self::open_leases(tx, key, now)?);
                if room == 0 {
                    wait.later(poll_after(now), WaitReason::Concurrency(cap));
                } else {
                    leases = leases.min(u32::try_from(room.div_ceil(2)).unwrap_or(u32::MAX));
                }
            }
            if let Some((until, reason)) = wait.0 {
                return Ok(BlockAdmission::Wait { until: from_micros(until), reason });
            }
            let mut first = 0;
            if requests > 0 {
                let (mut seq, at) = newest.map_or((0, until), |(seq, latest)| (seq, latest.max(until)));
                let mut insert = tx
                    .prepare_cached("INSERT INTO limits_admissions (key, at_us, tokens, seq) VALUES (?1, ?2, 0, ?3)")?;
                // Inserted in one exclusive transaction, the block's ids follow each other.
                for i in 0..requests {
                    seq += 1;
                    insert.execute(params![key, at, seq])?;
                    if i == 0 {
                        first = tx.last_insert_rowid();
                    }
                }
                Self::forget_old(tx, key, spec, now, seq)?;
            }
            let mut ids = Vec::new();
            if spec.concurrency.is_some() && leases > 0 {
                // Lease ids come from the admissions' own sequence, so they never repeat, nor meet an
                // admission's id (which a single admission's lease uses).
                let n = i64::from(leases);
                tx.prepare_cached(
                    "INSERT INTO sqlite_sequence (name, seq)
                     SELECT 'limits_admissions', COALESCE((SELECT MAX(id) FROM limits_admissions), 0)
                     WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'limits_admissions')",
                )?
                .execute([])?;
                let top: i64 = tx
                    .prepare_cached(
                        "UPDATE sqlite_sequence SET seq = seq + ?1 WHERE name = 'limits_admissions' RETURNING seq",
                    )?
                    .query_row([n], |r| r.get(0))?;
                ids.extend(top - n + 1..=top);
                Self::lease(tx, key, ids.iter().copied(), now)?;
            }
            Ok(BlockAdmission::Granted { requests, first, until: from_micros(until), leases: ids })
        }
    }

    impl WindowStore for SqliteWindows {
        fn admit(
            &self,
            key: &LimitKey,
            spec: &LimitSpec,
            tokens: u64,
            now: SystemTime,
        ) -> Result<StoreAdmission, LimitError> {
            self.admitting(|tx| Self::admit_in(tx, &key.to_string(), spec, tokens, micros(now)))
        }

        fn admit_block(
            &self,
            key: &LimitKey,
            spec: &LimitSpec,
            want: BlockWant,
            now: SystemTime,
        ) -> Result<BlockAdmission, LimitError> {
            self.admitting(|tx| Self::admit_block_in(tx, &key.to_string(), spec, want, micros(now)))
        }

        /// Deletes the admissions and numbers the key's later ones again from the first deleted one's place,
        /// so a key's sequence stays consecutive (a window's check looks an admission up by its place).
        fn give_back(&self, key: &LimitKey, ids: std::ops::RangeInclusive<i64>) -> Result<(), LimitError> {
            let mut conn = self.conn();
            let k = key.to_string();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_err)?;
            let lowest: Option<i64> = tx
                .prepare_cached("DELETE FROM limits_admissions WHERE key = ?1 AND id BETWEEN ?2 AND ?3 RETURNING seq")
                .and_then(|mut st| {
                    let seqs = st.query_map(params![k, ids.start(), ids.end()], |r| r.get::<_, i64>(0))?;
                    seqs.collect::<Result<Vec<i64>, _>>()
                })
                .map_err(store_err)?
                .into_iter()
                .min();
            if let Some(lowest) = lowest {
                tx.prepare_cached(
                    "UPDATE limits_admissions SET seq = numbered.n + ?2 - 1 FROM (
                         SELECT id, ROW_NUMBER() OVER (ORDER BY seq) AS n FROM limits_admissions
                         WHERE key = ?1 AND seq > ?2
                     ) AS numbered
                     WHERE limits_admissions.id = numbered.id",
                )
                .and_then(|mut st| st.execute(params![k, lowest]))
                .map_err(store_err)?;
            }
            tx.commit().map_err(store_err)
        }

        fn settle(&self, key: &LimitKey, id: i64, tokens: u64) -> Result<(), LimitError> {
            let conn = self.conn();
            conn.prepare_cached("UPDATE limits_admissions SET tokens = ?3 WHERE id = ?1 AND key = ?2")
                .and_then(|mut st| st.execute(params![id, key.to_string(), i64::try_from(tokens).unwrap_or(i64::MAX)]))
                .map_err(store_err)?;
            Ok(())
        }

        fn block(&self, key: &LimitKey, until: SystemTime, daily: bool) -> Result<(), LimitError> {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO limits_blocks (key, until_us, daily) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET
                     daily = CASE WHEN excluded.until_us >= until_us THEN excluded.daily ELSE daily OR excluded.daily END,
                     until_us = MAX(until_us, excluded.until_us)",
                params![key.to_string(), micros(until), daily],
            )
            .map_err(store_err)?;
            Ok(())
        }

        fn reset(&self, key: &LimitKey) -> Result<(), LimitError> {
            let conn = self.conn();
            let k = key.to_string();
            conn.execute("DELETE FROM limits_admissions WHERE key = ?1", [&k]).map_err(store_err)?;
            conn.execute("DELETE FROM limits_blocks WHERE key = ?1", [&k]).map_err(store_err)?;
            conn.execute("DELETE FROM limits_horizons WHERE key = ?1", [&k]).map_err(store_err)?;
            Ok(())
        }

        /// Ends a lease: at once when the connection is free, else in the transaction of the thread holding
        /// it (usually an admission, so under load a release costs no commit of its own). Until then the
        /// request counts as in flight for the other processes, which only makes their cap stricter; this
        /// process's admissions delete every ended lease before they count.
        fn release(&self, key: &LimitKey, id: i64) -> Result<(), LimitError> {
            self.ended.lock().unwrap_or_else(PoisonError::into_inner).push((key.to_string(), id));
            self.end_leases_left();
            Ok(())
        }

        fn count(&self, key: &LimitKey, within: Duration, now: SystemTime) -> Result<u64, LimitError> {
            let conn = self.conn();
            let since = micros(now) - i64::try_from(within.as_micros()).unwrap_or(i64::MAX / 4);
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM limits_admissions WHERE key = ?1 AND at_us > ?2",
                    params![key.to_string(), since],
                    |r| r.get(0),
                )
                .map_err(store_err)?;
            Ok(n.unsigned_abs())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::LimitKey;

        fn leases(path: &Path) -> i64 {
            let c = Connection::open(path).unwrap();
            c.query_row("SELECT COUNT(*) FROM limits_inflight", [], |r| r.get(0)).unwrap()
        }

        /// A lease ended while another thread holds the connection is deleted when that thread lets go.
        #[test]
        fn a_lease_ended_while_the_connection_is_busy_is_deleted_when_it_is_free() {
            let dir = gm_testkit::TempDir::new("limits-ended-lease");
            let path = dir.join("state.sqlite");
            let store = std::sync::Arc::new(SqliteWindows::open(&path).unwrap());
            let key = LimitKey::anonymous("x", "m");
            let spec = LimitSpec::parse("concurrency=1").unwrap();
            let StoreAdmission::Admitted { id } = store.admit(&key, &spec, 0, SystemTime::now()).unwrap() else {
                panic!("the first request waits")
            };
            let held = store.conn();
            let releaser = {
                let (store, key) = (store.clone(), key.clone());
                std::thread::spawn(move || store.release(&key, id).unwrap())
            };
            releaser.join().unwrap();
            assert_eq!(leases(&path), 1, "the release must wait for the connection");
            drop(held);
            assert_eq!(leases(&path), 0);
            assert!(matches!(store.admit(&key, &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Admitted { .. }));
        }
    }
}
