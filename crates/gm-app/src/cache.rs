//! The response cache's figures over every run that used the state file, and emptying it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gm_cache::recording::{Recorded, RecordedAnswers};
use gm_cache::{Cache, CacheConfig, CacheStats, MemoryCache, PersistentStore};
use serde::Serialize;

use crate::error::Error;
use crate::session::Session;

/// The cache's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheReport {
    /// The state file.
    pub path: PathBuf,
    /// The totals over every run that used the state file on this machine.
    pub persistent: CacheStats,
    /// Hits over lookups, in [0, 1].
    pub hit_rate: f64,
    /// With Redis configured: what the Redis server holds (shared by every machine using it).
    pub redis: Option<Held>,
    /// The memory tier, which each process has for itself.
    pub memory: MemoryTier,
}

/// What a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Held {
    /// Answers.
    pub entries: u64,
    /// Their size in bytes.
    pub bytes: u64,
}

/// The memory tier's bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryTier {
    /// Where it lives (`per process`).
    pub scope: &'static str,
    /// At most this many answers.
    pub max_entries: usize,
    /// At most this many bytes.
    pub max_bytes: u64,
}

/// What emptying the cache removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cleared {
    /// Answers removed.
    pub removed: u64,
    /// The state file they were removed from; `None` when they were in the Redis server.
    pub from: Option<PathBuf>,
}

/// What exporting or importing the cache moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// Answers written to the file, or stored in the cache.
    pub answers: usize,
    /// The file.
    pub file: PathBuf,
    /// The cache: the state file, or `None` for the Redis server.
    pub cache: Option<PathBuf>,
}

impl Session {
    /// The persistent cache: the Redis server when one is configured, else the state file; and that file.
    fn persistent_cache(&self, what: &'static str) -> Result<(Arc<dyn PersistentStore>, Option<PathBuf>), Error> {
        if let Some(redis) = self.open_redis_cache()? {
            return Ok((redis, None));
        }
        let sqlite = self.open_sqlite_cache()?.ok_or(Error::NoStateFile { what })?;
        let path = sqlite.path().to_path_buf();
        Ok((sqlite, Some(path)))
    }

    /// The wall-clock time the persistent stores keep expiries in, read through the session's clock.
    fn store_time(&self) -> std::time::SystemTime {
        Cache::from_parts(MemoryCache::new(CacheConfig::default()), None).wall_time(self.clock().now())
    }

    /// Writes every fresh cached answer to `file`, in the recorded answers format (JSON Lines sorted by
    /// key), so another machine can import it, or replay a run from it. A state file that does not exist
    /// exports as an empty cache, and is not created.
    pub fn export_cache(&self, file: &Path) -> Result<Moved, Error> {
        let answers = RecordedAnswers::new(file);
        let cache = if self.config().redis_url.is_none() && self.existing_state_file()?.is_none() {
            Some(self.config().state_file().ok_or(Error::NoStateFile { what: "exporting the cache" })?)
        } else {
            let (store, cache) = self.persistent_cache("exporting the cache")?;
            for (key, stored) in store.entries(self.store_time())? {
                let mut entry = Recorded::new(key, Recorded::response_of(&stored.value));
                // An answer from a cache took no time and no request, wherever it is replayed.
                entry.cached = true;
                answers.insert(entry);
            }
            cache
        };
        answers.save().map_err(Error::RecordedAnswers)?;
        Ok(Moved { answers: answers.len(), file: file.to_path_buf(), cache })
    }

    /// Stores every answer of `file` (a cache export or a recorded answers file) in the cache, each fresh
    /// for the configured time to live from now.
    pub fn import_cache(&self, file: &Path) -> Result<Moved, Error> {
        let answers = RecordedAnswers::open(file).map_err(Error::RecordedAnswers)?;
        let (store, cache) = self.persistent_cache("importing into the cache")?;
        let now = self.store_time();
        let ttl = Some(self.config().cache.ttl);
        for entry in answers.entries() {
            store.set(entry.key, &entry.response_bytes(), ttl, now)?;
        }
        Ok(Moved { answers: answers.len(), file: file.to_path_buf(), cache })
    }

    /// The cache's figures: the state file's totals, and with Redis what the server holds.
    ///
    /// Only reads: a state file that does not exist yet reads as an empty cache, and nothing is created.
    pub fn cache_stats(&self) -> Result<CacheReport, Error> {
        let path = self.config().state_file().ok_or(Error::NoStateFile { what: "the cache statistics" })?;
        let s = match self.existing_state_file()? {
            Some(_) => match self.open_sqlite_cache()? {
                Some(sqlite) => sqlite.lifetime_stats()?,
                None => CacheStats::default(),
            },
            None => CacheStats::default(),
        };
        let redis = match self.open_redis_cache()? {
            Some(r) => {
                let r = r.stats()?;
                Some(Held { entries: r.entries, bytes: r.bytes })
            }
            None => None,
        };
        let memory = CacheConfig::default();
        Ok(CacheReport {
            path,
            persistent: s,
            hit_rate: s.hit_rate(),
            redis,
            memory: MemoryTier { scope: "per process", max_entries: memory.max_entries, max_bytes: memory.max_bytes },
        })
    }

    /// Removes every cached answer: from the Redis server when one is configured, else from the state file
    /// (a missing one is left missing).
    pub fn clear_cache(&self) -> Result<Cleared, Error> {
        if let Some(redis) = self.open_redis_cache()? {
            return Ok(Cleared { removed: redis.clear()?, from: None });
        }
        let path = self.config().state_file().ok_or(Error::NoStateFile { what: "clearing the cache" })?;
        // Nothing to clear in a state file that does not exist, and no reason to create it.
        if self.existing_state_file()?.is_none() {
            return Ok(Cleared { removed: 0, from: Some(path) });
        }
        let sqlite = self.open_sqlite_cache()?.ok_or(Error::NoStateFile { what: "clearing the cache" })?;
        let removed = sqlite.lifetime_stats()?.entries;
        PersistentStore::clear(&*sqlite)?;
        Ok(Cleared { removed, from: Some(sqlite.path().to_path_buf()) })
    }
}
