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
    /// A chat model takes and gives text (gh-models' rule for `list`).
    pub fn is_chat_model(&self) -> bool {
        let has_text = |v: &[String]| v.iter().any(|m| m == "text");
        (self.supported_input_modalities.is_empty() && self.supported_output_modalities.is_empty())
            || (has_text(&self.supported_input_modalities) && has_text(&self.supported_output_modalities))
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
