//! HyperTransport and Client against the emulator on loopback.

use std::time::Duration;

use gm_core::{ChatMessage, ChatRequest, EmbeddingInput, EmbeddingRequest, ProviderKind};
use gm_emulator::{Emulator, EmulatorConfig, Fault, FaultKind};
use gm_http::{Client, Credential, Error, RetryPolicy};
use gm_testkit::emulator::{self, rate_limited};

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..RetryPolicy::default()
    }
}

fn github(emu: &Emulator) -> Client {
    Client::builder()
        .provider(ProviderKind::Github)
        .base_url(emu.url())
        .credential(Credential::explicit("ghp_testtoken0123456789"))
        .retry_policy(fast_retries())
        .build()
        .unwrap()
}

/// A GitHub client that sends every request once: a 429 reaches the test instead of being retried.
fn github_once(emu: &Emulator) -> Client {
    Client::builder()
        .provider(ProviderKind::Github)
        .base_url(emu.url())
        .credential(Credential::explicit("t"))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn hi(model: &str) -> ChatRequest {
    ChatRequest::new(model, vec![ChatMessage::system("be brief"), ChatMessage::user("say hello to the tests")])
}

/// The emulator with `faults` queued for the first requests.
async fn emulator_with(faults: impl IntoIterator<Item = Fault>) -> Emulator {
    emulator::start(EmulatorConfig::default(), faults).await
}

async fn emulator() -> Emulator {
    emulator_with([]).await
}

#[tokio::test]
async fn catalog_chat_stream_and_embeddings_on_github_paths() {
    let emu = emulator().await;
    let c = github(&emu);
    let models = c.models().await.unwrap();
    assert!(models.iter().any(|m| m.id == "openai/gpt-4.1" && m.rate_limit_tier.as_deref() == Some("high")));

    let r = c.chat(&hi("OpenAI/GPT-4.1")).await.unwrap();
    assert_eq!(r.text(), "say hello to the tests");
    assert_eq!(r.attempts, 1);
    assert!(r.usage().total_tokens > 0);

    let mut s = c.chat_stream(&hi("openai/gpt-4.1")).await.unwrap();
    let mut text = String::new();
    let mut saw_usage = false;
    while let Some(chunk) = s.next_chunk().await {
        let chunk = chunk.unwrap();
        text.push_str(chunk.text());
        saw_usage |= chunk.usage.is_some();
    }
    assert_eq!(text, "say hello to the tests");
    assert!(saw_usage, "usage arrives in the last chunk with include_usage");

    let e = c
        .embeddings(&EmbeddingRequest::new(
            "openai/text-embedding-3-small",
            EmbeddingInput::Many(vec!["a".into(), "b".into()]),
        ))
        .await
        .unwrap();
    assert_eq!(e.data.len(), 2);
    let stats = emu.stats();
    assert_eq!(stats.by_path["/inference/chat/completions"], 2);
    assert_eq!(stats.by_path["/inference/embeddings"], 1);
    // The client sends the canonical lower-case id however the caller spelled it.
    assert_eq!(stats.answered_by_model["openai/gpt-4.1"], 2);
    assert_eq!(stats.answered_by_model["openai/text-embedding-3-small"], 1);
}

#[tokio::test]
async fn org_attribution_uses_the_org_path() {
    let emu = emulator().await;
    let c = Client::builder()
        .provider(ProviderKind::Github)
        .base_url(emu.url())
        .org("my-org")
        .credential(Credential::explicit("t"))
        .build()
        .unwrap();
    c.chat(&hi("openai/gpt-4.1")).await.unwrap();
    assert_eq!(emu.stats().by_path["/orgs/my-org/inference/chat/completions"], 1);
}

#[tokio::test]
async fn openai_compatible_paths_work_without_a_key() {
    let emu = emulator().await;
    let c = Client::builder().provider(ProviderKind::OpenAiCompatible).base_url(emu.openai_url()).build().unwrap();
    assert!(c.models().await.unwrap().iter().any(|m| m.id == "openai/gpt-4o-mini"));
    let r = c.chat_stream(&hi("gpt-4o-mini")).await.unwrap().collect().await.unwrap();
    assert_eq!(r.text(), "say hello to the tests");
    assert_eq!(r.completion.finish_reason(), Some("stop"));
}

#[tokio::test]
async fn each_error_status_maps_to_a_clear_error() {
    let emu = emulator().await;
    // 401 without a token.
    let anon = Client::builder()
        .provider(ProviderKind::Github)
        .base_url(emu.url())
        .credential(Credential::explicit(""))
        .build()
        .unwrap();
    let e = anon.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(e.to_string().contains("models: read"), "{e}");

    let c = github(&emu);
    let e = c.chat(&hi("openai/does-not-exist")).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert_eq!(e.api().unwrap().code(), Some("unknown_model"));
    assert!(e.to_string().contains("gm models list"), "{e}");

    let long = "word ".repeat(9000);
    let e = c.chat(&ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user(long)])).await.unwrap_err();
    assert_eq!(e.status(), Some(413));
    assert_eq!(e.api().unwrap().code(), Some("tokens_limit_reached"));

    let e = c.chat_stream(&hi("openai/o1")).await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.api().unwrap().body.as_ref().unwrap().param.as_deref(), Some("stream"));

    // Statuses that are never retried are sent once.
    let before = emu.stats().total;
    emu.inject(Fault::status(422, 1));
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert_eq!(e.status(), Some(422));
    assert_eq!(emu.stats().total, before + 1);
    // The array-of-strings validation body is read as the message.
    assert!(e.to_string().contains("Field required"), "{e}");
    // Injected statuses answer with the service's own bodies.
    emu.inject(Fault::status(413, 1));
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert_eq!(e.api().unwrap().code(), Some("tokens_limit_reached"));
    emu.inject(Fault::status(404, 1));
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert_eq!(e.api().unwrap().code(), Some("unknown_model"));
}

