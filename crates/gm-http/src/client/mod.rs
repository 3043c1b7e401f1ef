//! The client: one API for every provider.
//!
//! Each part of what the client does has its own file:
//! - `builder`: [`ClientBuilder`], the settings, checked once by `build`;
//! - `routes`: each provider's base URL, paths, headers and credential header, and model ids on the wire;
//! - `attempt`: the limiter's permit, the retry loop, and what each answer teaches the limiter;
//! - `stream`: [`Client::chat_stream`] and [`ChatStream`], with cached answers replayed as a stream.
//!
//! This file holds the client itself and its whole-answer calls: the catalog, chat and embeddings.

mod attempt;
mod builder;
mod replay;
mod routes;
mod stream;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gm_core::Clock;

use bytes::Bytes;
use gm_core::{
    CatalogEntry, ChatCompletion, ChatRequest, EmbeddingRequest, EmbeddingResponse, OpenAiModelList, ProviderKind,
    Usage,
};
use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use self::attempt::Meta;
use self::routes::{parse_uri, Route};
use crate::auth::Credential;
use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::transport::Transport;

pub use self::builder::{CachePolicy, ClientBuilder, DEFAULT_MAX_RESPONSE_BYTES};
pub use self::replay::RecordMode;
pub use self::routes::default_base_url;
pub use self::stream::{ChatStream, StreamEvent};

/// Counters over the client's lifetime, shared by its clones.
#[derive(Debug, Default)]
pub struct ClientStats {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
}

/// Counters over a client's lifetime, shared by its clones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStatsSnapshot {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Retries made.
    pub retries: u64,
    /// 429 answers received.
    pub rate_limited: u64,
}

struct Inner {
    provider: ProviderKind,
    base: String,
    org: Option<String>,
    credential: Option<Credential>,
    transport: Arc<dyn Transport>,
    retry: RetryPolicy,
    max_response_bytes: usize,
    timeout: Duration,
    api_version: Option<String>,
    user_agent: String,
    /// A hash of the credential, which keys the limiter (never the credential itself).
    credential_fingerprint: String,
    limiter: Option<(Arc<gm_limits::Limiter>, Duration)>,
    /// The limiter's handle on each model's key, by the model as requests name it (see `key_handle`).
    handles: std::sync::RwLock<std::collections::HashMap<String, gm_limits::KeyHandle>>,
    cache: Option<Arc<gm_cache::Cache>>,
    cache_policy: CachePolicy,
    /// The recorded answers file, if answers are recorded or replayed.
    recorder: Option<replay::Recorder>,
    /// Model aliases: a name → the model sent in its place.
    aliases: std::collections::BTreeMap<String, String>,
    /// The headers of a request without a body, built once.
    headers: HeaderMap,
    /// The same with `content-type: application/json`.
    json_headers: HeaderMap,
    /// The chat completions URL, built once.
    chat_url: http::Uri,
    stats: ClientStats,
    catalog: Mutex<Option<(Instant, Arc<Vec<CatalogEntry>>)>>,
    /// Where the client's time comes from (see [`ClientBuilder::clock`]).
    clock: Arc<dyn Clock>,
    /// The cap on requests in flight to the server (see [`ClientBuilder::server_concurrency`]).
    server_slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// A client for one provider. Cheap to clone; clones share connections and statistics.
///
/// ```
/// # tokio_test_block_on(async {
/// use gm_http::Client;
/// use gm_core::{ChatMessage, ChatRequest, ProviderKind};
///
/// let client = Client::builder().provider(ProviderKind::Demo).build()?;
/// let answer = client.chat(&ChatRequest::new("openai/gpt-4.1-mini", vec![ChatMessage::user("What is 6 * 7?")])).await?;
/// assert!(answer.completion.text().contains("42"));
/// # Ok::<(), gm_http::Error>(())
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("provider", &self.inner.provider)
            .field("base_url", &self.inner.base)
            .field("org", &self.inner.org)
            .field("credential", &self.inner.credential)
            .finish()
    }
}

/// A whole chat answer with what it took to get it.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    /// The answer.
    pub completion: ChatCompletion,
    /// From sending the first attempt to the last byte of the answer, on the client's clock
    /// ([`ClientBuilder::clock`]), without [`ChatResponse::queued`]: what the server took, its own queue
    /// included (see [`ChatResponse::service`]).
    pub latency: Duration,
    /// The time the request waited in the client before it was sent: for the rate limiter's quota and
    /// concurrency, and for the server's cap ([`ClientBuilder::server_concurrency`]).
    pub queued: Duration,
    /// What the server says it spent on the answer, apart from any wait in its own queue, when it says so
    /// (llama.cpp's `timings`: prompt plus generation time).
    pub service: Option<Duration>,
    /// Whether [`ChatResponse::usage`] is an estimate: the server sent no usage (as some servers do for
    /// streams), so the tokens were counted with the tokenizer ([`gm_limits::count_tokens`]).
    pub usage_estimated: bool,
    /// Attempts made (1 when the first succeeded).
    pub attempts: u32,
    /// 429 answers received on the way.
    pub rate_limited: u32,
    /// Whether the answer came from the cache (no request was sent).
    pub cached: bool,
    /// The body as the server sent it (or the cache kept it); `None` for a stream gathered into one answer and
    /// for a recorded answer.
    body: Option<Bytes>,
}

