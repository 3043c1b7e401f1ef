//! What a quota belongs to: a provider, a credential (by fingerprint) and a model.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::LimitError;

/// A short, stable fingerprint of a credential: the first 16 hex digits of its SHA-256.
///
/// Quotas are per token, so keys need to tell tokens apart, but a token must never be stored, printed or
/// written to the shared state file. The fingerprint is one-way and the same in every process and release.
///
/// ```
/// let f = gm_limits::fingerprint("ghp_example");
/// assert_eq!(f.len(), 16);
/// assert_eq!(f, gm_limits::fingerprint("ghp_example"));
/// assert!(!f.contains("ghp"));
/// ```
pub fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The key a quota is counted under. Written as `provider:credential:model`
/// (`github:3f1c…:openai/gpt-4.1`), which [`FromStr`] reads back; the model may itself contain `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LimitKey {
    /// The provider's name (`github`, `azure`, `openai`, …).
    pub provider: String,
    /// The credential's [`fingerprint`], or `-` when there is none.
    pub credential: String,
    /// The model id, as the provider names it (use one spelling per model, e.g. the canonical id).
    pub model: String,
}

impl LimitKey {
    /// A key from a provider, a credential fingerprint and a model.
    pub fn new(provider: impl Into<String>, credential: impl Into<String>, model: impl Into<String>) -> Self {
        Self { provider: provider.into(), credential: credential.into(), model: model.into() }
    }

    /// A key for a token: the token is fingerprinted at once and not kept.
    pub fn for_token(provider: impl Into<String>, token: &str, model: impl Into<String>) -> Self {
        Self::new(provider, fingerprint(token), model)
    }

    /// A key for a provider used without a credential (a local server).
    pub fn anonymous(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self::new(provider, "-", model)
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.provider, self.credential, self.model)
    }
}

impl FromStr for LimitKey {
    type Err = LimitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(p), Some(c), Some(m)) if !p.is_empty() && !c.is_empty() && !m.is_empty() => {
                Ok(LimitKey::new(p, c, m))
            }
            _ => Err(LimitError::InvalidSpec {
                spec: s.to_string(),
                part: s.to_string(),
                why: "a limit key has three parts".into(),
                fix: "write it as provider:credential:model, as `gm limits status` prints it".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_one_way() {
        // SHA-256("abc") begins ba7816bf8f01cfea.
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea");
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
        let k = LimitKey::for_token("github", "ghp_secret_token", "openai/gpt-4.1");
        assert!(!format!("{k:?}{k}").contains("secret"));
    }

    #[test]
    fn keys_round_trip_as_text() {
        let k = LimitKey::new("openai-compatible", "-", "llama3.2:1b");
        assert_eq!(k.to_string(), "openai-compatible:-:llama3.2:1b");
        assert_eq!(k.to_string().parse::<LimitKey>().unwrap(), k);
        let e = "github:abc".parse::<LimitKey>().unwrap_err().to_string();
        assert!(e.contains("provider:credential:model"), "{e}");
    }
}
