//! Entry points that take arbitrary bytes where gm-http reads what a server sent, for the fuzz targets
//! (`fuzz/`) and the property tests that run the same functions on stable. Each returns normally for any
//! input and panics only when an invariant breaks.

use gm_core::{ChatCompletion, ChatCompletionChunk, ErrorBody};

use crate::sse::{SseEvent, SseParser};

/// An event stream, cut into pieces whose sizes the first byte chooses, through a parser with a small
/// event cap: no panic, no event over the cap, and the same events as when fed whole.
pub fn sse_stream(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else { return };
    const CAP: usize = 512;
    let piece = usize::from(first % 64) + 1;
    let whole = parse(body, body.len().max(1), CAP);
    let cut = parse(body, piece, CAP);
    if let (Ok(whole), Ok(cut)) = (&whole, &cut) {
        assert_eq!(whole, cut, "the events depend on how the bytes were cut");
    }
    for events in [whole, cut].into_iter().flatten() {
        for e in events {
            if let SseEvent::Data(text) = e {
                assert!(text.len() <= CAP, "an event of {} bytes passed a {CAP}-byte cap", text.len());
            }
        }
    }
}

fn parse(body: &[u8], piece: usize, cap: usize) -> Result<Vec<SseEvent>, crate::sse::SseError> {
    let mut parser = SseParser::new(cap);
    let mut out = Vec::new();
    for chunk in body.chunks(piece) {
        parser.feed(chunk, &mut out)?;
    }
    parser.finish(&mut out)?;
    Ok(out)
}

/// A body a server answered with: read as an error body, a completion, a chunk, and checked for an error
/// envelope; and its text with the credentials taken out, in which no token-shaped secret remains.
pub fn answer_body(data: &[u8]) {
    let _ = ErrorBody::parse(data);
    let _ = serde_json::from_slice::<ChatCompletion>(data);
    let _ = serde_json::from_slice::<ChatCompletionChunk>(data);
    if let Some(e) = crate::client::error_in_answer(data) {
        let _ = e.message.len();
    }
    let text = String::from_utf8_lossy(data);
    let scrubbed = crate::auth::scrub_secrets(&text, None);
    assert!(!has_token(&scrubbed), "a token survived scrubbing: {scrubbed:?}");
}

/// Whether `text` holds something shaped like a provider's token that scrubbing should have taken out.
fn has_token(text: &str) -> bool {
    let token_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    ["github_pat_", "sk-proj-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "sk-"].iter().any(|p| {
        text.match_indices(p).any(|(at, _)| {
            let glued = text[..at].chars().next_back().is_some_and(token_char);
            let run = text[at + p.len()..].chars().take_while(|&c| token_char(c)).count();
            !glued && run >= 16
        })
    })
}
