//! Rate limiting, as the original `RateLimiter` (here 3 requests per second with a burst of 3): the first three
//! requests pass at once, the next wait exactly until the window allows them, and none is refused.
//!
//! Run: `cargo run -p gm-eval --example rate_limiting` (offline, on the demo provider).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gm_core::{ChatMessage, ChatRequest, ProviderKind};
use gm_http::Client;
use gm_limits::{LimitSpec, Limiter, LimitsConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limiter = Arc::new(Limiter::new(LimitsConfig::uniform(LimitSpec::parse("3/1s,concurrency=2")?)));
    let client =
        Client::builder().provider(ProviderKind::Demo).limiter(limiter.clone(), Duration::from_secs(30)).build()?;
    let started = Instant::now();
    for i in 1..=7 {
        let request = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user(format!("What is {i} + {i}?"))]);
        let answer = client.chat(&request).await?;
        println!("request {i} answered at {:>5.0} ms: {}", started.elapsed().as_secs_f64() * 1000.0, answer.text());
    }
    for status in limiter.status() {
        println!("{}: {} windows, {} in flight", status.key, status.requests.len(), status.in_flight);
        for w in &status.requests {
            println!("  {} per {:?}: {} used, {} remaining", w.limit, w.per, w.used, w.remaining);
        }
    }
    Ok(())
}
