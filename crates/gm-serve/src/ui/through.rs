//! The dashboard's evaluations send their requests through the gateway's own API, in process: each model id
//! is resolved by the routing file (aliases, the route's upstream and its fallbacks), every upstream call
//! passes the upstream quotas, and the metrics and the access log count them, as for any client's request.

use std::net::SocketAddr;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use futures_util::StreamExt;
use gm_http::{HttpRequest, HttpResponse, Transport, TransportError, TransportErrorKind};
use http::{header, HeaderValue};
use tower::ServiceExt;

use crate::access::InProcess;

/// The base URL evaluations are recorded with: the gateway itself, reached in process (nothing listens there).
pub(super) const BASE_URL: &str = "http://gm-serve.in-process/v1";

/// A transport that hands each request to the gateway's API router.
#[derive(Clone)]
pub(super) struct ThroughGateway {
    pub(super) api: Router,
}

impl std::fmt::Debug for ThroughGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThroughGateway").finish_non_exhaustive()
    }
}

#[async_trait]
impl Transport for ThroughGateway {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let path = request.url.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut inner = http::Request::new(Body::from(request.body));
        *inner.method_mut() = request.method;
        *inner.uri_mut() =
            path.parse().map_err(|e| TransportError::new(TransportErrorKind::InvalidRequest, format!("{e}")))?;
        *inner.headers_mut() = request.headers;
        // The session's own cache answers what it holds (and says so); what reaches the gateway is asked fresh,
        // so no answer is counted as a measured one while it came from the gateway's cache.
        inner.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        inner.extensions_mut().insert(InProcess);
        inner.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 0))));
        let resp = match self.api.clone().oneshot(inner).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        let (parts, body) = resp.into_parts();
        let body = body
            .into_data_stream()
            .map(|chunk| chunk.map_err(|e| TransportError::new(TransportErrorKind::Io, e.to_string())));
        Ok(HttpResponse { status: parts.status.as_u16(), headers: parts.headers, body: Box::pin(body) })
    }
}
