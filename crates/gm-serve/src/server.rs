//! The router, its state, the handlers and the server's lifecycle.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use gm_app::Session;
use gm_core::{CatalogEntry, ChatRequest, EmbeddingRequest, ProviderKind, StreamOptions, Usage};
use gm_http::{ChatStream, Client};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::access::{Access, Caller, Pass};
use crate::config::{LogTarget, ServeConfig};
use crate::metrics::{Metrics, ModelLabels, RequestLabels};
use crate::upstream::{Exchange, Upstream, EXCHANGE};
use crate::wire::{json_response, upstream_failure, ApiFailure, Dialect};
use crate::{keys, upstream, ServeError};

/// A route's upstreams, in order, each with the model it knows the route's model by.
pub(crate) type Targets = Vec<(Arc<Upstream>, Option<String>)>;

/// A route as served: its targets resolved to upstream clients.
#[derive(Debug)]
struct Route {
    model: String,
    targets: Targets,
    cache: bool,
}

/// The state every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    session: Arc<Session>,
    routes: HashMap<String, Arc<Route>>,
    wildcard: Option<Arc<Route>>,
    access: Access,
    metrics: Arc<Metrics>,
    prices: gm_eval::prices::PriceTable,
    log: LogTarget,
    cache: Option<Arc<gm_cache::Cache>>,
}

impl AppState {
    /// Builds the state of `config` over `session`, the gateway's state (its state file or Redis server, its
    /// cache, the default upstream limits and the longest wait for quota): builds every upstream's clients,
    /// opens the key store, resolves the routes.
    pub fn new(config: &ServeConfig, session: Arc<Session>) -> Result<Self, ServeError> {
        config.routing.validate()?;
        let metrics = Arc::new(Metrics::new());
        let network = upstream::network()?;
        let mut upstreams = HashMap::new();
        for up in &config.routing.upstreams {
            let u = upstream::upstream(up, &config.routing, &session, &network, &metrics)?;
            upstreams.insert(up.name.clone(), Arc::new(u));
        }
        let caching = session.config().cache.enabled;
        let mut routes = HashMap::new();
        let mut wildcard = None;
        for r in &config.routing.routes {
            let targets = r
                .targets
                .iter()
                .filter_map(|t| upstreams.get(&t.upstream).map(|u| (u.clone(), t.model.clone())))
                .collect();
            let route = Arc::new(Route { model: r.model.clone(), targets, cache: r.cache && caching });
            if r.model == "*" {
                wildcard = Some(route);
            } else {
                routes.insert(r.model.to_ascii_lowercase(), route);
            }
        }
        // Client keys live in the state file or Redis; keys and visitors count in the session's shared windows
        // too: across replicas, and across restarts. A damaged state file's keys are read back from it.
        let keys = keys::open_salvaging(&session, true)?;
        let key_limiter = session.limiter(gm_limits::LimitsConfig::default())?;
        let access =
            Access::new(keys, key_limiter, session.shared_windows()?, config.public.clone(), config.trust_proxy);
        let cache = session.response_cache()?;
        Ok(Self {
            inner: Arc::new(Inner {
                session,
                routes,
                wildcard,
                access,
                metrics,
                prices: gm_eval::prices::PriceTable::builtin(),
                log: config.log.clone(),
                cache,
            }),
        })
    }

    /// The metrics registry (to add a dashboard's own).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The gateway's session: its state, and every use case of gm (runs, limits, the cache) for a dashboard.
    pub fn session(&self) -> &Arc<Session> {
        &self.inner.session
    }

    /// Who is calling, and their limits (for the dashboard's pages).
    pub(crate) fn access(&self) -> &Access {
        &self.inner.access
    }

    /// The built-in price table the gateway counts costs with.
    pub(crate) fn prices(&self) -> &gm_eval::prices::PriceTable {
        &self.inner.prices
    }

    /// The price of an answer to `model` from its route's first upstream, if that upstream's answers have one.
    pub(crate) fn route_price(&self, model: &str) -> Option<gm_core::metrics::Price> {
        let (upstream, upstream_model) = self.route(model)?.targets.first()?;
        let provider = upstream.uncached.provider();
        self.inner.prices.price_from(provider, upstream_model.as_deref().unwrap_or(model))
    }

