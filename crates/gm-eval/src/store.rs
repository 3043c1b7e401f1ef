//! The run store: every evaluation run and each of its test cases, in the SQLite state file, written as cases
//! finish, so an interrupted run (Ctrl-C, a crash, a spent daily quota) can be resumed without repeating a case.
//!
//! Tables are named `runs` and `run_cases`; the file is shared with the cache (`cache_*`) and the rate limiter
//! (`limits_*`), so the store never assumes it owns the file.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::run::{CaseFigures, CaseSink, EvaluationSummary, Finished, TestResult};

/// A failure of the run store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be opened or its tables made.
    #[error("could not open the run store {path}: {source}; check that the folder is writable (or pass --data-dir)")]
    Open {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A read or write failed.
    #[error("the run store failed: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored row could not be decoded.
    #[error("a stored run could not be read: {0}")]
    Decode(#[from] serde_json::Error),
    /// Another worker (a `gm` process, or another run in this one) is running this run; two workers would
    /// both send its remaining cases.
    #[error(
        "run {run} is being run by another gm process (pid {pid}); wait for it to finish, or stop it and resume \
         the run then"
    )]
    Busy {
        /// The run.
        run: i64,
        /// The process that holds it.
        pid: i64,
    },
}

/// How long a worker's hold on a run lasts without a case being recorded (a killed process's hold lapses at
/// once where `/proc` tells that it is gone).
pub const RUN_LEASE: std::time::Duration = std::time::Duration::from_secs(600);

/// A worker's hold on a run ([`RunStore::claim`]); dropping it lets another worker take the run.
#[derive(Debug)]
#[must_use = "the run is held only while the claim lives"]
pub struct RunClaim<'a> {
    store: &'a RunStore,
    run: i64,
    token: i64,
}

impl Drop for RunClaim<'_> {
    fn drop(&mut self) {
        let _ = self
            .store
            .conn()
            .execute("DELETE FROM run_workers WHERE run_id = ?1 AND token = ?2", params![self.run, self.token]);
    }
}

/// What [`RunStore::salvage_from`] kept of a damaged file's run history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Salvaged {
    /// Runs copied, each with all its recorded cases.
    pub runs: usize,
    /// Test cases copied.
    pub cases: usize,
    /// Runs that could not be read whole, and were left out.
    pub lost: usize,
}

fn salvage(conn: &mut Connection) -> Result<Salvaged, StoreError> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM salvaged.runs ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Salvaged::default();
    for id in ids {
        let copied = (|| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO runs (id, kind, name, file, digest, model, provider, base_url, started_at,
                                             finished_at, summary)
                 SELECT id, kind, name, file, digest, model, provider, base_url, started_at, finished_at, summary
                 FROM salvaged.runs WHERE id = ?1",
                params![id],
            )?;
            let cases = tx.execute(
                "INSERT OR IGNORE INTO run_cases (run_id, idx, result, figures)
                 SELECT run_id, idx, result, figures FROM salvaged.run_cases WHERE run_id = ?1",
                params![id],
            )?;
            tx.commit()?;
            Ok::<_, rusqlite::Error>(cases)
        })();
        match copied {
            Ok(cases) => {
                out.runs += 1;
                out.cases += cases;
            }
            Err(_) => out.lost += 1,
        }
    }
    Ok(out)
}

/// What identifies a run for resuming: the same file content, model, provider and base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    /// `eval` (later also `bench`).
    pub kind: String,
    /// The suite's name.
    pub name: String,
    /// The file, as given.
    pub file: String,
    /// A digest of the file's content.
    pub digest: String,
    /// The model evaluated.
    pub model: String,
    /// The provider.
    pub provider: String,
    /// The provider's base URL.
    pub base_url: String,
}

/// A stored run, for listings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRow {
    /// The run's id.
    pub id: i64,
    /// `eval`.
    pub kind: String,
    /// The suite's name.
    pub name: String,
    /// The file.
    pub file: String,
    /// The model.
    pub model: String,
    /// The provider.
    pub provider: String,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds, when it finished.
    pub finished_at: Option<i64>,
    /// Test cases recorded.
    pub cases: i64,
}

