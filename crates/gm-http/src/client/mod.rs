//! The client: one API for every provider.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use gm_core::{
    CatalogEntry, ChatCompletion, ChatCompletionChunk, ChatRequest, Choice, EmbeddingRequest, EmbeddingResponse,
    ErrorBody, ModelId, OpenAiModelList, ProviderKind, ResponseMessage, StreamOptions, Usage,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::de::DeserializeOwned;

use crate::auth::{credential_hint, Credential};
use crate::error::{ApiError, Error, GITHUB_MODELS_RETIRED_ON};
use crate::retry::{server_wait, RetryPolicy};
use crate::sse::{SseEvent, SseParser};
use crate::transport::{BodyStream, HttpRequest, HttpResponse, Transport, TransportError, TransportErrorKind};

/// The default base URL of each provider (`None` where the user must give one).
pub fn default_base_url(provider: ProviderKind) -> Option<&'static str> {
    match provider {
        ProviderKind::Github => Some("https://models.github.ai"),
        ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
        ProviderKind::Demo => Some(crate::demo::DEMO_BASE_URL),
        ProviderKind::Azure | ProviderKind::OpenAiCompatible => None,
    }
}

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

/// Builds a [`Client`].
///
/// ```
/// use gm_http::Client;
/// use gm_core::ProviderKind;
/// let client = Client::builder().provider(ProviderKind::Demo).build().unwrap();
/// assert_eq!(client.provider(), ProviderKind::Demo);
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    provider: ProviderKind,
    base_url: Option<String>,
    org: Option<String>,
    credential: Option<Credential>,
    transport: Option<Arc<dyn Transport>>,
    retry: RetryPolicy,
    max_response_bytes: usize,
    timeout: Duration,
    api_version: Option<String>,
    user_agent: String,
    limiter: Option<(Arc<gm_limits::Limiter>, Duration)>,
    cache: Option<Arc<gm_cache::Cache>>,
    cache_policy: CachePolicy,
}

/// How the client uses its cache.
#[derive(Debug, Clone, Default)]
pub struct CachePolicy {
    /// How long a stored answer stays fresh (`None`: the cache's default).
    pub ttl: Option<Duration>,
    /// Send every request and overwrite what is stored, reading nothing from the cache.
    pub refresh: bool,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientBuilder {
    /// A builder for the demo provider with default settings.
    pub fn new() -> Self {
        Self {
            provider: ProviderKind::Demo,
            base_url: None,
            org: None,
            credential: None,
            transport: None,
            retry: RetryPolicy::default(),
            max_response_bytes: 32 << 20,
            timeout: Duration::from_secs(300),
            api_version: None,
            user_agent: concat!("gm/", env!("CARGO_PKG_VERSION")).to_string(),
            limiter: None,
            cache: None,
            cache_policy: CachePolicy::default(),
        }
    }

    /// The provider.
    pub fn provider(mut self, p: ProviderKind) -> Self {
        self.provider = p;
        self
    }

    /// Replaces the provider's base URL: for `github` the host root, for OpenAI-style providers the URL up to
    /// and including `/v1`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Attributes GitHub Models requests to an organization (`/orgs/{org}/inference/...`).
    pub fn org(mut self, org: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self
    }

    /// The credential to send.
    pub fn credential(mut self, c: Credential) -> Self {
        self.credential = Some(c);
        self
    }

    /// The transport (default: [`crate::HyperTransport`] for network providers, [`crate::DemoTransport`] for demo).
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = Some(t);
        self
    }

    /// The retry policy.
    pub fn retry_policy(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }

