//! Pre-flight token counts, so a request over a per-request cap is refused before it is sent.
//!
//! With the `tokenizer` feature, OpenAI-family models are counted exactly with their BPE encoding
//! (`o200k_base` for gpt-4o, gpt-4.1, gpt-4.5, gpt-5, the o-series and gpt-oss; `cl100k_base` for gpt-4 and
//! gpt-3.5), using tiktoken-rs, whose encodings are compiled into the binary (no network at run time).
//! Other models (Llama, Phi, Mistral, DeepSeek, …) use other tokenizers; they are counted with `cl100k_base`
//! and the count is raised by a quarter, since SentencePiece tokenizers with smaller vocabularies produce up
//! to that many more tokens for English text.
//!
//! Without the feature, every model gets [`gm_core::estimate_tokens`], the one estimate of the workspace (the
//! demo provider and the emulator report usage with it too): one token per three bytes of UTF-8, rounded up.
//! English averages about four bytes a token, code three to four, and most CJK characters (three bytes) are
//! about one token each.
//!
//! An estimate is held against a per-request cap at its lower bound ([`TokenCount::input_at_least`]), so
//! an estimate never refuses a request the server would take; token budgets reserve the full estimate.
//!
//! Both ways add OpenAI's chat overhead as [`gm_core::chat_input_tokens`] counts it: 3 tokens per message, 1
//! more for a `name`, and 3 that prime the reply. Images count 85 tokens at `detail: low` and 765 otherwise (a
//! 1024×1024 image at high detail); tool definitions and other parts count as their JSON text.

pub use gm_core::estimate_tokens;
use gm_core::ChatRequest;

/// How a [`TokenCount`] was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CountMethod {
    /// Counted exactly with the model's encoding (`o200k_base` or `cl100k_base`).
    Exact(&'static str),
    /// Counted with an OpenAI encoding and raised by a quarter, for a model with another tokenizer.
    Scaled(&'static str),
    /// Estimated with [`gm_core::estimate_tokens`]: one token per three bytes, rounded up.
    Bytes,
    /// Given by the caller.
    Given,
}

impl CountMethod {
    /// Whether the count is the exact number the server will see (or was given by the caller).
    pub fn is_exact(self) -> bool {
        matches!(self, CountMethod::Exact(_) | CountMethod::Given)
    }
}

/// The tokens a request uses: its input (counted or estimated) and the output it asks for at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenCount {
    /// Input tokens, including the chat overhead.
    pub input: u64,
    /// The output tokens asked for at most (`max_completion_tokens` or `max_tokens`, times `n`); 0 when
    /// the request sets no cap.
    pub output: u64,
    /// How `input` was obtained.
    pub method: CountMethod,
}

impl TokenCount {
    /// No tokens: for limiters that only count requests.
    pub const ZERO: TokenCount = TokenCount { input: 0, output: 0, method: CountMethod::Given };

    /// A count given by the caller.
    pub const fn new(input: u64, output: u64) -> Self {
        Self { input, output, method: CountMethod::Given }
    }

    /// The fewest input tokens the request can have: the count itself when exact; for an estimate, the
    /// count before it was raised (`Scaled`: four fifths) or half the byte estimate (`Bytes`: one token per
    /// six bytes, which only runs of long words or repeated characters go below).
    pub const fn input_at_least(&self) -> u64 {
        match self.method {
            CountMethod::Exact(_) | CountMethod::Given => self.input,
            CountMethod::Scaled(_) => self.input / 5 * 4 + (self.input % 5) * 4 / 5,
            CountMethod::Bytes => self.input / 2,
        }
    }

    /// What a token budget reserves for the request: input plus output.
    pub const fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

impl Default for TokenCount {
    fn default() -> Self {
        Self::ZERO
    }
}

impl From<u64> for TokenCount {
    /// A total given by the caller, counted as input.
    fn from(input: u64) -> Self {
        Self::new(input, 0)
    }
}

/// Counts (or estimates) the input tokens of a chat request and reads the output it asks for.
///
/// ```
/// use gm_core::{ChatMessage, ChatRequest};
/// let req = ChatRequest::new("openai/gpt-4o", vec![ChatMessage::user("Hello there")]).with_max_tokens(100);
/// let n = gm_limits::count_tokens(&req);
/// assert_eq!(n.output, 100);
/// assert!(n.input >= 8);
/// ```
pub fn count_tokens(req: &ChatRequest) -> TokenCount {
    let counter = Counter::for_model(&req.model);
    let input = gm_core::chat_input_tokens(req, |text| counter.text(text));
    let per_choice = req.max_completion_tokens.or(req.max_tokens).map_or(0, u64::from);
    let output = per_choice * u64::from(req.n.unwrap_or(1).max(1));
    TokenCount { input, output, method: counter.method }
}

/// Counts (or estimates) the tokens of one text for a model, without any chat overhead.
pub fn count_text_tokens(model: &str, text: &str) -> u64 {
    Counter::for_model(model).text(text)
}

/// The encoding family of a model, from its name (the publisher prefix is ignored).
fn encoding_for(model: &str) -> Option<&'static str> {
    let lower = model.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let name = name.strip_prefix("ft:").unwrap_or(name);
    let o200k = ["gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4", "codex"];
    let cl100k = ["gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002"];
    if o200k.iter().any(|p| name.starts_with(p)) {
        Some("o200k_base")
    } else if cl100k.iter().any(|p| name.starts_with(p)) {
        Some("cl100k_base")
    } else {
        None
    }
}

