//! Helpers shared by the gateway's tests: a gateway on a free port, and raw HTTP calls to it.

#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gm_app::{CacheSettings, Session, SessionConfig};
use gm_http::{HttpRequest, HyperTransport, Transport};
use gm_serve::{Gateway, LogTarget, ServeConfig};
use http::{HeaderMap, HeaderValue, Method};

/// A gateway serving on a free loopback port until dropped or stopped.
pub struct Running {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<u8>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<Result<(), gm_serve::ServeError>>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Sends the shutdown signal and waits for the server to return.
    pub async fn stop(mut self) -> Result<(), gm_serve::ServeError> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

/// The gateway's state in memory, with the cache on.
pub fn in_memory() -> SessionConfig {
    SessionConfig::default()
}

/// The gateway's state in memory, without the cache.
pub fn uncached() -> SessionConfig {
    SessionConfig { cache: CacheSettings { enabled: false, ..CacheSettings::default() }, ..SessionConfig::default() }
}

/// The gateway's state in `dir`'s state file, without the cache.
pub fn kept_in(dir: &std::path::Path) -> SessionConfig {
    SessionConfig { data_dir: Some(dir.to_path_buf()), ..uncached() }
}

pub async fn start(mut config: ServeConfig, session: SessionConfig) -> Running {
    config.addr = "127.0.0.1:0".parse().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    config.log = LogTarget::Memory(log.clone());
    let gateway = Gateway::bind(config, Session::new(session)).await.expect("the gateway starts");
    let addr = gateway.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = rx.await;
    }));
    Running { addr, log, stop: Some(tx), task: Some(task) }
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn call(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let t = HyperTransport::new(Default::default()).unwrap();
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in headers {
        h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    let resp = t
        .send(HttpRequest { method, url: url.parse().unwrap(), headers: h, body: Bytes::from(body.to_string()) })
        .await
        .expect("the gateway answers");
    let (status, headers) = (resp.status, resp.headers.clone());
    let body = resp.collect(1 << 24).await.unwrap();
    Answer { status, headers, body }
}

pub async fn chat(url: &str, model: &str, text: &str, headers: &[(&str, &str)]) -> Answer {
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]}).to_string();
    call(Method::POST, &format!("{url}/v1/chat/completions"), headers, &body).await
}

/// An OpenAI-style upstream that answers every chat request with `whole`, or, asked to stream, with `events`
/// (each the data of one event) and `[DONE]`: exactly these bytes, whatever a parser would make of them. The
/// last event carries the usage, and is sent only when `stream_options.include_usage` asks for it.
pub async fn fixed_upstream(whole: &'static str, events: &'static [&'static str]) -> String {
    use axum::routing::post;
    let answer = move |body: Bytes| async move {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["stream"] == true {
            let usage = v["stream_options"]["include_usage"] == true;
            let mut sse = String::new();
            for e in &events[..events.len() - usize::from(!usage)] {
                sse.push_str(&format!("data: {e}\n\n"));
            }
            sse.push_str("data: [DONE]\n\n");
            ([(http::header::CONTENT_TYPE, "text/event-stream")], sse)
        } else {
            ([(http::header::CONTENT_TYPE, "application/json")], whole.to_string())
        }
    };
    let app = axum::Router::new().route("/v1/chat/completions", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
