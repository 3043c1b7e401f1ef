//! Where each provider is reached: base URLs, paths (GitHub's org paths included), headers, the credential
//! header, and the model id as the wire wants it.

use gm_core::{ModelId, ProviderKind};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::Client;
use crate::error::Error;

/// The default base URL of each provider (`None` where the user must give one).
pub fn default_base_url(provider: ProviderKind) -> Option<&'static str> {
    match provider {
        ProviderKind::Github => Some("https://models.github.ai"),
        ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
        ProviderKind::Demo => Some(crate::demo::DEMO_BASE_URL),
        ProviderKind::Azure | ProviderKind::OpenAiCompatible => None,
    }
}

/// The endpoints the client calls.
pub(super) enum Route {
    Catalog,
    Chat,
    Embeddings,
}

const GITHUB_API_VERSION: &str = "2022-11-28";

impl Client {
    /// The URL of `route` for this provider, with `?api-version=` when one is set.
    pub(super) fn url(&self, route: Route) -> String {
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

    /// The headers every request carries: user agent, `Accept`, GitHub's API version, and the credential
    /// (`api-key` for Azure, a bearer token otherwise), marked sensitive.
    pub(super) fn build_headers(&self) -> Result<HeaderMap, Error> {
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

    /// The model id as this provider's wire wants it (GitHub's canonical `publisher/name`).
    pub(super) fn wire_model(&self, model: &str) -> Result<String, Error> {
        let model = self.inner.aliases.get(model).map_or(model, String::as_str);
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
}

pub(super) fn parse_uri(url: &str) -> Result<http::Uri, Error> {
    url.parse().map_err(|e| Error::InvalidRequest(format!("`{url}` is not a valid URL ({e}); check --base-url")))
}