struct Counter {
    method: CountMethod,
}

impl Counter {
    fn for_model(model: &str) -> Self {
        let method = match encoding_for(model) {
            _ if !cfg!(feature = "tokenizer") => CountMethod::Bytes,
            Some(enc) => CountMethod::Exact(enc),
            None => CountMethod::Scaled("cl100k_base"),
        };
        Self { method }
    }

    fn text(&self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        match self.method {
            #[cfg(feature = "tokenizer")]
            CountMethod::Exact(enc) => bpe(enc).encode_with_special_tokens(text).len() as u64,
            #[cfg(feature = "tokenizer")]
            CountMethod::Scaled(enc) => (bpe(enc).encode_with_special_tokens(text).len() as u64 * 5).div_ceil(4),
            _ => estimate_tokens(text),
        }
    }
}

#[cfg(feature = "tokenizer")]
fn bpe(encoding: &str) -> &'static tiktoken_rs::CoreBPE {
    if encoding == "o200k_base" {
        tiktoken_rs::o200k_base_singleton()
    } else {
        tiktoken_rs::cl100k_base_singleton()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gm_core::ChatMessage;

    #[test]
    fn encodings_by_model() {
        assert_eq!(encoding_for("openai/gpt-4o-mini"), Some("o200k_base"));
        assert_eq!(encoding_for("gpt-4.1"), Some("o200k_base"));
        assert_eq!(encoding_for("azureml/openai/o3-mini"), Some("o200k_base"));
        assert_eq!(encoding_for("openai/gpt-5-chat"), Some("o200k_base"));
        assert_eq!(encoding_for("gpt-4-turbo"), Some("cl100k_base"));
        assert_eq!(encoding_for("gpt-3.5-turbo"), Some("cl100k_base"));
        assert_eq!(encoding_for("meta/llama-3.3-70b-instruct"), None);
    }

    #[test]
    fn output_is_max_tokens_times_n() {
        let mut req = ChatRequest::new("x", vec![ChatMessage::user("hi")]).with_max_tokens(100);
        req.n = Some(3);
        assert_eq!(count_tokens(&req).output, 300);
        req.max_completion_tokens = Some(10);
        assert_eq!(count_tokens(&req).output, 30);
        assert_eq!(count_tokens(&ChatRequest::new("x", vec![])).output, 0);
    }

    #[test]
    fn the_byte_estimate_is_conservative() {
        // A 3000-byte prompt is estimated at 1000 tokens at least, for any model.
        let req = ChatRequest::new("mistral-ai/mistral-small", vec![ChatMessage::user("word ".repeat(600))]);
        assert!(count_tokens(&req).input >= 600);
    }

    /// Without an encoding the limiter reserves what the demo provider and the emulator report as usage.
    #[cfg(not(feature = "tokenizer"))]
    #[test]
    fn without_an_encoding_every_model_gets_the_one_estimate() {
        let req = ChatRequest::new("openai/gpt-4o", vec![ChatMessage::system("Be terse."), ChatMessage::user("hi")]);
        let n = count_tokens(&req);
        assert_eq!(n.method, CountMethod::Bytes);
        assert_eq!(n.input, gm_core::chat_input_tokens(&req, gm_core::estimate_tokens));
        assert_eq!(count_text_tokens("meta/llama-3.3-70b-instruct", "東京"), gm_core::estimate_tokens("東京"));
    }

    #[cfg(feature = "tokenizer")]
    #[test]
    fn exact_counts_match_openai() {
        // "hello world" is two tokens in both encodings; OpenAI's cookbook counts a one-message
        // conversation as 3 (priming) + 3 (message) + 1 (role) + content.
        let req = ChatRequest::new("openai/gpt-4o", vec![ChatMessage::user("hello world")]);
        let n = count_tokens(&req);
        assert_eq!(n.method, CountMethod::Exact("o200k_base"));
        assert_eq!(n.input, 3 + 3 + 1 + 2);
        assert_eq!(count_text_tokens("gpt-4", "hello world"), 2);
        let scaled = count_tokens(&ChatRequest::new("meta/llama-3.3-70b-instruct", vec![ChatMessage::user("hello")]));
        assert_eq!(scaled.method, CountMethod::Scaled("cl100k_base"));
    }
}
