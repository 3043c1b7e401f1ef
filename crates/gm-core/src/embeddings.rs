//! Embeddings: request and response.

use serde::{Deserialize, Serialize};

use crate::Extra;

/// The text to embed: one string or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One string.
    One(String),
    /// Several strings, each embedded separately.
    Many(Vec<String>),
}

impl EmbeddingInput {
    /// The inputs as a slice of strings.
    pub fn as_vec(&self) -> Vec<&str> {
        match self {
            EmbeddingInput::One(s) => vec![s.as_str()],
            EmbeddingInput::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// An embeddings request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The model, e.g. `openai/text-embedding-3-small`.
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// The output dimensions (text-embedding-3 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// An end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl EmbeddingRequest {
    /// A request with a model and input and nothing else set.
    pub fn new(model: impl Into<String>, input: EmbeddingInput) -> Self {
        Self { model: model.into(), input, encoding_format: None, dimensions: None, user: None, extra: Extra::new() }
    }
}

/// An embedding vector: floats, or a base64 string when `encoding_format` was `base64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// The vector.
    Float(Vec<f32>),
    /// Little-endian f32s, base64-encoded.
    Base64(String),
}

/// One embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// `embedding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The position of the input it embeds.
    #[serde(default)]
    pub index: u32,
    /// The vector.
    pub embedding: EmbeddingVector,
}

/// Token counts of an embeddings request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Tokens in the input.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens billed.
    #[serde(default)]
    pub total_tokens: u64,
}

/// An embeddings response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// `list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// One embedding per input.
    #[serde(default)]
    pub data: Vec<Embedding>,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingUsage>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}
