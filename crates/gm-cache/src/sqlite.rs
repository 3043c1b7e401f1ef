//! The persistent tier in a SQLite file (feature `sqlite`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::Error;
use crate::key::RequestKey;
use crate::memory::CacheStats;
use crate::store::{expiry_ms, from_unix_ms, unix_ms, Counters, PersistentStore, StoredValue};

/// The layout version of the `cache_` tables. Older layouts are dropped and rebuilt (they hold only
/// cached answers); a newer one is an error, so an old gm never destroys a newer gm's cache.
pub const SCHEMA_VERSION: i64 = 1;

/// The bytes a row costs beyond its value (key, times, the index entries), for the size cap.
pub const ROW_OVERHEAD: u64 = 64;

const SCHEMA: &str = "
CREATE TABLE cache_entries (
    key         BLOB PRIMARY KEY NOT NULL,
    value       BLOB NOT NULL,
    size        INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER,
    accessed_ms INTEGER NOT NULL
);
CREATE INDEX cache_entries_by_access ON cache_entries (accessed_ms);
CREATE TABLE cache_totals (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    entries INTEGER NOT NULL,
    bytes   INTEGER NOT NULL
);
INSERT INTO cache_totals (id, entries, bytes) VALUES (0, 0, 0);
CREATE TRIGGER cache_entries_insert AFTER INSERT ON cache_entries BEGIN
    UPDATE cache_totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 0;
END;
CREATE TRIGGER cache_entries_delete AFTER DELETE ON cache_entries BEGIN
    UPDATE cache_totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 0;
END;
CREATE TRIGGER cache_entries_resize AFTER UPDATE OF size ON cache_entries BEGIN
    UPDATE cache_totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 0;
END;
";

/// Every object this tier creates, so a rebuild drops exactly these and nothing else in the file.
const OBJECTS: [(&str, &str); 6] = [
    ("TRIGGER", "cache_entries_insert"),
    ("TRIGGER", "cache_entries_delete"),
    ("TRIGGER", "cache_entries_resize"),
    ("TABLE", "cache_entries"),
    ("TABLE", "cache_totals"),
    ("TABLE", "cache_meta"),
];

/// How to open a [`SqliteCache`]; see [`SqliteCache::builder`].
#[derive(Debug, Clone)]
pub struct SqliteCacheBuilder {
    path: PathBuf,
    max_bytes: u64,
    busy_timeout: Duration,
    touch_interval: Duration,
    move_aside_if_unreadable: bool,
    check_integrity: bool,
}

impl SqliteCacheBuilder {
    /// The size cap: values plus [`ROW_OVERHEAD`] per row. Least recently used rows are evicted past it.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// How long to wait for another process's write lock before an operation fails (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How stale a row's last-access time may grow before a hit writes a fresh one (default 60 s).
    ///
    /// Eviction goes by last access; recording every hit would turn each read into a write, so hits
    /// within this interval of the last recorded access leave the row alone.
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = interval;
        self
    }

    /// When the file is not a SQLite database or is damaged, rename it (and its `-wal` and `-shm`
    /// companions) to `FILE.unreadable-SECONDS` and start a fresh file, instead of failing with
    /// [`Error::NotADatabase`] or [`Error::Corrupt`]. [`SqliteCache::moved_aside`] tells where it went.
    pub fn move_aside_if_unreadable(mut self, yes: bool) -> Self {
        self.move_aside_if_unreadable = yes;
        self
    }

    /// Also run SQLite's `PRAGMA quick_check` on a file that opens, so a damaged page anywhere in it (not only
    /// in its header) is found now, as [`Error::Corrupt`], rather than by whichever later read meets it. The
    /// check reads the whole file once.
    pub fn check_integrity(mut self, yes: bool) -> Self {
        self.check_integrity = yes;
        self
    }

    /// Opens (or creates) the file and the cache tables.
    pub fn open(self) -> Result<SqliteCache, Error> {
        let opened = open_connection(&self.path, self.busy_timeout).and_then(|conn| {
            if self.check_integrity {
                quick_check(&conn, &self.path).map(|()| conn)
            } else {
                Ok(conn)
            }
        });
        match opened {
            Ok(conn) => Ok(self.finish(conn, None)),
            Err(e @ (Error::NotADatabase { .. } | Error::Corrupt { .. })) if self.move_aside_if_unreadable => {
                let aside = move_aside(&self.path).map_err(|_| e)?;
                let conn = open_connection(&self.path, self.busy_timeout)?;
                Ok(self.finish(conn, Some(aside)))
            }
            Err(e) => Err(e),
        }
    }

    fn finish(self, conn: Connection, moved_aside: Option<PathBuf>) -> SqliteCache {
        SqliteCache {
            conn: Mutex::new(conn),
            path: self.path,
            max_bytes: self.max_bytes,
            touch_ms: i64::try_from(self.touch_interval.as_millis()).unwrap_or(i64::MAX),
            moved_aside,
            counters: Counters::default(),
        }
    }
}