    /// Every route (the `*` route last), with its upstreams and the model each knows it by.
    pub(crate) fn routes(&self) -> Vec<(String, Targets)> {
        let mut out: Vec<_> = self.inner.routes.values().map(|r| (r.model.clone(), r.targets.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(self.inner.wildcard.iter().map(|r| (r.model.clone(), r.targets.clone())));
        out
    }

    fn route(&self, model: &str) -> Option<&Arc<Route>> {
        // Most clients send ids in lower case already; only others pay for a lower-cased copy.
        if model.bytes().any(|b| b.is_ascii_uppercase()) {
            self.inner.routes.get(&model.to_ascii_lowercase()).or(self.inner.wildcard.as_ref())
        } else {
            self.inner.routes.get(model).or(self.inner.wildcard.as_ref())
        }
    }
}

/// The gateway's router: the OpenAI and GitHub Models paths, `/metrics`, `/healthz`, `/readyz`, with the
/// request-id, access-log and metrics layer around all of them. Merge another router (a dashboard) into it
/// with [`Router::merge`]; the layer then covers it too when applied after the merge, as [`Gateway`] does.
/// A path no route serves gets 404 in the envelope its API uses (so a router merged in must not set a
/// fallback of its own).
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_openai))
        .route("/chat/completions", post(chat_openai))
        .route("/inference/chat/completions", post(chat_github))
        .route("/orgs/{org}/inference/chat/completions", post(chat_github))
        .route("/v1/embeddings", post(embeddings_openai))
        .route("/embeddings", post(embeddings_openai))
        .route("/inference/embeddings", post(embeddings_github))
        .route("/orgs/{org}/inference/embeddings", post(embeddings_github))
        .route("/v1/models", get(models_openai))
        .route("/models", get(models_openai))
        .route("/catalog/models", get(catalog_github))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_served)
        .method_not_allowed_fallback(method_not_served)
        .with_state(state)
}

/// The envelope of the API a path belongs to: GitHub Models' for its own paths, else OpenAI's.
fn dialect_of(path: &str) -> Dialect {
    let github = ["/inference/", "/orgs/", "/catalog/"].iter().any(|p| path.starts_with(p));
    if github {
        Dialect::Github
    } else {
        Dialect::OpenAi
    }
}

/// A path the gateway does not serve: 404 in the envelope of the API the path belongs to, naming where the
/// models are listed.
async fn not_served(method: http::Method, uri: http::Uri) -> Response {
    let path = uri.path();
    let dialect = dialect_of(path);
    let list = match dialect {
        Dialect::Github => "GET /catalog/models",
        Dialect::OpenAi => "GET /v1/models",
    };
    let message = format!("this gateway serves no {method} {path}; its models are listed at {list}");
    ApiFailure::new(StatusCode::NOT_FOUND, "not_found", message).into_response(dialect)
}

/// A path the gateway serves, asked with a method it does not answer: 405 in the path's envelope.
async fn method_not_served(method: http::Method, uri: http::Uri) -> Response {
    let path = uri.path();
    let message = format!("{path} does not answer {method}; see the endpoints in the gateway's documentation");
    ApiFailure::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message).into_response(dialect_of(path))
}

/// Adds the request id, the access log and the request metrics around `router`.
pub fn observed(router: Router, state: AppState) -> Router {
    router.layer(axum::middleware::from_fn_with_state(state, observe))
}

/// What a handler tells the access log and the metrics about its answer.
#[derive(Debug, Clone, Default)]
struct Outcome {
    endpoint: &'static str,
    /// The model's metric label: the route's id, for a `*` route the one the client sent once an upstream
    /// has answered it (so clients cannot grow the label set with made-up ids), else `*`.
    model: String,
    /// The model the client sent, for the access log.
    asked: String,
    key: String,
    cache: Option<bool>,
    upstream: Option<Arc<str>>,
    /// The provider and model that answered, which price the answer (the demo provider's are not priced).
    answered_by: Option<(ProviderKind, String)>,
    usage: Option<(u64, u64)>,
    /// For a streamed answer: its input and output tokens, told once the stream has ended.
    streamed: Option<Tally>,
}

/// A streamed answer's input and output tokens, once its end has told them.
type Tally = Arc<std::sync::Mutex<Option<(u64, u64)>>>;

/// Writes a streamed answer's access-log line once its body ends (or the client goes away): with the time to
/// the last byte and what the stream used, which its head could not tell.
struct LogAtEnd {
    line: serde_json::Value,
    started: Instant,
    tally: Tally,
    log: LogTarget,
}

