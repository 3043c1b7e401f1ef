//! `cargo fuzz run limits_spec`: the same entry point the property tests run on stable (`gm_limits::untrusted::limits_spec`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gm_limits::untrusted::limits_spec(data));
