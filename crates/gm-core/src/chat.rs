//! Chat completions: the request, the whole response and the stream chunk.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::Extra;

/// Who wrote a message. Unknown roles are kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The newer name OpenAI uses for system instructions to reasoning models.
    Developer,
    /// The person asking.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
    /// Any other role a server uses, kept verbatim.
    Other(String),
}

impl Role {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Other(s) => s,
        }
    }

    /// Parses a role name case-insensitively (as gh-models does for prompt files).
    pub fn from_name(s: &str) -> Role {
        match s.to_ascii_lowercase().as_str() {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => Role::Other(s.to_string()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Role::from_name(&s))
    }
}

/// Message content: a plain string, or an array of typed parts (text, images, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts, as used for images and audio.
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text of the content: the string itself, or the text parts joined without separator.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }
}

impl From<String> for MessageContent {
    fn from(s: String) -> Self {
        MessageContent::Text(s)
    }
}

impl From<&str> for MessageContent {
    fn from(s: &str) -> Self {
        MessageContent::Text(s.to_string())
    }
}

/// One part of a multi-part message.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// `{"type":"text","text":…}`
    Text {
        /// The text.
        text: String,
    },
    /// `{"type":"image_url","image_url":{"url":…,"detail":…}}`
    ImageUrl {
        /// The image reference.
        image_url: ImageUrl,
    },
    /// Any other part (audio, files, …), kept verbatim.
    Other(Value),
}

/// An image given by URL or `data:` URI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// An `https:` URL or a `data:image/...;base64,` URI.
    pub url: String,
    /// `low`, `high` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KnownPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

impl Serialize for ContentPart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ContentPart::Text { text } => KnownPart::Text { text: text.clone() }.serialize(s),
            ContentPart::ImageUrl { image_url } => KnownPart::ImageUrl { image_url: image_url.clone() }.serialize(s),
            ContentPart::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match serde_json::from_value::<KnownPart>(v.clone()) {
            Ok(KnownPart::Text { text }) => Ok(ContentPart::Text { text }),
            Ok(KnownPart::ImageUrl { image_url }) => Ok(ContentPart::ImageUrl { image_url }),
            Err(_) => Ok(ContentPart::Other(v)),
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// What it says. `None` serializes as `null` (an assistant message that only calls tools).
    pub content: Option<MessageContent>,
    /// An optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For a `tool` message, the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Fields not modelled here, passed through.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatMessage {
    /// A message with the given role and text.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(MessageContent::Text(text.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Extra::new(),
        }
    }
    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(Role::System, text)
    }
    /// A developer message.
    pub fn developer(text: impl Into<String>) -> Self {
        Self::new(Role::Developer, text)
    }
    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, text)
    }
    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(Role::Assistant, text)
    }
    /// The message's text (empty when it has none).
    pub fn text(&self) -> String {
        self.content.as_ref().map(MessageContent::text).unwrap_or_default()
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `function` today.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
}

impl Tool {
    /// A function tool.
    pub fn function(name: impl Into<String>, description: impl Into<String>, parameters: Value) -> Self {
        Self {
            kind: "function".into(),
            function: FunctionDef {
                name: name.into(),
                description: Some(description.into()),
                parameters: Some(parameters),
                strict: None,
            },
        }
    }
}

/// A function definition: its name, description and JSON-Schema parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The parameters as a JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Whether the schema must be followed exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id, echoed in the `tool` message that answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Always `function` today.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The function called.
    pub function: FunctionCall,
    /// In stream deltas, which call this fragment belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

/// A function call: the name and the JSON arguments as a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name (absent in later stream fragments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The arguments, a JSON document as a string (a fragment of it in stream deltas).
    #[serde(default)]
    pub arguments: String,
}

/// How the model may use tools: `auto`, `required`, `none`, or a named function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `auto`, `required` or `none`.
    Mode(String),
    /// `{"type":"function","function":{"name":…}}`
    Named(Value),
}

/// The format the answer must take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON following a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// `response_format.json_schema`: a named JSON Schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// The schema's name.
    pub name: String,
    /// What the schema is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Whether the schema must be followed exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `stream_options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for a final chunk carrying `usage`.
    pub include_usage: bool,
}

/// `stop`: one sequence or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences (the documented form).
    Many(Vec<String>),
}

/// A chat completions request, with every documented field of GitHub Models and the common OpenAI ones.
///
/// Only the fields that are set are serialized; fields not modelled here go in `extra` and are sent as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model (GitHub: `publisher/name`; Azure: the deployment name).
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// In [-2, 2].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// The cap on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The cap on generated tokens for OpenAI reasoning models, which reject `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Output modalities, e.g. `["text"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities: Option<Vec<String>>,
    /// How many choices to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// In [-2, 2].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Text, any JSON object, or JSON following a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Best-effort determinism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Stream the answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options (requires `stream: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// How the model may use tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Nucleus sampling, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// An end-user id for abuse monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Fields not modelled here (`reasoning_effort`, `logprobs`, …), sent as given.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatRequest {
    /// A request with a model and messages and nothing else set.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        Self {
            model: model.into(),
            messages,
            frequency_penalty: None,
            max_tokens: None,
            max_completion_tokens: None,
            modalities: None,
            n: None,
            presence_penalty: None,
            response_format: None,
            seed: None,
            stream: None,
            stream_options: None,
            stop: None,
            temperature: None,
            tool_choice: None,
            tools: None,
            top_p: None,
            user: None,
            extra: Extra::new(),
        }
    }

    /// Sets `max_tokens`.
    pub fn with_max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Sets `temperature`.
    pub fn with_temperature(mut self, t: f64) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Sets `top_p`.
    pub fn with_top_p(mut self, p: f64) -> Self {
        self.top_p = Some(p);
        self
    }

    /// Whether the request asks for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

