//! The playground: one prompt to one to four models, each answer streaming into its own column.
//!
//! The page's script posts each model's request to `/ui/playground/chat`, which hands it to the gateway's own
//! `POST /v1/chat/completions` with the signed-in key (if any) and the browser's address: the request passes
//! the routes, the key's or the visitor's limits, the cache and the metrics exactly as any client's does, and
//! the answer streams back as the API sends it (a refusal too, with its message and `x-ratelimit-*` headers).

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use maud::html;
use tower::ServiceExt;

use super::{page, with_key, SameOrigin, Shared, Viewer};

/// Models one prompt may go to at once.
const MAX_COLUMNS: usize = 4;

pub(super) async fn show(State(ui): State<Shared>, who: Viewer) -> Response {
    let models: Vec<_> =
        crate::server::served_models(&ui.gateway).await.into_iter().filter(|m| m.is_chat_model()).collect();
    let options = |selected: Option<usize>| {
        html! {
            @if selected.is_none() { option value="" { "(none)" } }
            @for (i, m) in models.iter().enumerate() {
                @let p = ui.gateway.route_price(&m.id);
                option value=(m.id) selected[selected == Some(i)]
                    data-in=[p.map(|p| p.input_per_million)] data-out=[p.map(|p| p.output_per_million)] { (m.id) }
            }
        }
    };
    let body = html! {
        h1 { "Playground" }
        form #playground {
            div.models {
                @for i in 0..MAX_COLUMNS {
                    label {
                        @if i == 0 { "Model" } @else { "Compare with" }
                        select name="model" required[i == 0] { (options((i == 0).then_some(0))) }
                    }
                }
            }
            label for="system" { "System prompt" }
            textarea #system name="system" rows="2" placeholder="You are a helpful assistant." {}
            label for="user" { "Prompt" }
            textarea #user name="user" rows="4" required {}
            div.params {
                label { "Temperature " input type="number" name="temperature" min="0" max="2" step="0.1" value="0.7"; }
                label { "Max tokens " input type="number" name="max_tokens" min="1" value="256"; }
            }
            button #send type="submit" { "Send" }
        }
        p #left role="status" aria-live="polite" {}
        div #answers aria-live="polite" {}
        @if !who.is_admin() {
            p.hint { "As a visitor, each answer counts against your limits; the line above says how many requests you have left." }
        }
    };
    page("Playground", Some(&who), body)
}

/// Passes one playground request to the gateway's chat endpoint, as a stream, and its answer back.
pub(super) async fn chat(
    _: SameOrigin,
    State(ui): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return refused(StatusCode::PAYLOAD_TOO_LARGE, "the prompt is over 1 MiB; shorten it");
    };
    let Ok(serde_json::Value::Object(mut request)) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "the playground sends a chat request as a JSON object; reload the page",
        );
    };
    request.insert("stream".into(), true.into());
    request.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
    let mut headers = with_key(&parts.headers);
    headers.remove(header::COOKIE);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.remove(header::CONTENT_LENGTH);
    let mut inner = Request::new(Body::from(serde_json::Value::Object(request).to_string()));
    *inner.method_mut() = http::Method::POST;
    *inner.uri_mut() = http::Uri::from_static("/v1/chat/completions");
    *inner.headers_mut() = headers;
    inner.extensions_mut().insert(ConnectInfo(peer));
    match ui.api.clone().oneshot(inner).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

fn refused(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error"}}).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
