//! Each upstream's clients, built by the gateway's [`Session`] over its state: the windows it shares with
//! other processes, its cache and its clock. The gateway adds only what is its own: one connection pool for
//! every upstream, a transport that tags and measures each exchange, and each upstream's deadline and attempts.

use std::sync::Arc;

use gm_app::Session;
use gm_core::ProviderKind;
use gm_http::{CachePolicy, RetryPolicy, Transport};

use crate::config::{Routing, UpstreamConfig};
use crate::metrics::Metrics;
use crate::upstream::{TaggedTransport, Upstream};
use crate::ServeError;

/// One upstream's clients over the shared transport, with its limiter and the session's cache.
pub(crate) fn upstream(
    up: &UpstreamConfig,
    routing: &Routing,
    session: &Session,
    network: &Arc<dyn Transport>,
    metrics: &Arc<Metrics>,
) -> Result<Upstream, ServeError> {
    let gateway = session.config();
    let inner: Arc<dyn Transport> =
        if up.provider == ProviderKind::Demo { Arc::new(gm_http::DemoTransport::new()) } else { network.clone() };
    let base = session
        .client_builder(&up.session_config(gateway, routing.limits.as_ref()))?
        .transport(Arc::new(TaggedTransport::new(inner, &up.name, metrics.clone())))
        .timeout(up.timeout)
        .retry_policy(RetryPolicy { max_attempts: up.attempts, max_wait: gateway.max_wait, ..RetryPolicy::default() });
    let err = |source| ServeError::Client { upstream: up.name.clone(), source };
    let uncached = base.clone().build().map_err(err)?;
    let (cached, fresh) = match session.response_cache()? {
        Some(cache) => {
            let ttl = Some(gateway.cache.ttl);
            let policy = |refresh| CachePolicy { ttl, refresh };
            let cached = base.clone().cache(cache.clone(), policy(gateway.cache.refresh)).build().map_err(err)?;
            (cached, base.cache(cache, policy(true)).build().map_err(err)?)
        }
        None => (uncached.clone(), uncached.clone()),
    };
    Ok(Upstream { name: up.name.as_str().into(), cached, fresh, uncached })
}

/// The network transport every upstream shares (one connection pool).
pub(crate) fn network() -> Result<Arc<dyn Transport>, ServeError> {
    let t = gm_http::HyperTransport::new(gm_http::HyperConfig::default())
        .map_err(|source| ServeError::Client { upstream: "(network)".into(), source })?;
    Ok(Arc::new(t))
}
