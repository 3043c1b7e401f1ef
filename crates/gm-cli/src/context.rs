//! Turning the global flags and the environment into a client, its cache and its state file.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result};
use gm_cache::{Cache, CacheConfig, MemoryCache, PersistentStore, SqliteCache};
use gm_core::ProviderKind;
use gm_http::auth::{self, Resolution};
use gm_http::{CachePolicy, Client};
use gm_limits::{Limiter, LimitsConfig, Margin, SqliteWindows, TokioClock, WindowStore};

use crate::exit::usage;

use crate::cli::Global;

/// Reads an environment variable; the CLI is the only place that does.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs `gh auth token`, quietly; `None` when gh is missing or not logged in.
pub fn gh_auth_token() -> Option<String> {
    let out = Command::new("gh").args(["auth", "token"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|t| !t.is_empty())
}

/// Resolves the provider and credential from the flags and the environment.
pub fn resolve(global: &Global) -> Resolution {
    auth::resolve(global.provider, &env_var, &gh_auth_token)
}

/// The folder of the state file: `--data-dir`/`GM_DATA_DIR`, else `$XDG_DATA_HOME/gm`, else
/// `~/.local/share/gm`.
pub fn data_dir(global: &Global) -> PathBuf {
    if let Some(d) = &global.data_dir {
        return d.clone();
    }
    if let Some(x) = env_var("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("gm");
    }
    match env_var("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/gm"),
        None => PathBuf::from(".gm"),
    }
}

/// The state file: one SQLite file for the cache, the shared rate-limit windows and the run history.
///
/// The first time a command asks for it, a file that is not a readable SQLite database is moved aside (and
/// said so) and a new one started, whichever part of the state the command uses first.
pub fn state_file(global: &Global) -> Result<PathBuf> {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let dir = data_dir(global);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("could not create the state folder {}; pass --data-dir DIR", dir.display()))?;
    let path = dir.join("gm.sqlite");
    CHECKED.get_or_init(|| {
        if path.exists() {
            if let Ok(cache) = SqliteCache::builder(&path).move_aside_if_unreadable(true).open() {
                if let Some(aside) = cache.moved_aside() {
                    eprintln!(
                        "warning: {} was unreadable; it was moved to {} and a new one started",
                        path.display(),
                        aside.display()
                    );
                }
            }
        }
    });
    Ok(path)
}

/// The persistent cache tier in the state file. An unreadable file is moved aside (and said so) rather than
/// stopping every command.
pub fn open_sqlite_cache(global: &Global) -> Result<Arc<SqliteCache>> {
    let path = state_file(global)?;
    let cache = SqliteCache::builder(&path)
        .max_bytes(1 << 30)
        .move_aside_if_unreadable(true)
        .open()
        .with_context(|| format!("could not open the cache in {}", path.display()))?;
    if let Some(aside) = cache.moved_aside() {
        eprintln!(
            "warning: {} was unreadable; it was moved to {} and a new one started",
            path.display(),
            aside.display()
        );
    }
    Ok(Arc::new(cache))
}

/// The persistent cache tier in the Redis server of `--redis`.
pub fn open_redis_cache(url: &str) -> Result<Arc<dyn PersistentStore>> {
    Ok(Arc::new(
        gm_cache::RedisCache::open(url)
            .context("could not reach the Redis server given by --redis (GM_REDIS_URL) for the cache")?,
    ))
}

/// The transit-time margin the CLI adds to every window: 100 ms plus 0.1 % of the window.
pub const CLI_MARGIN: Margin = Margin { fixed: std::time::Duration::from_millis(100), ppm: 1000 };

/// The limits configuration from `--limits`, `--limits-config` and `--plan`.
pub fn limits_config(global: &Global) -> Result<LimitsConfig> {
    let mut config = match (&global.limits, &global.limits_config) {
        (Some(spec), _) => LimitsConfig::uniform(spec.clone()),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("could not read the limits file {}", file.display()))?;
            LimitsConfig::from_toml(&text).map_err(|e| usage(format!("{}: {e}", file.display())))?
        }
        (None, None) => LimitsConfig::default(),
    };
    // Requests from several processes each open their own connection, so the time between admission and
    // arrival at the server can reach tens of milliseconds on a busy machine; windows are lengthened by
    // this much so the server's count agrees. A `margin=` in the spec or file overrides it.
    if config.margin.is_none() {
        config.margin = Some(CLI_MARGIN);
    }
    if let Some(plan) = global.plan {
        config.providers.entry("github".into()).or_default().plan = Some(plan);
    }
    Ok(config)
}

