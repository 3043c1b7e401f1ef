//! Clients for several upstreams over one session's state, as a server that routes to them builds them: each
//! upstream with its own limits, all counting in the state file and answering from one cache.

use std::time::Duration;

use gm_app::{CacheSettings, LimitsSettings, Session, SessionConfig};
use gm_core::{ChatMessage, ChatRequest, ProviderKind};
use gm_http::{CachePolicy, Error};
use gm_testkit::emulator::{self, EmulatorConfig};
use gm_testkit::TempDir;

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("openai/gpt-4.1-mini", vec![ChatMessage::user(text)])
}

/// An OpenAI-compatible server at `url` under `limits`, waiting for no quota.
fn upstream(url: String, limits: &str) -> SessionConfig {
    SessionConfig {
        provider: ProviderKind::OpenAiCompatible,
        base_url: Some(url),
        limits: LimitsSettings { spec: Some(limits.parse().unwrap()), ..LimitsSettings::default() },
        max_wait: Duration::ZERO,
        ..SessionConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_count_their_own_limits_in_the_session_s_state_and_share_its_cache() {
    let open = EmulatorConfig { require_auth: false, ..EmulatorConfig::default() };
    let (a, b) = (emulator::start(open.clone(), []).await, emulator::start(open, []).await);
    let dir = TempDir::new("app-upstreams");
    let gateway = SessionConfig {
        data_dir: Some(dir.to_path_buf()),
        cache: CacheSettings { enabled: true, ..CacheSettings::default() },
        ..SessionConfig::default()
    };
    let session = Session::new(gateway.clone());
    let (to_a, to_b) = (upstream(a.openai_url(), "2/1m"), upstream(b.openai_url(), "1/1m"));
    let client_a = session.client_builder(&to_a).unwrap().build().unwrap();
    let client_b = session.client_builder(&to_b).unwrap().build().unwrap();
    for i in 0..2 {
        client_a.chat(&ask(&format!("a{i}"))).await.unwrap();
    }
    client_b.chat(&ask("b0")).await.unwrap();
    // Each upstream's own window is full; neither filled the other's.
    assert!(matches!(client_a.chat(&ask("a2")).await.unwrap_err(), Error::Limit(_)));
    assert!(matches!(client_b.chat(&ask("b1")).await.unwrap_err(), Error::Limit(_)));

    // Another process with the same state file (here, another session) sees what this one counted.
    let other = Session::new(gateway);
    let again = other.client_builder(&to_a).unwrap().build().unwrap();
    assert!(matches!(again.chat(&ask("a3")).await.unwrap_err(), Error::Limit(_)));
    assert_eq!((a.stats().total, b.stats().total), (2, 1));

    // The cache is the session's, shared by every client built with it.
    let cache = session.response_cache().unwrap().expect("the session caches");
    let unlimited = upstream(a.openai_url(), "none");
    let cached = |refresh| {
        let policy = CachePolicy { ttl: None, refresh };
        session.client_builder(&unlimited).unwrap().cache(cache.clone(), policy).build().unwrap()
    };
    let (first, second) = (cached(false), cached(false));
    assert!(!first.chat(&ask("cache me")).await.unwrap().cached);
    assert!(second.chat(&ask("cache me")).await.unwrap().cached);
    assert!(!cached(true).chat(&ask("cache me")).await.unwrap().cached);
    assert_eq!(a.stats().total, 4);
    session.finish();
    assert_eq!(session.cache_stats().unwrap().persistent.hits, 1);

    // A session whose cache is off has none to give.
    let uncached = Session::new(SessionConfig {
        cache: CacheSettings { enabled: false, ..CacheSettings::default() },
        ..SessionConfig::default()
    });
    assert!(uncached.response_cache().unwrap().is_none());
}