#[tokio::test]
async fn a_429_and_a_500_are_retried_then_answered() {
    let emu = emulator_with([rate_limited(0, 1), Fault::status(500, 1)]).await;
    let c = github(&emu);
    let r = c.chat(&hi("openai/gpt-4.1")).await.unwrap();
    assert_eq!(r.attempts, 3);
    assert_eq!(r.rate_limited, 1);
    assert_eq!(c.stats().retries, 2);
    assert_eq!(emu.stats().by_status[&429], 1);
    assert_eq!(emu.stats().by_status[&500], 1);
}

#[tokio::test]
async fn a_long_server_wait_fails_fast_and_says_how_long() {
    let emu = emulator_with([rate_limited(5631, 1)]).await;
    let c = github(&emu);
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert!(matches!(e, Error::WaitTooLong { .. }), "{e:?}");
    assert!(e.to_string().contains("1h 33m"), "{e}");
    assert_eq!(emu.stats().total, 1);
}

#[tokio::test]
async fn retries_give_up_after_the_attempt_cap() {
    let emu = emulator_with([Fault::status(503, 10)]).await;
    let c = github(&emu);
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert_eq!(emu.stats().total, 4);
}

#[tokio::test]
async fn a_retired_service_gets_exactly_one_request_and_one_clear_error() {
    let emu = Emulator::start(EmulatorConfig { retired: true, ..Default::default() }).await.unwrap();
    let c = github(&emu);
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert!(e.is_retired());
    let msg = e.to_string();
    assert!(
        msg.contains("2026-07-30")
            && msg.contains("--provider azure")
            && msg.contains("github_models_retirement_brownout"),
        "{msg}"
    );
    assert_eq!(emu.stats().total, 1);
    let e = c.models().await.unwrap_err();
    assert!(e.is_retired());
}

#[tokio::test]
async fn a_connection_dropped_mid_stream_is_an_error_not_a_hang() {
    let emu = emulator_with([Fault { kind: FaultKind::DropStream { after_chunks: 3 }, times: 1, path: None }]).await;
    let c = github(&emu);
    let mut s = c.chat_stream(&hi("openai/gpt-4.1")).await.unwrap();
    let mut got = 0;
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(10), s.next_chunk()).await.expect("the stream hung") {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => break e,
            None => panic!("the stream ended cleanly after a drop ({got} chunks)"),
        }
    };
    assert!(got <= 3);
    assert!(matches!(err, Error::Stream { .. }), "{err:?}");
}

#[tokio::test]
async fn a_stream_without_done_is_an_error() {
    let emu = emulator_with([Fault { kind: FaultKind::NoDone, times: 1, path: None }]).await;
    let c = github(&emu);
    let e = c.chat_stream(&hi("openai/gpt-4.1")).await.unwrap().collect().await.unwrap_err();
    assert!(e.to_string().contains("without [DONE]"), "{e}");
}