impl Drop for LogAtEnd {
    fn drop(&mut self) {
        self.line["stream_ms"] = ((self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3).into();
        if let Some((i, o)) = *self.tally.lock().unwrap_or_else(|p| p.into_inner()) {
            self.line["tokens_in"] = i.into();
            self.line["tokens_out"] = o.into();
        }
        write_log(&self.log, &self.line);
    }
}

fn write_log(target: &LogTarget, line: &serde_json::Value) {
    let mut text = line.to_string();
    text.push('\n');
    match target {
        LogTarget::Stderr => {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
        LogTarget::Memory(buf) => buf.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(text.as_bytes()),
        LogTarget::Off => {}
    }
}

static REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
static GM_CACHE: http::HeaderName = http::HeaderName::from_static("x-gm-cache");

/// The request id of a request: the client's when it is a sensible one, else a new one.
#[derive(Debug, Clone)]
struct RequestId(HeaderValue);

fn new_request_id() -> HeaderValue {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        u64::from_le_bytes(b)
    });
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix:016x}{n:08x}")).unwrap_or(HeaderValue::from_static("0"))
}

fn accepted_request_id(h: &HeaderMap) -> Option<HeaderValue> {
    let v = h.get(&REQUEST_ID)?;
    let ok =
        (1..=128).contains(&v.len()) && v.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
    ok.then(|| v.clone())
}

async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = accepted_request_id(req.headers()).unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    let elapsed = started.elapsed();
    let status = resp.status().as_u16();
    let m = &state.inner.metrics;
    m.duration.observe(elapsed.as_secs_f64());
    if status == 429 {
        m.client_429.inc();
    }
    let outcome = resp.extensions().get::<Outcome>().cloned().unwrap_or_default();
    let endpoint = if outcome.endpoint.is_empty() { endpoint_of(&path) } else { outcome.endpoint };
    let model = if outcome.model.is_empty() { "-".to_string() } else { outcome.model.clone() };
    let key = if outcome.key.is_empty() { "-".to_string() } else { outcome.key.clone() };
    m.requests.get_or_create(&RequestLabels { route: endpoint, model: model.clone(), key: key.clone(), status }).inc();
    let model = if outcome.asked.is_empty() { model } else { outcome.asked.clone() };
    if matches!(state.inner.log, LogTarget::Off) {
        return resp;
    }
    let ts = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut line = serde_json::json!({
        "ts_ms": ts,
        "request_id": id.to_str().unwrap_or("-"),
        "method": method.as_str(),
        "path": path,
        "status": status,
        "duration_ms": (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        "model": model,
        "key": key,
    });
    if let Some(c) = outcome.cache {
        line["cache"] = if c { "hit" } else { "miss" }.into();
    }
    if let Some(u) = &outcome.upstream {
        line["upstream"] = u.to_string().into();
    }
    if let Some((i, o)) = outcome.usage {
        line["tokens_in"] = i.into();
        line["tokens_out"] = o.into();
    }
    if let Some(p) = peer {
        line["client"] = p.ip().to_string().into();
    }
    if let Some(tally) = outcome.streamed {
        let at_end = LogAtEnd { line, started, tally, log: state.inner.log.clone() };
        let (parts, body) = resp.into_parts();
        let body = body.into_data_stream().map(move |chunk| {
            let _keep = &at_end;
            chunk
        });
        return Response::from_parts(parts, Body::from_stream(body));
    }
    write_log(&state.inner.log, &line);
    resp
}

fn endpoint_of(path: &str) -> &'static str {
    match path {
        "/metrics" => "metrics",
        "/healthz" | "/readyz" => "health",
        p if p.ends_with("/models") => "models",
        p if p.ends_with("/chat/completions") => "chat",
        p if p.ends_with("/embeddings") => "embeddings",
        _ => "other",
    }
}

fn request_id(h: &http::Extensions) -> HeaderValue {
    h.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_else(new_request_id)
}

fn with_outcome(mut r: Response, o: Outcome) -> Response {
    r.extensions_mut().insert(o);
    r
}

fn fail(dialect: Dialect, f: ApiFailure, o: Outcome, pass_headers: Option<&Pass>) -> Response {
    let mut r = f.into_response(dialect);
    if let Some(p) = pass_headers {
        p.apply(r.headers_mut());
    }
    with_outcome(r, o)
}

