//! Answers reach the client as the upstream sent them: a whole answer's body byte for byte, and each event of
//! a stream with every field it had (and none it had not), from the upstream and from the cache alike.

mod common;

use common::{call, fixed_upstream, in_memory, kept_in, start};
use gm_core::ProviderKind;
use gm_serve::keys::{self, Budget, KeyStore};
use gm_serve::{Routing, ServeConfig, UpstreamConfig};
use gm_testkit::TempDir;
use http::Method;

/// Azure's way: no choices and only the prompt filter results in the first chunk, a content filter and `logprobs:
/// null` on each choice, a chunk without `object` or `created`, and usage alone in the last.
const EVENTS: &[&str] = &[
    r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}"#,
    r#"{"choices":[{"content_filter_results":{},"delta":{"content":"Paris","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1754000000,"id":"chatcmpl-1","model":"gpt-4.1","object":"chat.completion.chunk","system_fingerprint":"fp_1"}"#,
    r#"{"choices":[{"delta":{},"finish_reason":"stop","index":0}],"id":"chatcmpl-1"}"#,
    r#"{"id":"chatcmpl-1","usage":{"completion_tokens":1,"prompt_tokens":9,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":0}}}"#,
];

const WHOLE: &str = r#"{"id":"chatcmpl-2","object":"chat.completion","created":1754000000,"model":"gpt-4.1","choices":[{"index":0,"message":{"role":"assistant","content":"Paris","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop","content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10},"system_fingerprint":"fp_1","x_vendor":{"score":1.50}}"#;

fn routing(url: String) -> Routing {
    let mut up = UpstreamConfig::new("azure-like", ProviderKind::OpenAiCompatible);
    up.base_url = Some(url);
    Routing::single(up)
}

fn body(stream: Option<bool>, text: &str) -> String {
    let mut v = serde_json::json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": text}]});
    if let Some(usage) = stream {
        v["stream"] = true.into();
        v["stream_options"] = serde_json::json!({"include_usage": usage});
    }
    v.to_string()
}

/// Each event's data, as the client received it.
fn events(a: &common::Answer) -> Vec<String> {
    a.text().split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_and_a_stream_reach_the_client_as_the_upstream_sent_them() {
    let gw = start(ServeConfig::new(routing(fixed_upstream(WHOLE, EVENTS).await)), in_memory()).await;
    let url = format!("{}/v1/chat/completions", gw.url());
    for cache in ["miss", "hit"] {
        let a = call(Method::POST, &url, &[], &body(None, "whole")).await;
        assert_eq!((a.status, a.header("x-gm-cache")), (200, Some(cache)));
        assert_eq!(a.text(), WHOLE);
    }
    let asked = call(Method::POST, &url, &[], &body(Some(true), "stream")).await;
    assert_eq!(asked.header("x-gm-cache"), Some("miss"));
    let mut sent: Vec<String> = EVENTS.iter().map(|e| e.to_string()).collect();
    sent.push("[DONE]".into());
    assert_eq!(events(&asked), sent);
    // A client that did not ask for usage does not get the usage chunk the gateway asked for itself.
    let not_asked = call(Method::POST, &url, &[], &body(Some(false), "stream, no usage")).await;
    sent.remove(EVENTS.len() - 1);
    assert_eq!(events(&not_asked), sent);

    // Its tokens reached the access log once the stream ended, with the time to its last byte.
    let log = gw.log_text();
    let line: serde_json::Value =
        serde_json::from_str(log.lines().rfind(|l| l.contains("\"cache\":\"miss\"")).unwrap()).unwrap();
    assert_eq!((line["tokens_in"].as_u64(), line["tokens_out"].as_u64()), (Some(9), Some(1)), "{line}");
    assert!(line["stream_ms"].as_f64().unwrap() >= line["duration_ms"].as_f64().unwrap(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_usage_asked_still_counts_against_the_key_s_budget() {
    let dir = TempDir::new("serve-stream-budget");
    let key = keys::generate("streamer", None, Some(Budget::parse("tokens=1000/1d").unwrap())).unwrap();
    keys::SqliteKeys::open(dir.join(gm_app::STATE_FILE_NAME)).unwrap().insert(&key.record).unwrap();
    let gw = start(ServeConfig::new(routing(fixed_upstream(WHOLE, EVENTS).await)), kept_in(&dir)).await;
    let bearer = format!("Bearer {}", key.secret);
    let url = format!("{}/v1/chat/completions", gw.url());
    let a = call(Method::POST, &url, &[("authorization", &bearer)], &body(Some(false), "count me")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(!a.text().contains("\"usage\""));
    let metrics = call(Method::GET, &format!("{}/metrics", gw.url()), &[("authorization", &bearer)], "").await.text();
    let counted = |name: &str| {
        metrics.lines().find(|l| l.starts_with(name) && l.contains("key=\"streamer\"")).map(|l| l.to_string())
    };
    assert!(counted("gm_serve_tokens_in_total").is_some_and(|l| l.ends_with(" 9")), "{metrics}");
    assert!(counted("gm_serve_tokens_out_total").is_some_and(|l| l.ends_with(" 1")), "{metrics}");
    let remaining: u64 = a.header("x-ratelimit-remaining-tokens").unwrap().parse().unwrap();
    assert!(remaining < 1000, "the request's estimate was reserved: {remaining}");
}
