//! The client with its limiter and cache in front of the emulator.

use std::sync::Arc;
use std::time::Duration;

use gm_cache::{Cache, CacheConfig};
use gm_core::{ChatMessage, ChatRequest, Clock, ManualClock, ProviderKind};
use gm_emulator::{Emulator, EmulatorConfig, EmulatorLimits, Window};
use gm_http::{CachePolicy, Client, Credential, Error, RetryPolicy};
use gm_limits::{LimitSpec, Limiter, LimitsConfig};
use gm_testkit::emulator;

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user(text)])
}

fn builder(emu: &Emulator) -> gm_http::ClientBuilder {
    Client::builder()
        .provider(ProviderKind::Github)
        .base_url(emu.url())
        .credential(Credential::explicit("ghp_layers"))
        .retry_policy(RetryPolicy::none())
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let cache = Arc::new(Cache::new(CacheConfig::default()));
    let c = builder(&emu).cache(cache.clone(), CachePolicy::default()).build().unwrap();
    let first = c.chat(&ask("cache me")).await.unwrap();
    let second = c.chat(&ask("cache me")).await.unwrap();
    assert!(!first.cached && second.cached);
    assert_eq!(first.text(), second.text());
    // A streamed call of the same request replays the cached answer.
    let s = c.chat_stream(&ask("cache me")).await.unwrap();
    assert!(s.is_cached());
    assert_eq!(s.collect().await.unwrap().text(), "cache me");
    // A different request, and a different sample of the same one, are sent.
    c.chat(&ask("something else")).await.unwrap();
    c.chat_sample(&ask("cache me"), 1).await.unwrap();
    assert_eq!(emu.stats().total, 3);
    assert_eq!(cache.stats().memory.hits, 2);
}

#[tokio::test]
async fn a_streamed_answer_is_stored_and_refresh_sends_again() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let cache = Arc::new(Cache::new(CacheConfig::default()));
    let c = builder(&emu).cache(cache.clone(), CachePolicy::default()).build().unwrap();
    let streamed = c.chat_stream(&ask("stream then hit")).await.unwrap().collect().await.unwrap();
    let hit = c.chat(&ask("stream then hit")).await.unwrap();
    assert!(hit.cached);
    assert_eq!(hit.text(), streamed.text());
    assert_eq!(hit.usage(), streamed.usage());
    let refresh = builder(&emu).cache(cache, CachePolicy { refresh: true, ..Default::default() }).build().unwrap();
    assert!(!refresh.chat(&ask("stream then hit")).await.unwrap().cached);
    assert_eq!(emu.stats().total, 2);
}

#[tokio::test]
async fn identical_concurrent_requests_reach_the_server_once() {
    let emu =
        Emulator::start(EmulatorConfig { latency: Duration::from_millis(50), ..Default::default() }).await.unwrap();
    let cache = Arc::new(Cache::new(CacheConfig::default()));
    let c = builder(&emu).cache(cache, CachePolicy::default()).build().unwrap();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.chat(&ask("once")).await.unwrap().text().to_string() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), "once");
    }
    assert_eq!(emu.stats().total, 1);
}

#[tokio::test]
async fn a_burst_through_the_limiter_earns_no_429() {
    // The server allows 4 per 300 ms per token and model; the client is configured with the same quota.
    let limits = EmulatorLimits {
        windows: vec![Window { limit: 4, window: Duration::from_millis(300), daily: false }],
        concurrency: None,
    };
    let emu = Emulator::start(EmulatorConfig { limits: Some(limits), ..Default::default() }).await.unwrap();
    let mut spec = LimitSpec::parse("4/300ms").unwrap();
    // Transit times differ from request to request (by tens of milliseconds on a loaded machine), so a request
    // admitted a full window after another can still reach the server inside that window; the margin keeps the
    // server's count in agreement, as the CLI's does.
    spec.margin = Some(gm_limits::Margin { fixed: Duration::from_millis(100), ppm: 0 });
    let limiter = Arc::new(Limiter::new(LimitsConfig::uniform(spec)));
    let c = builder(&emu).limiter(limiter.clone(), Duration::from_secs(10)).build().unwrap();
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.chat(&ask(&format!("burst {i}"))).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let stats = emu.stats();
    assert_eq!(stats.by_status.get(&429), None, "{stats:?}");
    assert_eq!(stats.by_status[&200], 12);
    assert_eq!(c.stats().rate_limited, 0);
    assert!(!limiter.status().is_empty());
}