fn bad_json(e: serde_json::Error) -> ApiFailure {
    ApiFailure::new(StatusCode::BAD_REQUEST, "invalid_request_body", format!("the body is not a valid request: {e}"))
}

fn unknown_model(model: &str) -> ApiFailure {
    ApiFailure::new(
        StatusCode::NOT_FOUND,
        "unknown_model",
        format!("Unknown model: {model}; GET /v1/models lists the models this gateway serves"),
    )
}

async fn chat_openai(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request) -> Response {
    chat(s, Dialect::OpenAi, peer, req).await
}

async fn chat_github(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request) -> Response {
    chat(s, Dialect::Github, peer, req).await
}

const MAX_BODY: usize = 32 << 20;

async fn read_body(req: Request) -> Result<(http::request::Parts, Bytes), ApiFailure> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiFailure::new(StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", "the request body is over 32 MiB")
    })?;
    Ok((parts, bytes))
}

fn wants_fresh(h: &HeaderMap) -> bool {
    h.get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|d| matches!(d.trim(), "no-cache" | "no-store")))
}

/// A request to a model, as the gateway's common step reads it.
trait ModelRequest: serde::de::DeserializeOwned {
    /// The model the client asked for.
    fn model(&self) -> &str;
    /// The tokens it counts against a caller's token budgets.
    fn tokens(&self) -> gm_limits::TokenCount;
}

impl ModelRequest for ChatRequest {
    fn model(&self) -> &str {
        &self.model
    }
    fn tokens(&self) -> gm_limits::TokenCount {
        gm_limits::count_tokens(self)
    }
}

impl ModelRequest for EmbeddingRequest {
    fn model(&self) -> &str {
        &self.model
    }
    fn tokens(&self) -> gm_limits::TokenCount {
        // Embeddings are counted by the usage the upstream reports, once it has answered.
        gm_limits::TokenCount::ZERO
    }
}

/// A request admitted by the gateway's common step: its head, the parsed body, its route, the caller's pass,
/// and the outcome so far.
struct Admitted<R> {
    parts: http::request::Parts,
    request: R,
    route: Arc<Route>,
    pass: Pass,
    o: Outcome,
}

/// The step every call to a model begins with: read the body, identify the caller, parse the request, find
/// its route, and admit it under the caller's limits (counting its tokens only for a key with token
/// budgets). Any failure is the answer, in the dialect's envelope.
async fn admit<R: ModelRequest>(
    s: &AppState,
    endpoint: &'static str,
    dialect: Dialect,
    peer: SocketAddr,
    req: Request,
) -> Result<Admitted<R>, Response> {
    let mut o = Outcome { endpoint, ..Outcome::default() };
    let (parts, body) = match read_body(req).await {
        Ok(x) => x,
        Err(f) => return Err(fail(dialect, f, o, None)),
    };
    let caller = match s.inner.access.identify_request(&parts, peer) {
        Ok(c) => c,
        Err(f) => return Err(fail(dialect, f, o, None)),
    };
    o.key = caller.label().to_string();
    let request: R = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return Err(fail(dialect, bad_json(e), o, None)),
    };
    o.asked = request.model().to_string();
    let Some(route) = s.route(request.model()).cloned() else {
        return Err(fail(dialect, unknown_model(request.model()), o, None));
    };
    o.model = route.model.clone();
    let tokens = match &caller {
        Caller::Key(k) if !k.spec().token_windows.is_empty() => request.tokens(),
        _ => gm_limits::TokenCount::ZERO,
    };
    match s.inner.access.admit(&caller, tokens) {
        Ok(pass) => Ok(Admitted { parts, request, route, pass, o }),
        Err(f) => Err(fail(dialect, f, o, None)),
    }
}

