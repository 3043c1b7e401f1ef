//! The transport seam: one HTTP exchange, independent of how it is carried.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, Method};

/// A boxed error from a dependency, kept as a `source` so dependency types stay out of our API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A response body, delivered as it arrives.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send + 'static>>;

/// One HTTP request, fully formed.
#[derive(Clone)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The absolute URL.
    pub url: http::Uri,
    /// Headers, including authorization. Never printed: see the `Debug` impl.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold credentials, so only their names are shown.
        let names: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// One HTTP response; the body is read separately so streams can be consumed as they arrive.
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: BodyStream,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse").field("status", &self.status).field("headers", &self.headers).finish()
    }
}

impl HttpResponse {
    /// A response with a body already in memory.
    pub fn from_bytes(status: u16, headers: HeaderMap, body: impl Into<Bytes>) -> Self {
        let body: Bytes = body.into();
        Self { status, headers, body: Box::pin(futures_util::stream::once(async move { Ok(body) })) }
    }

    /// Reads the whole body, failing once it exceeds `limit` bytes.
    pub async fn collect(self, limit: usize) -> Result<Bytes, TransportError> {
        collect_body(self.body, limit).await
    }
}

/// Reads a body stream to the end, failing once it exceeds `limit` bytes.
pub async fn collect_body(mut body: BodyStream, limit: usize) -> Result<Bytes, TransportError> {
    // A body that arrives in one piece is returned without a copy.
    let Some(first) = body.next().await else { return Ok(Bytes::new()) };
    let first = first?;
    if first.len() > limit {
        return Err(TransportError::too_large(limit));
    }
    let Some(second) = body.next().await else { return Ok(first) };
    let second = second?;
    let mut buf = BytesMut::with_capacity(first.len() + second.len());
    buf.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if buf.len() + chunk.len() > limit {
            return Err(TransportError::too_large(limit));
        }
        buf.extend_from_slice(&chunk);
        next = body.next().await.transpose()?;
    }
    Ok(buf.freeze())
}

/// What went wrong in a transport, by kind, which decides whether a retry is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The request could not be built or is not supported by this transport (never sent).
    InvalidRequest,
    /// No connection could be made (never reached the server).
    Connect,
    /// A deadline passed (the request may have been processed).
    Timeout,
    /// The connection failed after it was made (the request may have been processed).
    Io,
    /// The response body exceeded the configured cap.
    TooLarge,
}

/// A transport failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// What kind of failure.
    pub kind: TransportErrorKind,
    /// A description, lowercase, without secrets.
    pub message: String,
    /// The underlying error, if any, returned by `source()` (its text is already in `message`).
    #[source]
    pub cause: Option<BoxError>,
}

impl TransportError {
    /// A new error of a kind.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), cause: None }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.cause = Some(source.into());
        self
    }

    /// The body exceeded `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(TransportErrorKind::TooLarge, format!("the response is larger than the {limit}-byte cap"))
    }

    /// Whether a deadline passed.
    pub fn is_timeout(&self) -> bool {
        self.kind == TransportErrorKind::Timeout
    }

    /// Whether the server certainly never saw the request.
    pub fn is_never_sent(&self) -> bool {
        matches!(self.kind, TransportErrorKind::InvalidRequest | TransportErrorKind::Connect)
    }
}

/// Carries one HTTP exchange. Object-safe and shared as `Arc<dyn Transport>`.
///
/// Implementations: [`crate::HyperTransport`] (the network, feature `hyper`), [`crate::DemoTransport`]
/// (offline, deterministic), and `MockTransport` (feature `test-util`).
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends a request and returns the response head with a streaming body.
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

#[cfg(any(test, feature = "test-util"))]
mockall::mock! {
    /// A mockall double of [`Transport`] for unit tests.
    pub Transport {}

    impl fmt::Debug for Transport {
        fn fmt<'a>(&self, f: &mut fmt::Formatter<'a>) -> fmt::Result;
    }

    #[async_trait]
    impl Transport for Transport {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
    }
}