impl ChatResponse {
    /// An answer to `req` that took `total` from the call to its last byte, with its body as sent, if kept.
    fn new(
        mut completion: ChatCompletion,
        total: Duration,
        meta: Meta,
        cached: bool,
        req: &ChatRequest,
        body: Option<Bytes>,
    ) -> Self {
        let usage_estimated = completion.usage.is_none();
        if usage_estimated {
            completion.usage = Some(estimate_usage(req, &completion));
        }
        if let Some(p) = meta.permit {
            if let Some(u) = &completion.usage {
                p.settle_usage(u);
            }
        }
        let service = server_timing(&completion);
        Self {
            latency: total.saturating_sub(meta.queued),
            queued: meta.queued,
            service,
            usage_estimated,
            completion,
            attempts: meta.attempts,
            rate_limited: meta.rate_limited,
            cached,
            body,
        }
    }

    /// The answer's body as the server sent it, or as the cache kept it, for a program that passes the answer
    /// on (a gateway) and must not change a field; `None` for a streamed answer gathered by
    /// [`ChatStream::collect`] and for a recorded answer (see [`ClientBuilder::recording`]).
    pub fn body(&self) -> Option<&Bytes> {
        self.body.as_ref()
    }

    /// The answer's text.
    pub fn text(&self) -> &str {
        self.completion.text()
    }

    /// The answer's usage: the server's, or estimated when it sent none ([`ChatResponse::usage_estimated`]).
    pub fn usage(&self) -> Usage {
        self.completion.usage.clone().unwrap_or_default()
    }
}

/// The usage of an answer whose server sent none, counted with the tokenizer: the request's input (with the
/// chat overhead) and the text of every choice.
fn estimate_usage(req: &ChatRequest, completion: &ChatCompletion) -> Usage {
    let prompt_tokens = gm_limits::count_tokens(req).input;
    let completion_tokens = completion
        .choices
        .iter()
        .filter_map(|c| c.message.as_ref().and_then(|m| m.content.as_deref()))
        .map(|text| gm_limits::count_text_tokens(&req.model, text))
        .sum();
    Usage { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens, ..Usage::default() }
}