async fn chat(s: AppState, dialect: Dialect, peer: SocketAddr, req: Request) -> Response {
    let Admitted { parts, mut request, route, pass, mut o } =
        match admit::<ChatRequest>(&s, "chat", dialect, peer, req).await {
            Ok(a) => a,
            Err(answer) => return answer,
        };
    let stream = request.stream == Some(true);
    let include_usage = request.stream_options.as_ref().is_some_and(|x| x.include_usage);
    if stream {
        // Usage is always asked of the upstream, so a stream's tokens count against the caller's budget; the
        // usage chunk reaches the client only when it asked for it.
        request.stream_options = Some(StreamOptions { include_usage: true });
    }
    let bypass = wants_fresh(&parts.headers);
    let exchange = Exchange::new(request_id(&parts.extensions));
    let asked = request.model.clone();
    let started = Instant::now();
    let (mut last, mut waited) = (None, false);
    for (i, (upstream, model)) in route.targets.iter().enumerate() {
        request.model = model.clone().unwrap_or_else(|| asked.clone());
        let client = upstream.client(route.cache, bypass);
        let result = if stream {
            EXCHANGE.scope(exchange.clone(), client.chat_stream(&request)).await.map(|s| Answer::Stream(Box::new(s)))
        } else {
            EXCHANGE.scope(exchange.clone(), client.chat(&request)).await.map(|r| Answer::Whole(Box::new(r)))
        };
        // The wait before the first upstream attempt, once per request (a fallback does not count it again).
        if let (false, Some(first)) = (waited, exchange.first_send.get()) {
            waited = true;
            s.inner.metrics.queue_wait.observe(first.saturating_duration_since(started).as_secs_f64());
        }
        match result {
            Ok(answer) => {
                o.upstream = Some(upstream.name.clone());
                o.answered_by = Some((client.provider(), request.model.clone()));
                if route.model == "*" {
                    o.model = asked.clone();
                }
                return match answer {
                    Answer::Whole(r) => whole(&s, dialect, *r, pass, o, route.cache),
                    Answer::Stream(st) => streamed(&s, *st, pass, o, include_usage, route.cache, client.clone()),
                };
            }
            Err(e) => {
                let (f, may_fall_back) = upstream_failure(&e);
                tracing::info!(upstream = %upstream.name, error = %e, "upstream failed");
                o.upstream = Some(upstream.name.clone());
                last = Some(f);
                if !may_fall_back || i + 1 == route.targets.len() {
                    break;
                }
            }
        }
    }
    let f = last.unwrap_or_else(|| unknown_model(&asked));
    let answer = fail(dialect, f, o, Some(&pass));
    pass.settle(0, 0);
    answer
}

enum Answer {
    Whole(Box<gm_http::ChatResponse>),
    Stream(Box<ChatStream>),
}

/// What an answer cost, in millionths of a dollar: by the price of the model that answered it (a route's own
/// id may be an alias no price table knows), none for the demo provider's, whose answers no model gave.
fn cost_micro_usd(s: &AppState, answered_by: Option<&(ProviderKind, String)>, usage: &Usage) -> u64 {
    answered_by
        .and_then(|(provider, model)| s.inner.prices.price_from(*provider, model))
        .map(|p| (p.cost_usd(usage.prompt_tokens, usage.completion_tokens) * 1e6).round() as u64)
        .unwrap_or(0)
}

/// Counts an answer's usage: the caller's budgets, and the token and cost metrics.
fn account(s: &AppState, o: &mut Outcome, pass: Pass, usage: Option<&Usage>, cached: bool) {
    // Without usage from the upstream the reservations stand: what was counted before sending.
    let Some(u) = usage else { return };
    // A cached answer costs the upstream nothing; it still counts against the caller's token budget.
    let cost = if cached { 0 } else { cost_micro_usd(s, o.answered_by.as_ref(), u) };
    let total = if u.total_tokens > 0 { u.total_tokens } else { u.prompt_tokens + u.completion_tokens };
    pass.settle(total, cost);
    let labels = ModelLabels { model: o.model.clone(), key: o.key.clone() };
    let m = &s.inner.metrics;
    m.tokens_in.get_or_create(&labels).inc_by(u.prompt_tokens);
    m.tokens_out.get_or_create(&labels).inc_by(u.completion_tokens);
    if cost > 0 {
        m.cost_micro_usd.get_or_create(&labels).inc_by(cost);
    }
    o.usage = Some((u.prompt_tokens, u.completion_tokens));
    if let Some(tally) = &o.streamed {
        *tally.lock().unwrap_or_else(|p| p.into_inner()) = o.usage;
    }
}

fn count_cache(s: &AppState, cacheable: bool, hit: bool) {
    if !cacheable {
        return;
    }
    if hit {
        s.inner.metrics.cache_hits.inc();
    } else {
        s.inner.metrics.cache_misses.inc();
    }
}

