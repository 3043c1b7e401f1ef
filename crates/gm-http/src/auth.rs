//! Credentials: where they come from, and how they are kept out of every output.
//!
//! This module decides from values it is given; it never reads the environment itself. The `gm` binary
//! passes in its environment and a way to run `gh auth token`.

use std::fmt;

use gm_core::ProviderKind;
use secrecy::{ExposeSecret, SecretString};

/// Where a credential was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An environment variable, by name.
    Env(&'static str),
    /// An environment variable named by the configuration (`api_key_env`).
    NamedEnv(String),
    /// The output of `gh auth token`.
    GhCli,
    /// Given directly by the program.
    Explicit,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Env(name) => write!(f, "the {name} environment variable"),
            CredentialSource::NamedEnv(name) => write!(f, "the {name} environment variable (api_key_env)"),
            CredentialSource::GhCli => f.write_str("`gh auth token` (the GitHub CLI)"),
            CredentialSource::Explicit => f.write_str("the program"),
        }
    }
}

/// A secret token and where it came from. `Debug` and `Display` never show the token.
#[derive(Clone)]
pub struct Credential {
    secret: SecretString,
    source: CredentialSource,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}, from {})", self.redacted(), self.source)
    }
}

impl Credential {
    /// A credential with a source.
    pub fn new(token: impl Into<String>, source: CredentialSource) -> Self {
        Self { secret: SecretString::from(token.into()), source }
    }

    /// A credential given by the program.
    pub fn explicit(token: impl Into<String>) -> Self {
        Self::new(token, CredentialSource::Explicit)
    }

    /// Where it came from.
    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// The token, for building the authorization header and nothing else.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// A redacted form for display: the well-known prefix (`ghp_`, `github_pat_`, `sk-`) and the length.
    pub fn redacted(&self) -> String {
        let t = self.expose();
        let prefix = ["github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "sk-proj-", "sk-"]
            .into_iter()
            .find(|p| t.starts_with(p))
            .unwrap_or("");
        format!("{prefix}*** ({} chars)", t.chars().count())
    }
}

/// The prefixes of the providers' token shapes, longest first.
const TOKEN_PREFIXES: [&str; 8] = ["github_pat_", "sk-proj-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "sk-"];

/// `text` with every credential taken out: `known` (the client's own, wherever it appears) and anything
/// shaped like a provider's token (`ghp_…`, `github_pat_…`, `sk-…` and the like, 16 characters or more
/// after the prefix), each replaced by its prefix and `***`. What a server sends back (an error body that
/// echoes the request's header, a proxy's page) goes through this before it is shown or stored.
///
/// ```
/// use gm_http::auth::{scrub_secrets, Credential};
/// let key = Credential::explicit("0123456789abcdef0123456789abcdef");
/// let echoed = "invalid key 0123456789abcdef0123456789abcdef (also tried ghp_AAAAbbbbCCCCdddd1234)";
/// assert_eq!(scrub_secrets(echoed, Some(&key)), "invalid key *** (also tried ghp_***)");
/// ```
pub fn scrub_secrets(text: &str, known: Option<&Credential>) -> String {
    let mut out = match known.map(Credential::expose).filter(|k| k.len() >= 8) {
        Some(k) if text.contains(k) => text.replace(k, "***"),
        _ => text.to_string(),
    };
    let token_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut from = 0;
    while let Some(at) = TOKEN_PREFIXES.iter().filter_map(|p| out[from..].find(p).map(|i| from + i)).min() {
        let glued = out[..at].chars().next_back().is_some_and(token_char);
        // The longest prefix that starts here and is followed by a token's length of token characters.
        let hit = TOKEN_PREFIXES.iter().filter(|p| out[at..].starts_with(*p)).find_map(|p| {
            let start = at + p.len();
            let len = out[start..].find(|c: char| !token_char(c)).unwrap_or(out.len() - start);
            (len >= 16).then_some((start, len))
        });
        match hit {
            Some((start, len)) if !glued => {
                out.replace_range(start..start + len, "***");
                from = start + 3;
            }
            // Prefixes are ASCII, so one byte on is a character boundary.
            _ => from = at + 1,
        }
    }
    out
}

/// The outcome of looking for a provider and its credential.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The provider to use.
    pub provider: ProviderKind,
    /// The credential, if one is needed and was found.
    pub credential: Option<Credential>,
    /// A base URL found in the environment (Azure's endpoint), if any.
    pub base_url: Option<String>,
    /// Why this provider was chosen, for `gm auth status` and the demo notice.
    pub reason: String,
}

/// What the caller asked for, before the environment is consulted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted<'a> {
    /// A provider given explicitly (`--provider`, a project file).
    pub provider: Option<ProviderKind>,
    /// A base URL given explicitly (`--base-url`, `GM_BASE_URL`, `base_url`): without a provider it means
    /// `openai-compatible`, never the demo.
    pub base_url: Option<&'a str>,
    /// The environment variable that holds the API key, instead of the provider's usual one
    /// (`--api-key-env NAME`, `api_key_env`).
    pub api_key_env: Option<&'a str>,
}