/// The persistent tier: cached answers in a SQLite file that survives restarts and is shared by every
/// process on the machine.
///
/// The file may hold other data too (the limiter's counters, the run history): this tier touches only
/// tables named `cache_…`, keeps their layout version in `cache_meta`, and never deletes the file. It
/// sets WAL mode (readers do not block the writer) and a busy timeout, and writes in `IMMEDIATE`
/// transactions, so several processes can use one file at once.
///
/// A file that is not a SQLite database, or fails `PRAGMA quick_check` when opening fails, gives
/// [`Error::NotADatabase`] or [`Error::Corrupt`] (or is moved aside, with
/// [`SqliteCacheBuilder::move_aside_if_unreadable`]); it never causes a panic.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use gm_cache::{PersistentStore, RequestKey, SqliteCache};
///
/// let dir = std::env::temp_dir().join(format!("gm-cache-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("gm.sqlite");
/// let key = RequestKey::from_u128(1);
/// let now = SystemTime::now();
/// {
///     let cache = SqliteCache::open(&path, 64 << 20).unwrap();
///     cache.set(key, b"Paris.", Some(Duration::from_secs(3600)), now).unwrap();
/// }
/// let reopened = SqliteCache::open(&path, 64 << 20).unwrap();
/// assert_eq!(&reopened.get(&key, now).unwrap().unwrap().value[..], b"Paris.");
/// # drop(reopened);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct SqliteCache {
    conn: Mutex<Connection>,
    path: PathBuf,
    max_bytes: u64,
    touch_ms: i64,
    moved_aside: Option<PathBuf>,
    counters: Counters,
}

impl std::fmt::Debug for SqliteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCache").field("path", &self.path).field("max_bytes", &self.max_bytes).finish()
    }
}

fn store_err(e: rusqlite::Error) -> Error {
    Error::Store { store: "sqlite", source: Box::new(e) }
}

fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)
        .map_err(|e| Error::Open { path: path.to_path_buf(), source: Box::new(e) })?;
    // Processes opening a new file at once can be told "locked" without waiting: try again.
    let busy = |e: &PrepareError| matches!(e, PrepareError::Sqlite(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy));
    match gm_core::busy::retry_while_busy(busy_timeout, busy, || prepare(&mut conn, busy_timeout)) {
        Ok(()) => Ok(conn),
        Err(PrepareError::Newer(found)) => {
            Err(Error::NewerSchema { path: path.to_path_buf(), found, supported: SCHEMA_VERSION })
        }
        Err(PrepareError::Sqlite(e)) => Err(classify(&conn, path, e)),
    }
}

enum PrepareError {
    Sqlite(rusqlite::Error),
    Newer(i64),
}

impl From<rusqlite::Error> for PrepareError {
    fn from(e: rusqlite::Error) -> Self {
        PrepareError::Sqlite(e)
    }
}

