//! Rate limiting for model APIs.
//!
//! Use this crate if you call a model API with quotas ("15 requests a minute, 150 a day, 5 at once") and want
//! to never earn a 429 while still using every request the quota allows. Time is always an argument, so the
//! limiter is a plain data structure that is easy to test and to share.
