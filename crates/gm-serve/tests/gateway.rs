//! The gateway's behaviour in front of the emulator: fallback, quotas, keys and budgets, public visitors,
//! the cache, request ids and logs, and a graceful shutdown.

mod common;

use std::time::Duration;

use common::{call, chat, in_memory, kept_in, start, uncached};
use gm_app::{Session, SessionConfig};
use gm_core::ProviderKind;
use gm_emulator::{Emulator, EmulatorConfig, Fault};
use gm_serve::keys::{self, Budget, KeyStore};
use gm_serve::{PublicLimits, RouteConfig, Routing, ServeConfig, Target, UpstreamConfig};
use gm_testkit::TempDir;
use http::Method;

async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig { require_auth: false, ..Default::default() }).await.unwrap()
}

fn upstream(name: &str, emu: &Emulator) -> UpstreamConfig {
    let mut up = UpstreamConfig::new(name, ProviderKind::OpenAiCompatible);
    up.base_url = Some(emu.openai_url());
    up
}

fn answered(emu: &Emulator) -> u64 {
    emu.stats().answered_by_model.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_falls_back_to_the_next_upstream_and_a_400_does_not() {
    let (first, second) = (emulator().await, emulator().await);
    let routing = Routing {
        upstreams: vec![upstream("first", &first), upstream("second", &second)],
        routes: vec![RouteConfig {
            model: "team/model".into(),
            targets: vec![
                Target { upstream: "first".into(), model: Some("openai/gpt-4.1".into()) },
                Target { upstream: "second".into(), model: Some("openai/gpt-4.1-mini".into()) },
            ],
            cache: false,
        }],
        limits: None,
    };
    let gw = start(ServeConfig::new(routing), uncached()).await;
    first.inject(Fault::status(503, 1));
    let a = chat(&gw.url(), "team/model", "fall back", &[]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["choices"][0]["message"]["content"], "fall back");
    assert_eq!(second.stats().answered_by_model.get("openai/gpt-4.1-mini"), Some(&1));
    assert_eq!(first.stats().by_status.get(&503), Some(&1));
    assert!(gw.log_text().contains("\"upstream\":\"second\""), "{}", gw.log_text());

    first.inject(Fault::status(400, 1));
    let a = chat(&gw.url(), "team/model", "no fallback", &[]).await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(a.json()["error"]["message"].is_string());
    assert_eq!(answered(&second), 1, "a 400 is never sent to another upstream");

    // An unknown model is the client's error, in its dialect's envelope.
    let a = chat(&gw.url(), "nobody/else", "x", &[]).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["type"], "invalid_request_error");
    let body = serde_json::json!({"model": "nobody/else", "messages": [{"role": "user", "content": "x"}]}).to_string();
    let a = call(Method::POST, &format!("{}/inference/chat/completions", gw.url()), &[], &body).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "unknown_model");
    assert!(a.json()["error"]["details"].is_string());

    // A 429 the first upstream's limits did not foresee: another upstream may have room.
    first.inject(gm_testkit::emulator::rate_limited(30, 1));
    let a = chat(&gw.url(), "team/model", "over the first's quota", &[]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(answered(&second), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_model_ids_never_become_metric_labels() {
    let emu = emulator().await;
    let gw = start(ServeConfig::new(Routing::single(upstream("emu", &emu))), uncached()).await;
    for i in 0..3 {
        assert_eq!(chat(&gw.url(), &format!("made/up-{i}"), "x", &[]).await.status, 404);
    }
    assert_eq!(chat(&gw.url(), "openai/gpt-4.1", "x", &[]).await.status, 200);
    let metrics = call(Method::GET, &format!("{}/metrics", gw.url()), &[], "").await.text();
    assert!(!metrics.contains("made/up"), "{metrics}");
    assert!(metrics.contains(r#"gm_serve_requests_total{route="chat",model="*",key="-",status="404"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"model="openai/gpt-4.1",key="-",status="200"} 1"#), "{metrics}");
    // The access log still says what each client asked for.
    assert!(gw.log_text().contains(r#""model":"made/up-2""#), "{}", gw.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_or_method_not_served_is_answered_in_its_api_s_envelope() {
    let emu = emulator().await;
    let gw = start(ServeConfig::new(Routing::single(upstream("emu", &emu))), uncached()).await;
    let json = |a: &common::Answer| serde_json::from_slice::<serde_json::Value>(&a.body).unwrap();
    // GitHub Models has no /inference/models: a client of it is told where the catalog is.
    let github = call(Method::GET, &format!("{}/inference/models", gw.url()), &[], "").await;
    assert_eq!(github.status, 404);
    let e = json(&github);
    assert_eq!(e["error"]["code"], "not_found", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("GET /catalog/models"), "{e}");
    let openai = call(Method::GET, &format!("{}/v1/files", gw.url()), &[], "").await;
    assert_eq!(openai.status, 404);
    let e = json(&openai);
    assert_eq!(
        (&e["error"]["code"], &e["error"]["type"]),
        (&"not_found".into(), &"invalid_request_error".into()),
        "{e}"
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("GET /v1/models"), "{e}");
    let wrong = call(Method::GET, &format!("{}/v1/chat/completions", gw.url()), &[], "").await;
    assert_eq!(wrong.status, 405);
    assert_eq!(json(&wrong)["error"]["code"], "method_not_allowed");
    assert_eq!(emu.stats().total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_quota_is_never_exceeded_and_the_client_learns_the_exact_wait() {
    let emu = Emulator::start(EmulatorConfig {
        require_auth: false,
        limits: Some(gm_emulator::EmulatorLimits {
            windows: vec![gm_emulator::Window { limit: 3, window: Duration::from_secs(60), daily: false }],
            concurrency: None,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut up = upstream("emu", &emu);
    up.limits = Some(gm_limits::LimitSpec::parse("3/1m").unwrap());
    let session = SessionConfig { max_wait: Duration::from_secs(1), ..uncached() };
    let gw = start(ServeConfig::new(Routing::single(up)), session).await;
    for i in 0..3 {
        let a = chat(&gw.url(), "openai/gpt-4.1", &format!("q{i}"), &[]).await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let a = chat(&gw.url(), "openai/gpt-4.1", "one too many", &[]).await;
    assert_eq!(a.status, 429, "{}", a.text());
    let secs: u64 = a.header("retry-after").unwrap().parse().unwrap();
    let ms: u64 = a.header("retry-after-ms").unwrap().parse().unwrap();
    assert!((58_000..=60_200).contains(&ms), "{ms}");
    assert_eq!(secs, ms.div_ceil(1000));
    assert_eq!(emu.stats().by_status.get(&429), None, "the upstream never answered 429");
    assert_eq!(answered(&emu), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_upstreams_without_a_key_each_have_their_own_quota_in_the_state_file() {
    let limits = || gm_emulator::EmulatorLimits {
        windows: vec![gm_emulator::Window { limit: 2, window: Duration::from_secs(60), daily: false }],
        concurrency: None,
    };
    let config = || EmulatorConfig { require_auth: false, limits: Some(limits()), ..Default::default() };
    let (a, b) = (Emulator::start(config()).await.unwrap(), Emulator::start(config()).await.unwrap());
    let (mut up_a, mut up_b) = (upstream("a", &a), upstream("b", &b));
    up_a.limits = Some(gm_limits::LimitSpec::parse("2/1m").unwrap());
    up_b.limits = up_a.limits.clone();
    let route = |model: &str, to: &str| RouteConfig {
        model: model.into(),
        targets: vec![Target { upstream: to.into(), model: Some("openai/gpt-4.1".into()) }],
        cache: false,
    };
    let routing =
        Routing { upstreams: vec![up_a, up_b], routes: vec![route("x/a", "a"), route("x/b", "b")], limits: None };
    let dir = TempDir::new("serve-two-upstreams");
    let session = SessionConfig { max_wait: Duration::ZERO, ..kept_in(&dir) };
    let gw = start(ServeConfig::new(routing), session).await;
    for model in ["x/a", "x/b"] {
        for i in 0..2 {
            let answer = chat(&gw.url(), model, &format!("{model} {i}"), &[]).await;
            assert_eq!(answer.status, 200, "{model} {i}: {}", answer.text());
        }
        assert_eq!(chat(&gw.url(), model, "third", &[]).await.status, 429);
    }
    assert_eq!((answered(&a), answered(&b)), (2, 2));
    assert_eq!(a.stats().by_status.get(&429), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_once_one_exists_and_hold_their_limits_and_budgets() {
    let emu = emulator().await;
    let dir = TempDir::new("serve-keys");
    let state = dir.join(gm_app::STATE_FILE_NAME);
    let store = keys::SqliteKeys::open(&state).unwrap();
    let limited = keys::generate("limited", Some(gm_limits::LimitSpec::parse("2/1h").unwrap()), None).unwrap();
    store.insert(&limited.record).unwrap();
    let budget = keys::generate("budget", None, Some(Budget::parse("requests=1/1d").unwrap())).unwrap();
    store.insert(&budget.record).unwrap();
    let gw = start(ServeConfig::new(Routing::single(upstream("emu", &emu))), kept_in(&dir)).await;
    let url = gw.url();

    assert_eq!(chat(&url, "openai/gpt-4.1", "no key", &[]).await.status, 401);
    assert_eq!(chat(&url, "openai/gpt-4.1", "bad key", &[("authorization", "Bearer gm_nope")]).await.status, 401);
    let bearer = format!("Bearer {}", limited.secret);
    let a = chat(&url, "openai/gpt-4.1", "one", &[("authorization", &bearer)]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header("x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("1"));
    let a = chat(&url, "openai/gpt-4.1", "two", &[("api-key", &limited.secret)]).await;
    assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("0"));
    let a = chat(&url, "openai/gpt-4.1", "three", &[("authorization", &bearer)]).await;
    assert_eq!(a.status, 429, "{}", a.text());
    let ms: u64 = a.header("retry-after-ms").unwrap().parse().unwrap();
    assert!((3_590_000..=3_604_000).contains(&ms), "{ms}");
    assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("0"));

    let b = format!("Bearer {}", budget.secret);
    assert_eq!(chat(&url, "openai/gpt-4.1", "spend", &[("authorization", &b)]).await.status, 200);
    let a = chat(&url, "openai/gpt-4.1", "over budget", &[("authorization", &b)]).await;
    assert_eq!(a.status, 429);
    let ms: u64 = a.header("retry-after-ms").unwrap().parse().unwrap();
    assert!((86_300_000..=86_500_000).contains(&ms), "{ms}");

    // Revoked by another process (`gm serve keys revoke`): refused from the next request on.
    keys::SqliteKeys::open(&state).unwrap().revoke("budget").unwrap();
    assert_eq!(chat(&url, "openai/gpt-4.1", "revoked", &[("authorization", &b)]).await.status, 401);
    assert_eq!(answered(&emu), 3);

    let metrics = call(Method::GET, &format!("{url}/metrics"), &[("authorization", &bearer)], "").await.text();
    assert!(metrics.contains("key=\"limited\""), "{metrics}");
    let log = gw.log_text();
    let mut files = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        files.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    for secret in [&limited.secret, &budget.secret] {
        assert!(!log.contains(secret.as_str()) && !metrics.contains(secret.as_str()));
        assert!(!files.windows(secret.len()).any(|w| w == secret.as_bytes()), "a key is in the state file");
    }
    gw.stop().await.unwrap();

    // A restart keeps the keys and what they have spent.
    let gw = start(ServeConfig::new(Routing::single(upstream("emu", &emu))), kept_in(&dir)).await;
    let a = chat(&gw.url(), "openai/gpt-4.1", "after restart", &[("authorization", &bearer)]).await;
    assert_eq!(a.status, 429, "{}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_visitors_are_held_to_their_own_limits_and_an_open_address_is_refused() {
    let emu = emulator().await;
    let mut config = ServeConfig::new(Routing::single(upstream("emu", &emu)));
    config.trust_proxy = true;
    config.public = Some(PublicLimits {
        visitor: gm_limits::LimitSpec::parse("2/1m").unwrap(),
        global: gm_limits::LimitSpec::parse("3/1m").unwrap(),
    });
    let gw = start(config, uncached()).await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for _ in 0..2 {
        assert_eq!(chat(&gw.url(), "openai/gpt-4.1", "hi", &from("203.0.113.7")).await.status, 200);
    }
    let a = chat(&gw.url(), "openai/gpt-4.1", "hi", &from("203.0.113.7")).await;
    assert_eq!(a.status, 429);
    assert!(a.header("retry-after").is_some());
    assert_eq!(chat(&gw.url(), "openai/gpt-4.1", "hi", &from("203.0.113.8")).await.status, 200);
    // The global cap holds for a new visitor too.
    assert_eq!(chat(&gw.url(), "openai/gpt-4.1", "hi", &from("203.0.113.9")).await.status, 429);
    assert_eq!(answered(&emu), 3);

    let mut open = ServeConfig::new(Routing::demo());
    open.addr = "0.0.0.0:0".parse().unwrap();
    let err = gm_serve::Gateway::bind(open, Session::new(in_memory())).await.unwrap_err().to_string();
    assert!(err.contains("--public") && err.contains("keys create"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_answers_repeats_replays_streams_and_is_bypassed_on_request() {
    let emu = emulator().await;
    let gw = start(ServeConfig::new(Routing::single(upstream("emu", &emu))), in_memory()).await;
    let url = gw.url();
    let a = chat(&url, "openai/gpt-4.1", "cache me", &[]).await;
    assert_eq!(a.header("x-gm-cache"), Some("miss"));
    let b = chat(&url, "openai/gpt-4.1", "cache me", &[]).await;
    assert_eq!(b.header("x-gm-cache"), Some("hit"));
    assert_eq!(a.json()["choices"], b.json()["choices"]);
    assert_eq!(answered(&emu), 1);
    let c = chat(&url, "openai/gpt-4.1", "cache me", &[("cache-control", "no-cache")]).await;
    assert_eq!(c.header("x-gm-cache"), Some("miss"));
    assert_eq!(answered(&emu), 2);

    let body = |text: &str| {
        serde_json::json!({"model": "openai/gpt-4.1", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": text}]})
        .to_string()
    };
    let first = call(Method::POST, &format!("{url}/v1/chat/completions"), &[], &body("stream me")).await;
    assert_eq!(first.header("x-gm-cache"), Some("miss"));
    let again = call(Method::POST, &format!("{url}/v1/chat/completions"), &[], &body("stream me")).await;
    assert_eq!(again.header("x-gm-cache"), Some("hit"));
    let text = |a: &common::Answer| {
        a.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
            .collect::<String>()
    };
    assert_eq!(text(&first), "stream me");
    assert_eq!(text(&again), "stream me");
    assert!(again.text().contains("\"usage\"") && again.text().ends_with("data: [DONE]\n\n"));
    assert_eq!(answered(&emu), 3);

    // The request id: the client's is kept and sent upstream; otherwise one is made.
    let a = chat(&url, "openai/gpt-4.1", "ids", &[("x-request-id", "trace-123")]).await;
    assert_eq!(a.header("x-request-id"), Some("trace-123"));
    assert!(chat(&url, "openai/gpt-4.1", "ids2", &[]).await.header("x-request-id").is_some_and(|v| v.len() >= 16));
    let line = gw.log_text().lines().find(|l| l.contains("trace-123")).unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["model"], "openai/gpt-4.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_can_opt_out_of_the_cache() {
    let emu = emulator().await;
    let mut routing = Routing::single(upstream("emu", &emu));
    routing.routes[0].cache = false;
    let gw = start(ServeConfig::new(routing), in_memory()).await;
    for _ in 0..2 {
        assert_eq!(chat(&gw.url(), "openai/gpt-4.1", "same", &[]).await.header("x-gm-cache"), Some("miss"));
    }
    assert_eq!(answered(&emu), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_every_request_in_flight_finish() {
    let emu = Emulator::start(EmulatorConfig {
        require_auth: false,
        latency: Duration::from_millis(400),
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = start(ServeConfig::new(Routing::single(upstream("emu", &emu))), uncached()).await;
    let url = gw.url();
    let mut calls = Vec::new();
    for i in 0..6 {
        let url = url.clone();
        calls.push(tokio::spawn(async move { chat(&url, "openai/gpt-4.1", &format!("inflight {i}"), &[]).await }));
    }
    // Every request has reached the upstream before the signal.
    while emu.stats().by_path.values().sum::<u64>() < 6 {
        tokio::task::yield_now().await;
    }
    gw.stop().await.unwrap();
    for c in calls {
        assert_eq!(c.await.unwrap().status, 200);
    }
    assert!(tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_answer_is_held_to_the_gateway_s_cap_and_deadline() {
    use gm_emulator::FaultKind;
    use gm_testkit::emulator::fault;
    let emu = emulator().await;
    // `--max-response-bytes 64KiB --timeout 1s`: every upstream client has them, as every client of gm does.
    let session = SessionConfig { max_response_bytes: 64 << 10, timeout: Duration::from_secs(1), ..uncached() };
    let gw = start(ServeConfig::new(Routing::single(upstream("emulator", &emu))), session).await;
    emu.inject(fault(FaultKind::Huge { bytes: 1 << 20 }, 1));
    let a = chat(&gw.url(), "openai/gpt-4.1", "a long answer", &[]).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert!(
        a.json()["error"]["message"].as_str().unwrap().contains("larger than the cap of 65536 bytes"),
        "{}",
        a.text()
    );
    // An upstream that accepts and never answers: the gateway's deadline, not the client's default of 5 minutes.
    emu.inject(fault(FaultKind::Hang, 1));
    let a = chat(&gw.url(), "openai/gpt-4.1", "never answered", &[]).await;
    assert_eq!(a.status, 504, "{}", a.text());
    assert_eq!(a.json()["error"]["code"], "upstream_timeout");
    let a = chat(&gw.url(), "openai/gpt-4.1", "answered", &[]).await;
    assert_eq!(a.status, 200, "{}", a.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_costs_the_price_of_the_model_that_gave_it_and_the_demo_s_cost_nothing() {
    let emu = emulator().await;
    let route = |model: &str, upstream: &str| RouteConfig {
        model: model.into(),
        targets: vec![Target { upstream: upstream.into(), model: Some("openai/gpt-4.1".into()) }],
        cache: false,
    };
    let routing = Routing {
        upstreams: vec![upstream("emu", &emu), UpstreamConfig::new("demo", ProviderKind::Demo)],
        routes: vec![route("team/priced", "emu"), route("team/demo", "demo")],
        limits: None,
    };
    let gw = start(ServeConfig::new(routing), uncached()).await;
    for model in ["team/priced", "team/demo"] {
        let a = chat(&gw.url(), model, "what does this cost?", &[]).await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let metrics = call(Method::GET, &format!("{}/metrics", gw.url()), &[], "").await.text();
    let cost = |model: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with("gm_serve_cost_micro_usd_total{") && l.contains(&format!("model=\"{model}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.parse::<f64>().unwrap())
    };
    // An alias is priced as the upstream model it names (gpt-4.1 has a price), the demo's answer not at all.
    assert!(cost("team/priced").is_some_and(|c| c > 0.0), "{metrics}");
    assert!(cost("team/demo").unwrap_or(0.0) == 0.0, "{metrics}");
}
