//! `cargo fuzz run sse_stream`: the same entry point the property tests run on stable (`gm_http::untrusted::sse_stream`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gm_http::untrusted::sse_stream(data));