    /// The cap on one response body (default 32 MiB).
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.max_response_bytes = n;
        self
    }

    /// The deadline for one whole, non-streamed exchange (default 300 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Adds `?api-version=` to inference requests ("optional, but required for some features").
    pub fn api_version(mut self, v: impl Into<String>) -> Self {
        self.api_version = Some(v.into());
        self
    }

    /// Passes every chat request through `limiter` first, waiting at most `max_wait` for quota (a longer
    /// wait fails at once and says when the quota frees). Answers teach the limiter (429s, remaining counts).
    pub fn limiter(mut self, limiter: Arc<gm_limits::Limiter>, max_wait: Duration) -> Self {
        self.limiter = Some((limiter, max_wait));
        self
    }

    /// Answers identical chat requests from this cache (see [`Client::chat`]).
    pub fn cache(mut self, cache: Arc<gm_cache::Cache>, policy: CachePolicy) -> Self {
        self.cache = Some(cache);
        self.cache_policy = policy;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        let base = match (&self.base_url, default_base_url(self.provider)) {
            (Some(b), _) => b.trim().trim_end_matches('/').to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                let example = match self.provider {
                    ProviderKind::Azure => "https://NAME.openai.azure.com/openai/v1 (or set AZURE_OPENAI_ENDPOINT)",
                    _ => "http://localhost:11434/v1 for Ollama",
                };
                return Err(Error::InvalidRequest(format!(
                    "the {} provider needs a base URL; pass --base-url, e.g. {example}",
                    self.provider
                )));
            }
        };
        if self.provider != ProviderKind::Demo && !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::InvalidRequest(format!("the base URL `{base}` must start with http:// or https://")));
        }
        if matches!(self.provider, ProviderKind::Github | ProviderKind::OpenAi | ProviderKind::Azure)
            && self.credential.is_none()
        {
            return Err(Error::MissingCredentials {
                provider: self.provider,
                hint: credential_hint(self.provider).to_string(),
            });
        }
        let transport: Arc<dyn Transport> = match (self.transport, self.provider) {
            (Some(t), _) => t,
            (None, ProviderKind::Demo) => Arc::new(crate::demo::DemoTransport::new()),
            #[cfg(feature = "hyper")]
            (None, _) => Arc::new(crate::hyper_transport::HyperTransport::new(Default::default())?),
            #[cfg(not(feature = "hyper"))]
            (None, p) => {
                return Err(Error::InvalidRequest(format!(
                    "the {p} provider needs a transport; enable gm-http's `hyper` feature or pass one"
                )))
            }
        };
        let mut client = Client {
            inner: Arc::new(Inner {
                provider: self.provider,
                base,
                org: self.org,
                credential_fingerprint: self
                    .credential
                    .as_ref()
                    .map(|c| gm_limits::fingerprint(c.expose()))
                    .unwrap_or_else(|| "-".into()),
                credential: self.credential,
                transport,
                retry: self.retry,
                max_response_bytes: self.max_response_bytes,
                timeout: self.timeout,
                api_version: self.api_version,
                user_agent: self.user_agent,

                limiter: self.limiter,
                tiered_keys: Mutex::new(Default::default()),
                cache: self.cache,
                cache_policy: self.cache_policy,
                headers: HeaderMap::new(),
                json_headers: HeaderMap::new(),
                chat_url: http::Uri::default(),
                stats: ClientStats::default(),
                catalog: Mutex::new(None),
            }),
        };
        let headers = client.build_headers()?;
        let chat_url = parse_uri(&client.url(Route::Chat))?;
        let mut json_headers = headers.clone();
        json_headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(inner) = Arc::get_mut(&mut client.inner) {
            inner.headers = headers;
            inner.json_headers = json_headers;
            inner.chat_url = chat_url;
        }
        Ok(client)
    }
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
    /// GitHub models whose tier limits have been given to the limiter.
    tiered_keys: Mutex<std::collections::HashSet<String>>,
    cache: Option<Arc<gm_cache::Cache>>,
    cache_policy: CachePolicy,
    /// The headers of a request without a body, built once.
    headers: HeaderMap,
    /// The same with `content-type: application/json`.
    json_headers: HeaderMap,
    /// The chat completions URL, built once.
    chat_url: http::Uri,
    stats: ClientStats,
    catalog: Mutex<Option<(Instant, Arc<Vec<CatalogEntry>>)>>,
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
    /// From sending the first attempt to the last byte of the answer.
    pub latency: Duration,
    /// Attempts made (1 when the first succeeded).
    pub attempts: u32,
    /// 429 answers received on the way.
    pub rate_limited: u32,
    /// Whether the answer came from the cache (no request was sent).
    pub cached: bool,
}

