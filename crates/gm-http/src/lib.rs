//! The HTTP client for GitHub Models, Azure AI Foundry, OpenAI, any OpenAI-compatible server, and an
//! offline demo provider.
//!
//! Use this crate if you want one client for all of these: the exact GitHub Models wire protocol (catalog,
//! chat whole and streamed, embeddings, org attribution) with its retirement reported clearly, the same calls
//! against OpenAI-style servers, retries that honour what the server asks, and a lenient SSE parser.
//!
//! The network sits behind the [`Transport`] trait: [`HyperTransport`] (hyper 1 with rustls; feature `hyper`),
//! [`DemoTransport`] (deterministic offline answers), and `MockTransport` (feature `test-util`).
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use gm_core::{ChatMessage, ChatRequest, ProviderKind};
//! use gm_http::Client;
//!
//! let client = Client::builder().provider(ProviderKind::Demo).build()?;
//! let req = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("What is the capital of France?")]);
//! let mut stream = client.chat_stream(&req).await?;
//! let mut text = String::new();
//! while let Some(chunk) = stream.next_chunk().await {
//!     text.push_str(chunk?.text());
//! }
//! assert_eq!(text, "Paris");
//! # Ok::<(), gm_http::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Crate features
//! - `hyper` (default): [`HyperTransport`], the real network transport.
//! - `test-util`: `MockTransport`, a mockall double of [`Transport`].

pub mod auth;
mod client;
pub mod demo;
mod error;
#[cfg(feature = "hyper")]
mod hyper_transport;
pub mod retry;
pub mod sse;
mod transport;
#[doc(hidden)]
pub mod untrusted;

pub use auth::{Credential, CredentialSource};
pub use client::{
    default_base_url, CachePolicy, ChatResponse, ChatStream, Client, ClientBuilder, ClientStatsSnapshot, RecordMode,
    StreamEvent, DEFAULT_MAX_RESPONSE_BYTES,
};
pub use demo::DemoTransport;
pub use error::{fmt_duration, ApiError, Error, NotRecorded, Phase, GITHUB_MODELS_RETIRED_ON};
#[cfg(feature = "hyper")]
pub use hyper_transport::{HyperConfig, HyperTransport};
pub use retry::RetryPolicy;
#[cfg(feature = "test-util")]
pub use transport::MockTransport;

#[cfg(test)]
mod mock_tests;
pub use transport::{
    collect_body, BodyStream, BoxError, HttpRequest, HttpResponse, Transport, TransportError, TransportErrorKind,
};