#[tokio::test]
async fn a_request_over_the_token_cap_is_refused_before_sending() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let limiter = Arc::new(Limiter::new(LimitsConfig::uniform(LimitSpec::parse("100/1m,tokens_in=50").unwrap())));
    let c = builder(&emu).limiter(limiter, Duration::from_secs(1)).build().unwrap();
    let e = c.chat(&ask(&"many words here ".repeat(40))).await.unwrap_err();
    assert!(matches!(e, Error::Limit(_)), "{e:?}");
    assert!(e.is_usage());
    assert_eq!(emu.stats().total, 0);
}

#[tokio::test]
async fn two_servers_reached_without_a_key_or_with_the_same_one_have_quotas_of_their_own() {
    let config = EmulatorConfig { require_auth: false, ..Default::default() };
    let servers = [Emulator::start(config.clone()).await.unwrap(), Emulator::start(config).await.unwrap()];
    for credential in [None, Some("EMPTY")] {
        let limiter = Arc::new(Limiter::new(LimitsConfig::uniform(LimitSpec::parse("2/1m").unwrap())));
        let clients: Vec<Client> = servers
            .iter()
            .map(|emu| {
                let mut b = Client::builder()
                    .provider(ProviderKind::OpenAiCompatible)
                    .base_url(emu.openai_url())
                    .retry_policy(RetryPolicy::none())
                    .limiter(limiter.clone(), Duration::ZERO);
                if let Some(c) = credential {
                    b = b.credential(Credential::explicit(c));
                }
                b.build().unwrap()
            })
            .collect();
        assert_ne!(clients[0].limit_key("llama3.2"), clients[1].limit_key("llama3.2"));
        for c in &clients {
            for i in 0..2 {
                c.chat(&ask(&format!("{credential:?} {i}"))).await.unwrap();
            }
            // Each server's own window is full; the other's did not fill it.
            assert!(matches!(c.chat(&ask("third")).await.unwrap_err(), Error::Limit(_)));
        }
    }
    // At the provider's own endpoint a credential alone tells its quota, as it always did.
    let c = Client::builder().provider(ProviderKind::OpenAi).credential(Credential::explicit("sk-x")).build().unwrap();
    assert_eq!(c.limit_key("gpt-4.1").credential, gm_limits::fingerprint("sk-x"));
}

#[tokio::test]
async fn github_models_get_their_catalog_tier_on_the_free_plan() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let limiter = Arc::new(Limiter::new(LimitsConfig::default()));
    let c = builder(&emu).limiter(limiter.clone(), Duration::from_secs(1)).build().unwrap();
    c.chat(&ask("tiered")).await.unwrap();
    let key = c.limit_key("openai/gpt-4.1");
    assert!(key.credential.len() >= 8, "a fingerprint, not the token");
    assert!(!key.credential.contains("ghp_layers"));
    let spec = limiter.limits(&key).to_string();
    assert!(spec.starts_with("10/1m,50/1d,concurrency=2"), "the high tier: {spec}");
    // One catalog request, then the chat request.
    assert_eq!(emu.stats().by_path["/catalog/models"], 1);
}

#[tokio::test]
async fn a_retry_at_the_concurrency_cap_does_not_wait_for_its_own_slot() {
    // With one request allowed in flight, the retry after a 500 needs the slot the failed attempt held.
    let emu = emulator::start(EmulatorConfig::default(), [gm_emulator::Fault::status(500, 1)]).await;
    let limiter = Arc::new(Limiter::new(LimitsConfig::uniform(LimitSpec::parse("100/1m,concurrency=1").unwrap())));
    let retry = RetryPolicy { initial_backoff: Duration::from_millis(5), ..RetryPolicy::default() };
    let c = builder(&emu).retry_policy(retry).limiter(limiter.clone(), Duration::from_secs(2)).build().unwrap();
    let answer = c.chat(&ask("retried")).await.expect("the retry gets the slot back");
    assert_eq!(answer.attempts, 2);
    assert_eq!(emu.stats().total, 2);
    assert_eq!(limiter.status()[0].in_flight, 0, "the answer's permit is settled");
}

#[tokio::test]
async fn a_server_wait_over_the_cap_fails_at_once_and_says_how_long() {
    let emu = emulator::start(EmulatorConfig::default(), [emulator::rate_limited(20, 1)]).await;
    let retry = RetryPolicy { max_wait: Duration::from_secs(2), ..RetryPolicy::default() };
    let c = builder(&emu).retry_policy(retry).build().unwrap();
    let e = c.chat(&ask("wait")).await.unwrap_err();
    assert!(matches!(e, Error::WaitTooLong { .. }), "{e:?}");
    assert!(e.to_string().contains("20"), "{e}");
    assert_eq!(emu.stats().total, 1);
}