impl ChatResponse {
    fn new(completion: ChatCompletion, started: Instant, meta: Meta, cached: bool) -> Self {
        if let Some(p) = meta.permit {
            match &completion.usage {
                Some(u) => p.settle_usage(u),
                None => drop(p),
            }
        }
        Self {
            completion,
            latency: started.elapsed(),
            attempts: meta.attempts,
            rate_limited: meta.rate_limited,
            cached,
        }
    }

    /// The answer's text.
    pub fn text(&self) -> &str {
        self.completion.text()
    }

    /// The answer's usage, zero when the server sent none.
    pub fn usage(&self) -> Usage {
        self.completion.usage.clone().unwrap_or_default()
    }
}

enum Route {
    Catalog,
    Chat,
    Embeddings,
}

const GITHUB_API_VERSION: &str = "2022-11-28";

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

    /// The key under which the limiter counts requests to `model`.
    pub fn limit_key(&self, model: &str) -> gm_limits::LimitKey {
        let model = self.wire_model(model).unwrap_or_else(|_| model.to_string());
        gm_limits::LimitKey::new(
            self.inner.provider.as_str(),
            self.inner.credential_fingerprint.clone(),
            model.to_lowercase(),
        )
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

    fn url(&self, route: Route) -> String {
        let base = &self.inner.base;
        let mut url = match (self.inner.provider, route) {
            (ProviderKind::Github | ProviderKind::Demo, Route::Catalog) => return format!("{base}/catalog/models"),
            (ProviderKind::Github, r) => {
                let leaf = if matches!(r, Route::Chat) { "chat/completions" } else { "embeddings" };
                match &self.inner.org {
                    Some(org) => format!("{base}/orgs/{org}/inference/{leaf}"),
                    None => format!("{base}/inference/{leaf}"),
                }
            }
            (_, Route::Catalog) => return format!("{base}/models"),
            (_, Route::Chat) => format!("{base}/chat/completions"),
            (_, Route::Embeddings) => format!("{base}/embeddings"),
        };
        if let Some(v) = &self.inner.api_version {
            url.push_str("?api-version=");
            url.push_str(v);
        }
        url
    }

    fn build_headers(&self) -> Result<HeaderMap, Error> {
        let mut h = HeaderMap::new();
        let ua = HeaderValue::from_str(&self.inner.user_agent).unwrap_or(HeaderValue::from_static("gm"));
        h.insert(http::header::USER_AGENT, ua);
        match self.inner.provider {
            ProviderKind::Github => {
                h.insert(http::header::ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
                h.insert(HeaderName::from_static("x-github-api-version"), HeaderValue::from_static(GITHUB_API_VERSION));
            }
            _ => {
                h.insert(http::header::ACCEPT, HeaderValue::from_static("application/json"));
            }
        }
        if let Some(c) = &self.inner.credential {
            let invalid = || {
                Error::InvalidRequest(
                    "the credential contains characters not allowed in an HTTP header; check the token".into(),
                )
            };
            if self.inner.provider == ProviderKind::Azure {
                let mut v = HeaderValue::from_str(c.expose()).map_err(|_| invalid())?;
                v.set_sensitive(true);
                h.insert(HeaderName::from_static("api-key"), v);
            } else {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", c.expose())).map_err(|_| invalid())?;
                v.set_sensitive(true);
                h.insert(http::header::AUTHORIZATION, v);
            }
        }
        Ok(h)
    }

    fn wire_model(&self, model: &str) -> Result<String, Error> {
        // Ids already in the form the wire wants need no parse (the common case on the hot path).
        let plain = !model.is_empty()
            && model.bytes().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase())
            && model.split('/').all(|p| !p.is_empty())
            && model.split('/').count() <= 3;
        let needs_publisher = self.inner.provider == ProviderKind::Github && !model.contains('/');
        if plain && !needs_publisher {
            return Ok(model.to_string());
        }
        match self.inner.provider {
            ProviderKind::Github => ModelId::parse_github(model)
                .map(|id| id.canonical().to_string())
                .map_err(|e| Error::InvalidRequest(e.to_string())),
            _ => ModelId::parse(model)
                .map(|id| id.as_str().to_string())
                .map_err(|e| Error::InvalidRequest(e.to_string())),
        }
    }

    /// Lists the provider's models: GitHub's catalog, or an OpenAI-style `/models` list. Kept for 10 minutes.
    pub async fn models(&self) -> Result<Arc<Vec<CatalogEntry>>, Error> {
        if let Some((at, list)) = self.inner.catalog.lock().map_err(|_| poisoned())?.as_ref() {
            if at.elapsed() < Duration::from_secs(600) {
                return Ok(list.clone());
            }
        }
        let url = parse_uri(&self.url(Route::Catalog))?;
        let (resp, _) = self.attempts(Method::GET, url.clone(), Bytes::new(), None).await?;
        let body = self.collect(resp, &url).await?;
        let list: Vec<CatalogEntry> = if matches!(self.inner.provider, ProviderKind::Github | ProviderKind::Demo) {
            decode(self.inner.provider, &body)?
        } else {
            let l: OpenAiModelList = decode(self.inner.provider, &body)?;
            l.data.into_iter().map(CatalogEntry::from).collect()
        };
        let list = Arc::new(list);
        *self.inner.catalog.lock().map_err(|_| poisoned())? = Some((Instant::now(), list.clone()));
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
        let started = Instant::now();
        let Some(cache) = &self.inner.cache else {
            let (bytes, meta) = self.fetch_chat(req).await?;
            let completion: ChatCompletion = decode(self.inner.provider, &bytes)?;
            return Ok(ChatResponse::new(completion, started, meta, false));
        };
        let key = self.cache_key(req, sample);
        if self.inner.cache_policy.refresh {
            let (bytes, meta) = self.fetch_chat(req).await?;
            let completion: ChatCompletion = decode(self.inner.provider, &bytes)?;
            if let Err(e) = cache.set(key, bytes, self.inner.cache_policy.ttl, started) {
                tracing::warn!(error = %e, "could not store the answer in the cache");
            }
            return Ok(ChatResponse::new(completion, started, meta, false));
        }
        let meta = Mutex::new(None);
        let fetched = cache
            .get_or_fetch(key, self.inner.cache_policy.ttl, started, async {
                let (bytes, m) = self.fetch_chat(req).await?;
                // Only a readable answer is cached.
                decode::<ChatCompletion>(self.inner.provider, &bytes)?;
                *meta.lock().unwrap_or_else(|p| p.into_inner()) = Some(m);
                Ok::<_, Error>(bytes)
            })
            .await
            .map_err(Error::from_shared)?;
        let completion: ChatCompletion = decode(self.inner.provider, &fetched.value)?;
        let cached = fetched.origin.is_cached();
        let meta = meta.into_inner().unwrap_or_else(|p| p.into_inner()).unwrap_or_default();
        Ok(ChatResponse::new(completion, started, meta, cached))
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

    /// Sends a chat request with `stream: true` and returns the answer as it arrives.
    ///
    /// Usage is asked for with `stream_options.include_usage` unless the request sets `stream_options` itself.
    /// With a cache configured, a cached answer is replayed as a stream, and a streamed answer that ends with
    /// `[DONE]` is stored.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, Error> {
        let mut req = request.clone();
        req.model = self.wire_model(&req.model)?;
        req.stream = Some(true);
        if req.stream_options.is_none() {
            req.stream_options = Some(StreamOptions { include_usage: true });
        }
        let started = Instant::now();
        let mut sink = None;
        if let Some(cache) = &self.inner.cache {
            let key = self.cache_key(&req, 0);
            if !self.inner.cache_policy.refresh {
                let hit = cache.get(&key, started).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the cache could not be read");
                    None
                });
                if let Some(hit) = hit {
                    let completion: ChatCompletion = decode(self.inner.provider, &hit.value)?;
                    let body = replay_as_sse(&completion);
                    let mut s = ChatStream::new(self.inner.provider, body, started, Meta::default());
                    s.cached = true;
                    return Ok(s);
                }
            }
            sink = Some((cache.clone(), key, self.inner.cache_policy.ttl));
        }
        let body = serde_json::to_vec(&req)
            .map_err(|e| Error::InvalidRequest(format!("could not encode the request: {e}")))?;
        let url = self.inner.chat_url.clone();
        let (resp, meta) =
            tokio::time::timeout(self.inner.timeout, self.execute(Method::POST, url.clone(), body.into(), Some(&req)))
                .await
                .map_err(|_| Error::Timeout { url: url.to_string(), message: "no answer headers in time".into() })??;
        let mut s = ChatStream::new(self.inner.provider, resp.body, started, meta);
        s.sink = sink;
        Ok(s)
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
        decode(self.inner.provider, &bytes)
    }

    async fn collect(&self, resp: HttpResponse, url: &http::Uri) -> Result<Bytes, Error> {
        let limit = self.inner.max_response_bytes;
        resp.collect(limit).await.map_err(|e| match e.kind {
            TransportErrorKind::TooLarge => Error::TooLarge { url: url.to_string(), limit },
            _ => map_transport(e, url),
        })
    }

    /// Gives a GitHub Models key the limits of its catalog tier on the configured plan, once per key.
    async fn apply_github_tier(&self, limiter: &gm_limits::Limiter, key: &gm_limits::LimitKey) -> Result<(), Error> {
        if self.inner.tiered_keys.lock().map_err(|_| poisoned())?.contains(&key.model) {
            return Ok(());
        }
        let tier = if limiter.config().uniform {
            None
        } else {
            let models = self.models().await?;
            models.iter().find(|m| m.id.eq_ignore_ascii_case(&key.model)).and_then(|m| m.rate_limit_tier.clone())
        };
        let spec = limiter.config().spec_for_github_model(&key.provider, &key.model, tier.as_deref())?;
        limiter.set_limits(key, spec);
        self.inner.tiered_keys.lock().map_err(|_| poisoned())?.insert(key.model.clone());
        Ok(())
    }

    /// Sends with retries; returns a success response (status < 400) with its body unread.
    async fn execute(
        &self,
        method: Method,
        url: http::Uri,
        body: Bytes,
        limited: Option<&ChatRequest>,
    ) -> Result<(HttpResponse, Meta), Error> {
        // Every attempt passes the limiter; a request over a per-request cap fails here, before sending.
        let limit = match (&self.inner.limiter, limited) {
            (Some((limiter, max_wait)), Some(req)) => {
                let key = self.limit_key(&req.model);
                if self.inner.provider == ProviderKind::Github {
                    self.apply_github_tier(limiter, &key).await?;
                }
                // Counting tokens costs a tokenizer pass; only limits on tokens need it.
                let spec = limiter.limits(&key);
                let tokens = if spec.tokens_in.is_some() || spec.tokens_out.is_some() || !spec.token_windows.is_empty()
                {
                    gm_limits::count_tokens(req)
                } else {
                    gm_limits::TokenCount::ZERO
                };
                limiter.check(&key, &tokens)?;
                Some((limiter.as_ref(), *max_wait, key, tokens))
            }
            _ => None,
        };
        self.attempts(method, url, body, limit).await
    }

    /// The retry loop: each attempt takes a permit from the limiter (when given), sends, and reads the status.
    async fn attempts(
        &self,
        method: Method,
        url: http::Uri,
        body: Bytes,
        limit: Option<(&gm_limits::Limiter, Duration, gm_limits::LimitKey, gm_limits::TokenCount)>,
    ) -> Result<(HttpResponse, Meta), Error> {
        let headers = if body.is_empty() { &self.inner.headers } else { &self.inner.json_headers };
        let policy = &self.inner.retry;
        let mut meta = Meta::default();
        loop {
            meta.attempts += 1;
            if let Some((limiter, max_wait, key, tokens)) = &limit {
                // A failed attempt gave its permit back before its backoff (below), so a retry never waits
                // for the concurrency slot it holds itself.
                meta.permit = Some(limiter.acquire(key, *tokens, *max_wait).await?);
            }
            self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);
            let request =
                HttpRequest { method: method.clone(), url: url.clone(), headers: headers.clone(), body: body.clone() };
            let can_retry = meta.attempts < policy.max_attempts.max(1);
            let resp = match self.inner.transport.send(request).await {
                Ok(r) => r,
                Err(e) => {
                    let retryable = match e.kind {
                        TransportErrorKind::Connect => true,
                        TransportErrorKind::Timeout | TransportErrorKind::Io => policy.retry_maybe_sent,
                        _ => false,
                    };
                    if retryable && can_retry {
                        tracing::debug!(attempt = meta.attempts, error = %e, "retrying after a transport error");
                        self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                        // Nothing is in flight while the backoff runs: free the concurrency slot for others.
                        meta.permit = None;
                        tokio::time::sleep(policy.backoff(meta.attempts)).await;
                        continue;
                    }
                    return Err(map_transport(e, &url));
                }
            };
            if resp.status < 400 {
                if let Some((limiter, _, key, _)) = &limit {
                    observe(limiter, key, resp.status, &resp.headers, None);
                }
                return Ok((resp, meta));
            }
            let status = resp.status;
            let resp_headers = resp.headers.clone();
            let raw = resp.collect(64 << 10).await.unwrap_or_default();
            let parsed = ErrorBody::parse(&raw);
            if let Some((limiter, _, key, _)) = &limit {
                observe(limiter, key, status, &resp_headers, Some(&raw));
            }
            let wait = server_wait(&resp_headers, parsed.as_ref(), SystemTime::now());
            let mut raw_text = String::from_utf8_lossy(&raw).into_owned();
            if raw_text.len() > 4096 {
                let cut = (0..=4096).rev().find(|&i| raw_text.is_char_boundary(i)).unwrap_or(0);
                raw_text.truncate(cut);
            }
            let api = ApiError {
                provider: self.inner.provider,
                status,
                body: parsed,
                raw: raw_text,
                retry_after: wait,
                rate_limit_type: resp_headers.get("x-ratelimit-type").and_then(|v| v.to_str().ok()).map(str::to_string),
            };
            if status == 429 {
                meta.rate_limited += 1;
                self.inner.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            if status == 410
                && (self.inner.provider == ProviderKind::Github || api.code().is_some_and(|c| c.contains("retire")))
            {
                let code = api.code().map(|c| format!(" ({c})")).unwrap_or_default();
                return Err(Error::Retired { retired_on: GITHUB_MODELS_RETIRED_ON, code, api: Box::new(api) });
            }
            if !RetryPolicy::is_retryable_status(status) || !can_retry || api.is_daily_limit() {
                return Err(Error::Api(Box::new(api)));
            }
            // The cap applies to a wait the server asked for; our own backoff is only shortened to it.
            let delay = match wait {
                Some(w) if w > policy.max_wait => {
                    return Err(Error::WaitTooLong { wait: w, cap: policy.max_wait, api: Box::new(api) });
                }
                Some(w) => w,
                None => policy.backoff(meta.attempts).min(policy.max_wait),
            };
            tracing::info!(status, attempt = meta.attempts, wait_ms = delay.as_millis() as u64, "retrying");
            self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
            meta.permit = None;
            tokio::time::sleep(delay).await;
        }
    }
}