/// The value that selects the demo provider in `GITHUB_TOKEN`, as the original integration did.
pub const DEMO_TOKEN: &str = "demo_token";

/// Looks up an environment variable; returns `None` when unset or empty.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn env_nonempty(env: EnvLookup<'_>, name: &str) -> Option<String> {
    env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn github_credential(env: EnvLookup<'_>, gh: &dyn Fn() -> Option<String>) -> Option<Credential> {
    for name in ["GITHUB_TOKEN", "GH_TOKEN"] {
        if let Some(t) = env_nonempty(env, name) {
            return Some(Credential::new(t, CredentialSource::Env(name)));
        }
    }
    gh().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).map(|t| Credential::new(t, CredentialSource::GhCli))
}

/// Finds the credential for `provider`.
///
/// - `github`: `GITHUB_TOKEN`, then `GH_TOKEN`, then `gh auth token`.
/// - `openai`: `OPENAI_API_KEY`.
/// - `azure`: `AZURE_OPENAI_API_KEY`, with the endpoint from `AZURE_OPENAI_ENDPOINT` when no base URL is given.
/// - `openai-compatible`: `GM_API_KEY` if set (never `OPENAI_API_KEY`, which must not leak to other servers).
/// - `demo`: none.
pub fn credential_for(
    provider: ProviderKind,
    env: EnvLookup<'_>,
    gh: &dyn Fn() -> Option<String>,
) -> (Option<Credential>, Option<String>) {
    match provider {
        ProviderKind::Github => (github_credential(env, gh), None),
        ProviderKind::OpenAi => (
            env_nonempty(env, "OPENAI_API_KEY").map(|t| Credential::new(t, CredentialSource::Env("OPENAI_API_KEY"))),
            None,
        ),
        ProviderKind::Azure => (
            env_nonempty(env, "AZURE_OPENAI_API_KEY")
                .map(|t| Credential::new(t, CredentialSource::Env("AZURE_OPENAI_API_KEY"))),
            env_nonempty(env, "AZURE_OPENAI_ENDPOINT").map(|e| azure_base_from_endpoint(&e)),
        ),
        ProviderKind::OpenAiCompatible => {
            (env_nonempty(env, "GM_API_KEY").map(|t| Credential::new(t, CredentialSource::Env("GM_API_KEY"))), None)
        }
        ProviderKind::Demo => (None, None),
    }
}

/// Turns an Azure endpoint (`https://NAME.openai.azure.com/` or already `…/openai/v1`) into the v1 base URL.
pub fn azure_base_from_endpoint(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    if e.ends_with("/openai/v1") {
        e.to_string()
    } else if e.ends_with("/openai") {
        format!("{e}/v1")
    } else {
        format!("{e}/openai/v1")
    }
}

/// Chooses the provider and credential from an explicit provider alone; see [`resolve_wanted`].
pub fn resolve(explicit: Option<ProviderKind>, env: EnvLookup<'_>, gh: &dyn Fn() -> Option<String>) -> Resolution {
    resolve_wanted(Wanted { provider: explicit, ..Wanted::default() }, env, gh)
}

