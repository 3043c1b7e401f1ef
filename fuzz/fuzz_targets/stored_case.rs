//! `cargo fuzz run stored_case`: the same entry point the property tests run on stable (`gm_eval::untrusted::stored_case`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gm_eval::untrusted::stored_case(data));