/// Token counts of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum, as the server reports it.
    #[serde(default)]
    pub total_tokens: u64,
    /// Breakdown of the prompt tokens (cached tokens, audio …), when the server sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<Value>,
    /// Breakdown of the completion tokens (reasoning tokens …), when the server sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<Value>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The assistant's message in a whole response (or in a chunk, which gh-models also accepts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseMessage {
    /// Normally `assistant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The answer; `null` when the model only calls tools.
    #[serde(default)]
    pub content: Option<String>,
    /// A refusal message, when the model refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One choice of a whole response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The choice's index.
    #[serde(default)]
    pub index: u32,
    /// The message.
    #[serde(default)]
    pub message: Option<ResponseMessage>,
    /// `stop`, `length`, `tool_calls`, `content_filter`, … or `null`.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Log probabilities, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Fields not modelled here (Azure `content_filter_results` …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A whole (non-streamed) chat completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// The completion id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `chat.completion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The model that answered, as the server names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The choices; usually one.
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The backend configuration fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// Fields not modelled here (Azure `prompt_filter_results` …).
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatCompletion {
    /// The text of the first choice (empty when there is none).
    pub fn text(&self) -> &str {
        self.choices.first().and_then(|c| c.message.as_ref()).and_then(|m| m.content.as_deref()).unwrap_or("")
    }

    /// The finish reason of the first choice.
    pub fn finish_reason(&self) -> Option<&str> {
        self.choices.first().and_then(|c| c.finish_reason.as_deref())
    }
}

/// The incremental part of a stream chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Present in the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The next piece of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A piece of a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Fragments of tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One choice of a stream chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// The choice's index.
    #[serde(default)]
    pub index: u32,
    /// The increment (OpenAI style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    /// A whole message inside a chunk, which gh-models also accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<ResponseMessage>,
    /// Set on the last chunk of the choice; `null` before.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One server-sent event of a streamed chat completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// The completion id (the same in every chunk; may be empty in Azure's first chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `chat.completion.chunk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The increments; may be empty (Azure's filter chunk, the final usage chunk).
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Token counts, usually only in the last chunk with `stream_options.include_usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatCompletionChunk {
    /// The text this chunk adds for the first choice (`delta.content`, or `message.content`).
    pub fn text(&self) -> &str {
        let Some(c) = self.choices.first() else { return "" };
        c.delta
            .as_ref()
            .and_then(|d| d.content.as_deref())
            .or_else(|| c.message.as_ref().and_then(|m| m.content.as_deref()))
            .unwrap_or("")
    }

    /// The finish reason this chunk carries for the first choice, if any.
    pub fn finish_reason(&self) -> Option<&str> {
        self.choices.first().and_then(|c| c.finish_reason.as_deref()).filter(|s| !s.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_serializes_only_set_fields() {
        let req = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("hi")]);
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"model":"openai/gpt-4.1","messages":[{"role":"user","content":"hi"}]})
        );
    }

    #[test]
    fn request_with_every_field_round_trips() {
        let v = json!({
            "model": "openai/gpt-4.1",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]},
                {"role": "tool", "content": "42", "tool_call_id": "call_1"}
            ],
            "frequency_penalty": 0.5, "max_tokens": 100, "modalities": ["text"], "presence_penalty": -0.5,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}},
            "seed": 7, "stream": true, "stream_options": {"include_usage": true}, "stop": ["\n\n"],
            "temperature": 0.2, "tool_choice": "auto",
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
            "top_p": 0.9, "reasoning_effort": "low"
        });
        let req: ChatRequest = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(req.messages[0].role, Role::Developer);
        assert!(matches!(&req.messages[1].content, Some(MessageContent::Parts(p)) if p.len() == 3));
        assert_eq!(req.messages[1].text(), "what is this?");
        assert_eq!(req.extra["reasoning_effort"], "low");
        assert_eq!(serde_json::to_value(&req).unwrap(), v);
    }

    #[test]
    fn response_formats() {
        for v in [json!({"type":"text"}), json!({"type":"json_object"})] {
            let f: ResponseFormat = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(f).unwrap(), v);
        }
    }

    #[test]
    fn lenient_chunk() {
        let c: ChatCompletionChunk =
            serde_json::from_str(r#"{"choices":[],"created":0,"id":"","prompt_filter_results":[{"prompt_index":0}]}"#)
                .unwrap();
        assert!(c.choices.is_empty());
        assert_eq!(c.text(), "");
        assert!(c.extra.contains_key("prompt_filter_results"));
        let c: ChatCompletionChunk = serde_json::from_str(
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"usage":null}"#,
        )
        .unwrap();
        assert_eq!(c.text(), "Hel");
        assert_eq!(c.finish_reason(), None);
    }
}