/// Chooses the provider and credential.
///
/// An explicit provider wins. Otherwise a base URL selects `openai-compatible` (the server at that URL is
/// what the user wants measured; the demo never answers for it); then `GITHUB_TOKEN=demo_token` selects demo;
/// `OPENAI_API_KEY` selects openai; `AZURE_OPENAI_API_KEY` with `AZURE_OPENAI_ENDPOINT` selects azure;
/// `GITHUB_TOKEN` or `GH_TOKEN` selects github; either Azure variable alone selects azure and `GM_API_KEY`
/// alone openai-compatible (each then says what is missing); and only with nothing at all pointing elsewhere,
/// demo.
///
/// With `api_key_env`, the credential of any provider but the demo is read from that variable instead of
/// the provider's usual one.
pub fn resolve_wanted(wanted: Wanted<'_>, env: EnvLookup<'_>, gh: &dyn Fn() -> Option<String>) -> Resolution {
    let demo_token = env_nonempty(env, "GITHUB_TOKEN").as_deref() == Some(DEMO_TOKEN);
    let base_url = wanted.base_url.map(str::trim).filter(|u| !u.is_empty());
    let provider_and_reason = match wanted.provider {
        Some(p) if demo_token && p == ProviderKind::Github => {
            (ProviderKind::Demo, "GITHUB_TOKEN=demo_token selects the demo provider".to_string())
        }
        Some(p) => (p, format!("--provider {p} was given")),
        None if base_url.is_some() => {
            (ProviderKind::OpenAiCompatible, "a base URL was given without a provider".into())
        }
        None if demo_token => (ProviderKind::Demo, "GITHUB_TOKEN=demo_token selects the demo provider".into()),
        None if env_nonempty(env, "OPENAI_API_KEY").is_some() => (ProviderKind::OpenAi, "OPENAI_API_KEY is set".into()),
        None if env_nonempty(env, "AZURE_OPENAI_API_KEY").is_some()
            && env_nonempty(env, "AZURE_OPENAI_ENDPOINT").is_some() =>
        {
            (ProviderKind::Azure, "AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT are set".into())
        }
        None if env_nonempty(env, "GITHUB_TOKEN").is_some() || env_nonempty(env, "GH_TOKEN").is_some() => {
            (ProviderKind::Github, "a GitHub token is set".into())
        }
        // Half of Azure's pair, or a key for a server of one's own, points away from the demo too: the
        // command then says what is missing instead of answering offline.
        None if env_nonempty(env, "AZURE_OPENAI_API_KEY").is_some()
            || env_nonempty(env, "AZURE_OPENAI_ENDPOINT").is_some() =>
        {
            (ProviderKind::Azure, "AZURE_OPENAI_API_KEY or AZURE_OPENAI_ENDPOINT is set".into())
        }
        None if env_nonempty(env, "GM_API_KEY").is_some() => {
            (ProviderKind::OpenAiCompatible, "GM_API_KEY is set".into())
        }
        None => (
            ProviderKind::Demo,
            "no provider was given and no credentials were found; set OPENAI_API_KEY or pass --provider to use a model"
                .into(),
        ),
    };
    let (provider, reason) = provider_and_reason;
    let (mut credential, found_base) = credential_for(provider, env, gh);
    let key_variable = wanted.api_key_env.map(str::trim).filter(|n| !n.is_empty() && provider != ProviderKind::Demo);
    if let Some(name) = key_variable {
        credential = env_nonempty(env, name).map(|t| Credential::new(t, CredentialSource::NamedEnv(name.to_string())));
    }
    Resolution { provider, credential, base_url: found_base, reason }
}

