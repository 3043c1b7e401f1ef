//! Unit tests of the client over `MockTransport`: the exact request each provider sends.

use std::sync::Arc;

use bytes::Bytes;
use gm_core::{ChatMessage, ChatRequest, ProviderKind};
use http::{HeaderMap, Method};

use crate::transport::{HttpResponse, MockTransport};
use crate::{Client, Credential, Error, RetryPolicy};

const ANSWER: &str = r#"{"choices":[{"message":{"content":"The capital of France is Paris.","role":"assistant"}}]}"#;

fn client(provider: ProviderKind, base: &str, mock: MockTransport) -> Client {
    Client::builder()
        .provider(provider)
        .base_url(base)
        .credential(Credential::explicit("secret-token-123"))
        .transport(Arc::new(mock))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn question() -> ChatRequest {
    ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("What is the capital of France?")])
}

#[tokio::test]
async fn github_request_matches_the_documented_example() {
    let mut mock = MockTransport::new();
    mock.expect_send()
        .withf(|r| {
            let h = |k: &str| r.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            let doc: serde_json::Value = serde_json::json!({"model": "openai/gpt-4.1", "messages": [{"role": "user", "content": "What is the capital of France?"}]});
            r.method == Method::POST
                && r.url == "https://models.github.ai/inference/chat/completions"
                && h("authorization") == "Bearer secret-token-123"
                && h("accept") == "application/vnd.github+json"
                && h("x-github-api-version") == "2022-11-28"
                && h("content-type") == "application/json"
                && body == doc
        })
        .times(1)
        .returning(|_| Ok(HttpResponse::from_bytes(200, HeaderMap::new(), Bytes::from_static(ANSWER.as_bytes()))));
    let c = client(ProviderKind::Github, "https://models.github.ai", mock);
    let r = c.chat(&question()).await.unwrap();
    assert_eq!(r.text(), "The capital of France is Paris.");
}

#[tokio::test]
async fn azure_sends_the_api_key_header_and_v1_paths() {
    let mut mock = MockTransport::new();
    mock.expect_send()
        .withf(|r| {
            r.url == "https://res.openai.azure.com/openai/v1/chat/completions"
                && r.headers.get("api-key").is_some_and(|v| v == "secret-token-123")
                && r.headers.get("authorization").is_none()
        })
        .times(1)
        .returning(|_| Ok(HttpResponse::from_bytes(200, HeaderMap::new(), Bytes::from_static(ANSWER.as_bytes()))));
    let c = client(ProviderKind::Azure, "https://res.openai.azure.com/openai/v1", mock);
    let mut req = question();
    req.model = "my-deployment".into();
    c.chat(&req).await.unwrap();
}

#[tokio::test]
async fn github_needs_a_publisher_and_never_sends_without_one() {
    let mock = MockTransport::new();
    let c = client(ProviderKind::Github, "https://models.github.ai", mock);
    let mut req = question();
    req.model = "gpt-4.1".into();
    let e = c.chat(&req).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)));
    assert!(e.to_string().contains("openai/gpt-4.1"), "{e}");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_errors() {
    let mut mock = MockTransport::new();
    mock.expect_send().returning(|_| {
        Ok(HttpResponse::from_bytes(
            401,
            HeaderMap::new(),
            Bytes::from_static(br#"{"error":{"code":"unauthorized","message":"Bad credentials"}}"#),
        ))
    });
    let c = client(ProviderKind::Github, "https://models.github.ai", mock);
    let e = c.chat(&question()).await.unwrap_err();
    let shown = format!("{e} {e:?} {c:?}");
    assert!(!shown.contains("secret-token-123"), "{shown}");
    assert!(shown.contains("models: read"));
}
