//! Wire types and shared vocabulary for the gm workspace.
//!
//! Use this crate if you need the request and response types of GitHub Models and the OpenAI-compatible
//! APIs (chat completions whole and streamed, embeddings, the model catalog, both error envelopes) without
//! an HTTP stack, or the small shared pieces every other gm crate speaks: model ids, provider kinds,
//! latency and throughput summaries, the [`Clock`] through which time enters, the one token estimate
//! ([`estimate_tokens`]), and the [`judge`] contract between gm's judge requests and the demo provider.
//!
//! Every response type is lenient: unknown fields are kept in `extra`, optional fields may be missing or
//! `null`, and a stream chunk may have no choices. Every request type serializes only the fields that are set.
//!
//! # Example
//! ```
//! use gm_core::{ChatRequest, ChatMessage, ChatCompletion};
//!
//! let req = ChatRequest::new("openai/gpt-4.1", vec![
//!     ChatMessage::system("You are terse."),
//!     ChatMessage::user("What is the capital of France?"),
//! ]).with_max_tokens(50);
//! let body = serde_json::to_string(&req).unwrap();
//! assert!(body.starts_with(r#"{"model":"openai/gpt-4.1","messages":[{"role":"system""#));
//!
//! let resp: ChatCompletion = serde_json::from_str(
//!     r#"{"choices":[{"message":{"role":"assistant","content":"Paris."},"finish_reason":null}]}"#,
//! ).unwrap();
//! assert_eq!(resp.text(), "Paris.");
//! ```
//!
//! # Crate features
//! None: this crate is plain data with serde.

pub mod busy;
mod catalog;
mod chat;
mod clock;
mod embeddings;
mod error_body;
pub mod judge;
pub mod metrics;
mod model_id;
mod provider;
mod tokens;

pub use catalog::{closest_ids, CatalogEntry, ModelLimits, OpenAiModel, OpenAiModelList};
pub use chat::{
    ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, Choice, ChunkChoice, ContentPart, Delta,
    FunctionCall, FunctionDef, ImageUrl, JsonSchemaFormat, MessageContent, ResponseFormat, ResponseMessage, Role,
    StopSequences, StreamOptions, Tool, ToolCall, ToolChoice, Usage,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use embeddings::{Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, EmbeddingVector};
pub use error_body::ErrorBody;
pub use model_id::{ModelId, ModelIdError};
pub use provider::{ProviderKind, UnknownProvider};
pub use tokens::{chat_input_tokens, estimate_tokens, truncate_to_tokens};

/// A JSON object of fields this crate does not model, kept so nothing a server sends is lost.
pub type Extra = serde_json::Map<String, serde_json::Value>;
