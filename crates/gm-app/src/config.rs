//! The typed configuration a [`Session`](crate::Session) is built from.
//!
//! Every value is already resolved: the library never reads the environment or runs `gh`. A front end finds
//! the provider and credential (for instance with [`gm_http::auth::resolve`], given its environment) and
//! passes the result in with [`SessionConfig::resolved`]. Everything else deserializes from a project file
//! (TOML, JSON, …); the credential never does, since a file names a variable, never a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use gm_core::ProviderKind;
use gm_http::auth::Resolution;
use gm_http::Credential;
use gm_limits::presets::Plan;
use gm_limits::{LimitSpec, LimitsConfig, Margin};
use serde::{Deserialize, Deserializer};

/// How long one request may wait for quota unless configured: two minutes.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(120);

/// How long a cached answer stays fresh unless configured: seven days.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Everything a session needs to reach a provider and keep its state.
///
/// ```
/// use gm_app::SessionConfig;
///
/// let config: SessionConfig = toml::from_str(r#"
///     provider = "openai-compatible"
///     base_url = "http://localhost:11434/v1"
///     max_wait = "30s"
///     [limits]
///     spec = "15/1m,concurrency=4"
///     [cache]
///     ttl = "1d"
/// "#).unwrap();
/// assert_eq!(config.provider, gm_core::ProviderKind::OpenAiCompatible);
/// assert_eq!(config.max_wait, std::time::Duration::from_secs(30));
/// assert!(config.cache.enabled && config.data_dir.is_none());
/// ```
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// The provider every request goes to.
    #[serde(deserialize_with = "provider")]
    pub provider: ProviderKind,
    /// Why this provider was chosen, in words (shown with the demo provider's notice and by `auth status`).
    #[serde(skip)]
    pub provider_reason: String,
    /// The provider's base URL, replacing its default (github: the host root; others: up to and including
    /// `/v1`).
    pub base_url: Option<String>,
    /// The GitHub organization GitHub Models requests are attributed to.
    pub org: Option<String>,
    /// The credential, already resolved; never deserialized.
    #[serde(skip)]
    pub credential: Option<Credential>,
    /// The environment variable that holds the API key, instead of the provider's usual one (`GM_API_KEY` for
    /// an OpenAI-compatible server): what an error asks the user to set when it is missing. A file names the
    /// variable, never the key.
    pub api_key_env: Option<String>,
    /// The rate limits requests are planned within.
    pub limits: LimitsSettings,
    /// The longest one request may wait for quota, the limiter's and a 429's alike.
    #[serde(deserialize_with = "duration")]
    pub max_wait: Duration,
    /// The response cache.
    pub cache: CacheSettings,
    /// The folder of the state file `gm.sqlite` (cache, shared rate-limit windows, run history). Without
    /// one, the session keeps everything in memory and the commands that read the state file refuse.
    pub data_dir: Option<PathBuf>,
    /// A Redis server (`redis://HOST:PORT/`) that counts the rate-limit windows and keeps the cached answers
    /// instead of the state file, shared by every machine that uses it. Never shown: it may hold a password.
    pub redis_url: Option<String>,
    /// The most bytes one answer may bring, whole or streamed; a larger one fails (nothing is recorded).
    pub max_response_bytes: usize,
    /// The longest one request may take to bring its whole answer (a streamed one: its first bytes);
    /// a server that accepts and never answers fails the request then.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Model aliases: a name (a short one, or a retired GitHub id) → the model or deployment it stands for,
    /// applied wherever a model is named (a prompt file, a suite's or a bench's models, every request).
    pub aliases: BTreeMap<String, String>,
    /// The folder of `.prompt.yml` suites run when a suite run names no file.
    pub suites_dir: Option<PathBuf>,
    /// The folder of user tasks for a bench that names none.
    pub tasks_dir: Option<PathBuf>,
    /// The price table added to the built-in one, when a run names none.
    pub prices: Option<Prices>,
    /// Recorded answers: every answer written to a file, or answered from one (see [`Recording`]).
    #[serde(skip)]
    pub recording: Option<Recording>,
}

/// A price table: a TOML file (`[models]` of `{ input, output }` in USD per million tokens), or the same
/// table inline.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Prices {
    /// A file.
    File(PathBuf),
    /// The table itself.
    Inline(PriceModels),
}

/// A price table given inline.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceModels {
    /// USD per million tokens, by model id.
    #[serde(default)]
    pub models: BTreeMap<String, ModelPrice>,
}

/// One model's price.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
}

/// How a session uses a recorded answers file (JSON Lines, see [`gm_cache::recording`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The file.
    pub path: PathBuf,
    /// Whether answers are written to it or read from it.
    pub mode: gm_http::RecordMode,
}

impl SessionConfig {
    /// The model `name` stands for under the aliases (itself when it is no alias).
    pub fn model_for<'a>(&'a self, name: &'a str) -> &'a str {
        self.aliases.get(name).map(String::as_str).unwrap_or(name)
    }
}

