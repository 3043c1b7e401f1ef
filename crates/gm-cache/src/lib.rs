//! Response cache for model APIs.
//!
//! Use this crate if you repeat identical model requests (re-running an evaluation, sampling the same prompt)
//! and want the repeats to cost nothing: an LRU bounded by entries and bytes with a per-entry TTL and statistics.
