//! What the gateway serves and how: the routing file, the upstreams, the limits, the stores.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gm_app::{LimitsSettings, SessionConfig};
use gm_core::ProviderKind;
use gm_http::Credential;
use gm_limits::{LimitSpec, LimitsConfig};
use serde::Deserialize;

use crate::ServeError;

/// One upstream: a provider endpoint with its credential and limits.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The name routes refer to.
    pub name: String,
    /// The provider (its paths, headers and credential style).
    pub provider: ProviderKind,
    /// The base URL (`None`: the provider's default).
    pub base_url: Option<String>,
    /// The credential (its `Debug` is redacted).
    pub credential: Option<Credential>,
    /// For GitHub Models, the organization requests are attributed to.
    pub org: Option<String>,
    /// Limits for every model of this upstream; `None`: the gateway's limits configuration.
    pub limits: Option<LimitSpec>,
    /// The deadline for one whole answer (a stream: for its headers); `None`: the gateway's (`--timeout`).
    pub timeout: Option<Duration>,
    /// Attempts per request on this upstream before the next one in a route is tried (1: no retry here).
    pub attempts: u32,
}

impl UpstreamConfig {
    /// An upstream with the defaults: no credential, the provider's base URL, one attempt, the gateway's
    /// deadline.
    pub fn new(name: impl Into<String>, provider: ProviderKind) -> Self {
        Self {
            name: name.into(),
            provider,
            base_url: None,
            credential: None,
            org: None,
            limits: None,
            timeout: None,
            attempts: 1,
        }
    }

    /// The upstream a session configuration names (its provider, base URL, org and credential), called after
    /// its provider: what `gm serve --provider P --base-url URL` serves.
    pub fn of_session(config: &SessionConfig) -> Self {
        let mut up = Self::new(config.provider.as_str(), config.provider);
        up.base_url = config.base_url.clone();
        up.org = config.org.clone();
        up.credential = config.credential.clone();
        up
    }

    /// The configuration its client is built from: its provider, endpoint and credential, and its limits
    /// (its own, else the routing file's, else the gateway's), over the gateway's state (`gateway`).
    pub(crate) fn session_config(&self, gateway: &SessionConfig, routing: Option<&LimitsConfig>) -> SessionConfig {
        let limits = match (&self.limits, routing) {
            (Some(spec), _) => LimitsSettings { spec: Some(spec.clone()), ..gateway.limits.clone() },
            (None, Some(table)) => {
                LimitsSettings { spec: None, file: None, inline: Some(table.clone()), ..gateway.limits.clone() }
            }
            (None, None) => gateway.limits.clone(),
        };
        SessionConfig {
            provider: self.provider,
            provider_reason: format!("the upstream `{}`", self.name),
            base_url: self.base_url.clone(),
            org: self.org.clone(),
            credential: self.credential.clone(),
            limits,
            // Model ids come from the routes, and answers from the upstream: no project alias renames what a
            // client asked for, and no recorded answers file stands in for the upstream.
            aliases: Default::default(),
            recording: None,
            ..gateway.clone()
        }
    }
}

/// Where one route sends a request: an upstream, and the model name it knows the model by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The upstream's name.
    pub upstream: String,
    /// The model as the upstream names it; `None`: the model the client sent.
    pub model: Option<String>,
}

/// A model id clients may send, and the upstreams that serve it, in the order they are tried.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The model id as clients send it (compared without regard to case), or `*` for every other model.
    pub model: String,
    /// The upstreams, first choice first.
    pub targets: Vec<Target>,
    /// Whether answers on this route are cached (when the gateway caches at all).
    pub cache: bool,
}

/// The upstreams and the routes to them.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Every upstream.
    pub upstreams: Vec<UpstreamConfig>,
    /// Every route; at most one is `*`.
    pub routes: Vec<RouteConfig>,
    /// Limits for upstreams that set none (the limits file format).
    pub limits: Option<LimitsConfig>,
}

impl Routing {
    /// One upstream serving every model under the name the client sends (`gm serve --provider P`).
    pub fn single(upstream: UpstreamConfig) -> Self {
        let route = RouteConfig {
            model: "*".into(),
            targets: vec![Target { upstream: upstream.name.clone(), model: None }],
            cache: true,
        };
        Self { upstreams: vec![upstream], routes: vec![route], limits: None }
    }

