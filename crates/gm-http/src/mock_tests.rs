//! Unit tests of the client over `MockTransport`: the exact request each provider sends, error bodies, and the
//! time the client reads from its clock.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use gm_core::{ChatMessage, ChatRequest, ManualClock, ProviderKind};
use http::{HeaderMap, Method};

use crate::transport::{HttpResponse, MockTransport};
use crate::{CachePolicy, Client, Credential, Error, RetryPolicy};

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

/// Each error body of `shared/fixtures/github-models/errors/`, answered with the status its file name gives,
/// becomes the client error it must: sent once unless retryable, with its code and a message that says what to do.
/// The clock is paused, so the waits the 429 bodies ask for pass at once.
#[tokio::test(start_paused = true)]
async fn every_error_fixture_maps_to_the_right_error() {
    let dir = gm_testkit::shared("fixtures/github-models/errors");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let status: u16 = name[..3].parse().unwrap();
        let body = Bytes::from(std::fs::read(&path).unwrap());
        let mut mock = MockTransport::new();
        let retryable = RetryPolicy::is_retryable_status(status) && !name.contains("ByDay");
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", http::HeaderValue::from_static("0"));
        mock.expect_send()
            .times(if retryable { 2 } else { 1 })
            .returning(move |_| Ok(HttpResponse::from_bytes(status, headers.clone(), body.clone())));
        let policy =
            RetryPolicy { max_attempts: 2, initial_backoff: std::time::Duration::ZERO, ..RetryPolicy::default() };
        let c = Client::builder()
            .provider(ProviderKind::Github)
            .base_url("https://models.github.ai")
            .credential(Credential::explicit("secret-token-123"))
            .transport(Arc::new(mock))
            .retry_policy(policy)
            .build()
            .unwrap();
        let e = c.chat(&question()).await.unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("secret-token-123"), "{name}: {text}");
        assert_eq!(e.status(), Some(status), "{name}: {e:?}");
        match status {
            410 => {
                assert!(matches!(e, Error::Retired { .. }), "{name}: {e:?}");
                assert!(text.contains("2026-07-30") && text.contains("--provider"), "{name}: {text}");
            }
            401 => assert!(text.contains("models: read"), "{name}: {text}"),
            429 if name.contains("ByDay") => assert!(e.api().unwrap().is_daily_limit(), "{name}"),
            _ => {
                let code = name.split('-').nth(1).unwrap().split('.').next().unwrap();
                let api = e.api().unwrap_or_else(|| panic!("{name}: {e:?}"));
                if code != "server_error" {
                    assert_eq!(api.code(), Some(code), "{name}");
                }
            }
        }
        seen += 1;
    }
    assert!(seen >= 9, "{seen}");
}

/// A client on a `ManualClock` that moves only while the server "works".
fn clocked(clock: &ManualClock, mock: MockTransport) -> crate::ClientBuilder {
    Client::builder()
        .provider(ProviderKind::OpenAiCompatible)
        .base_url("http://127.0.0.1:9/v1")
        .transport(Arc::new(mock))
        .retry_policy(RetryPolicy::none())
        .clock(Arc::new(clock.clone()))
}

#[tokio::test]
async fn latency_and_cache_freshness_are_read_from_the_client_s_clock() {
    let clock = ManualClock::new();
    let server = clock.clone();
    let mut mock = MockTransport::new();
    mock.expect_send().times(2).returning(move |_| {
        server.advance(Duration::from_millis(1500));
        Ok(HttpResponse::from_bytes(200, HeaderMap::new(), Bytes::from_static(ANSWER.as_bytes())))
    });
    let cache = Arc::new(gm_cache::Cache::new(gm_cache::CacheConfig::default()));
    let policy = CachePolicy { ttl: Some(Duration::from_secs(60)), refresh: false };
    let c = clocked(&clock, mock).cache(cache, policy).build().unwrap();
    let first = c.chat(&question()).await.unwrap();
    assert_eq!((first.latency, first.cached), (Duration::from_millis(1500), false));
    // Stored at the request's start: fresh until 60 s after it on the client's clock, stale after.
    clock.advance(Duration::from_millis(58_400));
    let hit = c.chat(&question()).await.unwrap();
    assert_eq!((hit.latency, hit.cached), (Duration::ZERO, true));
    clock.advance(Duration::from_millis(200));
    let sent = c.chat(&question()).await.unwrap();
    assert_eq!((sent.latency, sent.cached), (Duration::from_millis(1500), false));
}

