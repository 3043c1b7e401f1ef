//! The token estimate every gm crate uses where no tokenizer counts, and OpenAI's chat overhead.
//!
//! One estimate serves the limiter (gm-limits without its `tokenizer` feature, and for budgets of models it has
//! no encoding for), the demo provider's and the emulator's `usage` and the emulator's input cap, so the
//! numbers a limiter reserves and the numbers those servers report are computed the same way.

use crate::{ChatMessage, ChatRequest, ContentPart, MessageContent};

/// Estimates the tokens of `text`: one per three bytes of UTF-8, rounded up.
///
/// Conservative by design: English averages about four bytes a token, code three to four, and most CJK
/// characters (three bytes) are about one token each, so the estimate is rarely below the count of a real
/// tokenizer and seldom more than a third above it.
///
/// ```
/// assert_eq!(gm_core::estimate_tokens(""), 0);
/// assert_eq!(gm_core::estimate_tokens("Hello there"), 4);
/// assert_eq!(gm_core::estimate_tokens("東京"), 2);
/// ```
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(3)
}

/// The longest prefix of `text` whose [`estimate_tokens`] is at most `max`: what a server that stops at
/// `max_tokens` sends.
///
/// ```
/// assert_eq!(gm_core::truncate_to_tokens("The answer is 42.", 2), "The an");
/// assert_eq!(gm_core::truncate_to_tokens("short", 9), "short");
/// ```
pub fn truncate_to_tokens(text: &str, max: u64) -> &str {
    let mut end = usize::try_from(max.saturating_mul(3)).unwrap_or(usize::MAX).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Tokens an image costs at `detail: low`.
const IMAGE_LOW: u64 = 85;
/// Tokens an image costs otherwise (a 1024×1024 image at high detail).
const IMAGE_HIGH: u64 = 765;

/// The input tokens of a chat request, counting each text with `count`: OpenAI's chat overhead (3 tokens per
/// message, 1 more for a `name`, 3 that prime the reply, 3 per tool call, 8 per tool definition) plus the
/// counted texts: role, name, content, tool calls and ids, and tool definitions as their JSON text. Images count
/// 85 tokens at `detail: low` and 765 otherwise.
///
/// With [`estimate_tokens`] as `count` this is the estimate of a whole request; gm-limits passes its tokenizer.
///
/// ```
/// use gm_core::{chat_input_tokens, estimate_tokens, ChatMessage, ChatRequest};
///
/// let req = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("Hello there")]);
/// // 3 priming + 3 for the message + "user" (2) + "Hello there" (4)
/// assert_eq!(chat_input_tokens(&req, estimate_tokens), 12);
/// ```
pub fn chat_input_tokens(req: &ChatRequest, mut count: impl FnMut(&str) -> u64) -> u64 {
    let mut n: u64 = 3;
    for m in &req.messages {
        n += message_tokens(m, &mut count);
    }
    for t in req.tools.iter().flatten() {
        // A tool that cannot be encoded only loses precision in an estimate; count its overhead alone.
        n += count(&serde_json::to_string(t).unwrap_or_default()) + 8;
    }
    n
}

fn message_tokens(m: &ChatMessage, count: &mut impl FnMut(&str) -> u64) -> u64 {
    let mut n = 3 + count(m.role.as_str());
    if let Some(name) = &m.name {
        n += 1 + count(name);
    }
    match &m.content {
        Some(MessageContent::Text(t)) => n += count(t),
        Some(MessageContent::Parts(parts)) => {
            for p in parts {
                n += match p {
                    ContentPart::Text { text } => count(text),
                    ContentPart::ImageUrl { image_url } if image_url.detail.as_deref() == Some("low") => IMAGE_LOW,
                    ContentPart::ImageUrl { .. } => IMAGE_HIGH,
                    ContentPart::Other(v) => count(&v.to_string()),
                };
            }
        }
        None => {}
    }
    for c in m.tool_calls.iter().flatten() {
        n += count(c.function.name.as_deref().unwrap_or("")) + count(&c.function.arguments) + 3;
    }
    if let Some(id) = &m.tool_call_id {
        n += count(id);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageUrl;

    #[test]
    fn the_estimate_is_a_token_per_three_bytes_rounded_up() {
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens("abcd"), 2);
        // Bytes, not characters: three CJK characters are nine bytes.
        assert_eq!(estimate_tokens("東京都"), 3);
        // A 3000-byte prompt is 1000 tokens.
        assert_eq!(estimate_tokens(&"word ".repeat(600)), 1000);
    }

    #[test]
    fn truncation_keeps_whole_characters_within_the_estimate() {
        for text in ["The answer is 391.", "東京都の人口", "", "ab"] {
            for max in 0..8 {
                let kept = truncate_to_tokens(text, max);
                assert!(text.starts_with(kept));
                assert!(estimate_tokens(kept) <= max, "{text:?} at {max}: {kept:?}");
                // Nothing longer would do: the next character would go over.
                if kept.len() < text.len() {
                    let next = text[kept.len()..].chars().next().map_or(0, char::len_utf8);
                    assert!(estimate_tokens(&text[..kept.len() + next]) > max, "{text:?} at {max}");
                }
            }
        }
    }

    #[test]
    fn the_chat_overhead_and_images_are_counted() {
        let mut m = ChatMessage::user("");
        m.content = Some(MessageContent::Parts(vec![
            ContentPart::ImageUrl { image_url: ImageUrl { url: "data:,".into(), detail: Some("low".into()) } },
            ContentPart::ImageUrl { image_url: ImageUrl { url: "data:,".into(), detail: None } },
        ]));
        let mut named = ChatMessage::system("Be terse.");
        named.name = Some("ops".into());
        let req = ChatRequest::new("gpt-4o", vec![named, m]);
        // 3 priming; system: 3 + "system" 2 + name 1 + "ops" 1 + "Be terse." 3; user: 3 + "user" 2 + 85 + 765
        assert_eq!(chat_input_tokens(&req, estimate_tokens), 3 + (3 + 2 + 1 + 1 + 3) + (3 + 2 + 85 + 765));
        // Every text goes through the counter given.
        assert_eq!(chat_input_tokens(&req, |_| 0), 3 + 3 + 1 + 3 + 85 + 765);
    }
}
