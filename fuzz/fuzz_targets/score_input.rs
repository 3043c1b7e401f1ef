//! `cargo fuzz run score_input`: the same entry point the property tests run on stable (`gm_metrics::untrusted::score_input`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gm_metrics::untrusted::score_input(data));
