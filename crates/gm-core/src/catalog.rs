//! The model catalog: GitHub's `/catalog/models` entries and OpenAI's `/models` list.

use serde::{Deserialize, Serialize};

use crate::Extra;

/// Per-request token limits of a model, as the catalog states them (model limits, not tier quotas).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelLimits {
    /// The context window for input.
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    /// The most tokens one answer may have (`null` for embedding models).
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
}

/// One model of the catalog, with every field GitHub documents. No field is required by the schema,
/// so all are optional or default to empty; unknown fields are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// `publisher/name`, e.g. `openai/gpt-4.1`.
    #[serde(default)]
    pub id: String,
    /// The display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The publisher's display name (`OpenAI`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// The registry (`azure-openai`, `azureml`, `azureml-meta`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// A one-line summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The rate-limit tier (`low`, `high`, `embeddings`, `custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_tier: Option<String>,
    /// The marketplace page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    /// The model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Capabilities (`streaming`, `tool-calling`, `reasoning`, …).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Token limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ModelLimits>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Input modalities (`text`, `image`, `audio`).
    #[serde(default)]
    pub supported_input_modalities: Vec<String>,
    /// Output modalities (`text`, `embeddings`).
    #[serde(default)]
    pub supported_output_modalities: Vec<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl CatalogEntry {
    /// A chat model takes and gives text (gh-models' rule for `list`). An OpenAI-style `/models` list says
    /// nothing of modalities: there a model whose id names embeddings (`text-embedding-3-small`,
    /// `nomic-embed-text`, `bge-m3`) is not a chat model.
    pub fn is_chat_model(&self) -> bool {
        let has_text = |v: &[String]| v.iter().any(|m| m == "text");
        if self.supported_input_modalities.is_empty() && self.supported_output_modalities.is_empty() {
            let id = self.id.to_lowercase();
            let name = id.rsplit('/').next().unwrap_or(&id);
            let embeds = name.contains("embed") || name.starts_with("bge-") || name.starts_with("e5-");
            return !embeds;
        }
        has_text(&self.supported_input_modalities) && has_text(&self.supported_output_modalities)
    }

    /// Whether the catalog says the model can stream.
    pub fn supports_streaming(&self) -> Option<bool> {
        if self.capabilities.is_empty() {
            None
        } else {
            Some(self.capabilities.iter().any(|c| c == "streaming"))
        }
    }
}

/// One model of an OpenAI-style `/models` list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenAiModel {
    /// The model id (`gpt-4o-mini`, `llama3.2:1b`, an Azure deployment).
    pub id: String,
    /// `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The owner (`openai`, `system`, `library`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An OpenAI-style `/models` response: `{"object":"list","data":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenAiModelList {
    /// `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The models.
    #[serde(default)]
    pub data: Vec<OpenAiModel>,
}

impl From<OpenAiModel> for CatalogEntry {
    fn from(m: OpenAiModel) -> Self {
        let mut extra = m.extra;
        if let Some(created) = m.created {
            extra.insert("created".into(), created.into());
        }
        CatalogEntry { id: m.id.clone(), name: Some(m.id), publisher: m.owned_by, extra, ..Default::default() }
    }
}

/// The ids of `known` closest to `wanted`, best first, at most `max`: those that contain its name (the part
/// after the last `/`, case ignored, when it has two characters or more), then the nearest by edit distance
/// of the name, within a third of its length. Unknown-model errors suggest these.
///
/// ```
/// let known = ["openai/gpt-4.1", "openai/gpt-4.1-mini", "meta/llama-3.3-70b-instruct", "openai/text-embedding-3-small"];
/// assert_eq!(gm_core::closest_ids("gpt-4.1", known, 3), ["openai/gpt-4.1", "openai/gpt-4.1-mini"]);
/// assert_eq!(gm_core::closest_ids("openai/gpt-4.2", known, 3), ["openai/gpt-4.1"]);
/// assert!(gm_core::closest_ids("nope/x", known, 3).is_empty());
/// ```
pub fn closest_ids<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>, max: usize) -> Vec<String> {
    let wanted = wanted.trim().to_lowercase();
    let name = wanted.rsplit('/').next().unwrap_or(&wanted);
    if name.is_empty() {
        return Vec::new();
    }
    let mut ranked: Vec<(usize, usize, &str)> = known
        .into_iter()
        .enumerate()
        .filter_map(|(order, id)| {
            let lower = id.to_lowercase();
            let their = lower.rsplit('/').next().unwrap_or(&lower);
            if name.chars().nth(1).is_some() && lower.contains(name) {
                return Some((0, order, id));
            }
            let d = edit_distance(name, their);
            (d <= name.chars().count().div_ceil(3)).then_some((d, order, id))
        })
        .collect();
    ranked.sort();
    ranked.into_iter().take(max).map(|(_, _, id)| id.to_string()).collect()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedding_model_of_an_openai_style_list_is_not_a_chat_model() {
        let listed = |id: &str| CatalogEntry::from(OpenAiModel { id: id.into(), ..Default::default() });
        for id in ["text-embedding-3-small", "openai/text-embedding-3-large", "nomic-embed-text:latest", "bge-m3"] {
            assert!(!listed(id).is_chat_model(), "{id}");
        }
        for id in ["gemma-3-270m", "llama3.2:latest", "gpt-4o-mini"] {
            assert!(listed(id).is_chat_model(), "{id}");
        }
    }
}