#[tokio::test]
async fn a_refused_connection_is_never_sent() {
    let emu = emulator().await;
    let url = emu.url();
    emu.shutdown().await;
    let c = Client::builder()
        .provider(ProviderKind::OpenAiCompatible)
        .base_url(format!("{url}/v1"))
        .retry_policy(RetryPolicy { max_attempts: 2, ..fast_retries() })
        .build()
        .unwrap();
    let e = c.chat(&hi("gpt-4o-mini")).await.unwrap_err();
    assert_eq!(e.phase(), gm_http::Phase::NeverSent, "{e:?}");
    // The cause is kept as the source, and every cause down the chain is already told in the message, so a
    // printer that skips repeated text prints the message alone.
    assert!(matches!(e, gm_http::Error::Connect { .. }), "{e:?}");
    let message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    assert!(cause.is_some(), "{e:?}");
    while let Some(c) = cause {
        assert!(message.contains(&c.to_string()), "{message} lacks {c}");
        cause = c.source();
    }
}

#[tokio::test]
async fn the_emulator_enforces_a_scaled_tier_with_the_real_429() {
    let limits = gm_emulator::EmulatorLimits::tier("high", 600.0).unwrap(); // 10 per 100 ms, 2 at once
    let emu = Emulator::start(EmulatorConfig { limits: Some(limits), ..Default::default() }).await.unwrap();
    let c = github_once(&emu);
    let mut refused = None;
    for _ in 0..11 {
        if let Err(e) = c.chat(&hi("openai/gpt-4.1")).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("the 11th request within the window is refused");
    let api = e.api().unwrap();
    assert_eq!((api.status, api.code()), (429, Some("RateLimitReached")));
    assert_eq!(api.rate_limit_type.as_deref(), Some("UserByModelByMinute"));
    assert!(api.retry_after.is_some_and(|w| w <= Duration::from_millis(100)), "{:?}", api.retry_after);
    assert_eq!(emu.stats().by_status[&200], 10);
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_refused() {
    let emu = emulator().await;
    let c = Client::builder()
        .provider(ProviderKind::Github)
        .base_url(emu.url())
        .credential(Credential::explicit("t"))
        .max_response_bytes(64)
        .build()
        .unwrap();
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert!(matches!(e, Error::TooLarge { limit: 64, .. }), "{e:?}");
    assert!(e.to_string().contains("--max-response-bytes") && !e.to_string().contains("ClientBuilder"), "{e}");
}

#[tokio::test]
async fn a_streamed_answer_has_the_same_total_cap_as_a_whole_one() {
    // 4 MiB of valid deltas against a 256 KiB cap: refused once the cap is passed, not gathered whole.
    let emu = emulator_with([emulator::fault(FaultKind::Huge { bytes: 4 << 20 }, 2)]).await;
    let c = Client::builder()
        .provider(ProviderKind::Github)
        .base_url(emu.url())
        .credential(Credential::explicit("t"))
        .max_response_bytes(256 << 10)
        .build()
        .unwrap();
    let e = c.chat_stream(&hi("openai/gpt-4.1")).await.unwrap().collect().await.unwrap_err();
    assert!(matches!(e, Error::Stream { .. }), "{e:?}");
    assert!(e.to_string().contains("cap of 262144 bytes") && e.to_string().contains("--max-response-bytes"), "{e}");
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
}

#[tokio::test]
async fn a_200_whose_body_is_an_error_is_an_error_and_never_cached() {
    let emu = emulator_with([emulator::error_as_200("model overloaded", 2)]).await;
    let cache = std::sync::Arc::new(gm_cache::Cache::new(gm_cache::CacheConfig::default()));
    let c = Client::builder()
        .provider(ProviderKind::Github)
        .base_url(emu.url())
        .credential(Credential::explicit("t"))
        .retry_policy(RetryPolicy::none())
        .cache(cache, gm_http::CachePolicy::default())
        .build()
        .unwrap();
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert!(matches!(e, Error::ErrorAnswer { status: 200, .. }), "{e:?}");
    assert!(e.to_string().contains("model overloaded"), "{e}");
    // The streamed path, answered with the same JSON: the same error.
    let e = c.chat_stream(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert!(e.to_string().contains("model overloaded"), "{e}");
    // Nothing was cached: the next call is sent and answered.
    let r = c.chat(&hi("openai/gpt-4.1")).await.unwrap();
    assert!(!r.cached);
    assert_eq!(r.text(), "say hello to the tests");
    assert_eq!(emu.stats().received, 3);
}

#[tokio::test]
async fn an_html_page_on_a_streamed_request_says_what_came_instead() {
    let page = "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>";
    let emu = emulator_with([emulator::raw(200, "text/html; charset=utf-8", page, 1)]).await;
    let e = github(&emu).chat_stream(&hi("openai/gpt-4.1")).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("text/html") && text.contains("502 Bad Gateway") && !text.contains("[DONE]"), "{text}");
}

#[tokio::test]
async fn a_credential_echoed_back_in_an_error_body_is_never_shown() {
    let key = "sk-proj-Zx9fakeKEYforTESTS0123456789abcdefABCDEF";
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {key}. You passed ghp_AAAAbbbbCCCCdddd0000 too","code":"invalid_api_key"}}}}"#
    );
    let emu = emulator_with([emulator::raw(401, "application/json", &body, 1)]).await;
    let c = Client::builder()
        .provider(ProviderKind::OpenAiCompatible)
        .base_url(emu.openai_url())
        .credential(Credential::explicit(key))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(shown.contains("Incorrect API key provided"), "{shown}");
    assert!(!shown.contains("Zx9fakeKEY") && !shown.contains("AAAAbbbbCCCC"), "{shown}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let emu = emulator_with([emulator::fault(FaultKind::Hang, 1)]).await;
    let c = Client::builder()
        .provider(ProviderKind::Github)
        .base_url(emu.url())
        .credential(Credential::explicit("t"))
        .retry_policy(RetryPolicy::none())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let e = c.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(emu.stats().received, 1);
}

#[tokio::test]
async fn catalog_tiers_give_each_model_its_own_limits() {
    // Time scaled by 6: a minute lasts 10 s. gpt-4.1 is in the high tier (10 a minute), gpt-4o-mini in the
    // low tier (15 a minute).
    let emu = Emulator::start(EmulatorConfig { catalog_tiers: Some(6.0), ..Default::default() }).await.unwrap();
    let c = github_once(&emu);
    let answered = |model: &'static str| {
        let c = c.clone();
        async move {
            let mut n = 0;
            for _ in 0..16 {
                match c.chat(&hi(model)).await {
                    Ok(_) => n += 1,
                    Err(e) => {
                        assert_eq!(e.status(), Some(429), "{e}");
                        break;
                    }
                }
            }
            n
        }
    };
    assert_eq!(answered("openai/gpt-4.1").await, 10);
    assert_eq!(answered("openai/gpt-4o-mini").await, 15);
}

#[tokio::test]
async fn usage_is_the_one_estimate_and_max_tokens_cuts_the_answer_to_it() {
    let emu = emulator().await;
    let c = github(&emu);
    let req = hi("openai/gpt-4.1");
    let usage = c.chat(&req).await.unwrap().usage();
    assert_eq!(usage.prompt_tokens, gm_core::chat_input_tokens(&req, gm_core::estimate_tokens));
    // 3 priming + (3 + "system" 2 + "be brief" 3) + (3 + "user" 2 + "say hello to the tests" 8)
    assert_eq!(usage.prompt_tokens, 24);
    assert_eq!(usage.completion_tokens, gm_core::estimate_tokens("say hello to the tests"));
    let cut = c.chat(&hi("openai/gpt-4.1").with_max_tokens(2)).await.unwrap();
    assert_eq!((cut.text(), cut.usage().completion_tokens), ("say he", 2));
}

#[tokio::test]
async fn sampling_numbers_json_cannot_carry_are_refused_before_sending() {
    let emu = emulator().await;
    let c = github(&emu);
    for t in [f64::NAN, f64::INFINITY, "1e309".parse::<f64>().unwrap()] {
        let e = c.chat(&hi("openai/gpt-4.1").with_temperature(t)).await.unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)) && e.is_usage(), "{e:?}");
        assert!(e.to_string().contains("temperature is") && e.to_string().contains("not a finite number"), "{e}");
        assert!(c.chat_stream(&hi("openai/gpt-4.1").with_temperature(t)).await.is_err());
    }
    assert_eq!(emu.stats().received, 0);
}