/// How to provide a credential for a provider, for error messages.
pub fn credential_hint(provider: ProviderKind) -> &'static str {
    match provider {
        ProviderKind::Github => {
            "set GITHUB_TOKEN or GH_TOKEN, or run `gh auth login` (the token needs the `models: read` permission)"
        }
        ProviderKind::OpenAi => "set OPENAI_API_KEY",
        ProviderKind::Azure => "set AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT (or --base-url)",
        ProviderKind::OpenAiCompatible => {
            "set GM_API_KEY, or name the variable that holds the key with --api-key-env NAME"
        }
        ProviderKind::Demo => "the demo provider needs no credential",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn secrets_never_print() {
        let c = Credential::new("ghp_supersecretvalue123", CredentialSource::Env("GITHUB_TOKEN"));
        let shown = format!("{c:?} {}", c.redacted());
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("ghp_***"));
    }

    #[test]
    fn resolution_order() {
        let none = || None;
        let r = resolve(None, &env_of(&[]), &none);
        assert_eq!(r.provider, ProviderKind::Demo);
        let r = resolve(None, &env_of(&[("GITHUB_TOKEN", "demo_token")]), &none);
        assert_eq!(r.provider, ProviderKind::Demo);
        let r = resolve(None, &env_of(&[("GH_TOKEN", "x")]), &none);
        assert_eq!(r.provider, ProviderKind::Github);
        assert_eq!(r.credential.unwrap().source(), &CredentialSource::Env("GH_TOKEN"));
        let r = resolve(Some(ProviderKind::Github), &env_of(&[]), &|| Some("gho_fromgh\n".into()));
        assert_eq!(r.credential.as_ref().unwrap().expose(), "gho_fromgh");
        let r = resolve(
            None,
            &env_of(&[("AZURE_OPENAI_API_KEY", "k"), ("AZURE_OPENAI_ENDPOINT", "https://x.openai.azure.com/")]),
            &none,
        );
        assert_eq!(r.provider, ProviderKind::Azure);
        assert_eq!(r.base_url.as_deref(), Some("https://x.openai.azure.com/openai/v1"));
        let r = resolve(Some(ProviderKind::OpenAiCompatible), &env_of(&[("OPENAI_API_KEY", "sk-x")]), &none);
        assert!(r.credential.is_none(), "the OpenAI key must not be sent to other servers");
    }

    #[test]
    fn a_base_url_without_a_provider_means_an_openai_compatible_server_never_the_demo() {
        let none = || None;
        let url = Some("http://127.0.0.1:8080/v1");
        for env in [&[][..], &[("GITHUB_TOKEN", "demo_token")][..], &[("OPENAI_API_KEY", "sk-x")][..]] {
            let r = resolve_wanted(Wanted { base_url: url, ..Wanted::default() }, &env_of(env), &none);
            assert_eq!(r.provider, ProviderKind::OpenAiCompatible, "{env:?}");
            assert!(r.credential.is_none(), "the OpenAI key must not be sent to another server: {env:?}");
            assert!(r.reason.contains("base URL"), "{}", r.reason);
        }
        let r = resolve_wanted(Wanted { base_url: url, ..Wanted::default() }, &env_of(&[("GM_API_KEY", "k")]), &none);
        assert_eq!(r.credential.unwrap().source(), &CredentialSource::Env("GM_API_KEY"));
        // An explicit provider still wins, the demo included.
        let wanted = Wanted { provider: Some(ProviderKind::Demo), base_url: url, ..Wanted::default() };
        assert_eq!(resolve_wanted(wanted, &env_of(&[]), &none).provider, ProviderKind::Demo);
        // Half of Azure's pair, or GM_API_KEY alone, is not nothing: no demo.
        let r = resolve(None, &env_of(&[("AZURE_OPENAI_API_KEY", "k")]), &none);
        assert_eq!(r.provider, ProviderKind::Azure);
        assert_eq!(resolve(None, &env_of(&[("GM_API_KEY", "k")]), &none).provider, ProviderKind::OpenAiCompatible);
        // An empty base URL points nowhere.
        let r = resolve_wanted(Wanted { base_url: Some(" "), ..Wanted::default() }, &env_of(&[]), &none);
        assert_eq!(r.provider, ProviderKind::Demo);
    }

    #[test]
    fn a_named_key_variable_replaces_the_usual_one() {
        let none = || None;
        let env = env_of(&[("GM_API_KEY", "usual"), ("LITELLM_KEY", "sk-named")]);
        let wanted = Wanted { base_url: Some("http://h/v1"), api_key_env: Some("LITELLM_KEY"), ..Wanted::default() };
        let r = resolve_wanted(wanted, &env, &none);
        let c = r.credential.unwrap();
        assert_eq!(c.expose(), "sk-named");
        assert_eq!(c.source().to_string(), "the LITELLM_KEY environment variable (api_key_env)");
        // Named but unset: no credential, not the usual variable's.
        let wanted = Wanted { api_key_env: Some("UNSET_KEY"), ..wanted };
        assert!(resolve_wanted(wanted, &env, &none).credential.is_none());
    }
}