/// Sets the connection up and makes sure the cache tables exist in the current layout.
fn prepare(conn: &mut Connection, busy_timeout: Duration) -> Result<(), PrepareError> {
    conn.busy_timeout(busy_timeout)?;
    // The first statement reads the header: this is where a file that is not a database fails.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has_meta: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cache_meta')",
        [],
        |r| r.get(0),
    )?;
    let version: Option<i64> = if has_meta {
        tx.query_row("SELECT value FROM cache_meta WHERE name = 'schema_version'", [], |r| r.get::<_, String>(0))
            .optional()
            // A version that is not a number is treated as an unknown old layout.
            .map(|v| v.map(|s| s.trim().parse::<i64>().unwrap_or(0)))
            .unwrap_or(Some(0))
    } else {
        None
    };
    match version {
        Some(v) if v == SCHEMA_VERSION => {}
        Some(v) if v > SCHEMA_VERSION => return Err(PrepareError::Newer(v)),
        _ => {
            for (kind, name) in OBJECTS {
                tx.execute_batch(&format!("DROP {kind} IF EXISTS {name}"))?;
            }
            tx.execute_batch(SCHEMA)?;
            tx.execute_batch("CREATE TABLE cache_meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")?;
            tx.execute(
                "INSERT INTO cache_meta (name, value) VALUES ('schema_version', ?1), ('created_by', ?2)",
                params![SCHEMA_VERSION.to_string(), concat!("gm-cache ", env!("CARGO_PKG_VERSION"))],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Turns an error met while opening into a clear one, asking SQLite's integrity check when unsure.
fn classify(conn: &Connection, path: &Path, e: rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => return Error::NotADatabase { path, source: Box::new(e) },
        Some(ErrorCode::DatabaseCorrupt) => return Error::Corrupt { path, detail: e.to_string() },
        _ => {}
    }
    let check: Result<Vec<String>, rusqlite::Error> =
        conn.prepare("PRAGMA quick_check").and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    match check {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Error::Open { path, source: Box::new(e) },
        Ok(lines) => Error::Corrupt { path, detail: lines.into_iter().take(3).collect::<Vec<_>>().join("; ") },
        Err(check_err) => match check_err.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Error::NotADatabase { path, source: Box::new(e) },
            Some(ErrorCode::DatabaseCorrupt) => Error::Corrupt { path, detail: check_err.to_string() },
            _ => Error::Open { path, source: Box::new(e) },
        },
    }
}

/// `PRAGMA quick_check`: `Ok` when SQLite finds the file sound.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), Error> {
    let check: Result<Vec<String>, rusqlite::Error> =
        conn.prepare("PRAGMA quick_check").and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    match check {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(()),
        Ok(lines) => Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: lines.into_iter().take(3).collect::<Vec<_>>().join("; "),
        }),
        Err(e) => Err(Error::Corrupt { path: path.to_path_buf(), detail: e.to_string() }),
    }
}

fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // A name no earlier file took: a rename would replace it, and the file may hold a run history.
    let aside = (0u32..)
        .map(|n| {
            let mut aside = path.as_os_str().to_owned();
            aside.push(if n == 0 { format!(".unreadable-{secs}") } else { format!(".unreadable-{secs}-{n}") });
            PathBuf::from(aside)
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| path.with_extension("unreadable"));
    std::fs::rename(path, &aside)?;
    for suffix in ["-wal", "-shm"] {
        let mut from = path.as_os_str().to_owned();
        from.push(suffix);
        let mut to = aside.as_os_str().to_owned();
        to.push(suffix);
        // The companions may not exist; a leftover one would be ignored by SQLite for the new file anyway.
        let _ = std::fs::rename(&from, &to);
    }
    Ok(aside)
}

impl SqliteCache {
    /// Opens (or creates) the cache in the SQLite file at `path` with a size cap of `max_bytes`.
    pub fn open(path: impl AsRef<Path>, max_bytes: u64) -> Result<SqliteCache, Error> {
        Self::builder(path).max_bytes(max_bytes).open()
    }

