//! Learning from the server: the real 429 bodies of GitHub Models, and remaining-count headers.

use std::time::{Duration, Instant};

use gm_limits::{presets, Denied, LimitKey, Limiter, LimitsConfig, ServerSignal, TokenCount, Wait, WaitReason};

fn fixture(name: &str) -> Vec<u8> {
    gm_testkit::read_shared(&format!("fixtures/github-models/errors/{name}"))
}

fn github_high_free() -> (Limiter, LimitKey) {
    let l = Limiter::new(LimitsConfig::default());
    let key = LimitKey::for_token("github", "ghp_example", "openai/gpt-4.1");
    l.set_limits(&key, presets::github(presets::Tier::High, presets::Plan::Free).unwrap());
    (l, key)
}

#[test]
fn retry_after_in_the_minute_body_is_honoured() {
    let (l, key) = github_high_free();
    let now = Instant::now();
    let seen =
        l.observe(&key, &ServerSignal::new(429).body(&fixture("429-RateLimitReached.UserByModelByMinute.json")), now);
    assert_eq!((seen.retry_after, seen.daily), (Some(Duration::from_secs(46)), false));
    let Err(Denied::Wait(Wait { until, reason })) = l.try_acquire(&key, TokenCount::ZERO, now) else { panic!() };
    assert_eq!(until, Some(now + Duration::from_secs(46)));
    assert_eq!(reason, WaitReason::Server { daily: false });
    assert!(l.try_acquire(&key, TokenCount::ZERO, now + Duration::from_secs(46)).is_ok());
}

#[test]
fn the_day_body_marks_the_day_as_spent() {
    let (l, key) = github_high_free();
    let now = Instant::now();
    let sig = ServerSignal::new(429)
        .header("Retry-After", "5631")
        .body(&fixture("429-RateLimitReached.UserByModelByDay.json"));
    let seen = l.observe(&key, &sig, now);
    assert!(seen.daily);
    let Err(Denied::Wait(w)) = l.try_acquire(&key, TokenCount::ZERO, now + Duration::from_secs(5000)) else { panic!() };
    assert_eq!(w.reason, WaitReason::Server { daily: true });
    let st = l.key_status(&key, now).unwrap();
    assert!(st.daily_quota_spent);
    // A later, shorter 429 never shortens the block.
    l.observe(&key, &ServerSignal::new(429).header("retry-after", "5"), now);
    assert_eq!(l.key_status(&key, now).unwrap().blocked_for, Some(Duration::from_secs(5631)));
}

#[test]
fn remaining_headers_tighten_the_local_count() {
    let (l, key) = github_high_free();
    let now = Instant::now();
    drop(l.try_acquire(&key, TokenCount::ZERO, now).unwrap());
    // Another process used the same token: the server has 3 left of the 10 per minute.
    let sig =
        ServerSignal::new(200).header("x-ratelimit-remaining-requests", "3").header("x-ratelimit-limit-requests", "10");
    l.observe(&key, &sig, now);
    let st = l.key_status(&key, now).unwrap();
    assert_eq!(st.requests[0].remaining, 3);
    for _ in 0..3 {
        drop(l.try_acquire(&key, TokenCount::ZERO, now).unwrap());
    }
    assert!(l.try_acquire(&key, TokenCount::ZERO, now).is_err());
}

#[test]
fn per_request_caps_come_from_the_tier() {
    let (l, key) = github_high_free();
    let now = Instant::now();
    let Err(Denied::Refused(e)) = l.try_acquire(&key, TokenCount::new(8200, 100), now) else { panic!() };
    assert_eq!(e.to_string(), "the request has 8200 input tokens, 200 over the cap of 8000 per request; shorten the prompt by at least 200 tokens");
    assert!(l.check(&key, &TokenCount::new(100, 4001)).unwrap_err().to_string().contains("set max_tokens to 4000"));
}
