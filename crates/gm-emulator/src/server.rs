use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use gm_core::{CatalogEntry, ChatRequest, EmbeddingRequest};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bodies;
use crate::limits::{Counter, EmulatorLimits, InFlight, Refusal};

type Body = BoxBody<Bytes, std::io::Error>;

/// How the emulator behaves.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The address to bind; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Answer 410 with the retirement body on every path, as GitHub's hosts do since 2026-07-30.
    pub retired: bool,
    /// Require `Authorization: Bearer …` on GitHub inference paths (401 otherwise).
    pub require_auth: bool,
    /// Require exactly this key (`Authorization: Bearer KEY` or `api-key: KEY`) on every path, the
    /// OpenAI-style `/v1` ones and the catalogs included, as a server started with a key does (401 otherwise).
    pub token: Option<String>,
    /// The catalog. Defaults to a built-in one shaped like the real catalog.
    pub catalog: Vec<CatalogEntry>,
    /// A fixed delay before every answer (and between stream chunks, a tenth of it).
    pub latency: Duration,
    /// The per-request input-token cap above which chat answers 413 (the free tier's 8000).
    pub max_input_tokens: u64,
    /// Rate limits per token and model on chat and embeddings; `None` enforces none.
    pub limits: Option<EmulatorLimits>,
    /// With `limits` unset: each model's own free-plan tier from the catalog's `rate_limit_tier` (models
    /// without one, and unknown models, get the low tier), with time scaled down by this factor.
    pub catalog_tiers: Option<f64>,
    /// Answer at most this many chat and embeddings requests at a time and queue the rest, first come first
    /// served, as a llama.cpp server with that many slots does (the wait counts in what the client measures).
    pub slots: Option<usize>,
    /// Report each whole chat answer's service time as llama.cpp does (`timings.prompt_ms` and
    /// `timings.predicted_ms`, together the configured latency), apart from any wait for a slot.
    pub timings: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            retired: false,
            require_auth: true,
            token: None,
            catalog: builtin_catalog(),
            latency: Duration::ZERO,
            max_input_tokens: 8000,
            limits: None,
            catalog_tiers: None,
            slots: None,
            timings: false,
        }
    }
}

/// The built-in catalog.
pub fn builtin_catalog() -> Vec<CatalogEntry> {
    serde_json::from_str(include_str!("catalog.json")).unwrap_or_default()
}

/// What a queued fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultKind {
    /// Answer with this status and the real body for it (429 with `retry-after` and `x-ratelimit-*` headers).
    Status {
        /// The status.
        status: u16,
        /// For 429: the seconds in `retry-after`.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Stream this many chunks, then drop the connection.
    DropStream {
        /// Chunks sent before the drop.
        after_chunks: usize,
    },
    /// Stream the whole answer but end without `data: [DONE]`.
    NoDone,
    /// Answer with exactly this status, content type and body, and no other header: a 200 whose body is an
    /// error envelope, an HTML page from a proxy, a 429 that says nothing about how long to wait.
    Raw {
        /// The status.
        status: u16,
        /// The `content-type` (JSON by default).
        #[serde(default = "json_type")]
        content_type: String,
        /// The body, sent as it is.
        #[serde(default)]
        body: String,
    },
    /// Read the request and never answer (until the emulator stops): a server that accepts and stalls.
    Hang,
    /// Send the head and the first `after_bytes` bytes of the real answer (streamed or not), then drop the
    /// connection.
    CutBody {
        /// Bytes of the body sent before the drop.
        after_bytes: usize,
    },
    /// Answer with about `bytes` bytes of valid content (deltas of a stream, or one long message), made as
    /// they are sent, so the emulator's memory stays flat.
    Huge {
        /// The content's size in bytes.
        bytes: usize,
    },
}

fn json_type() -> String {
    "application/json".into()
}

/// A fault to inject into the next matching requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// What to do.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many requests it applies to.
    #[serde(default = "one")]
    pub times: usize,
    /// Only requests whose path contains this (e.g. `chat/completions`); all inference requests when absent.
    #[serde(default)]
    pub path: Option<String>,
}

fn one() -> usize {
    1
}

impl Fault {
    /// Answer `status` to the next `times` requests.
    pub fn status(status: u16, times: usize) -> Self {
        Fault { kind: FaultKind::Status { status, retry_after: None }, times, path: None }
    }
}