    /// A builder with the defaults: 256 MiB, a 5 s busy timeout, a 60 s touch interval, and an error
    /// for an unreadable file.
    pub fn builder(path: impl AsRef<Path>) -> SqliteCacheBuilder {
        SqliteCacheBuilder {
            path: path.as_ref().to_path_buf(),
            max_bytes: 256 << 20,
            busy_timeout: Duration::from_secs(5),
            touch_interval: Duration::from_secs(60),
            move_aside_if_unreadable: false,
            check_integrity: false,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds one process's lookups, inserts, expirations and evictions to the totals kept in the file, so
    /// statistics cover every run that used it (entries and bytes in `delta` are ignored).
    pub fn record(&self, delta: &CacheStats) -> Result<(), Error> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_err)?;
        for (name, n) in [
            ("total_hits", delta.hits),
            ("total_misses", delta.misses),
            ("total_inserts", delta.inserts),
            ("total_expirations", delta.expirations),
            ("total_evictions", delta.evictions),
        ] {
            if n == 0 {
                continue;
            }
            tx.execute(
                "INSERT INTO cache_meta (name, value) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?2 AS TEXT)",
                params![name, n as i64],
            )
            .map_err(store_err)?;
        }
        tx.commit().map_err(store_err)
    }

    /// The totals recorded by [`SqliteCache::record`] over every run, with the entries and bytes held now.
    pub fn lifetime_stats(&self) -> Result<CacheStats, Error> {
        let now = self.stats()?;
        let conn = self.conn();
        let get = |name: &str| -> Result<u64, Error> {
            let v: Option<String> = conn
                .query_row("SELECT value FROM cache_meta WHERE name = ?1", params![name], |r| r.get(0))
                .optional()
                .map_err(store_err)?;
            Ok(v.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        };
        Ok(CacheStats {
            hits: get("total_hits")?,
            misses: get("total_misses")?,
            inserts: get("total_inserts")?,
            expirations: get("total_expirations")?,
            evictions: get("total_evictions")?,
            entries: now.entries,
            bytes: now.bytes,
        })
    }

    /// Where an unreadable file was moved when this cache was opened, if it was.
    pub fn moved_aside(&self) -> Option<&Path> {
        self.moved_aside.as_deref()
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A connection is left consistent by a panic: an open transaction rolls back when dropped.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn evict(&self, tx: &rusqlite::Transaction<'_>, keep: &[u8], now_ms: i64) -> rusqlite::Result<()> {
        let bytes: i64 = tx.query_row("SELECT bytes FROM cache_totals WHERE id = 0", [], |r| r.get(0))?;
        let mut excess = bytes - i64::try_from(self.max_bytes).unwrap_or(i64::MAX);
        if excess <= 0 {
            return Ok(());
        }
        let mut victims: Vec<(Vec<u8>, bool)> = Vec::new();
        {
            let mut st = tx.prepare_cached(
                "SELECT key, size, expires_ms FROM cache_entries WHERE key <> ?1 ORDER BY accessed_ms ASC",
            )?;
            let mut rows = st.query(params![keep])?;
            while excess > 0 {
                let Some(row) = rows.next()? else { break };
                let size: i64 = row.get(1)?;
                let expires: Option<i64> = row.get(2)?;
                victims.push((row.get(0)?, expires.is_some_and(|t| t <= now_ms)));
                excess -= size;
            }
        }
        let mut del = tx.prepare_cached("DELETE FROM cache_entries WHERE key = ?1")?;
        for (key, expired) in victims {
            del.execute(params![key])?;
            Counters::bump(if expired { &self.counters.expirations } else { &self.counters.evictions }, 1);
        }
        Ok(())
    }
}

impl PersistentStore for SqliteCache {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn get(&self, key: &RequestKey, now: SystemTime) -> Result<Option<StoredValue>, Error> {
        let now_ms = unix_ms(now);
        let key_bytes = key.to_bytes();
        let conn = self.conn();
        let row = conn
            .prepare_cached("SELECT value, expires_ms, accessed_ms FROM cache_entries WHERE key = ?1")
            .map_err(store_err)?
            .query_row(params![&key_bytes[..]], |r| {
                let value = Bytes::copy_from_slice(r.get_ref(0)?.as_blob()?);
                Ok((value, r.get::<_, Option<i64>>(1)?, r.get::<_, i64>(2)?))
            })
            .optional()
            .map_err(store_err)?;
        let Some((value, expires_ms, accessed_ms)) = row else {
            Counters::bump(&self.counters.misses, 1);
            return Ok(None);
        };
        if expires_ms.is_some_and(|t| t <= now_ms) {
            conn.prepare_cached("DELETE FROM cache_entries WHERE key = ?1 AND expires_ms <= ?2")
                .and_then(|mut st| st.execute(params![&key_bytes[..], now_ms]))
                .map_err(store_err)?;
            Counters::bump(&self.counters.expirations, 1);
            Counters::bump(&self.counters.misses, 1);
            return Ok(None);
        }
        if now_ms.saturating_sub(accessed_ms) >= self.touch_ms {
            conn.prepare_cached("UPDATE cache_entries SET accessed_ms = ?2 WHERE key = ?1")
                .and_then(|mut st| st.execute(params![&key_bytes[..], now_ms]))
                .map_err(store_err)?;
        }
        Counters::bump(&self.counters.hits, 1);
        Ok(Some(StoredValue { value, expires_at: expires_ms.map(from_unix_ms) }))
    }

    fn set(&self, key: RequestKey, value: &[u8], ttl: Option<Duration>, now: SystemTime) -> Result<(), Error> {
        let now_ms = unix_ms(now);
        let key_bytes = key.to_bytes();
        let size = value.len() as u64 + ROW_OVERHEAD;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store_err)?;
        if size > self.max_bytes {
            tx.execute("DELETE FROM cache_entries WHERE key = ?1", params![&key_bytes[..]]).map_err(store_err)?;
            return tx.commit().map_err(store_err);
        }
        tx.prepare_cached(
            "INSERT INTO cache_entries (key, value, size, created_ms, expires_ms, accessed_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?4)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size,
                 created_ms = excluded.created_ms, expires_ms = excluded.expires_ms, accessed_ms = excluded.accessed_ms",
        )
        .and_then(|mut st| st.execute(params![&key_bytes[..], value, size as i64, now_ms, expiry_ms(now, ttl)]))
        .map_err(store_err)?;
        self.evict(&tx, &key_bytes, now_ms).map_err(store_err)?;
        tx.commit().map_err(store_err)?;
        Counters::bump(&self.counters.inserts, 1);
        Ok(())
    }

    fn remove(&self, key: &RequestKey) -> Result<bool, Error> {
        let n = self
            .conn()
            .execute("DELETE FROM cache_entries WHERE key = ?1", params![&key.to_bytes()[..]])
            .map_err(store_err)?;
        Ok(n > 0)
    }

    fn clear(&self) -> Result<u64, Error> {
        let n = self.conn().execute("DELETE FROM cache_entries", []).map_err(store_err)?;
        Ok(n as u64)
    }

    fn purge_expired(&self, now: SystemTime) -> Result<u64, Error> {
        let n = self
            .conn()
            .execute(
                "DELETE FROM cache_entries WHERE expires_ms IS NOT NULL AND expires_ms <= ?1",
                params![unix_ms(now)],
            )
            .map_err(store_err)? as u64;
        Counters::bump(&self.counters.expirations, n);
        Ok(n)
    }

    fn stats(&self) -> Result<CacheStats, Error> {
        let (entries, bytes): (i64, i64) = self
            .conn()
            .query_row("SELECT entries, bytes FROM cache_totals WHERE id = 0", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(store_err)?;
        Ok(self.counters.snapshot(entries.max(0) as u64, bytes.max(0) as u64))
    }

    fn entries(&self, now: SystemTime) -> Result<Vec<(RequestKey, StoredValue)>, Error> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT key, value, expires_ms FROM cache_entries
                 WHERE expires_ms IS NULL OR expires_ms > ?1 ORDER BY key",
            )
            .map_err(store_err)?;
        let rows = st
            .query_map(params![unix_ms(now)], |r| {
                let key: Vec<u8> = r.get(0)?;
                let value = Bytes::copy_from_slice(r.get_ref(1)?.as_blob()?);
                Ok((key, value, r.get::<_, Option<i64>>(2)?))
            })
            .map_err(store_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (key, value, expires_ms) = row.map_err(store_err)?;
            // Keys are 16 bytes; a row of another shape is not an entry this version wrote.
            let Ok(key) = <[u8; 16]>::try_from(key.as_slice()) else { continue };
            out.push((RequestKey::from_bytes(key), StoredValue { value, expires_at: expires_ms.map(from_unix_ms) }));
        }
        Ok(out)
    }
}
