//! Recorded answers: recorded from the emulator, replayed with nothing sent, the missing ones filled in.

use std::sync::Arc;

use gm_cache::recording::RecordedAnswers;
use gm_core::{ChatMessage, ChatRequest, ProviderKind};
use gm_emulator::EmulatorConfig;
use gm_http::{ChatResponse, Client, Credential, Error, Phase, RecordMode};
use gm_testkit::{emulator, CountingListener, TempDir};

const SECRET: &str = "sk-recording-test-secret-0123456789";

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("openai/gpt-4.1-mini", vec![ChatMessage::system("be brief"), ChatMessage::user(text)])
}

fn client(base: &str, answers: &Arc<RecordedAnswers>, mode: RecordMode) -> Client {
    Client::builder()
        .provider(ProviderKind::OpenAiCompatible)
        .base_url(base)
        .credential(Credential::explicit(SECRET))
        .recording(answers.clone(), mode)
        .build()
        .unwrap()
}

async fn streamed(client: &Client, req: &ChatRequest) -> (ChatResponse, Option<std::time::Duration>) {
    let mut s = client.chat_stream(req).await.unwrap();
    while let Some(chunk) = s.next_chunk().await {
        chunk.unwrap();
    }
    let ttft = s.time_to_first_token();
    (s.collect().await.unwrap(), ttft)
}

#[tokio::test]
async fn answers_recorded_from_a_server_replay_with_no_connection() {
    let emu = emulator::start(EmulatorConfig::default(), []).await;
    let dir = TempDir::new("recording");
    let path = dir.path().join("answers.jsonl");
    // Recorded whole and streamed, against a base URL naming the emulator with a password in it.
    let base = emu.openai_url().replace("http://", "http://user:url-password@");
    let recording = Arc::new(RecordedAnswers::new(&path));
    let live = client(&base, &recording, RecordMode::Record);
    let whole = live.chat(&ask("what is the capital of France?")).await.unwrap();
    let (stream, ttft) = streamed(&live, &ask("count to three")).await;
    recording.save().unwrap();
    assert_eq!(emu.stats().total, 2);

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(!text.contains(SECRET) && !text.contains("url-password"), "{text}");
    assert!(text.contains("\"streamed\":true") && text.contains("\"prompt\":\"count to three\""), "{text}");
    assert!(text.contains("\"latency_us\":") && text.contains("\"time_to_first_token_us\":"), "{text}");

    // Replayed against a port that counts connections: the same answers and figures, nothing sent.
    let port = CountingListener::bind();
    let replayed = Arc::new(RecordedAnswers::open(&path).unwrap());
    // The replay client's base URL must give the same keys: the recorded one, the password aside, is
    // where the answers came from, so the replay names the same server with its password.
    let strict = client(&base, &replayed, RecordMode::Replay);
    let again = strict.chat(&ask("what is the capital of France?")).await.unwrap();
    assert_eq!(again.completion, whole.completion);
    assert_eq!((again.latency, again.attempts, again.cached), (whole.latency, whole.attempts, whole.cached));
    let (stream_again, ttft_again) = streamed(&strict, &ask("count to three")).await;
    assert_eq!(stream_again.text(), stream.text());
    assert_eq!((stream_again.latency, ttft_again), (stream.latency, ttft));
    // The stream asked as a whole answer is the same recorded answer.
    assert_eq!(strict.chat(&ask("count to three")).await.unwrap().text(), stream.text());
    assert_eq!(emu.stats().total, 2, "a replay sends nothing");

    // A request the file does not hold fails before sending, naming it; the counting port saw nothing.
    let missing = client(&port.openai_url(), &replayed, RecordMode::Replay);
    let e = missing.chat(&ask("what is the capital of France?")).await.unwrap_err();
    assert!(matches!(e, Error::NotRecorded(_)) && e.phase() == Phase::NeverSent && !e.is_usage(), "{e:?}");
    let shown = e.to_string();
    assert!(shown.contains("answers.jsonl holds no answer for request"), "{shown}");
    assert!(shown.contains("what is the capital of France?") && shown.contains("openai/gpt-4.1-mini"), "{shown}");
    assert!(shown.contains("recorded from openai-compatible at http://127.0.0.1:"), "{shown}");
    assert!(missing.chat_stream(&ask("something new")).await.is_err());
    assert_eq!(port.connections(), 0);
}