/// What getting an answer took, and the limiter's permit to settle once its usage is known.
#[derive(Debug, Default)]
struct Meta {
    attempts: u32,
    rate_limited: u32,
    permit: Option<gm_limits::Permit>,
}

/// Shows an answer's status, rate-limit headers and error body to the limiter.
fn observe(
    limiter: &gm_limits::Limiter,
    key: &gm_limits::LimitKey,
    status: u16,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) {
    let mut signal = gm_limits::ServerSignal::new(status);
    for (name, value) in headers {
        if let Ok(v) = value.to_str() {
            signal = signal.header(name.as_str(), v);
        }
    }
    if let Some(b) = body {
        signal = signal.body(b);
    }
    limiter.observe(key, &signal, Instant::now());
}

fn parse_uri(url: &str) -> Result<http::Uri, Error> {
    url.parse().map_err(|e| Error::InvalidRequest(format!("`{url}` is not a valid URL ({e}); check --base-url")))
}

fn poisoned() -> Error {
    Error::InvalidRequest("an internal lock was poisoned by an earlier panic".into())
}

fn map_transport(e: TransportError, url: &http::Uri) -> Error {
    let url = url.to_string();
    match e.kind {
        TransportErrorKind::InvalidRequest => Error::InvalidRequest(e.message),
        TransportErrorKind::Connect => Error::Connect { url, message: e.message, cause: e.cause },
        TransportErrorKind::Timeout => Error::Timeout { url, message: e.message },
        _ => Error::Io { url, message: e.message, cause: e.cause },
    }
}