    /// The demo provider for every model: what `gm serve` alone serves.
    pub fn demo() -> Self {
        Self::single(UpstreamConfig::new("demo", ProviderKind::Demo))
    }

    /// Reads a routing file (TOML). Credentials are looked up with `env` by the variable names the file gives.
    pub fn from_toml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ServeError> {
        let file: RoutingFile = toml::from_str(text).map_err(|e| ServeError::Config(format!("{e}")))?;
        file.resolve(env)
    }

    /// Checks that every route names known upstreams and that model ids are unique.
    pub fn validate(&self) -> Result<(), ServeError> {
        if self.routes.is_empty() {
            return Err(ServeError::Config(
                "the routing file has no [[routes]]; add one, e.g. model = \"*\" with to = [\"UPSTREAM\"]".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.routes {
            if !seen.insert(r.model.to_ascii_lowercase()) {
                return Err(ServeError::Config(format!("the model `{}` has two routes; keep one", r.model)));
            }
            if r.targets.is_empty() {
                return Err(ServeError::Config(format!("the route for `{}` names no upstream in `to`", r.model)));
            }
            for t in &r.targets {
                if !self.upstreams.iter().any(|u| u.name == t.upstream) {
                    return Err(ServeError::Config(format!(
                        "the route for `{}` names the upstream `{}`, which no [upstreams.{}] table defines",
                        r.model, t.upstream, t.upstream
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The routing file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingFile {
    #[serde(default)]
    limits: Option<LimitsConfig>,
    #[serde(default)]
    upstreams: BTreeMap<String, UpstreamFile>,
    #[serde(default)]
    routes: Vec<RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamFile {
    provider: String,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    credential_env: Option<String>,
    #[serde(default)]
    org: Option<String>,
    #[serde(default)]
    limits: Option<String>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    attempts: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    model: String,
    to: Vec<String>,
    #[serde(default = "yes")]
    cache: bool,
}

fn yes() -> bool {
    true
}

impl RoutingFile {
    fn resolve(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Routing, ServeError> {
        let mut upstreams = Vec::new();
        for (name, u) in self.upstreams {
            if name.contains(':') || name.is_empty() {
                return Err(ServeError::Config(format!(
                    "the upstream name `{name}` may not be empty or contain `:`; rename [upstreams.{name}]"
                )));
            }
            let provider: ProviderKind = u
                .provider
                .parse()
                .map_err(|e: gm_core::UnknownProvider| ServeError::Config(format!("upstream `{name}`: {e}")))?;
            let mut up = UpstreamConfig::new(name.clone(), provider);
            up.base_url = u.base_url;
            up.org = u.org;
            if let Some(var) = u.credential_env {
                let value = env(&var)
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| ServeError::MissingCredential { upstream: name.clone(), var: var.clone() })?;
                up.credential = Some(Credential::explicit(value.trim().to_string()));
            }
            if let Some(l) = u.limits {
                up.limits = Some(
                    LimitSpec::parse(&l).map_err(|e| ServeError::Config(format!("upstream `{name}` limits: {e}")))?,
                );
            }
            if let Some(t) = u.timeout {
                up.timeout = Some(
                    gm_limits::parse_duration(&t)
                        .map_err(|e| ServeError::Config(format!("upstream `{name}` timeout: {e}")))?,
                );
            }
            if let Some(a) = u.attempts {
                up.attempts = a.max(1);
            }
            upstreams.push(up);
        }
        let routes = self
            .routes
            .into_iter()
            .map(|r| RouteConfig {
                model: r.model,
                targets: r
                    .to
                    .iter()
                    .map(|t| match t.split_once(':') {
                        Some((u, m)) => Target { upstream: u.trim().to_string(), model: Some(m.trim().to_string()) },
                        None => Target { upstream: t.trim().to_string(), model: None },
                    })
                    .collect(),
                cache: r.cache,
            })
            .collect();
        let routing = Routing { upstreams, routes, limits: self.limits };
        routing.validate()?;
        Ok(routing)
    }
}

/// The per-visitor and global limits of `--public`.
#[derive(Debug, Clone)]
pub struct PublicLimits {
    /// Limits for each visitor (client address).
    pub visitor: LimitSpec,
    /// Limits for all visitors together.
    pub global: LimitSpec,
}

/// Where the access log goes.
#[derive(Debug, Clone, Default)]
pub enum LogTarget {
    /// One JSON line per request on standard error.
    #[default]
    Stderr,
    /// Lines appended to a buffer (for tests and embedding).
    Memory(Arc<Mutex<Vec<u8>>>),
    /// No access log.
    Off,
}

/// What the gateway serves and how. Its state (the state file or Redis, the cache, the default upstream limits
/// and the longest wait for quota) is the [`gm_app::Session`] it is bound with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The address to listen on (port 0: a free port).
    pub addr: SocketAddr,
    /// The upstreams and routes.
    pub routing: Routing,
    /// `--public`: keyless visitors with per-visitor and global limits.
    pub public: Option<PublicLimits>,
    /// Take the visitor's address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_proxy: bool,
    /// How long in-flight requests may run after a shutdown signal.
    pub grace: Duration,
    /// Where the access log goes.
    pub log: LogTarget,
}

impl ServeConfig {
    /// `routing` on `127.0.0.1:8080`, no public visitors, a 30 s grace period, the access log on standard error.
    pub fn new(routing: Routing) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            routing,
            public: None,
            trust_proxy: false,
            grace: Duration::from_secs(30),
            log: LogTarget::Stderr,
        }
    }
}

/// The default limits of `--public`: per visitor and for everyone together.
pub const DEFAULT_VISITOR_LIMITS: &str = "10/1m,100/1d";
/// The default global cap of `--public`.
pub const DEFAULT_PUBLIC_LIMITS: &str = "60/1m,2000/1d";

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[limits]
default = "30/1m"

[upstreams.azure]
provider = "azure"
base_url = "https://example.openai.azure.com/openai/v1"
credential_env = "AZURE_KEY"
limits = "15/1m,150/1d,concurrency=5"
timeout = "60s"

[upstreams.local]
provider = "openai-compatible"
base_url = "http://127.0.0.1:11434/v1"

[[routes]]
model = "openai/gpt-4.1"
to = ["azure:gpt-4.1", "local:llama3.2:1b"]

[[routes]]
model = "*"
to = ["local"]
cache = false
"#;

    #[test]
    fn a_routing_file_reads_with_its_credentials_from_the_named_variables() {
        let env = |name: &str| (name == "AZURE_KEY").then(|| "secret-value".to_string());
        let r = Routing::from_toml(EXAMPLE, &env).unwrap();
        assert_eq!(r.upstreams.len(), 2);
        let azure = r.upstreams.iter().find(|u| u.name == "azure").unwrap();
        assert_eq!(azure.provider, ProviderKind::Azure);
        assert_eq!(azure.credential.as_ref().unwrap().expose(), "secret-value");
        assert!(!format!("{azure:?}").contains("secret-value"));
        assert_eq!(azure.timeout, Some(Duration::from_secs(60)));
        assert_eq!(r.routes[0].targets[1], Target { upstream: "local".into(), model: Some("llama3.2:1b".into()) });
        assert!(!r.routes[1].cache);
        assert!(r.limits.is_some());
    }

    #[test]
    fn a_missing_credential_variable_is_named_and_its_value_never_needed() {
        let err = Routing::from_toml(EXAMPLE, &|_| None).unwrap_err().to_string();
        assert!(err.contains("AZURE_KEY") && err.contains("export"), "{err}");
    }

    #[test]
    fn a_route_to_an_unknown_upstream_is_refused() {
        let text = "[[routes]]\nmodel = \"a\"\nto = [\"nowhere\"]\n";
        let err = Routing::from_toml(text, &|_| None).unwrap_err().to_string();
        assert!(err.contains("nowhere"), "{err}");
        let text = "[upstreams.x]\nprovider = \"demo\"\nsecret = \"no\"\n[[routes]]\nmodel = \"a\"\nto = [\"x\"]\n";
        assert!(Routing::from_toml(text, &|_| None).unwrap_err().to_string().contains("secret"));
    }
}