/// The default of [`SessionConfig::timeout`]: five minutes, room for a long answer of a slow model.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Demo,
            provider_reason: "no provider was configured".into(),
            base_url: None,
            org: None,
            credential: None,
            api_key_env: None,
            limits: LimitsSettings::default(),
            max_wait: DEFAULT_MAX_WAIT,
            cache: CacheSettings::default(),
            data_dir: None,
            redis_url: None,
            max_response_bytes: gm_http::DEFAULT_MAX_RESPONSE_BYTES,
            timeout: DEFAULT_TIMEOUT,
            aliases: BTreeMap::new(),
            suites_dir: None,
            tasks_dir: None,
            prices: None,
            recording: None,
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("provider", &self.provider)
            .field("provider_reason", &self.provider_reason)
            .field("base_url", &self.base_url)
            .field("org", &self.org)
            .field("credential", &self.credential)
            .field("api_key_env", &self.api_key_env)
            .field("limits", &self.limits)
            .field("max_wait", &self.max_wait)
            .field("cache", &self.cache)
            .field("data_dir", &self.data_dir)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "(set, not shown)"))
            .field("max_response_bytes", &self.max_response_bytes)
            .field("timeout", &self.timeout)
            .field("aliases", &self.aliases)
            .field("suites_dir", &self.suites_dir)
            .field("tasks_dir", &self.tasks_dir)
            .field("prices", &self.prices)
            .field("recording", &self.recording)
            .finish()
    }
}

impl SessionConfig {
    /// The demo provider (answers computed offline), everything else default: in memory, no limits.
    pub fn demo() -> Self {
        Self::default()
    }

    /// Takes the provider, credential and reason of a resolution ([`gm_http::auth::resolve`]), and the base
    /// URL it found (Azure's endpoint) unless one is set already.
    pub fn resolved(mut self, resolution: Resolution) -> Self {
        self.provider = resolution.provider;
        self.provider_reason = resolution.reason;
        self.credential = resolution.credential;
        if self.base_url.is_none() {
            self.base_url = resolution.base_url;
        }
        self
    }

    /// How to give the provider its credential: set the variable `api_key_env` names, else the provider's
    /// usual place ([`gm_http::auth::credential_hint`]).
    pub fn credential_hint(&self) -> String {
        match &self.api_key_env {
            Some(name) if self.provider != ProviderKind::Demo => format!("set {name} (named by api_key_env)"),
            _ => gm_http::auth::credential_hint(self.provider).to_string(),
        }
    }

    /// The state file in [`SessionConfig::data_dir`], when there is one.
    pub fn state_file(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|d| d.join(STATE_FILE_NAME))
    }
}

/// The state file's name inside the data folder.
pub const STATE_FILE_NAME: &str = "gm.sqlite";

/// The rate limits requests are planned within.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// The same limits for every model (`15/1m,150/1d,concurrency=5`); takes precedence over `file`. With the
    /// demo provider, requests are limited only when this is set.
    pub spec: Option<LimitSpec>,
    /// A TOML file of limits per provider and model (the format of `docs/limits.md`).
    pub file: Option<PathBuf>,
    /// The GitHub plan whose quotas apply to GitHub Models.
    pub plan: Option<Plan>,
    /// The transit-time margin added to every window when neither `spec` nor `file` sets one; `None` leaves
    /// gm-limits' own default.
    pub margin: Option<Margin>,
    /// Limits per provider and model given inline (a project file's `[limits]`, or a server's routing file's,
    /// in the limits file's format); used when neither `spec` nor `file` is set.
    #[serde(skip)]
    pub inline: Option<LimitsConfig>,
    /// At most this many requests in flight to the server (the provider at its base URL) at once, whatever
    /// their model: a bench of several models on one server honours it across all of them. A server that
    /// answers one request at a time (llama.cpp) wants 1, so that gm, not the server, queues the others and
    /// the wait is reported apart from latency.
    pub server_concurrency: Option<usize>,
}

/// The response cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Whether identical requests are answered from the cache (and answers stored).
    pub enabled: bool,
    /// How long a cached answer stays fresh.
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
    /// Send every request and overwrite the cached answers.
    pub refresh: bool,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { enabled: true, ttl: DEFAULT_CACHE_TTL, refresh: false }
    }
}

fn provider<'de, D: Deserializer<'de>>(d: D) -> Result<ProviderKind, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    gm_limits::parse_duration(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redis_url_and_the_credential_never_show_in_debug() {
        let config = SessionConfig {
            redis_url: Some("redis://:hunter2-password@127.0.0.1:6379/".into()),
            credential: Some(Credential::explicit("sk-verysecretvalue")),
            ..SessionConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("verysecret"), "{shown}");
        assert!(shown.contains("(set, not shown)"), "{shown}");
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_is_refused() {
        let unknown = toml::from_str::<SessionConfig>("providr = \"openai\"").unwrap_err().to_string();
        assert!(unknown.contains("providr"), "{unknown}");
        let bad = toml::from_str::<SessionConfig>("provider = \"nope\"").unwrap_err().to_string();
        assert!(bad.contains("nope"), "{bad}");
        let bad = toml::from_str::<SessionConfig>("max_wait = \"soon\"").unwrap_err().to_string();
        assert!(bad.contains("soon"), "{bad}");
    }

    #[test]
    fn a_resolution_fills_what_the_environment_gave() {
        let resolution = Resolution {
            provider: ProviderKind::Azure,
            credential: Some(Credential::explicit("k")),
            base_url: Some("https://x.openai.azure.com/openai/v1".into()),
            reason: "AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT are set".into(),
        };
        let config = SessionConfig::default().resolved(resolution.clone());
        assert_eq!(config.provider, ProviderKind::Azure);
        assert_eq!(config.base_url.as_deref(), Some("https://x.openai.azure.com/openai/v1"));
        let given = SessionConfig { base_url: Some("http://given/v1".into()), ..SessionConfig::default() };
        assert_eq!(given.resolved(resolution).base_url.as_deref(), Some("http://given/v1"));
    }
}