#[tokio::test]
async fn a_stream_without_usage_is_counted_with_the_tokenizer_and_marked_estimated() {
    let emu = emulator::start(EmulatorConfig::default(), []).await;
    let c = Client::builder().provider(ProviderKind::OpenAiCompatible).base_url(emu.openai_url()).build().unwrap();
    // As llama-cpp-python does: the server sends no usage in the stream.
    let mut req = hi("openai/gpt-4.1");
    req.stream_options = Some(gm_core::StreamOptions { include_usage: false });
    let answer = c.chat_stream(&req).await.unwrap().collect().await.unwrap();
    assert!(answer.usage_estimated);
    let usage = answer.usage();
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0, "{usage:?}");
    assert_eq!(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    // The server's own count is taken as it is.
    let whole = c.chat(&hi("openai/gpt-4.1")).await.unwrap();
    assert!(!whole.usage_estimated);
}

fn openai_compatible(emu: &Emulator, key: Option<&str>) -> Client {
    let mut b = Client::builder().provider(ProviderKind::OpenAiCompatible).base_url(emu.openai_url());
    if let Some(k) = key {
        b = b.credential(Credential::explicit(k));
    }
    b.retry_policy(RetryPolicy::none()).build().unwrap()
}

#[tokio::test]
async fn the_emulator_answers_n_choices_and_stops_at_a_stop_sequence() {
    let emu = emulator::start(EmulatorConfig::default(), []).await;
    let c = openai_compatible(&emu, None);
    let mut req = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("one two three four")]);
    req.n = Some(2);
    let answer = c.chat(&req).await.unwrap();
    let choices = &answer.completion.choices;
    assert_eq!(choices.len(), 2, "{:?}", answer.completion);
    assert_eq!(choices[1].index, 1);
    let one = c.chat(&ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("one two three four")])).await.unwrap();
    assert_eq!(answer.usage().completion_tokens, 2 * one.usage().completion_tokens);
    let mut req = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("one two three four")]);
    req.stop = Some(gm_core::StopSequences::Many(vec![" three".into(), "four".into()]));
    assert_eq!(c.chat(&req).await.unwrap().text(), "one two");
    req.stream = Some(true);
    let streamed = c.chat_stream(&req).await.unwrap().collect().await.unwrap();
    assert_eq!(streamed.text(), "one two");
}

