//! The session: one configuration, and the client, limiter, cache and run store built from it when a use case
//! first needs them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gm_cache::recording::RecordedAnswers;
use gm_cache::{Cache, CacheConfig, CacheStats, MemoryCache, PersistentStore, SqliteCache};
use gm_core::{Clock, ProviderKind};
use gm_eval::store::RunStore;
use gm_http::{CachePolicy, Client, ClientBuilder, RecordMode, RetryPolicy};
use gm_limits::{Limiter, LimitsConfig, SqliteWindows, TokioClock, WindowStore};

use crate::config::{LimitsSettings, SessionConfig};
use crate::error::Error;
use crate::notice::Notice;

/// Receives each notice as it arises.
type Listener = Arc<dyn Fn(&Notice) + Send + Sync>;

/// The response cache of the client, and the state file that keeps this machine's cache statistics.
struct CacheParts {
    cache: Arc<Cache>,
    sqlite: Option<Arc<SqliteCache>>,
}

/// The cache counters already added to the state file's totals.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counted {
    hits: u64,
    misses: u64,
    inserts: u64,
    expirations: u64,
    evictions: u64,
}

/// A configuration and what is built from it: the client (with its limiter and cache) and the run store.
///
/// Nothing is opened until a use case needs it, so listing runs opens no client and asking for the catalog
/// opens no run store. The session is `Send + Sync` and its use cases take `&self`, so a server shares one
/// between requests. Notices (the demo provider answers, the state file was moved aside, …) are data: they
/// go to the listener given with [`Session::on_notice`], or are kept for [`Session::take_notices`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use gm_app::{Notice, Session, SessionConfig};
///
/// let session = Session::new(SessionConfig::demo());
/// let catalog = session.models().await.unwrap();
/// assert!(catalog.chat_models().iter().any(|m| m.id == "openai/gpt-4.1"));
/// assert!(matches!(session.take_notices()[..], [Notice::DemoProvider { .. }]));
/// session.finish();
/// # });
/// ```
pub struct Session {
    config: SessionConfig,
    clock: Arc<dyn Clock>,
    listener: Option<Listener>,
    kept: Mutex<Vec<Notice>>,
    state_checked: Mutex<bool>,
    /// Where a damaged state file was moved this session, once it was.
    moved_to: Mutex<Option<PathBuf>>,
    /// Where the clients it builds send their requests, when not to the network.
    transport: Option<Arc<dyn gm_http::Transport>>,
    client: Mutex<Option<Client>>,
    /// The response cache, once opened (`Some(None)`: the session caches nothing).
    cache: Mutex<Option<Option<CacheParts>>>,
    /// The windows shared with other processes, once opened (`Some(None)`: counted in memory).
    windows: Mutex<Option<Option<Arc<dyn WindowStore>>>>,
    store: Mutex<Option<Arc<RunStore>>>,
    counted: Mutex<Counted>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("config", &self.config).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    /// A session for `config`. Nothing is opened yet.
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            clock: Arc::new(TokioClock),
            listener: None,
            kept: Mutex::new(Vec::new()),
            state_checked: Mutex::new(false),
            moved_to: Mutex::new(None),
            transport: None,
            client: Mutex::new(None),
            cache: Mutex::new(None),
            windows: Mutex::new(None),
            store: Mutex::new(None),
            counted: Mutex::new(Counted::default()),
        }
    }

    /// Hands every notice to `listener` as it arises, instead of keeping it for [`Session::take_notices`].
    pub fn on_notice(mut self, listener: impl Fn(&Notice) + Send + Sync + 'static) -> Session {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Sends the requests of every client the session builds through `transport` instead of the network: a
    /// server that runs use cases through its own routes in process, or a test double.
    pub fn with_transport(mut self, transport: Arc<dyn gm_http::Transport>) -> Session {
        self.transport = Some(transport);
        self
    }

    /// Times everything the session builds by `clock`: the client's latencies and cache, the limiter, and the
    /// cache's housekeeping (default: [`TokioClock`], which agrees with tokio's timers, paused ones included).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Session {
        self.clock = clock;
        self
    }

    /// The clock everything the session builds is timed by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The notices kept so far (none when a listener takes them), oldest first; they are not kept again.
    pub fn take_notices(&self) -> Vec<Notice> {
        std::mem::take(&mut *lock(&self.kept))
    }

    pub(crate) fn notice(&self, notice: Notice) {
        match &self.listener {
            Some(listen) => listen(&notice),
            None => lock(&self.kept).push(notice),
        }
    }

    /// The state file, its folder made if needed; `None` for a session kept in memory.
    ///
    /// The first time it is asked for, a file that is not a readable SQLite database is moved aside (with a
    /// notice) and a new one started, whichever part of the state a use case opens first.
    pub fn state_file(&self) -> Result<Option<PathBuf>, Error> {
        let (Some(dir), Some(path)) = (&self.config.data_dir, self.config.state_file()) else { return Ok(None) };
        std::fs::create_dir_all(dir).map_err(|source| Error::StateFolder { path: dir.clone(), source })?;
        let moved_to = {
            // Held while checking, so no other use case opens the file before it is moved aside.
            let mut checked = lock(&self.state_checked);
            let first = !std::mem::replace(&mut *checked, true);
            if first && path.exists() {
                // The whole file is checked, so a damaged page is found here rather than by a later read that
                // would fail the command; what can be read of the run history goes into the new file.
                let opened = SqliteCache::builder(&path).move_aside_if_unreadable(true).check_integrity(true).open();
                opened.ok().and_then(|c| c.moved_aside().map(Path::to_path_buf)).map(|aside| {
                    let kept = RunStore::open(&path)
                        .and_then(|store| store.salvage_from(&aside))
                        .map_err(|e| tracing::debug!(error = %e, "the damaged run history is unreadable"))
                        .ok()
                        .map(|s| crate::notice::HistoryKept { runs: s.runs, cases: s.cases, lost: s.lost });
                    (aside, kept)
                })
            } else {
                None
            }
        };
        if let Some((moved_to, kept)) = moved_to {
            *lock(&self.moved_to) = Some(moved_to.clone());
            self.notice(Notice::StateFileMovedAside { path: path.clone(), moved_to, kept });
        }
        Ok(Some(path))
    }

    /// Where this session moved a damaged state file (the latest, if more than one), so a front end can
    /// salvage from it what it keeps there itself: `None` while the state file has read well.
    pub fn state_file_moved_to(&self) -> Option<PathBuf> {
        lock(&self.moved_to).clone()
    }

    /// The state file when it exists, for a use case that only reads: nothing is created when it does not (a
    /// missing file reads as an empty one). `None` for a session kept in memory, or when there is no file yet.
    pub(crate) fn existing_state_file(&self) -> Result<Option<PathBuf>, Error> {
        match self.config.state_file() {
            Some(path) if path.exists() => self.state_file(),
            _ => Ok(None),
        }
    }

    /// The state file, for a use case that cannot work without one.
    pub(crate) fn required_state_file(&self, what: &'static str) -> Result<PathBuf, Error> {
        self.state_file()?.ok_or(Error::NoStateFile { what })
    }

    fn moved_aside(&self, path: &Path, cache: &SqliteCache) {
        if let Some(aside) = cache.moved_aside() {
            // Found damaged only now (after the first check): nothing of it was copied.
            *lock(&self.moved_to) = Some(aside.to_path_buf());
            let notice =
                Notice::StateFileMovedAside { path: path.to_path_buf(), moved_to: aside.to_path_buf(), kept: None };
            self.notice(notice);
        }
    }

    /// The persistent cache tier in the state file (`None` in memory). An unreadable file is moved aside
    /// (with a notice) rather than stopping every use case.
    pub(crate) fn open_sqlite_cache(&self) -> Result<Option<Arc<SqliteCache>>, Error> {
        let Some(path) = self.state_file()? else { return Ok(None) };
        let cache = SqliteCache::builder(&path)
            .max_bytes(1 << 30)
            .move_aside_if_unreadable(true)
            .open()
            .map_err(|source| Error::OpenCache { path: path.clone(), source })?;
        self.moved_aside(&path, &cache);
        Ok(Some(Arc::new(cache)))
    }

    /// The persistent cache tier in the Redis server, when one is configured.
    pub(crate) fn open_redis_cache(&self) -> Result<Option<Arc<dyn PersistentStore>>, Error> {
        let Some(url) = &self.config.redis_url else { return Ok(None) };
        let redis = gm_cache::RedisCache::open(url).map_err(|source| Error::RedisCache { source })?;
        Ok(Some(Arc::new(redis)))
    }

    /// The shared rate-limit windows in the state file.
    pub(crate) fn open_windows(&self, what: &'static str) -> Result<Arc<SqliteWindows>, Error> {
        let path = self.required_state_file(what)?;
        let windows = SqliteWindows::open(&path).map_err(|source| Error::OpenWindows { path, source })?;
        Ok(Arc::new(windows))
    }

    /// The limits configuration: the spec for every model, else the limits file, with the plan and the
    /// margin applied.
    pub fn limits_config(&self) -> Result<LimitsConfig, Error> {
        limits_config(&self.config.limits)
    }

    /// The windows shared with other processes: in the Redis server when one is configured, else in the state
    /// file; `None` for a session kept in memory. Opened once; every limiter of the session counts in them, and
    /// a server reads from them what every process has counted ([`WindowStore::count`]).
    pub fn shared_windows(&self) -> Result<Option<Arc<dyn WindowStore>>, Error> {
        let mut slot = lock(&self.windows);
        if let Some(windows) = &*slot {
            return Ok(windows.clone());
        }
        let windows: Option<Arc<dyn WindowStore>> = match &self.config.redis_url {
            Some(url) => Some(Arc::new(
                gm_limits::RedisWindows::open(url, "gm:limits").map_err(|source| Error::RedisWindows { source })?,
            )),
            None => match self.state_file()? {
                Some(_) => Some(self.open_windows("the shared rate limits")?),
                None => None,
            },
        };
        *slot = Some(windows.clone());
        Ok(windows)
    }

    /// A limiter with `config`, on the session's clock, counting in the windows the session shares with other
    /// processes (Redis, else the state file) or, for a session kept in memory, in this process only. A
    /// server uses it for quotas of its own (its clients' keys): every admission asks the shared store, so
    /// what it counts, and shows clients, is exactly what they were admitted
    /// ([`Limiter::with_store_per_request`]). The session's clients get theirs from
    /// [`Session::client_builder`], which take upstream quota in blocks where the limits leave room.
    pub fn limiter(&self, config: LimitsConfig) -> Result<Limiter, Error> {
        self.shared_limiter(config, false)
    }

    fn shared_limiter(&self, config: LimitsConfig, blocks: bool) -> Result<Limiter, Error> {
        let clock = self.clock.clone();
        Ok(match self.shared_windows()? {
            Some(store) if blocks => Limiter::with_store(config, clock, store),
            Some(store) => Limiter::with_store_per_request(config, clock, store),
            None => Limiter::with_clock(config, clock),
        })
    }

    /// The response cache (memory in front of Redis, else of the state file), opened on first use; `None` when
    /// the session's cache settings turn it off. Every client the session builds with a cache shares it.
    pub fn response_cache(&self) -> Result<Option<Arc<Cache>>, Error> {
        let mut slot = lock(&self.cache);
        if let Some(parts) = &*slot {
            return Ok(parts.as_ref().map(|p| p.cache.clone()));
        }
        let c = &self.config.cache;
        let parts = if c.enabled {
            let sqlite = self.open_sqlite_cache()?;
            let config = CacheConfig { default_ttl: Some(c.ttl), ..CacheConfig::default() };
            // The answers live in Redis when it is given (shared by every machine), else in the state file;
            // the state file keeps this machine's statistics either way.
            let persistent = match self.open_redis_cache()? {
                Some(redis) => Some(redis),
                None => sqlite.clone().map(|s| s as Arc<dyn PersistentStore>),
            };
            Some(CacheParts { cache: Arc::new(Cache::from_parts(MemoryCache::new(config), persistent)), sqlite })
        } else {
            None
        };
        let cache = parts.as_ref().map(|p| p.cache.clone());
        *slot = Some(parts);
        Ok(cache)
    }

    /// A client builder for `upstream`: its provider, base URL, org, credential, limits (the server's
    /// concurrency cap among them) and longest wait, over this session's state. Its limiter counts in the windows the session shares with other processes
    /// (the demo provider is limited only when a spec asks for it), its retries wait at most `max_wait`, and
    /// its clock is the session's. No cache is set: add [`Session::response_cache`] with the policy wanted.
    ///
    /// The session's own client is built this way from its own configuration; a server that routes to
    /// several upstreams builds one for each, sharing one state file (or Redis server) and one cache, and may
    /// set a transport, a timeout and retries before building. The upstream's data folder, Redis URL and cache
    /// settings are not read: they are the session's.
    pub fn client_builder(&self, upstream: &SessionConfig) -> Result<ClientBuilder, Error> {
        let mut b = self.base_builder(upstream);
        // A strict replay sends nothing, so it needs no quota.
        let replays_only = upstream.recording.as_ref().is_some_and(|r| r.mode == RecordMode::Replay);
        if (upstream.provider != ProviderKind::Demo || upstream.limits.spec.is_some()) && !replays_only {
            let limiter = self.shared_limiter(limits_config(&upstream.limits)?, true)?;
            b = b.limiter(Arc::new(limiter), upstream.max_wait);
        }
        if let Some(n) = upstream.limits.server_concurrency {
            b = b.server_concurrency(n);
        }
        Ok(b)
    }

    /// The client, built on first use with the configured limiter and cache (a notice says when the demo
    /// provider answers). Clones share everything.
    pub fn client(&self) -> Result<Client, Error> {
        let mut slot = lock(&self.client);
        if let Some(client) = &*slot {
            return Ok(client.clone());
        }
        let c = &self.config;
        let mut b = self.client_builder(c)?;
        if let Some(rec) = &c.recording {
            let path = rec.path.clone();
            let answers = match rec.mode {
                RecordMode::Record => RecordedAnswers::new(path),
                RecordMode::Replay => RecordedAnswers::open(path).map_err(Error::RecordedAnswers)?,
                RecordMode::ReplayRecordMissing => {
                    RecordedAnswers::open_or_new(path).map_err(Error::RecordedAnswers)?
                }
            };
            b = b.recording(Arc::new(answers), rec.mode);
        }
        // A strict replay sends nothing: it answers from nothing but its file, and opens no cache.
        if !self.replays_only() {
            if let Some(cache) = self.response_cache()? {
                b = b.cache(cache, CachePolicy { ttl: Some(c.cache.ttl), refresh: c.cache.refresh });
            }
        }
        let client = self.build(b)?;
        *slot = Some(client.clone());
        // The listener may call back into the session: no lock is held while it runs.
        drop(slot);
        self.demo_notice();
        Ok(client)
    }

    /// Whether every answer comes from a recorded answers file and nothing is sent (a strict replay): a run
    /// it stops is not resumed by running it again, since the answer it lacks is still missing.
    pub fn replays_only(&self) -> bool {
        self.config.recording.as_ref().is_some_and(|r| r.mode == RecordMode::Replay)
    }

    /// Writes the recorded answers file, when the session records answers (sorted by key, whole or not at
    /// all); returns the file and how many answers it holds. The use cases that run suites and benches call
    /// it as they end.
    pub fn save_recording(&self) -> Result<Option<(PathBuf, usize)>, Error> {
        let Some(client) = lock(&self.client).clone() else { return Ok(None) };
        let (Some(mode), Some(answers)) = (client.recording(), client.recorded_answers()) else { return Ok(None) };
        if !mode.records() {
            return Ok(None);
        }
        answers.save().map_err(Error::RecordedAnswers)?;
        Ok(Some((answers.path().to_path_buf(), answers.len())))
    }

    /// `result`, once the recorded answers are saved: a failure to save fails a use case that succeeded,
    /// and is logged for one that failed (its own error matters more).
    pub(crate) fn saving_recording<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        match (self.save_recording(), result) {
            (Ok(_), r) => r,
            (Err(e), Ok(_)) => Err(e),
            (Err(e), Err(r)) => {
                tracing::warn!(error = %e, "could not write the recorded answers");
                Err(r)
            }
        }
    }

    /// A client for reading the catalog, which neither the limiter nor the cache takes part in: the session's
    /// client when it is built, else one without them, so reading the catalog opens no state. It is not kept.
    pub(crate) fn catalog_client(&self) -> Result<Client, Error> {
        if let Some(client) = &*lock(&self.client) {
            return Ok(client.clone());
        }
        let client = self.build(self.base_builder(&self.config))?;
        self.demo_notice();
        Ok(client)
    }

    /// Builds a client; missing credentials are named as this session's configuration looks for them.
    fn build(&self, b: ClientBuilder) -> Result<Client, Error> {
        let client = b.build().map_err(|e| match e {
            gm_http::Error::MissingCredentials { provider, .. } => {
                gm_http::Error::MissingCredentials { provider, hint: self.config.credential_hint() }
            }
            e => e,
        })?;
        Ok(client)
    }

    /// A builder for `c`'s provider, base URL, organization, credential, aliases, waits, answer cap and
    /// timeout, on the session's clock, without a limiter or a cache.
    fn base_builder(&self, c: &SessionConfig) -> ClientBuilder {
        let mut b = Client::builder().provider(c.provider).clock(self.clock.clone());
        if let Some(t) = &self.transport {
            b = b.transport(t.clone());
        }
        if let Some(url) = &c.base_url {
            b = b.base_url(url.clone());
        }
        if let Some(org) = &c.org {
            b = b.org(org.clone());
        }
        if let Some(credential) = &c.credential {
            b = b.credential(credential.clone());
        }
        b = b.aliases(c.aliases.clone()).max_response_bytes(c.max_response_bytes).timeout(c.timeout);
        // The wait bound applies to every wait for quota: the limiter's and the one a 429 asks for.
        b.retry_policy(RetryPolicy { max_wait: c.max_wait, ..RetryPolicy::default() })
    }

    fn demo_notice(&self) {
        if self.config.provider == ProviderKind::Demo {
            self.notice(Notice::DemoProvider { reason: self.config.provider_reason.clone() });
        }
    }

    /// The run store in the state file (in memory for a session without one), opened on first use.
    pub fn run_store(&self) -> Result<Arc<RunStore>, Error> {
        let mut slot = lock(&self.store);
        if let Some(store) = &*slot {
            return Ok(store.clone());
        }
        let path = self.state_file()?.unwrap_or_else(|| PathBuf::from(":memory:"));
        let store = Arc::new(RunStore::open(&path)?);
        *slot = Some(store.clone());
        Ok(store)
    }

    /// The run store for a use case that only reads it: the state file's when it exists, else an empty one in
    /// memory (a session with a data folder creates nothing by reading).
    pub(crate) fn read_store(&self) -> Result<Arc<RunStore>, Error> {
        if self.config.data_dir.is_none() || self.existing_state_file()?.is_some() {
            return self.run_store();
        }
        Ok(Arc::new(RunStore::open(Path::new(":memory:"))?))
    }

    /// Adds the cache statistics gathered since the last call to the totals in the state file, and drops the
    /// expired answers the lookups have not already dropped. Call it when a command ends (a server may call it
    /// now and then); failures are logged, never returned, since the use case's own result matters more.
    pub fn finish(&self) {
        let parts = lock(&self.cache);
        let Some(Some(CacheParts { cache, sqlite: Some(sqlite) })) = &*parts else { return };
        if let Err(e) = cache.purge_expired(self.clock.now()) {
            tracing::warn!(error = %e, "could not remove expired cache entries");
        }
        let s = cache.stats();
        let p = s.persistent.unwrap_or_default();
        // Memory hits and persistent hits together; every other lookup missed both tiers.
        let hits = s.memory.hits + p.hits;
        let now = Counted {
            hits,
            misses: s.memory.lookups().saturating_sub(hits),
            inserts: p.inserts,
            expirations: p.expirations,
            evictions: p.evictions,
        };
        let mut counted = lock(&self.counted);
        let mut delta = CacheStats::default();
        delta.hits = now.hits.saturating_sub(counted.hits);
        delta.misses = now.misses.saturating_sub(counted.misses);
        delta.inserts = now.inserts.saturating_sub(counted.inserts);
        delta.expirations = now.expirations.saturating_sub(counted.expirations);
        delta.evictions = now.evictions.saturating_sub(counted.evictions);
        match sqlite.record(&delta) {
            Ok(()) => *counted = now,
            Err(e) => tracing::warn!(error = %e, "could not record cache statistics"),
        }
    }
}

/// The limits configuration of `settings`: the spec for every model, else the limits file, else the limits
/// given inline, with the plan and the margin applied.
fn limits_config(settings: &LimitsSettings) -> Result<LimitsConfig, Error> {
    let mut config = match (&settings.spec, &settings.file) {
        (Some(spec), _) => LimitsConfig::uniform(spec.clone()),
        (None, Some(file)) => {
            let text = crate::eval::read_small(file).map_err(|source| Error::Read {
                what: "the limits file",
                path: file.clone(),
                source,
            })?;
            LimitsConfig::from_toml(&text).map_err(|source| Error::LimitsFile { path: file.clone(), source })?
        }
        (None, None) => settings.inline.clone().unwrap_or_default(),
    };
    if config.margin.is_none() {
        config.margin = settings.margin;
    }
    if let Some(plan) = settings.plan {
        config.providers.entry("github".into()).or_default().plan = Some(plan);
    }
    Ok(config)
}