static HIT: HeaderValue = HeaderValue::from_static("hit");
static MISS: HeaderValue = HeaderValue::from_static("miss");

fn whole(
    s: &AppState,
    dialect: Dialect,
    r: gm_http::ChatResponse,
    pass: Pass,
    mut o: Outcome,
    cacheable: bool,
) -> Response {
    // The answer goes back as the upstream sent it (or the cache kept it), every field untouched.
    let body = match r.body() {
        Some(b) => b.clone(),
        None => match serde_json::to_vec(&r.completion) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                let why = format!("could not encode the answer: {e}");
                return fail(dialect, ApiFailure::new(StatusCode::BAD_GATEWAY, "upstream_error", why), o, Some(&pass));
            }
        },
    };
    count_cache(s, cacheable, r.cached);
    o.cache = Some(r.cached);
    let mut resp = json_response(StatusCode::OK, body);
    pass.apply(resp.headers_mut());
    resp.headers_mut().insert(GM_CACHE.clone(), if r.cached { HIT.clone() } else { MISS.clone() });
    account(s, &mut o, pass, r.completion.usage.as_ref(), r.cached);
    with_outcome(resp, o)
}

/// Streams an answer as server-sent events, each event's data as the upstream sent it. Chunks that only carry
/// usage reach the client only when it asked for them (`stream_options.include_usage`); the gateway always
/// asks, to count the caller's tokens. What the stream used is told to the access log when it ends.
fn streamed(
    s: &AppState,
    st: ChatStream,
    pass: Pass,
    mut o: Outcome,
    include_usage: bool,
    cacheable: bool,
    client: Client,
) -> Response {
    let cached = st.is_cached();
    count_cache(s, cacheable, cached);
    o.cache = Some(cached);
    o.streamed = Some(Arc::default());
    let mut headers = HeaderMap::new();
    pass.apply(&mut headers);
    struct Run {
        st: ChatStream,
        pass: Option<Pass>,
        usage: Option<Usage>,
        done: bool,
        state: AppState,
        outcome: Outcome,
        include_usage: bool,
        cached: bool,
        _client: Client,
    }
    let run = Run {
        st,
        pass: Some(pass),
        usage: None,
        done: false,
        state: s.clone(),
        outcome: o.clone(),
        include_usage,
        cached,
        _client: client,
    };
    let body = futures_util::stream::unfold(run, |mut run| async move {
        loop {
            if run.done {
                return None;
            }
            match run.st.next_event().await {
                Some(Ok(e)) => {
                    if let Some(u) = &e.chunk.usage {
                        run.usage = Some(u.clone());
                    }
                    if !run.include_usage && e.chunk.choices.is_empty() && e.chunk.usage.is_some() {
                        continue;
                    }
                    return Some((Ok::<_, std::io::Error>(event(&e.data)), run));
                }
                Some(Err(e)) => {
                    run.done = true;
                    let err = serde_json::json!({"error": {"message": e.to_string(), "type": "server_error", "code": "upstream_stream_broken"}});
                    if let Some(p) = run.pass.take() {
                        p.settle(0, 0);
                    }
                    return Some((Ok(Bytes::from(format!("data: {err}\n\n"))), run));
                }
                None => {
                    run.done = true;
                    if let Some(p) = run.pass.take() {
                        let mut o = run.outcome.clone();
                        account(&run.state, &mut o, p, run.usage.as_ref(), run.cached);
                    }
                    return Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), run));
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.extend(headers);
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(GM_CACHE.clone(), if cached { HIT.clone() } else { MISS.clone() });
    with_outcome(resp, o)
}

/// One server-sent event carrying `data` unchanged (a line of its own for each of its lines).
fn event(data: &str) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 8);
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}

async fn embeddings_openai(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    embeddings(s, Dialect::OpenAi, peer, req).await
}

async fn embeddings_github(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    embeddings(s, Dialect::Github, peer, req).await
}

