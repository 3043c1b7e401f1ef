//! The whole client path (serialize, HyperTransport, emulator, parse) beside a raw hyper client making the
//! same request to the same emulator, in one run.
//!
//! The emulator runs in a child process, so the CPU time this process spends is the client side alone.
//! Besides criterion's wall-clock figures, the bench prints CPU per request for both clients, measured from
//! `/proc/self/stat` over many requests, and their ratio.
//!
//! Run: `cargo bench -p gm-benches --bench client_path`

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use gm_core::{ChatCompletion, ChatMessage, ChatRequest, ProviderKind};
use gm_http::{Client, RetryPolicy};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as RawClient;
use hyper_util::rt::TokioExecutor;

const CHILD_ENV: &str = "GM_BENCH_EMULATOR_CHILD";

fn spawn_emulator() -> (Child, String) {
    let exe = std::env::current_exe().expect("bench executable path");
    let mut child =
        Command::new(exe).env(CHILD_ENV, "1").stdout(Stdio::piped()).spawn().expect("start the emulator child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("child stdout")).read_line(&mut line).expect("emulator address");
    (child, line.trim().to_string())
}

fn run_child() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    rt.block_on(async {
        let emu = gm_emulator::Emulator::start(Default::default()).await.expect("emulator");
        println!("{}", emu.url());
        emu.wait().await;
    });
}

fn request() -> ChatRequest {
    ChatRequest::new(
        "gpt-4o-mini",
        vec![
            ChatMessage::system("You are a helpful assistant."),
            ChatMessage::user("Summarize the benefits of connection pooling in two sentences."),
        ],
    )
    .with_max_tokens(64)
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name; 100 ticks per second.
    (ticks(11) + ticks(12)) / 100.0
}

struct Setup {
    rt: tokio::runtime::Runtime,
    gm: Client,
    raw: RawClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: String,
}

impl Setup {
    fn new(base: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let gm = Client::builder()
            .provider(ProviderKind::OpenAiCompatible)
            .base_url(format!("{base}/v1"))
            .retry_policy(RetryPolicy::none())
            .build()
            .expect("client");
        let raw = RawClient::builder(TokioExecutor::new()).build_http();
        Setup { rt, gm, raw, url: format!("{base}/v1/chat/completions") }
    }

    fn gm_once(&self, req: &ChatRequest) {
        let r = self.rt.block_on(self.gm.chat(req)).expect("gm chat");
        assert!(!r.text().is_empty());
    }

    /// The same request by hand: serialize, send, read the body, parse, as any caller of raw hyper would.
    fn raw_once(&self, req: &ChatRequest) {
        self.rt.block_on(async {
            let body = Bytes::from(serde_json::to_vec(req).expect("json"));
            let req = http::Request::post(&self.url)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(Full::new(body))
                .expect("request");
            let resp = self.raw.request(req).await.expect("raw request");
            let bytes = resp.into_body().collect().await.expect("body").to_bytes();
            let c: ChatCompletion = serde_json::from_slice(&bytes).expect("parse");
            assert!(!c.text().is_empty());
        });
    }
}

fn bench(c: &mut Criterion, s: &Setup) {
    let req = request();
    let mut g = c.benchmark_group("client_path");
    let req = &req;
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("raw_hyper", |b| b.iter(|| s.raw_once(req)));
    g.bench_function("gm_client", |b| b.iter(|| s.gm_once(req)));
    g.finish();
}

fn cpu_comparison(s: &Setup) {
    let n = 10_000;
    let req = request();
    let mut per = [0.0f64; 2];
    // Alternate rounds so drift on the machine affects both alike.
    for _ in 0..2 {
        let t = cpu_seconds();
        for _ in 0..n / 2 {
            s.raw_once(&req);
        }
        per[0] += cpu_seconds() - t;
        let t = cpu_seconds();
        for _ in 0..n / 2 {
            s.gm_once(&req);
        }
        per[1] += cpu_seconds() - t;
    }
    let raw_us = per[0] / n as f64 * 1e6;
    let gm_us = per[1] / n as f64 * 1e6;
    println!(
        "client CPU per request over {n} requests: raw hyper {raw_us:.1} µs, gm client {gm_us:.1} µs, ratio {:.3}",
        gm_us / raw_us
    );
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        run_child();
        return;
    }
    let (mut child, base) = spawn_emulator();
    let s = Setup::new(&base);
    // `GM_BENCH_LOOP=raw:N` or `gm:N` runs one client N times and exits: for instruction counts under
    // `valgrind --tool=callgrind`, which are repeatable whatever else the machine is doing.
    if let Some((which, n)) = std::env::var("GM_BENCH_LOOP").ok().as_deref().and_then(|v| v.split_once(':')) {
        let n: usize = n.parse().unwrap_or(1000);
        let req = request();
        for _ in 0..n {
            if which == "raw" {
                s.raw_once(&req);
            } else {
                s.gm_once(&req);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &s);
    c.final_summary();
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        cpu_comparison(&s);
    }
    let _ = child.kill();
    let _ = child.wait();
}
