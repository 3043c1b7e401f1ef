use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A model identifier.
///
/// GitHub Models names models `publisher/name` (`openai/gpt-4.1`), optionally `provider/publisher/name`,
/// and `custom/...` for models outside the catalog. OpenAI-style providers use bare names (`gpt-4o-mini`,
/// an Azure deployment name, `llama3.2:1b` on Ollama), which are accepted too.
///
/// The canonical form, used for comparison, hashing and the GitHub wire, is lower-case with spaces replaced
/// by `-` (as gh-models does). [`ModelId::as_str`] keeps what the user wrote, for providers where case matters.
///
/// ```
/// use gm_core::ModelId;
/// let id: ModelId = "OpenAI/GPT-4.1 mini".parse().unwrap();
/// assert_eq!(id.canonical(), "openai/gpt-4.1-mini");
/// assert_eq!(id.publisher(), Some("openai"));
/// assert_eq!(id.name(), "gpt-4.1-mini");
/// assert!("openai/".parse::<ModelId>().is_err());
/// ```
#[derive(Clone, Eq)]
pub struct ModelId {
    raw: String,
    canonical: String,
}

/// Why a string is not a model id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelIdError {
    /// The id was empty or only whitespace.
    #[error("the model id is empty; give one like openai/gpt-4.1-mini")]
    Empty,
    /// A `/`-separated part was empty, as in `openai/` or `/gpt-4.1`.
    #[error("model id `{0}` has an empty part; use publisher/name, e.g. openai/gpt-4.1-mini")]
    EmptySegment(String),
    /// More than three `/`-separated parts (outside `custom/...`).
    #[error("model id `{0}` has too many parts; use publisher/name or provider/publisher/name")]
    TooManySegments(String),
    /// The GitHub provider needs a publisher.
    #[error("model id `{0}` has no publisher; GitHub Models ids look like publisher/name, e.g. openai/{0}")]
    MissingPublisher(String),
    /// A control character or other character no provider accepts.
    #[error("model id `{0}` contains a control character")]
    InvalidCharacter(String),
}

impl ModelId {
    /// Parses an id in any of the accepted forms (see the type docs).
    pub fn parse(s: &str) -> Result<Self, ModelIdError> {
        let raw = s.trim();
        if raw.is_empty() {
            return Err(ModelIdError::Empty);
        }
        if raw.chars().any(char::is_control) {
            return Err(ModelIdError::InvalidCharacter(raw.escape_debug().to_string()));
        }
        let parts: Vec<&str> = raw.split('/').collect();
        let is_custom = parts[0].eq_ignore_ascii_case("custom");
        if parts.iter().any(|p| p.trim().is_empty()) {
            return Err(ModelIdError::EmptySegment(raw.to_string()));
        }
        if !is_custom && parts.len() > 3 {
            return Err(ModelIdError::TooManySegments(raw.to_string()));
        }
        let canonical = raw.to_lowercase().replace(' ', "-");
        Ok(Self { raw: raw.to_string(), canonical })
    }

    /// Parses an id for GitHub Models, which needs `publisher/name` (or `custom/...`).
    pub fn parse_github(s: &str) -> Result<Self, ModelIdError> {
        let id = Self::parse(s)?;
        if id.publisher().is_none() {
            return Err(ModelIdError::MissingPublisher(id.raw));
        }
        Ok(id)
    }

    /// The id as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The canonical form: lower-case, spaces replaced by `-`.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Whether this is a `custom/...` id, which skips catalog validation.
    pub fn is_custom(&self) -> bool {
        self.canonical.starts_with("custom/")
    }

    /// The publisher part (`openai` in `openai/gpt-4.1`, or in `azureml/openai/gpt-4.1`), if any.
    pub fn publisher(&self) -> Option<&str> {
        let parts: Vec<&str> = self.canonical.split('/').collect();
        match parts.len() {
            1 => None,
            2 => Some(parts[0]),
            _ if self.is_custom() => Some("custom"),
            _ => Some(parts[1]),
        }
    }

    /// The model name: the last `/`-separated part of the canonical form.
    pub fn name(&self) -> &str {
        self.canonical.rsplit('/').next().unwrap_or(&self.canonical)
    }
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelId({:?})", self.raw)
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl PartialEq for ModelId {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl std::hash::Hash for ModelId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.canonical.hash(state);
    }
}

impl FromStr for ModelId {
    type Err = ModelIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ModelId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for ModelId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let id = ModelId::parse("openai/gpt-4.1").unwrap();
        assert_eq!((id.publisher(), id.name()), (Some("openai"), "gpt-4.1"));
        let id = ModelId::parse("azureml/Meta/Llama 3").unwrap();
        assert_eq!(id.canonical(), "azureml/meta/llama-3");
        assert_eq!(id.publisher(), Some("meta"));
        let id = ModelId::parse("custom/my-org/my/fine-tune").unwrap();
        assert!(id.is_custom());
        assert_eq!(id.publisher(), Some("custom"));
        let id = ModelId::parse("llama3.2:1b").unwrap();
        assert_eq!((id.publisher(), id.name()), (None, "llama3.2:1b"));
    }

    #[test]
    fn rejected_forms() {
        assert_eq!(ModelId::parse("  "), Err(ModelIdError::Empty));
        assert!(matches!(ModelId::parse("/gpt-4.1"), Err(ModelIdError::EmptySegment(_))));
        assert!(matches!(ModelId::parse("a/b/c/d"), Err(ModelIdError::TooManySegments(_))));
        assert!(matches!(ModelId::parse_github("gpt-4.1"), Err(ModelIdError::MissingPublisher(_))));
        assert!(ModelId::parse_github("gpt-4.1").unwrap_err().to_string().contains("openai/gpt-4.1"));
    }

    #[test]
    fn equality_is_canonical() {
        assert_eq!(ModelId::parse("OpenAI/GPT-4o").unwrap(), ModelId::parse("openai/gpt-4o").unwrap());
    }
}