async fn embeddings(s: AppState, dialect: Dialect, peer: SocketAddr, req: Request) -> Response {
    let Admitted { parts, mut request, route, pass, mut o } =
        match admit::<EmbeddingRequest>(&s, "embeddings", dialect, peer, req).await {
            Ok(a) => a,
            Err(answer) => return answer,
        };
    let exchange = Exchange::new(request_id(&parts.extensions));
    let asked = request.model.clone();
    let mut last = None;
    for (i, (upstream, model)) in route.targets.iter().enumerate() {
        request.model = model.clone().unwrap_or_else(|| asked.clone());
        o.upstream = Some(upstream.name.clone());
        match EXCHANGE.scope(exchange.clone(), upstream.uncached.embeddings(&request)).await {
            Ok(r) => {
                o.answered_by = Some((upstream.uncached.provider(), request.model.clone()));
                if route.model == "*" {
                    o.model = asked.clone();
                }
                let body = serde_json::to_vec(&r).unwrap_or_default();
                let mut resp = json_response(StatusCode::OK, Bytes::from(body));
                pass.apply(resp.headers_mut());
                resp.headers_mut().insert(GM_CACHE.clone(), MISS.clone());
                o.cache = Some(false);
                let usage = r.usage.as_ref().map(|u| Usage {
                    prompt_tokens: u.prompt_tokens,
                    total_tokens: u.total_tokens,
                    ..Usage::default()
                });
                account(&s, &mut o, pass, usage.as_ref(), false);
                return with_outcome(resp, o);
            }
            Err(e) => {
                let (f, may_fall_back) = upstream_failure(&e);
                last = Some(f);
                if !may_fall_back || i + 1 == route.targets.len() {
                    break;
                }
            }
        }
    }
    let answer = fail(dialect, last.unwrap_or_else(|| unknown_model(&asked)), o, Some(&pass));
    pass.settle(0, 0);
    answer
}

/// Every model the gateway serves: each route's id, and for `*` routes the first upstream's own list.
pub(crate) async fn served_models(s: &AppState) -> Vec<CatalogEntry> {
    let mut out: Vec<CatalogEntry> = Vec::new();
    let mut names: Vec<&Arc<Route>> = s.inner.routes.values().collect();
    names.sort_by(|a, b| a.model.cmp(&b.model));
    for r in names {
        let mut entry = None;
        if let Some((u, m)) = r.targets.first() {
            let want = m.clone().unwrap_or_else(|| r.model.clone());
            if let Ok(list) = u.uncached.models().await {
                entry = list.iter().find(|e| e.id.eq_ignore_ascii_case(&want)).cloned();
            }
        }
        let mut e = entry.unwrap_or_default();
        e.id = r.model.clone();
        if e.name.is_none() {
            e.name = Some(r.model.rsplit('/').next().unwrap_or(&r.model).to_string());
        }
        if e.publisher.is_none() {
            e.publisher = r.model.split_once('/').map(|(p, _)| p.to_string());
        }
        out.push(e);
    }
    if let Some(w) = &s.inner.wildcard {
        for (u, _) in &w.targets {
            if let Ok(list) = u.uncached.models().await {
                for e in list.iter() {
                    if !out.iter().any(|x| x.id.eq_ignore_ascii_case(&e.id)) {
                        out.push(e.clone());
                    }
                }
                break;
            }
        }
    }
    out
}

async fn models_openai(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    h: HeaderMap,
) -> Response {
    let o = Outcome { endpoint: "models", ..Outcome::default() };
    if let Err(f) = s.inner.access.identify(&h, peer) {
        return fail(Dialect::OpenAi, f, o, None);
    }
    let data: Vec<serde_json::Value> = served_models(&s)
        .await
        .into_iter()
        .map(|e| {
            serde_json::json!({"id": e.id, "object": "model", "created": 0,
                "owned_by": e.publisher.unwrap_or_else(|| "gm".into())})
        })
        .collect();
    let body = serde_json::json!({"object": "list", "data": data}).to_string();
    with_outcome(json_response(StatusCode::OK, Bytes::from(body)), o)
}

async fn catalog_github(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    h: HeaderMap,
) -> Response {
    let o = Outcome { endpoint: "models", ..Outcome::default() };
    if let Err(f) = s.inner.access.identify(&h, peer) {
        return fail(Dialect::Github, f, o, None);
    }
    let body = serde_json::to_vec(&served_models(&s).await).unwrap_or_default();
    with_outcome(json_response(StatusCode::OK, Bytes::from(body)), o)
}

