//! The upstreams: one `gm_http::Client` each, over a transport that tags and measures every exchange, built by
//! the gateway's [`Session`] over its state: the windows it shares with other processes, its cache and its
//! clock. The gateway adds only what is its own: one connection pool for every upstream, a transport that tags
//! and measures each exchange, and each upstream's deadline and attempts.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use gm_app::Session;
use gm_core::ProviderKind;
use gm_http::{CachePolicy, Client, HttpRequest, HttpResponse, RetryPolicy, Transport, TransportError};
use http::HeaderValue;

use crate::config::{Routing, UpstreamConfig};
use crate::metrics::{Metrics, UpstreamLabels};
use crate::ServeError;

/// What the handler of one request shares with the transport below the client: the request id to send
/// upstream, and when the first upstream attempt left (the rest was waiting for quota).
#[derive(Debug)]
pub(crate) struct Exchange {
    pub(crate) request_id: HeaderValue,
    pub(crate) first_send: OnceLock<Instant>,
    pub(crate) upstream: OnceLock<Arc<str>>,
}

impl Exchange {
    pub(crate) fn new(request_id: HeaderValue) -> Arc<Self> {
        Arc::new(Self { request_id, first_send: OnceLock::new(), upstream: OnceLock::new() })
    }
}

tokio::task_local! {
    /// The exchange of the request being handled on this task.
    pub(crate) static EXCHANGE: Arc<Exchange>;
}

/// A transport that adds the request's `x-request-id`, and counts and times every upstream exchange.
#[derive(Debug)]
pub(crate) struct TaggedTransport {
    inner: Arc<dyn Transport>,
    name: Arc<str>,
    labels: UpstreamLabels,
    metrics: Arc<Metrics>,
}

impl TaggedTransport {
    pub(crate) fn new(inner: Arc<dyn Transport>, name: &str, metrics: Arc<Metrics>) -> Self {
        Self { inner, name: name.into(), labels: UpstreamLabels { upstream: name.to_string() }, metrics }
    }
}

static REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

#[async_trait]
impl Transport for TaggedTransport {
    async fn send(&self, mut request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let started = Instant::now();
        let _ = EXCHANGE.try_with(|x| {
            request.headers.insert(REQUEST_ID.clone(), x.request_id.clone());
            let _ = x.first_send.set(started);
            let _ = x.upstream.set(self.name.clone());
        });
        self.metrics.upstream_requests.get_or_create(&self.labels).inc();
        let out = self.inner.send(request).await;
        self.metrics.upstream_duration.get_or_create(&self.labels).observe(started.elapsed().as_secs_f64());
        if let Ok(r) = &out {
            if r.status == 429 {
                self.metrics.upstream_429.get_or_create(&self.labels).inc();
            }
        }
        out
    }
}

/// One upstream's clients: the one that caches (when the gateway does), and the one that reads nothing from
/// the cache but stores what it fetches (for `Cache-Control: no-cache`), sharing transport and limiter.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) name: Arc<str>,
    pub(crate) cached: Client,
    pub(crate) fresh: Client,
    pub(crate) uncached: Client,
}

impl Upstream {
    /// The client for a request: `cache` whether the route caches, `bypass` whether the client asked for a
    /// fresh answer.
    pub(crate) fn client(&self, cache: bool, bypass: bool) -> &Client {
        match (cache, bypass) {
            (false, _) => &self.uncached,
            (true, false) => &self.cached,
            (true, true) => &self.fresh,
        }
    }
}

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
    // The session's builder gives the gateway's answer cap and deadline (`--max-response-bytes`, `--timeout`);
    // the routing file may set an upstream's own deadline.
    let mut base = session
        .client_builder(&up.session_config(gateway, routing.limits.as_ref()))?
        .transport(Arc::new(TaggedTransport::new(inner, &up.name, metrics.clone())))
        .retry_policy(RetryPolicy { max_attempts: up.attempts, max_wait: gateway.max_wait, ..RetryPolicy::default() });
    if let Some(timeout) = up.timeout {
        base = base.timeout(timeout);
    }
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
