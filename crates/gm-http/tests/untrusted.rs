//! The fuzz targets' entry points (`gm_http::untrusted`) on stable: arbitrary bytes, and bytes shaped like what
//! servers send, a bounded number of cases each; inputs a fuzzer found are kept below as regression cases.

use gm_http::untrusted::{answer_body, sse_stream};
use proptest::prelude::*;

/// Bytes near the shape of an event stream: fields, data lines, blank lines, JSON fragments, stray bytes.
fn sse_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b": keep-alive\n".to_vec()),
        Just(b"event: message\n".to_vec()),
        Just(b"[DONE]".to_vec()),
        Just(br#"{"choices":[{"delta":{"content":"hi"}}]}"#.to_vec()),
        Just(br#"{"error":{"message":"overloaded"}}"#.to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    (any::<u8>(), prop::collection::vec(piece, 0..60)).prop_map(|(first, pieces)| {
        let mut out = vec![first];
        out.extend(pieces.concat());
        out
    })
}

fn body_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(br#"{"error":"#.to_vec()),
        Just(br#"{"message":"Incorrect API key ghp_0123456789abcdefABCDEF"}"#.to_vec()),
        Just(b"sk-proj-".to_vec()),
        Just(b"github_pat_".to_vec()),
        Just(br#""choices":[{"message":{"content":"x"}}]"#.to_vec()),
        Just(b"}".to_vec()),
        Just(b"null".to_vec()),
        "[A-Za-z0-9_-]{0,30}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..20),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_an_event_stream(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        sse_stream(&data);
    }

    #[test]
    fn stream_shaped_bytes(data in sse_like()) {
        sse_stream(&data);
    }

    #[test]
    fn any_bytes_as_an_answer_body(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        answer_body(&data);
    }

    #[test]
    fn body_shaped_bytes(data in body_like()) {
        answer_body(&data);
    }
}

/// Inputs the fuzzer or the property tests once found failing; each must pass now.
#[test]
fn regression_cases() {
    // A token under a longer prefix too short to be one, while the shorter prefix makes one.
    answer_body(b"sk-proj-abcdefghijk");
    answer_body(b"x sk-proj-0123456789a more");
    sse_stream(b"\x05data: {\"a\":1}\r\n\r\ndata: [DONE]\n\n");
}