/// The time the server says it spent on an answer: llama.cpp's `timings` (`prompt_ms` + `predicted_ms`).
fn server_timing(completion: &ChatCompletion) -> Option<Duration> {
    let t = completion.extra.get("timings")?;
    let ms = t.get("prompt_ms")?.as_f64()? + t.get("predicted_ms")?.as_f64()?;
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// The provider.
    pub fn provider(&self) -> ProviderKind {
        self.inner.provider
    }

    /// The base URL in use.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The limiter in use, if any.
    pub fn limiter(&self) -> Option<&Arc<gm_limits::Limiter>> {
        self.inner.limiter.as_ref().map(|(l, _)| l)
    }

    /// The cache in use, if any.
    pub fn cache(&self) -> Option<&Arc<gm_cache::Cache>> {
        self.inner.cache.as_ref()
    }

    /// The credential in use, if any (its `Debug` is redacted).
    pub fn credential(&self) -> Option<&Credential> {
        self.inner.credential.as_ref()
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> ClientStatsSnapshot {
        let s = &self.inner.stats;
        ClientStatsSnapshot {
            requests: s.requests.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            rate_limited: s.rate_limited.load(Ordering::Relaxed),
        }
    }

    /// The clock the client reads its time from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Reads a success answer (see [`decode`]).
    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, Error> {
        decode(self.inner.provider, self.inner.credential.as_ref(), body)
    }

    /// `text` from a server with every credential taken out (see [`crate::auth::scrub_secrets`]).
    pub(crate) fn scrub(&self, text: &str) -> String {
        crate::auth::scrub_secrets(text, self.inner.credential.as_ref())
    }

    /// The time on the client's clock since `started`.
    fn since(&self, started: Instant) -> Duration {
        self.inner.clock.now().saturating_duration_since(started)
    }

    /// Lists the provider's models: GitHub's catalog, or an OpenAI-style `/models` list. Kept for 10 minutes.
    pub async fn models(&self) -> Result<Arc<Vec<CatalogEntry>>, Error> {
        if let Some((at, list)) = self.inner.catalog.lock().map_err(|_| poisoned())?.as_ref() {
            if self.inner.clock.now().saturating_duration_since(*at) < Duration::from_secs(600) {
                return Ok(list.clone());
            }
        }
        let url = parse_uri(&self.url(Route::Catalog))?;
        let (resp, _) = self.attempts(Method::GET, url.clone(), Bytes::new(), None).await?;
        let body = self.collect(resp, &url).await?;
        let list: Vec<CatalogEntry> = if matches!(self.inner.provider, ProviderKind::Github | ProviderKind::Demo) {
            self.decode(&body)?
        } else {
            let l: OpenAiModelList = self.decode(&body)?;
            l.data.into_iter().map(CatalogEntry::from).collect()
        };
        let list = Arc::new(list);
        *self.inner.catalog.lock().map_err(|_| poisoned())? = Some((self.inner.clock.now(), list.clone()));
        Ok(list)
    }

    /// Sends a chat request and waits for the whole answer (`stream` is turned off for this call).
    ///
    /// With a cache configured, an identical earlier answer is returned without a request, and identical
    /// requests in flight at once reach the provider once.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, Error> {
        self.chat_sample(request, 0).await
    }

    /// [`Client::chat`] for the `sample`-th of several samples of the same request: each sample index is
    /// cached apart, so repeated sampling gets distinct answers.
    pub async fn chat_sample(&self, request: &ChatRequest, sample: u32) -> Result<ChatResponse, Error> {
        check_numbers(request)?;
        let model = self.wire_model(&request.model)?;
        // The request is copied only when what goes on the wire differs from it.
        let owned;
        let req = if model != request.model || request.stream.is_some() || request.stream_options.is_some() {
            let mut r = request.clone();
            r.model = model;
            r.stream = None;
            r.stream_options = None;
            owned = r;
            &owned
        } else {
            request
        };
        let started = self.inner.clock.now();
        let Some(rec) = &self.inner.recorder else { return self.chat_answer(req, sample, started).await };
        let key = self.cache_key(req, sample);
        if let Some(entry) = self.replayed(&key, req, sample)? {
            let mut answer = ChatResponse::from_recorded(self.inner.provider, &entry)?;
            // Recorded as the server sent it, without usage: estimated again, and marked so.
            if answer.usage_estimated {
                answer.completion.usage = Some(estimate_usage(req, &answer.completion));
            }
            return Ok(answer);
        }
        let mut answer = self.chat_answer(req, sample, started).await?;
        answer.latency = replay::to_micros(answer.latency);
        let took = replay::Took {
            latency: answer.latency,
            time_to_first_token: None,
            attempts: answer.attempts,
            rate_limited: answer.rate_limited,
            cached: answer.cached,
            streamed: false,
        };
        // The file keeps the usage the server sent: an estimate is left out, so the replay marks it estimated.
        let as_sent;
        let completion = if answer.usage_estimated {
            as_sent = ChatCompletion { usage: None, ..answer.completion.clone() };
            &as_sent
        } else {
            &answer.completion
        };
        rec.record(key, self.summary(req, sample), completion, took);
        Ok(answer)
    }

    /// The answer to a chat request with the model and delivery fields already set for the wire: from the
    /// cache, or over the network.
    async fn chat_answer(&self, req: &ChatRequest, sample: u32, started: Instant) -> Result<ChatResponse, Error> {
        let Some(cache) = &self.inner.cache else {
            let (bytes, meta) = self.fetch_chat(req).await?;
            let completion: ChatCompletion = self.decode(&bytes)?;
            return Ok(ChatResponse::new(completion, self.since(started), meta, false, req, Some(bytes)));
        };
        let key = self.cache_key(req, sample);
        if self.inner.cache_policy.refresh {
            let (bytes, meta) = self.fetch_chat(req).await?;
            let completion: ChatCompletion = self.decode(&bytes)?;
            if let Err(e) = cache.set(key, bytes.clone(), self.inner.cache_policy.ttl, started) {
                tracing::warn!(error = %e, "could not store the answer in the cache");
            }
            return Ok(ChatResponse::new(completion, self.since(started), meta, false, req, Some(bytes)));
        }
        let meta = Mutex::new(None);
        let fetched = cache
            .get_or_fetch(key, self.inner.cache_policy.ttl, started, async {
                let (bytes, m) = self.fetch_chat(req).await?;
                // Only a readable answer is cached.
                self.decode::<ChatCompletion>(&bytes)?;
                *meta.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                Ok::<_, Error>(bytes)
            })
            .await
            .map_err(Error::from_shared)?;
        let completion: ChatCompletion = self.decode(&fetched.value)?;
        let cached = fetched.origin.is_cached();
        let meta = meta.into_inner().unwrap_or_else(|p| p.into_inner()).unwrap_or_default();
        Ok(ChatResponse::new(completion, self.since(started), meta, cached, req, Some(fetched.value)))
    }

    fn cache_key(&self, req: &ChatRequest, sample: u32) -> gm_cache::RequestKey {
        gm_cache::RequestKey::for_chat(self.inner.provider.as_str(), &self.inner.base, req, sample)
    }

    /// One whole chat exchange over the network, within the overall deadline: the answer's bytes.
    async fn fetch_chat(&self, req: &ChatRequest) -> Result<(Bytes, Meta), Error> {
        let body =
            serde_json::to_vec(req).map_err(|e| Error::InvalidRequest(format!("could not encode the request: {e}")))?;
        let url = &self.inner.chat_url;
        let deadline = self.inner.timeout;
        let work = async {
            let (resp, meta) = self.execute(Method::POST, url.clone(), body.into(), Some(req)).await?;
            let bytes = self.collect(resp, url).await?;
            Ok::<_, Error>((bytes, meta))
        };
        tokio::time::timeout(deadline, work).await.map_err(|_| Error::Timeout {
            url: url.to_string(),
            message: format!("no whole answer within {deadline:?}"),
        })?
    }

    /// Sends an embeddings request.
    pub async fn embeddings(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, Error> {
        let mut req = request.clone();
        req.model = self.wire_model(&req.model)?;
        if req.input.as_vec().is_empty() {
            return Err(Error::InvalidRequest("the embeddings input is empty; give at least one string".into()));
        }
        let body = serde_json::to_vec(&req)
            .map_err(|e| Error::InvalidRequest(format!("could not encode the request: {e}")))?;
        let url = parse_uri(&self.url(Route::Embeddings))?;
        // The limiter counts an embeddings request like a chat request carrying the same text.
        let counted =
            ChatRequest::new(req.model.clone(), vec![gm_core::ChatMessage::user(req.input.as_vec().join("\n"))]);
        let (resp, _) = self.execute(Method::POST, url.clone(), body.into(), Some(&counted)).await?;
        let bytes = self.collect(resp, &url).await?;
        self.decode(&bytes)
    }
}

/// Refuses a request whose sampling numbers JSON cannot carry: `NaN` or an infinity (`1e309` reads as one)
/// would go out as `null` and the server would use its default in silence.
pub(crate) fn check_numbers(req: &ChatRequest) -> Result<(), Error> {
    let numbers = [
        ("temperature", req.temperature),
        ("top_p", req.top_p),
        ("presence_penalty", req.presence_penalty),
        ("frequency_penalty", req.frequency_penalty),
    ];
    match numbers.into_iter().find(|(_, v)| v.is_some_and(|v| !v.is_finite())) {
        Some((name, Some(v))) => Err(Error::InvalidRequest(format!(
            "{name} is {v}, which is not a finite number; give a value such as 0.7 (temperature lies in 0 to 2)"
        ))),
        _ => Ok(()),
    }
}

fn poisoned() -> Error {
    Error::InvalidRequest("an internal lock was poisoned by an earlier panic".into())
}

/// Reads a success answer. A body that is an error envelope (`{"error": {"message": "model overloaded"}}`, sent
/// by some servers with a 200) is an error, never an empty answer: every field of a completion is optional,
/// so it would otherwise read as one, and be cached.
fn decode<T: DeserializeOwned>(provider: ProviderKind, known: Option<&Credential>, body: &[u8]) -> Result<T, Error> {
    if let Some(err) = error_in_answer(body) {
        let message = crate::auth::scrub_secrets(&err.message, known);
        return Err(Error::ErrorAnswer { provider, status: 200, message });
    }
    serde_json::from_slice(body).map_err(|e| {
        let start = crate::auth::scrub_secrets(&String::from_utf8_lossy(&body[..body.len().min(200)]), known);
        Error::Decode { provider, message: format!("{e}; the answer began: {start:?}") }
    })
}

/// The error a success answer carries instead of its content, if it is an error envelope: a JSON object with
/// a non-null top-level `error`.
pub(crate) fn error_in_answer(body: &[u8]) -> Option<gm_core::ErrorBody> {
    // An answer's text holds `"error"` only escaped (`\"error\"`), so most answers are told apart unparsed.
    if !body.windows(7).any(|w| w == b"\"error\"") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("error").filter(|e| !e.is_null())?;
    gm_core::ErrorBody::from_value(&value)
        .or_else(|| Some(gm_core::ErrorBody { message: value["error"].to_string(), ..Default::default() }))
}
