//! `cargo fuzz run prompt_file`: the same entry point the property tests run on stable (`gm_eval::untrusted::prompt_file`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gm_eval::untrusted::prompt_file(data));