#[tokio::test]
async fn a_429_blocks_the_key_on_the_limiter_s_own_clock() {
    let emu = emulator::start(EmulatorConfig::default(), [emulator::rate_limited(30, 1)]).await;
    // The limiter's clock runs an hour ahead of the machine's: what the client tells it must be on its time.
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(3600));
    let config = LimitsConfig::uniform(LimitSpec::parse("100/1m").unwrap());
    let limiter = Arc::new(Limiter::with_clock(config, Arc::new(clock.clone())));
    let c = builder(&emu).limiter(limiter.clone(), Duration::from_secs(1)).build().unwrap();
    let e = c.chat(&ask("blocked")).await.unwrap_err();
    assert_eq!(e.status(), Some(429), "{e:?}");
    let status = limiter.key_status(&c.limit_key("openai/gpt-4.1"), clock.now()).unwrap();
    assert_eq!(status.blocked_for, Some(Duration::from_secs(30)), "{status:?}");
    clock.advance(Duration::from_secs(30));
    assert_eq!(limiter.key_status(&c.limit_key("openai/gpt-4.1"), clock.now()).unwrap().blocked_for, None);
}

#[tokio::test]
async fn a_429_without_a_wait_backs_off_briefly_and_says_it_was_not_told() {
    let emu = emulator::start(EmulatorConfig::default(), [emulator::untold_429(2)]).await;
    let clock = ManualClock::new();
    let config = LimitsConfig::uniform(LimitSpec::parse("100/1m").unwrap());
    let limiter = Arc::new(Limiter::with_clock(config, Arc::new(clock.clone())));
    let c = builder(&emu).limiter(limiter.clone(), Duration::from_secs(1)).build().unwrap();
    let key = c.limit_key("openai/gpt-4.1");
    let e = c.chat(&ask("untold")).await.unwrap_err();
    assert_eq!(e.status(), Some(429), "{e:?}");
    assert!(e.to_string().contains("did not say how long to wait"), "{e}");
    // A short block, not a guessed minute; the next untold 429 in a row doubles it.
    let status = limiter.key_status(&key, clock.now()).unwrap();
    assert_eq!(status.blocked_for, Some(Duration::from_secs(1)), "{status:?}");
    clock.advance(Duration::from_secs(1));
    c.chat(&ask("untold again")).await.unwrap_err();
    assert_eq!(limiter.key_status(&key, clock.now()).unwrap().blocked_for, Some(Duration::from_secs(2)));
    // An answer starts the backoff over.
    clock.advance(Duration::from_secs(2));
    c.chat(&ask("answered")).await.unwrap();
    assert_eq!(limiter.key_status(&key, clock.now()).unwrap().blocked_for, None);
}

#[tokio::test]
async fn a_burst_against_a_scaled_github_tier_earns_no_429() {
    // GitHub's low tier on the free plan with a minute lasting a second, on both sides: the emulator counts
    // with its own sliding window, the client plans with gm-limits' preset for the same tier.
    let emu = Emulator::start(EmulatorConfig {
        limits: Some(EmulatorLimits::tier("low", 60.0).unwrap()),
        latency: Duration::from_millis(20),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut spec = gm_limits::presets::github(gm_limits::presets::Tier::Low, gm_limits::presets::Plan::Free).unwrap();
    for w in &mut spec.windows {
        w.per /= 60;
    }
    spec.tokens_in = None;
    // Transit times differ from request to request; the margin keeps the server's count in agreement.
    spec.margin = Some(gm_limits::Margin { fixed: Duration::from_millis(200), ppm: 0 });
    let limiter = Arc::new(Limiter::new(LimitsConfig::uniform(spec)));
    let c = builder(&emu).limiter(limiter, Duration::from_secs(30)).build().unwrap();
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.chat(&ask(&format!("tier burst {i}"))).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let stats = emu.stats();
    assert_eq!(stats.by_status.get(&429), None, "{stats:?}");
    assert_eq!(stats.by_status[&200], 40);
}

#[tokio::test]
async fn a_short_wait_cap_shortens_the_backoff_instead_of_failing() {
    // The cap is on waits the server asks for; a 500 without one is retried after a backoff cut to the cap.
    let emu = emulator::start(EmulatorConfig::default(), [gm_emulator::Fault::status(500, 1)]).await;
    let retry = RetryPolicy { max_wait: Duration::from_millis(1), ..RetryPolicy::default() };
    let c = builder(&emu).retry_policy(retry).build().unwrap();
    let answer = c.chat(&ask("retried soon")).await.expect("retried, not refused");
    assert_eq!(answer.attempts, 2);
}