async fn readyz(State(s): State<AppState>) -> Response {
    // Ready when the key store answers (the state file or Redis behind it).
    match s.inner.access.keys.any_active() {
        Ok(_) => Response::new(Body::from("ready\n")),
        Err(e) => {
            let mut r = Response::new(Body::from(format!("not ready: {e}\n")));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    }
}

async fn metrics(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, h: HeaderMap) -> Response {
    // Metrics name keys and models: a keyed gateway shows them to key holders, a public one to loopback only.
    let allowed = match s.inner.access.identify(&h, peer) {
        Ok(Caller::Key(_)) => true,
        Ok(Caller::Open) => true,
        Ok(Caller::Visitor(_)) => peer.ip().is_loopback() && !h.contains_key("x-forwarded-for"),
        Err(_) => false,
    };
    if !allowed {
        let f = ApiFailure::new(StatusCode::UNAUTHORIZED, "unauthorized", "/metrics needs a client key");
        return f.into_response(Dialect::OpenAi);
    }
    if let Some(c) = &s.inner.cache {
        s.inner.metrics.cache_bytes.set(c.memory().stats().bytes as i64);
    }
    let mut r = Response::new(Body::from(s.inner.metrics.encode()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// How often a running gateway adds its cache statistics to the state file (see [`Session::finish`]).
const HOUSEKEEPING: Duration = Duration::from_secs(60);

/// A gateway bound to its address, ready to serve.
#[derive(Debug)]
pub struct Gateway {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    router: Router,
    grace: Duration,
    session: Arc<Session>,
}

impl Gateway {
    /// Builds the state and the router of `config` over `session` (the gateway's state file or Redis server,
    /// cache, default limits and longest wait) and binds its address. A non-loopback address is refused unless
    /// keys exist or the gateway is public.
    pub async fn bind(config: ServeConfig, session: Session) -> Result<Self, ServeError> {
        Self::bind_with(config, session, |_| Router::new()).await
    }

    /// As [`Gateway::bind`], merging another router (e.g. a dashboard) built from the same state; the
    /// request-id, log and metrics layer covers it too.
    pub async fn bind_with(
        config: ServeConfig,
        session: Session,
        extra: impl FnOnce(AppState) -> Router,
    ) -> Result<Self, ServeError> {
        let state = AppState::new(&config, Arc::new(session))?;
        if !config.addr.ip().is_loopback()
            && config.public.is_none()
            && !state.inner.access.keys.any_active().unwrap_or(false)
        {
            return Err(ServeError::Exposed { addr: config.addr });
        }
        let session = state.inner.session.clone();
        let router = observed(api_router(state.clone()).merge(extra(state.clone())), state);
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServeError::Bind { addr: config.addr, source })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: config.addr, source })?;
        Ok(Self { listener, addr, router, grace: config.grace, session })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes; then stops accepting, lets the requests in flight finish (for at
    /// most the grace period), and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = tx.send(());
        };
        let serve = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(signal);
        let grace = self.grace;
        // The cache's statistics and expiries reach the state file every minute, and when the gateway stops.
        let session = self.session;
        let housekeeping = {
            let session = session.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(HOUSEKEEPING);
                every.tick().await;
                loop {
                    every.tick().await;
                    let session = session.clone();
                    let _ = tokio::task::spawn_blocking(move || session.finish()).await;
                }
            })
        };
        let finish = move || async move {
            housekeeping.abort();
            let _ = tokio::task::spawn_blocking(move || session.finish()).await;
        };
        let mut serve = std::pin::pin!(std::future::IntoFuture::into_future(serve));
        tokio::select! {
            r = &mut serve => {
                finish().await;
                return r.map_err(ServeError::Serve);
            }
            _ = rx => {}
        }
        let served = match tokio::time::timeout(grace, serve).await {
            Ok(r) => r.map_err(ServeError::Serve),
            Err(_) => {
                tracing::warn!(
                    grace_ms = grace.as_millis() as u64,
                    "requests still in flight after the grace period were cut off"
                );
                Ok(())
            }
        };
        finish().await;
        served
    }
}

/// Binds `config`'s address over `session` and serves until `shutdown` completes: the whole gateway in one call.
pub async fn serve(
    config: ServeConfig,
    session: Session,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Gateway::bind(config, session).await?.run(shutdown).await
}

/// Completes on SIGINT or SIGTERM. The handlers are in place when this returns, before the future is first
/// polled: call it before saying the gateway listens, so that a signal sent at once stops it gracefully
/// rather than killing it. Call it within a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                // Without handlers, Ctrl-C at least (registered when first polled).
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
