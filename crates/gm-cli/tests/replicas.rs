//! Three `gm serve` processes on one Redis server, as replicas behind a load balancer: together they keep the
//! upstream's quota and concurrency cap (no 429 from the upstream), a client key's window holds across them,
//! a key revoked or an answer cached in one is seen by all, and a replica killed mid-request leaves a
//! concurrency lease that lapses instead of holding the slot for ever.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gm_emulator::{Emulator, EmulatorConfig, EmulatorLimits, Window};
use gm_testkit::{RedisServer, TempDir};

/// A `gm serve` process, killed when dropped.
struct Replica {
    child: Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gm` with its own data folder, sharing `redis`, with nothing from the environment (see
/// [`gm_testkit::cli::gm_command`]).
fn gm(data: &Path, redis: &str, args: &[&str]) -> Command {
    let mut cmd = gm_testkit::cli::gm_command(env!("CARGO_BIN_EXE_gm"));
    cmd.arg("--data-dir").arg(data).args(["--redis", redis]).args(args);
    cmd
}

fn replica(data: &Path, redis: &str, routes: &Path) -> Replica {
    let routes = routes.to_str().unwrap();
    let mut child =
        gm(data, redis, &["--max-wait", "60s", "serve", "--routes", routes, "--port", "0", "--no-access-log"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
    let mut said = Vec::new();
    let url = loop {
        let line = lines.next().unwrap_or_else(|| panic!("gm serve stopped before listening: {said:?}"));
        if let Some(addr) = line.strip_prefix("gm serve: listening on ") {
            break addr.to_string();
        }
        said.push(line);
    };
    // Keep reading standard error, so the replica never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Replica { child, url }
}

/// A chat request: the status and the `x-gm-cache` header.
async fn chat(url: &str, model: &str, text: &str, key: Option<&str>) -> (u16, Option<String>) {
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]}).to_string();
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    if let Some(key) = key {
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
    }
    let request = gm_http::HttpRequest {
        method: http::Method::POST,
        url: format!("{url}/v1/chat/completions").parse().unwrap(),
        headers,
        body: body.into(),
    };
    let t = gm_http::HyperTransport::new(Default::default()).unwrap();
    let resp = gm_http::Transport::send(&t, request).await.expect("the replica answers");
    let cache = resp.headers.get("x-gm-cache").and_then(|v| v.to_str().ok()).map(str::to_string);
    let status = resp.status;
    let _ = resp.collect(1 << 20).await;
    (status, cache)
}

/// The requests in flight that Redis counts for the upstream serving `model`: its leases not lapsed by now.
fn leases(port: u16, model: &str) -> u64 {
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let now_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    cli(&["--scan", "--pattern", "gm:limits:*:leases"])
        .lines()
        .filter(|k| k.contains(model))
        .map(|k| cli(&["zcount", k, &format!("({now_us}"), "+inf"]).trim().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn three_replicas_on_one_redis_share_quota_keys_cache_and_leases() {
    let Some(redis) = RedisServer::start() else { return };
    if !gm_testkit::skip::program("redis-cli", "apt-get install redis-tools") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // A scaled tier: 24 requests per 3 s and 2 at once, for every replica together.
    let tier = EmulatorLimits {
        windows: vec![Window { limit: 24, window: Duration::from_secs(3), daily: false }],
        concurrency: Some(2),
    };
    let config = EmulatorConfig {
        require_auth: false,
        latency: Duration::from_millis(100),
        limits: Some(tier),
        ..Default::default()
    };
    let emu = rt.block_on(Emulator::start(config)).unwrap();
    // A slow upstream with one request at a time, for the replica that dies mid-request.
    let slow = EmulatorConfig {
        require_auth: false,
        latency: Duration::from_secs(2),
        limits: Some(EmulatorLimits { windows: vec![], concurrency: Some(1) }),
        ..Default::default()
    };
    let slow = rt.block_on(Emulator::start(slow)).unwrap();
    // Its connections tell when a request has been admitted and sent.
    let slow_proxy = gm_testkit::CountingProxy::start(slow.addr());
    let dir = TempDir::new("serve-replicas");
    let routes = dir.join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            "[upstreams.emu]\nprovider = \"openai-compatible\"\nbase_url = \"{}\"\nlimits = \"24/3s,concurrency=2\"\n\n\
             [upstreams.slow]\nprovider = \"openai-compatible\"\nbase_url = \"{}\"\nlimits = \"concurrency=1\"\n\n\
             [[routes]]\nmodel = \"openai/gpt-4.1-mini\"\nto = [\"slow\"]\n\n\
             [[routes]]\nmodel = \"*\"\nto = [\"emu\"]\n",
            emu.openai_url(),
            slow_proxy.openai_url()
        ),
    )
    .unwrap();
    let url = redis.url();
    let data: Vec<_> = (0..3).map(|i| dir.join(format!("replica{i}"))).collect();
    let replicas: Vec<Replica> = data.iter().map(|d| replica(d, &url, &routes)).collect();
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();

    // Load: three clients on each replica, 40 requests in all, more than the tier takes in one window.
    let answers = rt.block_on(async {
        let mut calls = Vec::new();
        for i in 0..40 {
            let url = urls[i % 3].clone();
            calls.push(tokio::spawn(async move { chat(&url, "openai/gpt-4.1", &format!("load {i}"), None).await.0 }));
        }
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.unwrap());
        }
        out
    });
    assert!(answers.iter().all(|&s| s == 200), "{answers:?}");
    let stats = emu.stats();
    assert_eq!(stats.by_status.get(&429), None, "the upstream answered 429: {stats:?}");
    assert_eq!(stats.answered_by_model.values().sum::<u64>(), 40);

    // A key made on one machine, limited to 5 an hour: exactly 5 pass across the three replicas.
    let out = gm(&data[0], &url, &["serve", "keys", "create", "--name", "ci", "--limits", "5/1h"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let statuses = rt.block_on(async {
        let mut out = Vec::new();
        for i in 0..12 {
            out.push(chat(&urls[i % 3], "openai/gpt-4.1", &format!("keyed {i}"), Some(&secret)).await.0);
        }
        out
    });
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 7, "{statuses:?}");

    // The cache: an answer one replica fetched, the others serve.
    let other = gm(&data[1], &url, &["serve", "keys", "create", "--name", "other"]).output().unwrap();
    let other = String::from_utf8(other.stdout).unwrap().trim().to_string();
    let cached = rt.block_on(async {
        let mut out = Vec::new();
        for u in &urls {
            out.push(chat(u, "openai/gpt-4.1", "the same question", Some(&other)).await);
        }
        out
    });
    let hits: Vec<_> = cached.iter().map(|(s, c)| (*s, c.as_deref())).collect();
    assert_eq!(hits, [(200, Some("miss")), (200, Some("hit")), (200, Some("hit"))]);

    // A key revoked on another machine is refused by every replica from its next request on.
    let out = gm(&data[2], &url, &["serve", "keys", "revoke", "other"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for u in &urls {
        assert_eq!(rt.block_on(chat(u, "openai/gpt-4.1", "revoked", Some(&other))).0, 401);
    }

    // A replica killed mid-request leaves its concurrency lease in Redis: it counts until it lapses, so the
    // slow upstream (one at a time) never sees a second request while the first may still run.
    let out = gm(&data[0], &url, &["serve", "keys", "create", "--name", "ops"]).output().unwrap();
    let ops = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut replicas = replicas;
    let doomed = replicas.pop().unwrap();
    let (slow_url, key) = (doomed.url.clone(), ops.clone());
    let _in_flight = rt.spawn(async move { chat(&slow_url, "openai/gpt-4.1-mini", "slow", Some(&key)).await });
    while slow_proxy.connections() < 1 {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(doomed); // SIGKILL: the replica never ends its lease
    assert_eq!(leases(redis.port(), "gpt-4.1-mini"), 1, "the dead replica's lease is held until it lapses");
    let after = rt.block_on(chat(&urls[0], "openai/gpt-4.1-mini", "after the kill", Some(&ops)));
    assert_eq!(after.0, 200);
    assert_eq!(slow.stats().by_status.get(&429), None, "the slow upstream saw two at once");
    assert_eq!(leases(redis.port(), "gpt-4.1-mini"), 0);
}
