//! HTTP client for model APIs.
