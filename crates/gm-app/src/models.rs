//! The model catalog and the credential in use.

use std::sync::Arc;

use gm_core::{CatalogEntry, ProviderKind};
use serde::Serialize;

use crate::error::Error;
use crate::session::Session;

/// A provider's catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The provider that answered.
    pub provider: ProviderKind,
    /// Every model it offers, chat or not, in its order.
    pub models: Arc<Vec<CatalogEntry>>,
}

impl Catalog {
    /// The chat models, by id (case ignored).
    pub fn chat_models(&self) -> Vec<&CatalogEntry> {
        let mut chat: Vec<&CatalogEntry> = self.models.iter().filter(|m| m.is_chat_model()).collect();
        chat.sort_by_key(|m| m.id.to_lowercase());
        chat
    }
}

/// Which provider and credential a session uses, the secret redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthStatus {
    /// The provider.
    #[serde(serialize_with = "provider_name")]
    pub provider: ProviderKind,
    /// Why it was chosen.
    pub reason: String,
    /// The base URL requests go to, when there is one.
    pub base_url: Option<String>,
    /// The credential, when one was found.
    pub credential: Option<CredentialStatus>,
    /// Whether the provider needs a credential.
    pub credential_required: bool,
    /// How to give it one: the variable to set.
    pub credential_hint: String,
}

/// Where a credential came from, and its redacted form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialStatus {
    /// Where it was found (`the GITHUB_TOKEN environment variable`).
    pub source: String,
    /// The well-known prefix and the length, never the secret (`ghp_*** (40 chars)`).
    pub token: String,
}

fn provider_name<S: serde::Serializer>(p: &ProviderKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

impl Session {
    /// The provider's catalog (the client keeps it for later calls). Opens no state file.
    pub async fn models(&self) -> Result<Catalog, Error> {
        let client = self.catalog_client()?;
        Ok(Catalog { provider: client.provider(), models: client.models().await? })
    }

    /// One model of the catalog by its id (case ignored; spaces read as dashes). An id the catalog does not
    /// hold is an [`Error::UnknownModel`] that suggests the closest ids ([`gm_core::closest_ids`]).
    pub async fn model(&self, id: &str) -> Result<CatalogEntry, Error> {
        let catalog = self.models().await?;
        let wanted = id.trim().to_lowercase().replace(' ', "-");
        if let Some(m) = catalog.models.iter().find(|m| m.id.to_lowercase() == wanted) {
            return Ok(m.clone());
        }
        let suggestions = gm_core::closest_ids(&wanted, catalog.models.iter().map(|m| m.id.as_str()), 5);
        Err(Error::UnknownModel { model: id.to_string(), provider: catalog.provider, suggestions })
    }

    /// Before a run on the demo provider, which answers only its catalog's models: every model the run would
    /// ask is there, else an [`Error::UnknownModel`] with the closest ids, before a run is begun in the store.
    /// Other providers answer for their own catalogs.
    pub(crate) fn check_demo_models<'a>(
        &self,
        client: &gm_http::Client,
        models: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Error> {
        if client.provider() != ProviderKind::Demo {
            return Ok(());
        }
        match models.into_iter().find(|m| gm_http::demo::demo_model(m).is_none()) {
            None => Ok(()),
            Some(model) => Err(Error::UnknownModel {
                model: model.to_string(),
                provider: ProviderKind::Demo,
                suggestions: gm_core::closest_ids(model, gm_http::demo::DEMO_MODELS.iter().map(|(id, _, _)| *id), 5),
            }),
        }
    }

    /// The provider, where its credential comes from (redacted) and the base URL. Opens nothing.
    pub fn auth_status(&self) -> AuthStatus {
        let c = self.config();
        let base_url = c.base_url.clone().or_else(|| gm_http::default_base_url(c.provider).map(str::to_string));
        AuthStatus {
            provider: c.provider,
            reason: c.provider_reason.clone(),
            base_url,
            credential: c
                .credential
                .as_ref()
                .map(|cred| CredentialStatus { source: cred.source().to_string(), token: cred.redacted() }),
            credential_required: matches!(
                c.provider,
                ProviderKind::Github | ProviderKind::OpenAi | ProviderKind::Azure
            ),
            credential_hint: c.credential_hint(),
        }
    }
}
