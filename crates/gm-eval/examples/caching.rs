//! Response caching, as the original `CacheManager` (TTL, de-duplication, statistics): a repeated request is
//! answered from the cache, and identical requests in flight at once reach the provider once.
//!
//! Run: `cargo run -p gm-eval --example caching` (offline, on the demo provider).

use std::sync::Arc;
use std::time::Duration;

use gm_cache::{Cache, CacheConfig};
use gm_core::{ChatMessage, ChatRequest, ProviderKind};
use gm_http::{CachePolicy, Client};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache =
        Arc::new(Cache::new(CacheConfig { default_ttl: Some(Duration::from_secs(3600)), ..CacheConfig::default() }));
    let client = Client::builder().provider(ProviderKind::Demo).cache(cache.clone(), CachePolicy::default()).build()?;
    let request = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("What is the capital of France?")]);
    let first = client.chat(&request).await?;
    let second = client.chat(&request).await?;
    println!("first:  {} ({:.1} ms, cached: {})", first.text(), first.latency.as_secs_f64() * 1000.0, first.cached);
    println!("second: {} ({:.3} ms, cached: {})", second.text(), second.latency.as_secs_f64() * 1000.0, second.cached);

    let same = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("What is 6 * 7?")]);
    let answers = futures_util::future::join_all((0..10).map(|_| client.chat(&same))).await;
    println!("10 identical requests at once: {} answers, {} sent", answers.len(), client.stats().requests - 1);

    let stats = cache.stats();
    println!(
        "cache: {} entries, {} hits, {} misses, hit rate {:.0}%",
        stats.memory.entries,
        stats.memory.hits,
        stats.memory.misses,
        stats.hit_rate * 100.0
    );
    Ok(())
}
