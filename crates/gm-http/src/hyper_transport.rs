//! The network transport: hyper 1 over rustls.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::Error;
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError, TransportErrorKind};

/// Settings of a [`HyperTransport`].
#[derive(Debug, Clone)]
pub struct HyperConfig {
    /// The deadline for opening a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// The deadline from sending a request to receiving the response head.
    pub response_timeout: Duration,
    /// The longest silence allowed between two pieces of a response body.
    pub read_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per host.
    pub pool_max_idle_per_host: usize,
}

impl Default for HyperConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(300),
            read_timeout: Duration::from_secs(120),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 64,
        }
    }
}

/// hyper 1 through hyper-util's pooled client, with rustls (ring, webpki roots). HTTP/1.1 and HTTP/2 are
/// negotiated by ALPN on `https:`; `http:` URLs (local servers, the emulator) use HTTP/1.1.
#[derive(Clone)]
pub struct HyperTransport {
    client: LegacyClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    config: HyperConfig,
}

impl std::fmt::Debug for HyperTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperTransport").field("config", &self.config).finish()
    }
}

impl HyperTransport {
    /// A transport with these settings.
    pub fn new(config: HyperConfig) -> Result<Self, Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| Error::InvalidRequest(format!("could not set up TLS: {e}")))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = LegacyClient::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Self { client, config })
    }
}

fn classify(e: hyper_util::client::legacy::Error) -> TransportError {
    let kind = if e.is_connect() { TransportErrorKind::Connect } else { TransportErrorKind::Io };
    TransportError::new(kind, chain(&e)).with_source(e)
}

/// An error and its causes in one line, so the message says it all and the kept `source` adds no new text.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[async_trait]
impl Transport for HyperTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut builder = http::Request::builder().method(request.method).uri(request.url);
        if let Some(h) = builder.headers_mut() {
            *h = request.headers;
        }
        let req = builder
            .body(Full::new(request.body))
            .map_err(|e| TransportError::new(TransportErrorKind::InvalidRequest, format!("invalid request: {e}")))?;
        let resp = tokio::time::timeout(self.config.response_timeout, self.client.request(req))
            .await
            .map_err(|_| {
                TransportError::new(
                    TransportErrorKind::Timeout,
                    format!("no response within {:?}", self.config.response_timeout),
                )
            })?
            .map_err(classify)?;
        let (parts, body) = resp.into_parts();
        let read_timeout = self.config.read_timeout;
        let stream = futures_util::stream::unfold(Some(body), move |state| async move {
            let mut body = state?;
            loop {
                // Most frames are already buffered; only a frame that is not yet here needs a timer.
                let next = match body.frame().now_or_never() {
                    Some(ready) => Ok(ready),
                    None => tokio::time::timeout(read_timeout, body.frame()).await,
                };
                match next {
                    Err(_) => {
                        let e = TransportError::new(
                            TransportErrorKind::Timeout,
                            format!("the server sent nothing for {read_timeout:?}"),
                        );
                        return Some((Err(e), None));
                    }
                    Ok(None) => return None,
                    Ok(Some(Err(e))) => {
                        let e = TransportError::new(
                            TransportErrorKind::Io,
                            format!("reading the body failed: {}", chain(&e)),
                        )
                        .with_source(e);
                        return Some((Err(e), None));
                    }
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            if !data.is_empty() {
                                return Some((Ok(data), Some(body)));
                            }
                        }
                    }
                }
            }
        });
        Ok(HttpResponse { status: parts.status.as_u16(), headers: parts.headers, body: Box::pin(stream) })
    }
}
