//! End to end: a burst of requests through gm's limiter against the emulator enforcing GitHub's low tier with
//! time scaled 30× (15 requests per 2 s, 5 at once). Prints the wall time against the quota bound (the time the
//! quota itself needs for the burst, plus one request's latency) and the 429s the server sent.
//!
//! Run: `cargo bench -p gm-benches --bench limits_e2e`

use std::sync::Arc;
use std::time::{Duration, Instant};

use gm_core::{ChatMessage, ChatRequest, ProviderKind};
use gm_emulator::{Emulator, EmulatorConfig, EmulatorLimits};
use gm_http::{Client, Credential, RetryPolicy};
use gm_limits::{LimitSpec, Limiter, LimitsConfig};

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let latency = Duration::from_millis(20);
        let limits = EmulatorLimits::tier("low", 30.0).expect("low tier");
        let emu = Emulator::start(EmulatorConfig { limits: Some(limits), latency, ..Default::default() })
            .await
            .expect("emulator");
        // The same scaled tier on the client side.
        let spec = LimitSpec::parse("15/2s,150/2880s,concurrency=5").expect("spec");
        let limiter = Arc::new(Limiter::new(LimitsConfig::uniform(spec.clone())));
        let client = Client::builder()
            .provider(ProviderKind::Github)
            .base_url(emu.url())
            .credential(Credential::explicit("bench-token"))
            .retry_policy(RetryPolicy::none())
            .limiter(limiter, Duration::from_secs(60))
            .build()
            .expect("client");
        for n in [45usize, 90] {
            let started = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let c = client.clone();
                    tokio::spawn(async move {
                        let req =
                            ChatRequest::new("openai/gpt-4o-mini", vec![ChatMessage::user(format!("request {i}"))]);
                        c.chat(&req).await.is_ok()
                    })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.unwrap_or(false));
            }
            let wall = started.elapsed();
            // n requests at 15 per 2 s: the last batch starts after (ceil(n/15) - 1) windows of 2 s (plus margin).
            let windows = n.div_ceil(15) - 1;
            let margin = Duration::from_millis(20) + Duration::from_secs(2) / 1000;
            let bound = (Duration::from_secs(2) + margin) * windows as u32 + latency;
            let stats = emu.stats();
            println!(
                "{n} requests, {ok} answered: wall {:.3} s, quota bound plus one latency {:.3} s, ratio {:.4}, 429s {}",
                wall.as_secs_f64(),
                bound.as_secs_f64(),
                wall.as_secs_f64() / bound.as_secs_f64(),
                stats.by_status.get(&429).copied().unwrap_or(0)
            );
            // The next round starts from an empty window.
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
        emu.shutdown().await;
    });
}