/// Requests the emulator has seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmulatorStats {
    /// All requests, admin paths excluded.
    pub total: u64,
    /// Requests per path.
    pub by_path: BTreeMap<String, u64>,
    /// Requests per status answered.
    pub by_status: BTreeMap<u16, u64>,
    /// Chat and embeddings requests answered 200, per model as the request named it.
    #[serde(default)]
    pub answered_by_model: BTreeMap<String, u64>,
    /// Requests received, counted when they arrive (so those never answered count too), admin paths excluded.
    #[serde(default)]
    pub received: u64,
    /// The most chat and embeddings requests being answered at one time (a stream until its end).
    #[serde(default)]
    pub max_answering: u64,
}

#[derive(Debug)]
struct State {
    config: EmulatorConfig,
    faults: Mutex<VecDeque<Fault>>,
    stats: Mutex<EmulatorStats>,
    counter: Counter,
    slots: Option<Arc<tokio::sync::Semaphore>>,
    answering: Arc<std::sync::atomic::AtomicU64>,
}

/// A request being answered: holds its slot, and counts in [`EmulatorStats::max_answering`] until dropped.
struct Answering {
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
    answering: Arc<std::sync::atomic::AtomicU64>,
}

impl Answering {
    async fn begin(st: &State) -> Answering {
        let slot = match &st.slots {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        let now = st.answering.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let mut stats = lock(&st.stats);
        stats.max_answering = stats.max_answering.max(now);
        Answering { _slot: slot, answering: st.answering.clone() }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.answering.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            slots: config.slots.map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1)))),
            answering: Arc::default(),
            config,
            faults: Mutex::new(VecDeque::new()),
            stats: Mutex::new(EmulatorStats::default()),
            counter: Counter::default(),
        });
        let (stop, mut stopped) = watch::channel(false);
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopped.changed() => break,
                };
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                let mut stop_conn = stopped.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(st, req).await) }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop_conn.changed() => {}
                    }
                });
            }
        });
        Ok(Emulator { addr, state, stop, task: Some(task) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the base URL for the `github` provider.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`: the base URL for OpenAI-style providers.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues a fault for the next matching requests.
    pub fn inject(&self, fault: Fault) {
        lock(&self.state.faults).push_back(fault);
    }

    /// What the emulator has seen so far.
    pub fn stats(&self) -> EmulatorStats {
        lock(&self.state.stats).clone()
    }

    /// Stops serving and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Serves until the process is stopped (for `gm emulate`).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Github,
    OpenAi,
}

enum Endpoint {
    Catalog,
    /// `GET /v1/models/{id}`: one model of the OpenAI-style list.
    Model(String),
    Chat,
    Embeddings,
}

fn route(method: &Method, path: &str) -> Option<(Style, Endpoint)> {
    let p = path.trim_end_matches('/');
    let openai = p.strip_prefix("/openai/v1").or_else(|| p.strip_prefix("/v1"));
    if let Some(rest) = openai {
        return match (method, rest) {
            (&Method::GET, "/models") => Some((Style::OpenAi, Endpoint::Catalog)),
            (&Method::POST, "/chat/completions") => Some((Style::OpenAi, Endpoint::Chat)),
            (&Method::POST, "/embeddings") => Some((Style::OpenAi, Endpoint::Embeddings)),
            (&Method::GET, rest) => {
                let id = rest.strip_prefix("/models/").filter(|id| !id.is_empty())?;
                Some((Style::OpenAi, Endpoint::Model(id.to_string())))
            }
            _ => None,
        };
    }
    if method == Method::GET && p == "/catalog/models" {
        return Some((Style::Github, Endpoint::Catalog));
    }
    let inference = p.strip_prefix("/inference").or_else(|| {
        let rest = p.strip_prefix("/orgs/")?;
        let (org, rest) = rest.split_once('/')?;
        (!org.is_empty()).then_some(())?;
        rest.strip_prefix("inference")
    })?;
    match (method, inference) {
        (&Method::POST, "/chat/completions") => Some((Style::Github, Endpoint::Chat)),
        (&Method::POST, "/embeddings") => Some((Style::Github, Endpoint::Embeddings)),
        _ => None,
    }
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if let Some(admin) = path.strip_prefix("/_emulator/") {
        return admin_route(&st, admin, req).await;
    }
    lock(&st.stats).received += 1;
    let resp = serve(&st, req, &path).await;
    let mut stats = lock(&st.stats);
    stats.total += 1;
    *stats.by_path.entry(path).or_default() += 1;
    *stats.by_status.entry(resp.status().as_u16()).or_default() += 1;
    resp
}

async fn admin_route(st: &State, admin: &str, req: Request<Incoming>) -> Response<Body> {
    match (req.method(), admin) {
        (&Method::GET, "stats") => full(200, serde_json::to_vec(&*lock(&st.stats)).unwrap_or_default()),
        (&Method::POST, "faults") => {
            let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            match serde_json::from_slice::<Fault>(&body) {
                Ok(f) => {
                    lock(&st.faults).push_back(f);
                    full(200, r#"{"ok":true}"#)
                }
                Err(e) => full(400, bodies::bad_request(&format!("invalid fault: {e}"))),
            }
        }
        (&Method::POST, "reset") => {
            lock(&st.faults).clear();
            *lock(&st.stats) = EmulatorStats::default();
            st.counter.clear();
            full(200, r#"{"ok":true}"#)
        }
        _ => full(
            404,
            bodies::bad_request("unknown admin path; use /_emulator/stats, /_emulator/faults or /_emulator/reset"),
        ),
    }
}

fn take_fault(st: &State, path: &str) -> Option<FaultKind> {
    let mut faults = lock(&st.faults);
    let idx = faults.iter().position(|f| f.path.as_deref().is_none_or(|p| path.contains(p)))?;
    let f = &mut faults[idx];
    let kind = f.kind.clone();
    f.times = f.times.saturating_sub(1);
    if f.times == 0 {
        faults.remove(idx);
    }
    Some(kind)
}

/// The answer to an injected status: the real body the service sent for it where one is documented
/// (`shared/fixtures/github-models/errors/`), in the envelope of the path's style.
fn status_fault(status: u16, retry_after: Option<u64>, style: Style, model: &str) -> Response<Body> {
    let name = model.rsplit('/').next().unwrap_or(model);
    match status {
        400 => full(400, bodies::UNSUPPORTED_STREAM_400),
        403 => full(403, String::new()),
        404 if style == Style::Github => full(404, bodies::unknown_model_404(model)),
        404 => full(404, bodies::model_not_found_openai(model)),
        413 => full(413, bodies::tokens_limit_413(name, 8000)),
        422 => full(422, bodies::VALIDATION_422),
        429 => {
            let wait = retry_after.unwrap_or(1);
            let mut r = full(429, bodies::rate_limited_429(15, 60, "UserByModelByMinute", wait));
            let h = r.headers_mut();
            h.insert("retry-after", HeaderValue::from(wait));
            h.insert("x-ratelimit-type", HeaderValue::from_static("UserByModelByMinute"));
            h.insert("x-ratelimit-timeremaining", HeaderValue::from(wait));
            r
        }
        401 => full(401, bodies::UNAUTHORIZED_401),
        410 => full(410, bodies::RETIRED_410),
        500 => full(500, bodies::SERVER_ERROR_500),
        s => full(s, json!({"error": {"code": format!("status_{s}"), "message": format!("injected status {s}"), "details": null}}).to_string()),
    }
}

fn too_many(r: &Refusal) -> Response<Body> {
    let wait_secs = r.wait.as_secs_f64().ceil().max(1.0) as u64;
    let window_secs = r.window.map(|w| w.as_secs_f64().round() as u64).unwrap_or(0);
    let mut resp = full(429, bodies::rate_limited_429(r.limit, window_secs, r.kind, wait_secs));
    let h = resp.headers_mut();
    h.insert("retry-after", HeaderValue::from(wait_secs));
    h.insert("retry-after-ms", HeaderValue::from(r.wait.as_millis().max(1) as u64));
    h.insert("x-ratelimit-timeremaining", HeaderValue::from(wait_secs));
    h.insert("x-ratelimit-type", HeaderValue::from_static(r.kind));
    resp
}

fn find_model<'a>(st: &'a State, style: Style, model: &str) -> Option<&'a CatalogEntry> {
    let m = model.trim().to_lowercase().replace(' ', "-");
    st.config.catalog.iter().find(|e| {
        let id = e.id.to_lowercase();
        id == m || (style == Style::OpenAi && id.rsplit('/').next() == Some(m.as_str()))
    })
}

async fn serve(st: &Arc<State>, req: Request<Incoming>, path: &str) -> Response<Body> {
    if st.config.retired {
        return full(410, bodies::RETIRED_410);
    }
    let Some((style, endpoint)) = route(req.method(), path) else {
        return full(
            404,
            json!({"error": {"code": "not_found", "message": format!("no route for {} {path}", req.method())}})
                .to_string(),
        );
    };
    if let Some(key) = &st.config.token {
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| req.headers().get("api-key").and_then(|v| v.to_str().ok()));
        if given.map(str::trim) != Some(key.as_str()) {
            return match style {
                Style::Github => full(401, bodies::UNAUTHORIZED_401),
                Style::OpenAi => full(401, bodies::INVALID_API_KEY_401),
            };
        }
    }
    if let Endpoint::Model(id) = &endpoint {
        return match find_model(st, Style::OpenAi, &percent_decoded(id)) {
            Some(e) => {
                full(200, json!({"id": e.id, "object": "model", "created": 0, "owned_by": e.publisher}).to_string())
            }
            None => full(404, bodies::model_not_found_openai(id)),
        };
    }
    // A request waits for a slot before the server works on it; the catalog needs none.
    let answering = match endpoint {
        Endpoint::Catalog | Endpoint::Model(_) => None,
        _ => Some(Answering::begin(st).await),
    };
    if st.config.latency > Duration::ZERO {
        tokio::time::sleep(st.config.latency).await;
    }
    if let Endpoint::Catalog = endpoint {
        return match style {
            Style::Github => full(200, serde_json::to_vec(&st.config.catalog).unwrap_or_default()),
            Style::OpenAi => {
                let data: Vec<Value> = st
                    .config
                    .catalog
                    .iter()
                    .map(|e| json!({"id": e.id, "object": "model", "created": 0, "owned_by": e.publisher}))
                    .collect();
                full(200, json!({"object": "list", "data": data}).to_string())
            }
        };
    }
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .or_else(|| req.headers().get("api-key"))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string())
        .unwrap_or_default();
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > "Bearer ".len());
    if style == Style::Github && st.config.require_auth && !authorized {
        return full(401, bodies::UNAUTHORIZED_401);
    }
    let fault = take_fault(st, path);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return full(400, bodies::bad_request(&format!("could not read the body: {e}"))),
    };
    let model = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    match fault {
        Some(FaultKind::Status { status, retry_after }) => return status_fault(status, retry_after, style, &model),
        Some(FaultKind::Raw { status, content_type, body }) => {
            let mut r = full(status, body);
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                r.headers_mut().insert(http::header::CONTENT_TYPE, v);
            }
            return r;
        }
        Some(FaultKind::Hang) => {
            // Pending until the connection is dropped (the client gives up, or the emulator stops).
            return std::future::pending().await;
        }
        _ => {}
    }
    let mut in_flight = None;
    let tiered = st.config.catalog_tiers.filter(|_| st.config.limits.is_none()).map(|scale| {
        let tier = find_model(st, style, &model).and_then(|e| e.rate_limit_tier.clone()).unwrap_or_default();
        EmulatorLimits::tier(&tier, scale).or_else(|| EmulatorLimits::tier("low", scale)).unwrap_or_default()
    });
    if let Some(limits) = st.config.limits.as_ref().or(tiered.as_ref()) {
        match st.counter.admit(limits, &token, &model, std::time::Instant::now()) {
            Ok(guard) => in_flight = Some(guard),
            Err(r) => return too_many(&r),
        }
    }
    let resp = match endpoint {
        Endpoint::Chat => chat(st, style, &body, fault, (in_flight, answering)).await,
        Endpoint::Embeddings => embeddings(st, style, &body),
        // Answered above, before the body was read.
        Endpoint::Catalog | Endpoint::Model(_) => full(500, bodies::SERVER_ERROR_500),
    };
    if resp.status() == StatusCode::OK {
        *lock(&st.stats).answered_by_model.entry(model).or_default() += 1;
    }
    resp
}

/// `%2F` and the other percent escapes of a path segment, decoded (a client may escape the `/` of an id).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unknown_model(style: Style, model: &str) -> Response<Body> {
    match style {
        Style::Github => full(404, bodies::unknown_model_404(model)),
        Style::OpenAi => full(404, bodies::model_not_found_openai(model)),
    }
}

async fn chat(
    st: &Arc<State>,
    style: Style,
    body: &[u8],
    fault: Option<FaultKind>,
    in_flight: (Option<InFlight>, Option<Answering>),
) -> Response<Body> {
    let req: ChatRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return full(400, bodies::bad_request(&format!("invalid chat completions request: {e}"))),
    };
    if req.messages.is_empty() {
        return full(
            400,
            json!({"error": {"message": "'messages' must contain at least one message", "type": "invalid_request_error",
                "param": "messages", "code": "empty_array"}})
            .to_string(),
        );
    }
    let is_custom = req.model.to_lowercase().starts_with("custom/");
    let entry = find_model(st, style, &req.model);
    if entry.is_none() && !is_custom {
        return unknown_model(style, &req.model);
    }
    let prompt_tokens = gm_core::chat_input_tokens(&req, gm_core::estimate_tokens);
    if prompt_tokens > st.config.max_input_tokens {
        let name = req.model.rsplit('/').next().unwrap_or(&req.model).to_string();
        return full(413, bodies::tokens_limit_413(&name, st.config.max_input_tokens));
    }
    if req.is_stream() && entry.is_some_and(|e| e.supports_streaming() == Some(false)) {
        return full(400, json!({"error": {"message": "Unsupported value: 'stream' does not support true with this model. Supported values are: false.",
            "type": "invalid_request_error", "param": "stream", "code": "unsupported_value"}}).to_string());
    }
    let mut text =
        req.messages.iter().rev().find(|m| m.role == gm_core::Role::User).map(|m| m.text()).unwrap_or_default();
    // The answer ends before the first stop sequence it holds, as a model's does.
    let stops: Vec<String> = match &req.stop {
        Some(gm_core::StopSequences::One(s)) => vec![s.clone()],
        Some(gm_core::StopSequences::Many(v)) => v.clone(),
        None => Vec::new(),
    };
    if let Some(at) = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min() {
        text.truncate(at);
    }
    let mut completion_tokens = gm_core::estimate_tokens(&text);
    let mut finish = "stop";
    if let Some(max) = req.max_tokens.or(req.max_completion_tokens) {
        if completion_tokens > u64::from(max) {
            text = gm_core::truncate_to_tokens(&text, u64::from(max)).to_string();
            completion_tokens = gm_core::estimate_tokens(&text);
            finish = "length";
        }
    }
    // `n` choices, each the same answer (the emulator is deterministic), each counted in the usage.
    let n = req.n.unwrap_or(1).clamp(1, 128);
    let completion_tokens = completion_tokens * u64::from(n);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    let id = format!("chatcmpl-emu{:08x}", text.len() as u64 * 2654435761 % 0xffff_ffff);
    if let Some(FaultKind::Huge { bytes }) = fault {
        return huge(&req, bytes);
    }
    if !req.is_stream() {
        let choices: Vec<Value> = (0..n)
            .map(|i| json!({"index": i, "message": {"role": "assistant", "content": text, "refusal": null}, "finish_reason": finish, "logprobs": null}))
            .collect();
        let mut answer = json!({
            "id": id, "object": "chat.completion", "created": 1733556142u64, "model": req.model,
            "system_fingerprint": "gm-emulator",
            "choices": choices,
            "usage": usage,
        });
        if st.config.timings {
            let ms = st.config.latency.as_secs_f64() * 1000.0;
            answer["timings"] = json!({"prompt_n": prompt_tokens, "prompt_ms": 0.0, "predicted_n": completion_tokens, "predicted_ms": ms});
        }
        let body = answer.to_string();
        if let Some(FaultKind::CutBody { after_bytes }) = fault {
            return cut(Bytes::from(body), after_bytes, "application/json");
        }
        return full(200, body);
    }
    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let model = req.model.clone();
    let mut events: Vec<String> = Vec::new();
    // Azure-style streams open with a content-filter chunk that has no choices.
    events.push(json!({"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}).to_string());
    let chunk = |index: u32, delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1733556142u64, "model": model, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}).to_string()
    };
    for index in 0..n {
        events.push(chunk(index, json!({"role": "assistant", "content": ""}), Value::Null));
        let mut piece = String::new();
        for ch in text.chars() {
            piece.push(ch);
            if ch == ' ' {
                events.push(chunk(index, json!({"content": piece}), Value::Null));
                piece.clear();
            }
        }
        if !piece.is_empty() {
            events.push(chunk(index, json!({"content": piece}), Value::Null));
        }
        events.push(chunk(index, json!({}), json!(finish)));
    }
    if include_usage {
        events.push(json!({"id": id, "object": "chat.completion.chunk", "created": 1733556142u64, "model": model, "choices": [], "usage": usage}).to_string());
    }
    if let Some(FaultKind::CutBody { after_bytes }) = fault {
        let all: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        return cut(Bytes::from(all + "data: [DONE]\n\n"), after_bytes, "text/event-stream");
    }
    let mut frames: Vec<Result<Bytes, std::io::Error>> =
        events.into_iter().map(|e| Ok(Bytes::from(format!("data: {e}\n\n")))).collect();
    match fault {
        Some(FaultKind::DropStream { after_chunks }) => {
            frames.truncate(after_chunks);
            frames.push(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected: connection dropped")));
        }
        Some(FaultKind::NoDone) => {}
        _ => frames.push(Ok(Bytes::from_static(b"data: [DONE]\n\n"))),
    }
    let gap = st.config.latency / 10;
    let stream = futures_util::stream::iter(frames).then(move |f| {
        // The request stays in flight until its stream has been sent.
        let _held = &in_flight;
        async move {
            if f.is_err() {
                // Let what was sent reach the client first, so the drop happens mid-stream and not before the head.
                tokio::time::sleep(Duration::from_millis(20)).await;
            } else if gap > Duration::ZERO {
                tokio::time::sleep(gap).await;
            }
            f.map(Frame::data)
        }
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The first `after` bytes of `body` (with a `content-length` for the whole of it), then a dropped connection.
fn cut(body: Bytes, after: usize, content_type: &'static str) -> Response<Body> {
    let total = body.len();
    let head = body.slice(..after.min(total));
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(head)),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected: connection dropped mid-body")),
    ];
    let stream = futures_util::stream::iter(frames).then(|f| async move {
        if f.is_err() {
            // Let what was sent reach the client first.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        f
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(total));
    r
}

/// About `bytes` bytes of content: 4 KiB deltas of a stream, or one message of that size, made as sent.
fn huge(req: &ChatRequest, bytes: usize) -> Response<Body> {
    const PIECE: usize = 4096;
    let piece = "y".repeat(PIECE);
    let n = bytes.div_ceil(PIECE);
    let model = req.model.clone();
    if req.is_stream() {
        let chunk = json!({"id": "chatcmpl-huge", "object": "chat.completion.chunk", "created": 1733556142u64, "model": model,
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
        let frame = Bytes::from(format!("data: {chunk}\n\n"));
        let frames = std::iter::repeat_n(frame, n)
            .chain(std::iter::once(Bytes::from_static(b"data: [DONE]\n\n")))
            .map(|b| Ok::<_, std::io::Error>(Frame::data(b)));
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames))));
        r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        return r;
    }
    let head = format!(
        r#"{{"id":"chatcmpl-huge","object":"chat.completion","created":1733556142,"model":{},"choices":[{{"index":0,"finish_reason":"stop","message":{{"role":"assistant","content":""#,
        Value::String(model)
    );
    let frames = std::iter::once(Bytes::from(head))
        .chain(std::iter::repeat_n(Bytes::from(piece), n))
        .chain(std::iter::once(Bytes::from_static(b"\"}}]}")))
        .map(|b| Ok::<_, std::io::Error>(Frame::data(b)));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(frames))));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn embeddings(st: &State, style: Style, body: &[u8]) -> Response<Body> {
    let req: EmbeddingRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return full(400, bodies::bad_request(&format!("invalid embeddings request: {e}"))),
    };
    if find_model(st, style, &req.model).is_none() {
        return unknown_model(style, &req.model);
    }
    let dims = req.dimensions.unwrap_or(16).clamp(1, 3072) as usize;
    let mut total = 0;
    let data: Vec<Value> = req
        .input
        .as_vec()
        .iter()
        .enumerate()
        .map(|(i, text)| {
            total += gm_core::estimate_tokens(text);
            let mut v = vec![0f32; dims];
            for (j, b) in text.bytes().enumerate() {
                v[(j * 31 + usize::from(b)) % dims] += 1.0;
            }
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            json!({"object": "embedding", "index": i, "embedding": v.iter().map(|x| x / n).collect::<Vec<f32>>()})
        })
        .collect();
    full(200, json!({"object": "list", "data": data, "model": req.model, "usage": {"prompt_tokens": total, "total_tokens": total}}).to_string())
}