#[tokio::test]
async fn the_emulator_refuses_empty_messages_and_a_missing_key_on_v1() {
    let config = EmulatorConfig { token: Some("sk-emulator-key".into()), ..Default::default() };
    let emu = emulator::start(config, []).await;
    let keyed = openai_compatible(&emu, Some("sk-emulator-key"));
    let e = keyed.chat(&ChatRequest::new("openai/gpt-4.1", vec![])).await.unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.to_string().contains("'messages' must contain at least one message"), "{e}");
    assert!(keyed.chat(&hi("openai/gpt-4.1")).await.is_ok());
    assert!(keyed.models().await.is_ok());
    for client in [openai_compatible(&emu, None), openai_compatible(&emu, Some("sk-wrong"))] {
        let e = client.chat(&hi("openai/gpt-4.1")).await.unwrap_err();
        assert_eq!(e.status(), Some(401), "{e}");
        assert_eq!(e.api().and_then(|a| a.code()), Some("invalid_api_key"));
        assert_eq!(client.models().await.unwrap_err().status(), Some(401));
    }
}

/// `GET path` on the emulator, by hand: the status and the body.
fn get(emu: &Emulator, path: &str, key: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(emu.addr()).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_serves_one_model_by_id_as_the_openai_client_retrieves_it() {
    let config = EmulatorConfig { token: Some("sk-emulator-key".into()), ..Default::default() };
    let emu = emulator::start(config, []).await;
    for path in ["/v1/models/openai/gpt-4.1", "/v1/models/openai%2Fgpt-4.1", "/v1/models/gpt-4.1"] {
        let (status, body) = tokio::task::block_in_place(|| get(&emu, path, "sk-emulator-key"));
        assert_eq!(status, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!((v["id"].as_str(), v["object"].as_str()), (Some("openai/gpt-4.1"), Some("model")), "{body}");
    }
    let (status, body) = tokio::task::block_in_place(|| get(&emu, "/v1/models/nope", "sk-emulator-key"));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("model_not_found"), "{body}");
    assert_eq!(tokio::task::block_in_place(|| get(&emu, "/v1/models/gpt-4.1", "sk-wrong")).0, 401);

    // The official Python client, as users call it.
    if !gm_testkit::skip::program("python3", "apt-get install python3") {
        return;
    }
    let has_openai = std::process::Command::new("python3").args(["-c", "import openai"]).output();
    if !has_openai.is_ok_and(|o| o.status.success()) {
        gm_testkit::skip::missing_service("the openai Python package", "python3 -m pip install openai");
        return;
    }
    let script = "import sys, openai\n\
                  c = openai.OpenAI(base_url=sys.argv[1], api_key='sk-emulator-key', max_retries=0)\n\
                  m = c.models.retrieve('openai/gpt-4.1')\n\
                  print(m.id, m.object)\n";
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("python3").args(["-c", script, &emu.openai_url()]).output().unwrap()
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "openai/gpt-4.1 model");
}