/// The shared rate-limit windows in the state file.
pub fn open_windows(global: &Global) -> Result<Arc<SqliteWindows>> {
    let path = state_file(global)?;
    Ok(Arc::new(
        SqliteWindows::open(&path)
            .with_context(|| format!("could not open the rate-limit state in {}", path.display()))?,
    ))
}

/// The limiter for a provider, counting in the state file so every `gm` process on the machine shares the
/// quota. The demo provider is limited only when `--limits` asks for it.
fn limiter(global: &Global, provider: ProviderKind) -> Result<Option<Arc<Limiter>>> {
    if provider == ProviderKind::Demo && global.limits.is_none() {
        return Ok(None);
    }
    let config = limits_config(global)?;
    let store: Arc<dyn WindowStore> = match &global.redis {
        Some(url) => Arc::new(
            gm_limits::RedisWindows::open(url, "gm:limits")
                .context("could not reach the Redis server given by --redis (GM_REDIS_URL) for the rate limits")?,
        ),
        None => open_windows(global)?,
    };
    Ok(Some(Arc::new(Limiter::with_store(config, Arc::new(TokioClock), store))))
}

/// A client and the stores it uses for one command.
pub struct Session {
    /// The client.
    pub client: Client,
    cache: Option<(Arc<Cache>, Arc<SqliteCache>)>,
}

impl Session {
    /// Adds this run's cache statistics to the totals in the state file.
    pub fn finish(&self) {
        let Some((cache, sqlite)) = &self.cache else { return };
        // Expired answers are dropped lazily on lookup; this clears the rest, once per command.
        if let Err(e) = cache.purge_expired(std::time::Instant::now()) {
            tracing::warn!(error = %e, "could not remove expired cache entries");
        }
        let s = cache.stats();
        let p = s.persistent.unwrap_or_default();
        // Memory hits and persistent hits together; every other lookup missed both tiers.
        let hits = s.memory.hits + p.hits;
        let mut delta = gm_cache::CacheStats::default();
        delta.hits = hits;
        delta.misses = s.memory.lookups().saturating_sub(hits);
        delta.inserts = p.inserts;
        delta.expirations = p.expirations;
        delta.evictions = p.evictions;
        if let Err(e) = sqlite.record(&delta) {
            tracing::warn!(error = %e, "could not record cache statistics");
        }
    }
}

/// Builds the client for the global flags. `cache` says whether this command caches (before `--no-cache`).
/// Prints the demo notice when the demo provider answers.
pub fn session(global: &Global, cache: bool) -> Result<Session> {
    let res = resolve(global);
    let mut b = Client::builder().provider(res.provider);
    if let Some(url) = global.base_url.clone().or(res.base_url.clone()) {
        b = b.base_url(url);
    }
    if let Some(org) = &global.org {
        b = b.org(org.clone());
    }
    if let Some(c) = &res.credential {
        b = b.credential(c.clone());
    }
    if let Some(limiter) = limiter(global, res.provider)? {
        b = b.limiter(limiter, global.max_wait);
    }
    // --max-wait bounds every wait for quota: the limiter's and the one a 429 asks for.
    b = b.retry_policy(gm_http::RetryPolicy { max_wait: global.max_wait, ..Default::default() });
    let mut stores = None;
    if cache && !global.no_cache {
        let sqlite = open_sqlite_cache(global)?;
        let config = CacheConfig { default_ttl: Some(global.cache_ttl), ..CacheConfig::default() };
        // The answers live in Redis when it is given (shared by every machine), else in the state file; the
        // state file keeps this machine's statistics either way.
        let persistent: Arc<dyn PersistentStore> = match &global.redis {
            Some(url) => open_redis_cache(url)?,
            None => sqlite.clone(),
        };
        let tiered = Arc::new(Cache::from_parts(MemoryCache::new(config), Some(persistent)));
        b = b.cache(tiered.clone(), CachePolicy { ttl: Some(global.cache_ttl), refresh: global.refresh });
        stores = Some((tiered, sqlite));
    }
    let client = b.build()?;
    if res.provider == ProviderKind::Demo {
        eprintln!("note: demo provider ({}); answers are computed offline by gm, not by a model", res.reason);
    }
    Ok(Session { client, cache: stores })
}