#[tokio::test]
async fn record_missing_sends_only_what_the_file_lacks() {
    let emu = emulator::start(EmulatorConfig::default(), []).await;
    let dir = TempDir::new("recording-missing");
    let path = dir.path().join("answers.jsonl");
    let first = Arc::new(RecordedAnswers::new(&path));
    let live = client(&emu.openai_url(), &first, RecordMode::Record);
    live.chat(&ask("one")).await.unwrap();
    live.chat(&ask("two")).await.unwrap();
    first.save().unwrap();
    assert_eq!(emu.stats().total, 2);

    let filled = Arc::new(RecordedAnswers::open(&path).unwrap());
    let both = client(&emu.openai_url(), &filled, RecordMode::ReplayRecordMissing);
    for text in ["one", "two", "three"] {
        both.chat(&ask(text)).await.unwrap();
    }
    assert_eq!(emu.stats().total, 3, "only `three` was sent");
    filled.save().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3);
    // Saved again without change, the file is byte for byte the same.
    RecordedAnswers::open(&path).unwrap().save().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn a_strict_replay_needs_no_credential() {
    let answers = Arc::new(RecordedAnswers::new("answers.jsonl"));
    let replay = Client::builder().provider(ProviderKind::OpenAi).recording(answers.clone(), RecordMode::Replay);
    assert!(replay.build().is_ok());
    let record = Client::builder().provider(ProviderKind::OpenAi).recording(answers, RecordMode::ReplayRecordMissing);
    assert!(matches!(record.build(), Err(Error::MissingCredentials { .. })));
}

/// A recording that records a cached answer, and one whose usage the server did not send.
#[tokio::test]
async fn a_cached_answer_is_recorded_as_cached_with_no_latency_and_an_estimate_stays_estimated() {
    // The second answer has no usage, as some servers send.
    let no_usage = r#"{"id":"c1","object":"chat.completion","model":"openai/gpt-4.1-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Lima is the capital."},"finish_reason":"stop"}]}"#;
    let emu = emulator::start(EmulatorConfig::default(), []).await;
    let dir = TempDir::new("recording-cached");
    let path = dir.path().join("answers.jsonl");
    let recording = Arc::new(RecordedAnswers::new(&path));
    let cache = Arc::new(gm_cache::Cache::new(gm_cache::CacheConfig::default()));
    let live = Client::builder()
        .provider(ProviderKind::OpenAiCompatible)
        .base_url(emu.openai_url())
        .credential(Credential::explicit(SECRET))
        .cache(cache.clone(), gm_http::CachePolicy::default())
        .recording(recording.clone(), RecordMode::Record)
        .build()
        .unwrap();
    // Warmed before the recording run: the recording run's answer comes from the cache.
    let warm = Client::builder()
        .provider(ProviderKind::OpenAiCompatible)
        .base_url(emu.openai_url())
        .credential(Credential::explicit(SECRET))
        .cache(cache, gm_http::CachePolicy::default())
        .build()
        .unwrap();
    warm.chat(&ask("what is the capital of Japan?")).await.unwrap();
    let cached = live.chat(&ask("what is the capital of Japan?")).await.unwrap();
    assert!(cached.cached);
    // Measured, then asked again in the same run: the cached repeat keeps the measured entry.
    let measured = live.chat(&ask("what is the capital of France?")).await.unwrap();
    assert!(!measured.cached && live.chat(&ask("what is the capital of France?")).await.unwrap().cached);
    emu.inject(emulator::raw(200, "application/json", no_usage, 1));
    let estimated = live.chat(&ask("what is the capital of Peru?")).await.unwrap();
    assert!(estimated.usage_estimated && estimated.usage().completion_tokens > 0, "{estimated:?}");
    recording.save().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let line = |prompt: &str| lines.iter().find(|l| l["request"]["prompt"] == prompt).unwrap().clone();
    let japan = line("what is the capital of Japan?");
    assert_eq!(japan["cached"], true, "{japan}");
    assert!(japan.get("latency_us").is_none(), "a cache look-up recorded as a latency: {japan}");
    let france = line("what is the capital of France?");
    assert_eq!(france["cached"], false, "{france}");
    assert_eq!(france["latency_us"].as_u64(), Some(measured.latency.as_micros() as u64), "{france}");
    let peru = line("what is the capital of Peru?");
    assert!(peru.get("usage").is_none() && peru["response"].get("usage").is_none(), "{peru}");

    // Replayed: the cached answer is cached, with no latency; the estimate is still an estimate, the same one.
    let replayed = Arc::new(RecordedAnswers::open(&path).unwrap());
    let strict = client(&emu.openai_url(), &replayed, RecordMode::Replay);
    let again = strict.chat(&ask("what is the capital of Japan?")).await.unwrap();
    assert!(again.cached && again.latency.is_zero(), "{again:?}");
    let again = strict.chat(&ask("what is the capital of France?")).await.unwrap();
    assert!(!again.cached && again.latency == measured.latency, "{again:?}");
    let again = strict.chat(&ask("what is the capital of Peru?")).await.unwrap();
    assert!(again.usage_estimated, "the estimate lost its mark: {again:?}");
    assert_eq!(again.usage(), estimated.usage());
}