#[tokio::test]
async fn a_stream_s_times_are_read_from_the_client_s_clock() {
    let clock = ManualClock::new();
    let server = clock.clone();
    let mut mock = MockTransport::new();
    mock.expect_send().times(1).returning(move |_| {
        server.advance(Duration::from_millis(200));
        let per_event = server.clone();
        let events = ["data: {\"choices\":[{\"delta\":{\"content\":\"Paris\"}}]}\n\n", "data: [DONE]\n\n"];
        let body = futures_util::stream::iter(events).map(move |e| {
            per_event.advance(Duration::from_millis(300));
            Ok(Bytes::from_static(e.as_bytes()))
        });
        Ok(HttpResponse { status: 200, headers: HeaderMap::new(), body: Box::pin(body) })
    });
    let c = clocked(&clock, mock).build().unwrap();
    let mut s = c.chat_stream(&question()).await.unwrap();
    assert_eq!(s.next_chunk().await.unwrap().unwrap().text(), "Paris");
    assert_eq!(s.time_to_first_token(), Some(Duration::from_millis(500)));
    assert_eq!(s.collect().await.unwrap().latency, Duration::from_millis(800));
}

/// The error an OpenAI-compatible server's answer of `status` and `body` turns into, for a client with or
/// without a key (from `GM_API_KEY`), at `base`.
async fn refusal(status: u16, body: &'static str, key: bool, base: &str) -> String {
    let mut mock = MockTransport::new();
    mock.expect_send().returning(move |_| Ok(HttpResponse::from_bytes(status, HeaderMap::new(), body)));
    let mut b = Client::builder()
        .provider(ProviderKind::OpenAiCompatible)
        .base_url(base)
        .transport(Arc::new(mock))
        .retry_policy(RetryPolicy::none());
    if key {
        b = b.credential(Credential::new("sk-the-key", crate::auth::CredentialSource::Env("GM_API_KEY")));
    }
    b.build().unwrap().chat(&question()).await.unwrap_err().to_string()
}

#[tokio::test]
async fn a_refused_or_missing_key_is_named_with_the_variable_that_holds_it() {
    let base = "http://127.0.0.1:4000/v1";
    let unauthorized = r#"{"error":{"message":"Authentication Error, No api key passed in.","code":"401"}}"#;
    let e = refusal(401, unauthorized, false, base).await;
    assert_eq!(
        e,
        "openai-compatible answered 401: Authentication Error, No api key passed in; no API key was sent: set \
         GM_API_KEY, or name the variable that holds the key with --api-key-env NAME"
    );
    let e = refusal(403, unauthorized, true, base).await;
    assert!(e.contains("the server refused the key from the GM_API_KEY environment variable"), "{e}");
    assert!(!e.contains("sk-the-key"), "{e}");
    // A bare 500 to a request without a key: the likely cause is said.
    let e = refusal(500, "", false, base).await;
    assert!(e.contains("no API key was sent, so a missing key is a likely cause: set GM_API_KEY"), "{e}");
    // With a key, or with a body, a 500 is the server's own failure.
    assert!(!refusal(500, "", true, base).await.contains("key"));
    assert!(!refusal(500, "Internal Server Error", false, base).await.contains("key"));
}

#[tokio::test]
async fn a_status_the_server_repeats_as_its_code_is_shown_once() {
    let body = r#"{"error":{"code":400,"message":"messages must not be empty","type":"invalid_request_error"}}"#;
    let e = refusal(400, body, true, "http://127.0.0.1:4000/v1").await;
    assert_eq!(e, "openai-compatible answered 400: messages must not be empty");
}