fn decode<T: DeserializeOwned>(provider: ProviderKind, body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Error::Decode { provider, message: format!("{e}; the answer began: {start:?}") }
    })
}

/// A streamed chat answer. Read it with [`ChatStream::next_chunk`] or gather it with [`ChatStream::collect`].
pub struct ChatStream {
    provider: ProviderKind,
    body: BodyStream,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
    finished: bool,
    truncated: bool,
    started: Instant,
    first_chunk: Option<Duration>,
    meta: Meta,
    assembled: Assembler,
    cached: bool,
    sink: Option<(Arc<gm_cache::Cache>, gm_cache::RequestKey, Option<Duration>)>,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("provider", &self.provider)
            .field("finished", &self.finished)
            .field("cached", &self.cached)
            .finish()
    }
}

/// Builds one completion out of the chunks of a stream.
#[derive(Debug, Default, Clone)]
struct Assembler {
    completion: ChatCompletion,
    text: String,
    finish: Option<String>,
    role: Option<gm_core::Role>,
}

impl Assembler {
    fn add(&mut self, chunk: &ChatCompletionChunk) {
        self.text.push_str(chunk.text());
        if let Some(r) = chunk.finish_reason() {
            self.finish = Some(r.to_string());
        }
        if self.role.is_none() {
            self.role = chunk.choices.first().and_then(|c| c.delta.as_ref()).and_then(|d| d.role.clone());
        }
        let c = &mut self.completion;
        if c.id.as_deref().unwrap_or("").is_empty() {
            c.id = chunk.id.clone().filter(|s| !s.is_empty());
        }
        if c.model.as_deref().unwrap_or("").is_empty() {
            c.model = chunk.model.clone().filter(|s| !s.is_empty());
        }
        if c.created.is_none() {
            c.created = chunk.created.filter(|t| *t != 0);
        }
        if chunk.usage.is_some() {
            c.usage = chunk.usage.clone();
        }
    }

