//! Building the clients, limiters and stores from a configuration: the one place that knows how.

use std::sync::Arc;

use gm_cache::{Cache, CacheConfig, MemoryCache, PersistentStore, SqliteCache};
use gm_core::ProviderKind;
use gm_http::{Client, RetryPolicy, Transport};
use gm_limits::{Limiter, LimitsConfig, TokioClock, WindowStore};

use crate::config::{ServeConfig, UpstreamConfig};
use crate::keys::{self, KeyStore};
use crate::metrics::Metrics;
use crate::upstream::{self, TaggedTransport, Upstream};
use crate::ServeError;

/// The stores a gateway counts and keeps things in.
pub(crate) struct Stores {
    /// Windows shared with other processes (the state file or Redis); `None`: this process only.
    pub(crate) windows: Option<Arc<dyn WindowStore>>,
    /// The response cache.
    pub(crate) cache: Option<Arc<Cache>>,
    /// The client keys.
    pub(crate) keys: Arc<dyn KeyStore>,
}

/// Opens the stores of `config`: Redis when given, else the state file, else memory.
pub(crate) fn stores(config: &ServeConfig) -> Result<Stores, ServeError> {
    let windows: Option<Arc<dyn WindowStore>> = match (&config.redis, &config.state_file) {
        (Some(url), _) => Some(Arc::new(
            gm_limits::RedisWindows::open(url, "gm:limits").map_err(|e| ServeError::store("the Redis windows", e))?,
        )),
        (None, Some(path)) => Some(Arc::new(
            gm_limits::SqliteWindows::open(path).map_err(|e| ServeError::store("the windows in the state file", e))?,
        )),
        (None, None) => None,
    };
    let cache = if config.cache {
        let persistent: Option<Arc<dyn PersistentStore>> = match (&config.redis, &config.state_file) {
            (Some(url), _) => {
                Some(Arc::new(gm_cache::RedisCache::open(url).map_err(|e| ServeError::store("the Redis cache", e))?))
            }
            (None, Some(path)) => Some(Arc::new(
                SqliteCache::builder(path)
                    .max_bytes(1 << 30)
                    .open()
                    .map_err(|e| ServeError::store("the cache in the state file", e))?,
            )),
            (None, None) => None,
        };
        let memory = MemoryCache::new(CacheConfig { default_ttl: Some(config.cache_ttl), ..CacheConfig::default() });
        Some(Arc::new(Cache::from_parts(memory, persistent)))
    } else {
        None
    };
    let keys = keys::open_store(config.state_file.as_deref(), config.redis.as_deref())?;
    Ok(Stores { windows, cache, keys })
}

/// A limiter over `store` (or this process's memory).
pub(crate) fn limiter(config: LimitsConfig, store: Option<&Arc<dyn WindowStore>>) -> Limiter {
    match store {
        Some(s) => Limiter::with_store(config, Arc::new(TokioClock), s.clone()),
        None => Limiter::with_clock(config, Arc::new(TokioClock)),
    }
}

/// The limits that apply to an upstream: its own, else the routing file's, else the gateway's.
fn upstream_limits(up: &UpstreamConfig, config: &ServeConfig) -> LimitsConfig {
    match &up.limits {
        Some(spec) => {
            let mut c = LimitsConfig::uniform(spec.clone());
            c.margin = config.limits.margin;
            c
        }
        None => config.routing.limits.clone().unwrap_or_else(|| config.limits.clone()),
    }
}

/// Whether any key of the upstream can be limited: GitHub (its catalog tiers) or a configuration that sets
/// limits. Without limits no limiter is made, so nothing is counted for nothing.
fn limited(up: &UpstreamConfig, limits: &LimitsConfig) -> bool {
    up.provider == ProviderKind::Github
        || limits.default.as_ref().is_some_and(|s| !s.is_unlimited())
        || limits
            .providers
            .get(up.provider.as_str())
            .is_some_and(|p| p.limits.as_ref().is_some_and(|s| !s.is_unlimited()) || !p.models.is_empty())
}

/// One upstream's clients over the shared transport, with its limiter and the cache.
pub(crate) fn upstream(
    up: &UpstreamConfig,
    config: &ServeConfig,
    network: &Arc<dyn Transport>,
    stores: &Stores,
    metrics: &Arc<Metrics>,
) -> Result<Upstream, ServeError> {
    let inner: Arc<dyn Transport> =
        if up.provider == ProviderKind::Demo { Arc::new(gm_http::DemoTransport::new()) } else { network.clone() };
    let mut b = Client::builder()
        .provider(up.provider)
        .transport(Arc::new(TaggedTransport::new(inner, &up.name, metrics.clone())))
        .timeout(up.timeout)
        .retry_policy(RetryPolicy { max_attempts: up.attempts, max_wait: config.max_wait, ..RetryPolicy::default() });
    if let Some(url) = &up.base_url {
        b = b.base_url(url.clone());
    }
    if let Some(c) = &up.credential {
        b = b.credential(c.clone());
    }
    if let Some(org) = &up.org {
        b = b.org(org.clone());
    }
    let limits = upstream_limits(up, config);
    if limited(up, &limits) {
        b = b.limiter(Arc::new(limiter(limits, stores.windows.as_ref())), config.max_wait);
    }
    upstream::clients(up, b, stores.cache.clone().map(|c| (c, config.cache_ttl)))
}

/// The network transport every upstream shares (one connection pool).
pub(crate) fn network() -> Result<Arc<dyn Transport>, ServeError> {
    let t = gm_http::HyperTransport::new(gm_http::HyperConfig::default())
        .map_err(|source| ServeError::Client { upstream: "(network)".into(), source })?;
    Ok(Arc::new(t))
}