#[tokio::test]
async fn a_404_from_a_base_url_without_v1_suggests_adding_it() {
    let e = refusal(404, r#"{"detail":"Not Found"}"#, false, "http://127.0.0.1:8080").await;
    assert!(e.ends_with("the base URL http://127.0.0.1:8080 does not end in /v1, where OpenAI-compatible servers answer; try --base-url http://127.0.0.1:8080/v1"), "{e}");
    let e = refusal(404, r#"{"detail":"Not Found"}"#, false, "http://127.0.0.1:8080/v1").await;
    assert!(!e.contains("/v1,"), "{e}");
}

/// Azure's stream: a first chunk with no choices and only its prompt filter results, a content filter on each
/// choice, a chunk without `object` or `created`, and a usage chunk without `choices`.
const AZURE_STREAM: [&str; 4] = [
    r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}"#,
    r#"{"choices":[{"content_filter_results":{},"delta":{"content":"Paris","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1754000000,"id":"chatcmpl-1","model":"gpt-4.1","object":"chat.completion.chunk","system_fingerprint":"fp_1"}"#,
    r#"{"choices":[{"delta":{},"finish_reason":"stop","index":0}],"id":"chatcmpl-1"}"#,
    r#"{"id":"chatcmpl-1","usage":{"completion_tokens":1,"prompt_tokens":9,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":0}}}"#,
];

fn sse(events: &[&str]) -> Bytes {
    let mut out = String::new();
    for e in events {
        out.push_str("data: ");
        out.push_str(e);
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    Bytes::from(out)
}

#[tokio::test]
async fn a_stream_s_events_and_a_whole_answer_s_body_come_back_as_the_server_sent_them() {
    let whole = r#"{"id":"chatcmpl-2","choices":[{"message":{"content":"Paris","role":"assistant"},"index":0,"x_custom":[1.50,2e3]}]}"#;
    let mut mock = MockTransport::new();
    let mut answers = vec![whole.as_bytes().to_vec(), sse(&AZURE_STREAM).to_vec()];
    mock.expect_send()
        .times(2)
        .returning(move |_| Ok(HttpResponse::from_bytes(200, HeaderMap::new(), answers.pop().unwrap())));
    let c = client(ProviderKind::Azure, "https://res.openai.azure.com/openai/v1", mock);
    let mut s = c.chat_stream(&question()).await.unwrap();
    let mut data = Vec::new();
    while let Some(e) = s.next_event().await {
        let e = e.unwrap();
        // What was parsed, re-encoded, would not be what was sent: the event's data is.
        assert_eq!(e.chunk, serde_json::from_str(&e.data).unwrap());
        data.push(e.data);
    }
    assert_eq!(data, AZURE_STREAM);
    let r = c.chat(&question()).await.unwrap();
    assert_eq!(r.text(), "Paris");
    assert_eq!(r.body().unwrap(), whole.as_bytes());
}

#[tokio::test]
async fn a_streamed_answer_with_tool_calls_is_not_cached_as_text() {
    let tool_call = [
        r#"{"choices":[{"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":""}}]},"index":0}]}"#,
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]},"index":0}]}"#,
        r#"{"choices":[{"delta":{},"finish_reason":"tool_calls","index":0}]}"#,
    ];
    let mut mock = MockTransport::new();
    let mut answers = vec![sse(&AZURE_STREAM), sse(&tool_call), sse(&tool_call)];
    mock.expect_send()
        .times(3)
        .returning(move |_| Ok(HttpResponse::from_bytes(200, HeaderMap::new(), answers.pop().unwrap())));
    let cache = Arc::new(gm_cache::Cache::new(gm_cache::CacheConfig::default()));
    let c = Client::builder()
        .provider(ProviderKind::OpenAiCompatible)
        .base_url("http://127.0.0.1:9/v1")
        .transport(Arc::new(mock))
        .cache(cache.clone(), CachePolicy::default())
        .build()
        .unwrap();
    let tools = question();
    let read = |s: crate::ChatStream| async move { s.collect().await.unwrap() };
    for _ in 0..2 {
        let s = c.chat_stream(&tools).await.unwrap();
        assert!(!s.is_cached(), "a replay would have lost the tool call");
        read(s).await;
    }
    // A text answer is kept, and replayed.
    let mut text = question();
    text.temperature = Some(0.5);
    assert!(!read(c.chat_stream(&text).await.unwrap()).await.cached);
    let again = c.chat_stream(&text).await.unwrap();
    assert!(again.is_cached());
    assert_eq!(read(again).await.text(), "Paris");
}

#[tokio::test]
async fn a_429_s_retry_after_date_blocks_the_key_for_the_span_up_to_it_by_the_server_s_date() {
    let clock = ManualClock::new();
    let limiter = Arc::new(gm_limits::Limiter::with_clock(
        gm_limits::LimitsConfig::uniform(gm_limits::LimitSpec::parse("100/1m").unwrap()),
        Arc::new(clock.clone()),
    ));
    let mut mock = MockTransport::new();
    mock.expect_send().times(1).returning(|_| {
        let mut h = HeaderMap::new();
        h.insert("date", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:07 GMT".parse().unwrap());
        Ok(HttpResponse::from_bytes(429, h, Bytes::new()))
    });
    let c = clocked(&clock, mock).limiter(limiter.clone(), Duration::ZERO).build().unwrap();
    c.chat(&question()).await.unwrap_err();
    let key = c.limit_key(&question().model);
    let status = limiter.key_status(&key, gm_core::Clock::now(&clock)).unwrap();
    // Seven seconds by the server's own clock, not the default wait of a 429 that says nothing.
    assert_eq!(status.blocked_for, Some(Duration::from_secs(7)));
}
