//! The builder: a client's provider, credential, transport and settings, checked once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gm_core::{Clock, ProviderKind, SystemClock};
use http::{HeaderMap, HeaderValue};

use super::replay::RecordMode;
use super::routes::{default_base_url, parse_uri, Route};
use super::{Client, ClientStats, Inner};
use crate::auth::{credential_hint, Credential};
use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::transport::Transport;

/// The default cap on one answer, whole or streamed: 32 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;

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
    recorder: Option<super::replay::Recorder>,
    aliases: std::collections::BTreeMap<String, String>,
    clock: Arc<dyn Clock>,
    server_concurrency: Option<usize>,
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
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            timeout: Duration::from_secs(300),
            api_version: None,
            user_agent: concat!("gm/", env!("CARGO_PKG_VERSION")).to_string(),
            limiter: None,
            cache: None,
            cache_policy: CachePolicy::default(),
            recorder: None,
            aliases: Default::default(),
            clock: Arc::new(SystemClock),
            server_concurrency: None,
        }
    }

    /// At most `n` chat and embeddings requests in flight to the server at once, whatever their model (a
    /// server such as llama.cpp answers one request at a time and queues the rest, which would be counted as
    /// each request's latency). The others wait in the client, first come first served, and that wait is
    /// reported apart ([`ChatResponse::queued`](crate::ChatResponse::queued)). Clones share the cap.
    pub fn server_concurrency(mut self, n: usize) -> Self {
        self.server_concurrency = Some(n.max(1));
        self
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

    /// Sends the model an alias stands for in place of the alias (`"openai/gpt-4o-mini"` → `"llama3.2"`), in
    /// every chat and embeddings request; the cache keys the model sent.
    pub fn aliases(mut self, aliases: std::collections::BTreeMap<String, String>) -> Self {
        self.aliases = aliases;
        self
    }

    /// Records every chat answer in `answers`, or answers from it, as `mode` says (see [`RecordMode`]). With
    /// [`RecordMode::Replay`] nothing is ever sent, so no credential is needed. Save the answers with
    /// [`RecordedAnswers::save`](gm_cache::recording::RecordedAnswers::save) when the run ends.
    pub fn recording(mut self, answers: Arc<gm_cache::recording::RecordedAnswers>, mode: RecordMode) -> Self {
        self.recorder = Some(super::replay::Recorder { answers, mode });
        self
    }

    /// The clock the client reads time from (default: [`SystemClock`], the real monotonic clock): the
    /// latency and time to first token it reports, the `now` of every cache lookup and store, and the age of
    /// its copy of the catalog. Waits (backoff, deadlines) run on tokio's timers. A limiter keeps its own
    /// clock: what the client tells it is read from [`gm_limits::Limiter::clock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
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
        let sends = self.recorder.as_ref().is_none_or(|r| r.mode != RecordMode::Replay);
        if matches!(self.provider, ProviderKind::Github | ProviderKind::OpenAi | ProviderKind::Azure)
            && self.credential.is_none()
            && sends
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
        let credential_fingerprint = quota_identity(self.provider, &base, self.credential.as_ref());
        let mut client = Client {
            inner: Arc::new(Inner {
                provider: self.provider,
                base,
                org: self.org,
                credential_fingerprint,
                credential: self.credential,
                transport,
                retry: self.retry,
                max_response_bytes: self.max_response_bytes,
                timeout: self.timeout,
                api_version: self.api_version,
                user_agent: self.user_agent,

                limiter: self.limiter,
                handles: Default::default(),
                cache: self.cache,
                cache_policy: self.cache_policy,
                recorder: self.recorder,
                aliases: self.aliases,
                clock: self.clock,
                server_slots: self.server_concurrency.map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
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

/// What tells one quota from another beside the provider and model: the credential's fingerprint at the
/// provider's own endpoint, `-` there without one. Elsewhere a quota belongs to a credential at an endpoint, so
/// the base URL goes into the fingerprint: two servers reached without a key, or with the same placeholder key
/// (`EMPTY` for vLLM), count apart, also in a store shared with other processes.
fn quota_identity(provider: ProviderKind, base: &str, credential: Option<&Credential>) -> String {
    let own_endpoint = default_base_url(provider) == Some(base);
    match (credential, own_endpoint) {
        (Some(c), true) => gm_limits::fingerprint(c.expose()),
        (None, true) => "-".into(),
        (Some(c), false) => gm_limits::fingerprint(&format!("{base}\n{}", c.expose())),
        (None, false) => gm_limits::fingerprint(base),
    }
}