/// The run store in a SQLite file.
#[derive(Debug)]
pub struct RunStore {
    conn: Mutex<Connection>,
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl RunStore {
    /// Opens (and creates if needed) the store in `path`.
    pub fn open(path: &Path) -> Result<RunStore, StoreError> {
        let open = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            // A case is recorded on every answer: with WAL, NORMAL syncs at checkpoints rather than on every
            // commit. A power cut may lose the last cases recorded (a resume runs them again), never the file.
            conn.execute_batch(
                "PRAGMA synchronous=NORMAL;
                 CREATE TABLE IF NOT EXISTS runs (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     kind TEXT NOT NULL, name TEXT NOT NULL, file TEXT NOT NULL, digest TEXT NOT NULL,
                     model TEXT NOT NULL, provider TEXT NOT NULL, base_url TEXT NOT NULL,
                     started_at INTEGER NOT NULL, finished_at INTEGER, summary TEXT);
                 CREATE INDEX IF NOT EXISTS runs_resume ON runs (digest, model, provider, base_url, finished_at);
                 CREATE TABLE IF NOT EXISTS run_cases (
                     run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                     idx INTEGER NOT NULL, result TEXT NOT NULL, figures TEXT NOT NULL,
                     PRIMARY KEY (run_id, idx));
                 CREATE TABLE IF NOT EXISTS run_workers (
                     run_id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, token INTEGER NOT NULL,
                     until INTEGER NOT NULL);",
            )?;
            Ok(conn)
        };
        // Processes opening a new file at once can be told "locked" without waiting: try again.
        let busy = |e: &rusqlite::Error| e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy);
        let conn = gm_core::busy::retry_while_busy(std::time::Duration::from_secs(10), busy, open)
            .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        Ok(RunStore { conn: Mutex::new(conn) })
    }

    /// Copies the run history (every run and its recorded cases) from the SQLite file at `from`, a damaged
    /// state file moved aside, into this store, as far as it can be read: each run goes with all its recorded
    /// cases or not at all (a run without them would send them again on resume). Ids are kept, so a resume
    /// hint printed before still names the run. Returns the runs and cases kept, and the runs lost; an error
    /// when not even the list of runs can be read.
    pub fn salvage_from(&self, from: &Path) -> Result<Salvaged, StoreError> {
        let mut conn = self.conn();
        conn.execute("ATTACH DATABASE ?1 AS salvaged", params![from.display().to_string()])?;
        let copied = salvage(&mut conn);
        let _ = conn.execute("DETACH DATABASE salvaged", []);
        copied
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a new run and returns its id.
    pub fn begin(&self, who: &RunIdentity) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO runs (kind, name, file, digest, model, provider, base_url, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![who.kind, who.name, who.file, who.digest, who.model, who.provider, who.base_url, unix_now()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Takes run `run` for this worker, so no other worker (another process, or another claim in this one)
    /// runs its cases at the same time: [`StoreError::Busy`] when one holds it. The hold ends when the
    /// [`RunClaim`] is dropped, when its process dies, or [`RUN_LEASE`] after the last case it recorded.
    pub fn claim(&self, run: i64) -> Result<RunClaim<'_>, StoreError> {
        static TOKENS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
        let token = TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = i64::from(std::process::id());
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let holder: Option<(i64, i64, i64)> = tx
            .query_row("SELECT pid, token, until FROM run_workers WHERE run_id = ?1", params![run], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        if let Some((other, _, until)) = holder {
            // This process's own claims end when dropped, so one still recorded is live.
            if until > unix_now() && gm_limits::store::process_alive(other) {
                return Err(StoreError::Busy { run, pid: other });
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO run_workers (run_id, pid, token, until) VALUES (?1, ?2, ?3, ?4)",
            params![run, pid, token, unix_now() + RUN_LEASE.as_secs() as i64],
        )?;
        tx.commit()?;
        Ok(RunClaim { store: self, run, token })
    }

    /// The latest unfinished run with the same identity, and the cases it recorded.
    pub fn unfinished(&self, who: &RunIdentity) -> Result<Option<(i64, Finished)>, StoreError> {
        let id: Option<i64> = self
            .conn()
            .query_row(
                "SELECT id FROM runs WHERE kind = ?1 AND digest = ?2 AND model = ?3 AND provider = ?4 AND base_url = ?5
                 AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
                params![who.kind, who.digest, who.model, who.provider, who.base_url],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else { return Ok(None) };
        Ok(Some((id, self.cases(id)?)))
    }

    /// The cases a run recorded.
    pub fn cases(&self, run: i64) -> Result<Finished, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT idx, result, figures FROM run_cases WHERE run_id = ?1 ORDER BY idx")?;
        let rows = stmt
            .query_map(params![run], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
        let mut out = Finished::new();
        for row in rows {
            let (idx, result, figures) = row?;
            out.insert(idx as usize, crate::run::decode_case(&result, &figures)?);
        }
        Ok(out)
    }

    /// Records one finished case of a run (once: a case recorded twice keeps its first result).
    pub fn record_case(
        &self,
        run: i64,
        index: usize,
        result: &TestResult,
        figures: &CaseFigures,
    ) -> Result<(), StoreError> {
        // Runs once per case: prepared once per connection.
        self.conn()
            .prepare_cached("INSERT OR IGNORE INTO run_cases (run_id, idx, result, figures) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![run, index as i64, serde_json::to_string(result)?, serde_json::to_string(figures)?])?;
        // A worker that records is alive: its hold on the run lasts another lease.
        self.conn()
            .prepare_cached("UPDATE run_workers SET until = ?2 WHERE run_id = ?1 AND pid = ?3")?
            .execute(params![run, unix_now() + RUN_LEASE.as_secs() as i64, i64::from(std::process::id())])?;
        Ok(())
    }

    /// Marks a run finished with any JSON-serializable summary (a `gm bench` report, say).
    pub fn finish_with<T: serde::Serialize>(&self, run: i64, summary: &T) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE runs SET finished_at = ?2, summary = ?3 WHERE id = ?1",
            params![run, unix_now(), serde_json::to_string(summary)?],
        )?;
        Ok(())
    }

    /// A finished run's stored summary as JSON, whatever its kind.
    pub fn summary_json(&self, run: i64) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<Option<String>> =
            self.conn().query_row("SELECT summary FROM runs WHERE id = ?1", params![run], |r| r.get(0)).optional()?;
        Ok(match text.flatten() {
            Some(t) => Some(serde_json::from_str(&t)?),
            None => None,
        })
    }

    /// Marks a run finished with its summary.
    pub fn finish(&self, run: i64, summary: &EvaluationSummary) -> Result<(), StoreError> {
        self.finish_with(run, summary)
    }

    /// Every run, newest first.
    pub fn list(&self) -> Result<Vec<RunRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT r.id, r.kind, r.name, r.file, r.model, r.provider, r.started_at, r.finished_at,
                    (SELECT COUNT(*) FROM run_cases c WHERE c.run_id = r.id)
             FROM runs r ORDER BY r.id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                name: r.get(2)?,
                file: r.get(3)?,
                model: r.get(4)?,
                provider: r.get(5)?,
                started_at: r.get(6)?,
                finished_at: r.get(7)?,
                cases: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One run's row, if it exists.
    pub fn get(&self, run: i64) -> Result<Option<RunRow>, StoreError> {
        Ok(self.list()?.into_iter().find(|r| r.id == run))
    }

    /// A finished run's summary, as it was printed.
    pub fn summary(&self, run: i64) -> Result<Option<EvaluationSummary>, StoreError> {
        let text: Option<Option<String>> =
            self.conn().query_row("SELECT summary FROM runs WHERE id = ?1", params![run], |r| r.get(0)).optional()?;
        Ok(match text.flatten() {
            Some(t) => Some(serde_json::from_str(&t)?),
            None => None,
        })
    }

    /// A sink that records each finished case of `run`.
    pub fn sink(&self, run: i64) -> RunSink<'_> {
        RunSink { store: self, run }
    }
}

/// Records cases of one run as they finish.
#[derive(Debug)]
pub struct RunSink<'a> {
    store: &'a RunStore,
    run: i64,
}

impl CaseSink for RunSink<'_> {
    fn record(
        &self,
        index: usize,
        result: &TestResult,
        figures: &CaseFigures,
    ) -> Result<(), crate::evaluators::BoxError> {
        self.store.record_case(self.run, index, result, figures).map_err(Into::into)
    }
}