    fn finish(&mut self) -> ChatCompletion {
        let mut c = std::mem::take(&mut self.completion);
        c.object = Some("chat.completion".into());
        c.choices = vec![Choice {
            index: 0,
            message: Some(ResponseMessage {
                role: self.role.take().or(Some(gm_core::Role::Assistant)),
                content: Some(std::mem::take(&mut self.text)),
                ..Default::default()
            }),
            finish_reason: self.finish.take(),
            ..Default::default()
        }];
        c
    }
}

/// Renders a whole completion as the event stream a server would have sent, for replaying a cached answer.
fn replay_as_sse(c: &ChatCompletion) -> BodyStream {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        serde_json::json!({"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut out = String::new();
    let mut push = |v: serde_json::Value| {
        out.push_str("data: ");
        out.push_str(&v.to_string());
        out.push_str("\n\n");
    };
    push(chunk(serde_json::json!({"role": "assistant", "content": c.text()}), serde_json::Value::Null));
    push(chunk(serde_json::json!({}), serde_json::json!(c.finish_reason().unwrap_or("stop"))));
    if let Some(u) = &c.usage {
        push(
            serde_json::json!({"id": c.id, "object": "chat.completion.chunk", "model": c.model, "choices": [], "usage": u}),
        );
    }
    out.push_str("data: [DONE]\n\n");
    let bytes = Bytes::from(out);
    Box::pin(futures_util::stream::once(async move { Ok(bytes) }))
}

impl ChatStream {
    fn new(provider: ProviderKind, body: BodyStream, started: Instant, meta: Meta) -> Self {
        Self {
            provider,
            body,
            parser: SseParser::default(),
            pending: VecDeque::new(),
            finished: false,
            truncated: false,
            started,
            first_chunk: None,
            meta,
            assembled: Assembler::default(),
            cached: false,
            sink: None,
        }
    }

    /// The next chunk; `None` after `[DONE]`. A stream that ends without `[DONE]` is an error.
    pub async fn next_chunk(&mut self) -> Option<Result<ChatCompletionChunk, Error>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                match ev {
                    SseEvent::Done => {
                        self.finished = true;
                        self.pending.clear();
                        if let Some(p) = self.meta.permit.take() {
                            match &self.assembled.completion.usage {
                                Some(u) => p.settle_usage(u),
                                None => drop(p),
                            }
                        }
                        self.store();
                        return None;
                    }
                    SseEvent::Data(text) => {
                        let value: serde_json::Value = match serde_json::from_str(&text) {
                            Ok(v) => v,
                            Err(e) => return Some(Err(self.fail(format!("an event is not JSON ({e}): {text:.200}")))),
                        };
                        if let Some(err) = value.get("error").and_then(|_| ErrorBody::from_value(&value)) {
                            return Some(Err(self.fail(format!("the server sent an error: {}", err.message))));
                        }
                        return match serde_json::from_value::<ChatCompletionChunk>(value) {
                            Ok(chunk) => {
                                if self.first_chunk.is_none() && !chunk.text().is_empty() {
                                    self.first_chunk = Some(self.started.elapsed());
                                }
                                self.assembled.add(&chunk);
                                Some(Ok(chunk))
                            }
                            Err(e) => Some(Err(self.fail(format!("an event is not a chat chunk ({e})")))),
                        };
                    }
                }
            }
            if self.truncated {
                return Some(Err(self.fail("the stream ended without [DONE]".into())));
            }
            if self.finished {
                return None;
            }
            let mut events = Vec::new();
            match self.body.next().await {
                Some(Ok(bytes)) => {
                    if let Err(e) = self.parser.feed(&bytes, &mut events) {
                        return Some(Err(self.fail(e.to_string())));
                    }
                }
                Some(Err(e)) => return Some(Err(self.fail(format!("the connection failed: {e}")))),
                None => {
                    if let Err(e) = self.parser.finish(&mut events) {
                        return Some(Err(self.fail(e.to_string())));
                    }
                    // Deliver what arrived, then report the missing end.
                    self.truncated = !events.contains(&SseEvent::Done);
                }
            }
            self.pending.extend(events);
        }
    }

    /// Stores a whole answer (one that ended with `[DONE]`) in the cache, if there is one.
    fn store(&mut self) {
        let Some((cache, key, ttl)) = self.sink.take() else { return };
        let mut copy = self.assembled.clone();
        match serde_json::to_vec(&copy.finish()) {
            Ok(bytes) => {
                if let Err(e) = cache.set(key, Bytes::from(bytes), ttl, Instant::now()) {
                    tracing::warn!(error = %e, "could not store the answer in the cache");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not encode the answer for the cache"),
        }
    }

    fn fail(&mut self, message: String) -> Error {
        self.finished = true;
        self.truncated = false;
        self.pending.clear();
        self.sink = None;
        self.meta.permit = None;
        Error::Stream { provider: self.provider, message }
    }

    /// The time from sending to the first text, once it has arrived.
    pub fn time_to_first_token(&self) -> Option<Duration> {
        self.first_chunk
    }

    /// Attempts it took to get the stream started (0 for a cached answer).
    pub fn attempts(&self) -> u32 {
        self.meta.attempts
    }

    /// Whether the stream replays a cached answer (no request was sent).
    pub fn is_cached(&self) -> bool {
        self.cached
    }

    /// Reads the rest of the stream and assembles it into one completion.
    pub async fn collect(mut self) -> Result<ChatResponse, Error> {
        while let Some(chunk) = self.next_chunk().await {
            chunk?;
        }
        let completion = self.assembled.finish();
        Ok(ChatResponse::new(completion, self.started, self.meta, self.cached))
    }
}
