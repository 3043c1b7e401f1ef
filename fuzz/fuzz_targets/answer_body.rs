//! `cargo fuzz run answer_body`: the same entry point the property tests run on stable (`gm_http::untrusted::answer_body`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gm_http::untrusted::answer_body(data));
