//! `/metrics`: the gateway's counters and histograms in the Prometheus text format (prometheus-client).
//!
//! Labels carry the route, the model, the client key's name (never its secret) and the status. A model is
//! named by its route's id; on a `*` route by the id the client sent once an upstream has answered it, else `*`,
//! so the number of labels is bounded by what the routes and upstreams serve, never by what clients make up.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The endpoint (`chat`, `embeddings`, `models`).
    pub route: &'static str,
    /// The model the client asked for (`-` for none).
    pub model: String,
    /// The client key's name, `public` for a visitor, `-` for none.
    pub key: String,
    /// The status answered.
    pub status: u16,
}

/// The labels of an upstream exchange.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The upstream's name.
    pub upstream: String,
}

/// The labels of token and cost counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The model the client asked for.
    pub model: String,
    /// The client key's name.
    pub key: String,
}

/// Every metric of the gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route, model, key and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from a request's arrival to its answer's head (a stream: to its first byte).
    pub duration: Histogram,
    /// Seconds from sending to an upstream to its answer's head.
    pub upstream_duration: Family<UpstreamLabels, Histogram, fn() -> Histogram>,
    /// Seconds a request waited for upstream quota before it was sent.
    pub queue_wait: Histogram,
    /// 429 answers from upstreams (zero while the limits are right).
    pub upstream_429: Family<UpstreamLabels, Counter>,
    /// Requests sent to upstreams.
    pub upstream_requests: Family<UpstreamLabels, Counter>,
    /// 429 answers to clients (their key's, the visitor's or the upstream quota's limits).
    pub client_429: Counter,
    /// Answers served from the cache.
    pub cache_hits: Counter,
    /// Cacheable answers not in the cache.
    pub cache_misses: Counter,
    /// Bytes held by the cache's memory tier.
    pub cache_bytes: Gauge,
    /// Input tokens, by model and key.
    pub tokens_in: Family<ModelLabels, Counter>,
    /// Output tokens, by model and key.
    pub tokens_out: Family<ModelLabels, Counter>,
    /// Cost in micro-dollars at list prices, by model and key.
    pub cost_micro_usd: Family<ModelLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // From 50 µs to about 100 s: a gateway's own time and an upstream's both fit.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.5, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric of the gateway.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gm_serve");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests answered, by route, model, client key and status", requests.clone());
        let duration = latency_histogram();
        registry.register("request_duration_seconds", "From arrival to the answer's head", duration.clone());
        let upstream_duration =
            Family::<UpstreamLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "upstream_duration_seconds",
            "From sending to an upstream to its answer's head",
            upstream_duration.clone(),
        );
        let queue_wait = latency_histogram();
        registry.register("queue_wait_seconds", "Time a request waited for upstream quota", queue_wait.clone());
        let upstream_429 = Family::<UpstreamLabels, Counter>::default();
        registry.register("upstream_rate_limited", "429 answers from upstreams", upstream_429.clone());
        let upstream_requests = Family::<UpstreamLabels, Counter>::default();
        registry.register("upstream_requests", "Requests sent to upstreams", upstream_requests.clone());
        let client_429 = Counter::default();
        registry.register("client_rate_limited", "429 answers to clients", client_429.clone());
        let cache_hits = Counter::default();
        registry.register("cache_hits", "Answers served from the cache", cache_hits.clone());
        let cache_misses = Counter::default();
        registry.register("cache_misses", "Cacheable answers not found in the cache", cache_misses.clone());
        let cache_bytes = Gauge::default();
        registry.register("cache_bytes", "Bytes held by the cache's memory tier", cache_bytes.clone());
        let tokens_in = Family::<ModelLabels, Counter>::default();
        registry.register("tokens_in", "Input tokens, by model and client key", tokens_in.clone());
        let tokens_out = Family::<ModelLabels, Counter>::default();
        registry.register("tokens_out", "Output tokens, by model and client key", tokens_out.clone());
        let cost_micro_usd = Family::<ModelLabels, Counter>::default();
        registry.register(
            "cost_micro_usd",
            "Cost at list prices in millionths of a US dollar, by model and client key",
            cost_micro_usd.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            upstream_duration,
            queue_wait,
            upstream_429,
            upstream_requests,
            client_429,
            cache_hits,
            cache_misses,
            cache_bytes,
            tokens_in,
            tokens_out,
            cost_micro_usd,
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
