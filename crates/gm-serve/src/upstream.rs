//! The upstreams: one `gm_http::Client` each, over a transport that tags and measures every exchange.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use gm_http::{Client, HttpRequest, HttpResponse, Transport, TransportError};
use http::HeaderValue;

use crate::metrics::{Metrics, UpstreamLabels};

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
