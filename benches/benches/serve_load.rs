//! `gm serve` under load: an open-loop generator sends chat requests at fixed rates to the emulator directly
//! and through the gateway (limits on with the cache off, in the state file and in Redis; limits off; the
//! cache-hit path), and prints, per target and rate, the latency of the answers (p50, p99, from each
//! request's scheduled start, so a stalled server cannot hide its queue), the errors, and the server's CPU
//! and peak memory.
//!
//! Run: `cargo xtask bench-serve` (builds the release `gm`, which this harness starts as `gm emulate` and
//! `gm serve` processes). Options after `--`: `--rates 500,2000` `--seconds 5` `--threads N` (the
//! generator's, 2 by default) `--only cache,Redis` (targets whose name contains one of these, beside the
//! direct run) `--rounds N` (every target at every rate N times, in turn, reporting medians: runs of a few
//! seconds on a shared machine move by a millisecond at p99) `--litellm PATH` (a `litellm` executable: LiteLLM's proxy in front of the same emulator; by
//! default `target/litellm/bin/litellm` when it is there).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The bearer token every request sends: LiteLLM's master key (its production settings require one); the
/// emulator and a gateway without client keys accept any.
const BEARER: &str = "sk-gm-bench-5f1c9e7a2b4d4c0e8a6f3b1d9c7e5a20";

/// How long one request may take before it counts as an error.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A server process under test, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Its workers too (LiteLLM's), which would outlive it.
        let workers: Vec<String> = tree(self.child.id()).iter().skip(1).map(u32::to_string).collect();
        if !workers.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&workers).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd` and waits for the line on standard error that names its address after `marker`.
    fn start(mut cmd: Command, marker: &str) -> Server {
        let mut child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start the server");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines().map_while(Result::ok);
        let mut said = Vec::new();
        let url = loop {
            let line = lines.next().unwrap_or_else(|| panic!("the server stopped before listening: {said:?}"));
            if let Some(rest) = line.split(marker).nth(1) {
                let url = rest.split_whitespace().next().unwrap_or_default().trim_end_matches('/');
                break url.trim_end_matches("/v1").to_string();
            }
            said.push(line);
        };
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, url }
    }

    /// The CPU time so far of the process and every process under it (a server's workers), in seconds.
    fn cpu(&self) -> f64 {
        let ticks: f64 = tree(self.child.id())
            .iter()
            .map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
                let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                ticks(11) + ticks(12)
            })
            .sum();
        ticks / clock_ticks()
    }

    /// The peak resident memory of the process and every process under it (the sum of their peaks), in MB.
    fn peak_mb(&self) -> f64 {
        tree(self.child.id())
            .iter()
            .map(|pid| {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                    .map_or(0.0, |kb| kb / 1024.0)
            })
            .sum()
    }
}

/// `pid` and every process descended from it.
fn tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| {
                    let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                    let ppid = stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()?;
                    Some((p, ppid))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(parents.iter().filter(|&&(_, pp)| pp == parent).map(|&(p, _)| p));
        i += 1;
    }
    out
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// What one step (a target at a rate) measured.
struct Step {
    sent: usize,
    ok: usize,
    p50_ms: f64,
    p99_ms: f64,
    cpu_pct: f64,
}

type Raw = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn body(i: usize, same: bool) -> Bytes {
    let text = if same { "What is the capital of France?".to_string() } else { format!("Question number {i}?") };
    Bytes::from(
        serde_json::json!({"model": "gpt-4o-mini", "max_tokens": 32, "messages": [{"role": "user", "content": text}]})
            .to_string(),
    )
}

async fn one(client: &Raw, url: &str, body: Bytes) -> bool {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {BEARER}"))
        .body(Full::new(body))
        .expect("request");
    let answer = async {
        let resp = client.request(req).await.ok()?;
        let ok = resp.status() == 200;
        let _ = resp.into_body().collect().await.ok()?;
        Some(ok)
    };
    matches!(tokio::time::timeout(TIMEOUT, answer).await, Ok(Some(true)))
}

/// The median of some figures (the mean of the middle two for an even count; NaN for none).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    gm_core::metrics::percentile_sorted(&v, 50.0).unwrap_or(f64::NAN)
}

/// Sends `rate` requests a second for `seconds` to `server`, each at its scheduled time whatever the answers
/// before it, and waits for the last. The schedule is dealt out to `senders` tasks (request i to sender
/// i mod senders), one per thread of the generator's runtime, each with its own connection pool.
fn step(
    rt: &tokio::runtime::Runtime,
    senders: usize,
    server: &Server,
    rate: u32,
    seconds: u64,
    same: bool,
    offset: usize,
) -> Step {
    let url = format!("{}/v1/chat/completions", server.url);
    let n = usize::try_from(u64::from(rate) * seconds).unwrap_or(usize::MAX);
    let interval = Duration::from_secs(1) / rate;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let cpu0 = server.cpu();
    let wall0 = Instant::now();
    rt.block_on(async {
        let start = tokio::time::Instant::now() + Duration::from_millis(50);
        let mut sends = Vec::new();
        for first in 0..senders {
            let (url, latencies) = (url.clone(), latencies.clone());
            sends.push(tokio::spawn(async move {
                let client: Raw = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build_http();
                let mut tasks = Vec::with_capacity(n / senders + 1);
                for i in (first..n).step_by(senders) {
                    let at = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
                    tokio::time::sleep_until(at).await;
                    let (client, url, latencies) = (client.clone(), url.clone(), latencies.clone());
                    let body = body(offset + i, same);
                    tasks.push(tokio::spawn(async move {
                        if one(&client, &url, body).await {
                            let took = tokio::time::Instant::now().saturating_duration_since(at);
                            latencies.lock().expect("latencies").push(took);
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            }));
        }
        for s in sends {
            let _ = s.await;
        }
    });
    let wall = wall0.elapsed().as_secs_f64();
    let mut l = latencies.lock().expect("latencies").clone();
    l.sort();
    let pct = |p: f64| {
        if l.is_empty() {
            return f64::NAN;
        }
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i].as_secs_f64() * 1000.0
    };
    Step { sent: n, ok: l.len(), p50_ms: pct(0.50), p99_ms: pct(0.99), cpu_pct: (server.cpu() - cpu0) / wall * 100.0 }
}

struct Options {
    gm: PathBuf,
    dir: PathBuf,
    rates: Vec<u32>,
    seconds: u64,
    litellm: Option<PathBuf>,
    redis: Option<String>,
    /// Threads (and senders) of the load generator.
    threads: usize,
    /// Only the targets whose name contains one of these (all when empty).
    only: Vec<String>,
    /// How many times every target runs at every rate (figures are the medians).
    rounds: usize,
}

fn options() -> Options {
    let gm =
        PathBuf::from(std::env::var_os("GM_BENCH_GM").expect("GM_BENCH_GM: the release gm (cargo xtask bench-serve)"));
    let dir = PathBuf::from(std::env::var_os("GM_BENCH_DIR").expect("GM_BENCH_DIR: a scratch folder"));
    let mut o = Options {
        gm,
        dir,
        rates: vec![500, 1000, 2000, 4000],
        seconds: 5,
        litellm: std::env::var_os("GM_BENCH_LITELLM").map(PathBuf::from),
        redis: std::env::var("GM_BENCH_REDIS").ok(),
        threads: 2,
        only: Vec::new(),
        rounds: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--rates" => o.rates = value().split(',').map(|r| r.parse().expect("--rates: numbers")).collect(),
            "--seconds" => o.seconds = value().parse().expect("--seconds: a number"),
            "--litellm" => o.litellm = Some(PathBuf::from(value())),
            "--threads" => o.threads = value().parse().expect("--threads: a number"),
            "--only" => o.only = value().split(',').map(str::to_string).collect(),
            "--rounds" => o.rounds = value().parse::<usize>().expect("--rounds: a number").max(1),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn gm_serve(o: &Options, name: &str, emulator: &str, extra: &[&str]) -> Server {
    let data = o.dir.join(name);
    let _ = std::fs::remove_dir_all(&data);
    let mut cmd = Command::new(&o.gm);
    cmd.arg("--data-dir").arg(&data);
    cmd.args(["--provider", "openai-compatible", "--base-url", &format!("{emulator}/v1")]);
    cmd.args(extra).args(["serve", "--port", "0"]);
    cmd.env("OPENAI_API_KEY", "bench").env_remove("GM_REDIS_URL");
    Server::start(cmd, "gm serve: listening on ")
}

fn litellm(o: &Options, exe: &Path, emulator: &str) -> Server {
    let config = o.dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n      \
             api_base: {emulator}/v1\n      api_key: bench\nlitellm_settings:\n  drop_params: true\n  \
             set_verbose: false\n  request_timeout: 600\ngeneral_settings:\n  disable_spend_logs: true\n  \
             disable_error_logs: true\n"
        ),
    )
    .expect("litellm config");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let mut cmd = Command::new(exe);
    // Its production settings: a master key, a worker per core, no database, no spend or error logs, logging
    // at ERROR.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).to_string();
    cmd.arg("--config").arg(&config).args(["--port", &port.to_string(), "--host", "127.0.0.1"]);
    cmd.args(["--num_workers", &workers]);
    cmd.env("LITELLM_LOG", "ERROR").env("LITELLM_TELEMETRY", "False").env_remove("DATABASE_URL");
    cmd.env("LITELLM_MASTER_KEY", BEARER);
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start litellm");
    // Owned at once, so that its workers end with it even if it never starts.
    let mut server = Server { child, url: format!("http://127.0.0.1:{port}") };
    // Ready when it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(180);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "litellm did not start");
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("litellm exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

fn main() {
    let o = options();
    std::fs::create_dir_all(&o.dir).expect("scratch folder");
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(o.threads).enable_all().build().expect("runtime");
    let mut emulate = Command::new(&o.gm);
    emulate.args(["emulate", "--port", "0", "--latency-ms", "0"]);
    let mut emulator = Server::start(emulate, "http://");
    emulator.url = format!("http://{}", emulator.url);
    let emu = emulator.url.clone();
    let limits = ["--limits", "1000000/1m,concurrency=1000"];
    let no_cache = [&limits[..], &["--no-cache"]].concat();
    let wanted = |name: &str| o.only.is_empty() || o.only.iter().any(|w| name.contains(w.as_str()));
    // `None`: the emulator itself, always run: every other target's added latency is measured against it.
    let mut targets: Vec<(&str, Option<Server>, bool)> = vec![("emulator directly", None, false)];
    let mut add = |name: &'static str, start: &dyn Fn() -> Server, same: bool| {
        if wanted(name) {
            targets.push((name, Some(start()), same));
        }
    };
    add("gm serve, limits (state file), no cache", &|| gm_serve(&o, "limits", &emu, &no_cache), false);
    if let Some(redis) = &o.redis {
        let args = [&no_cache[..], &["--redis", redis.as_str()]].concat();
        add("gm serve, limits (Redis), no cache", &|| gm_serve(&o, "redis", &emu, &args), false);
    }
    let bare = ["--limits", "none", "--no-cache"];
    add("gm serve, no limits, no cache", &|| gm_serve(&o, "bare", &emu, &bare), false);
    add("gm serve, cache hits", &|| gm_serve(&o, "cache", &emu, &limits), true);
    match &o.litellm {
        Some(exe) => add("LiteLLM proxy", &|| litellm(&o, exe, &emu), false),
        None => println!(
            "LiteLLM proxy: skipped, not installed (python3 -m venv target/litellm && \
             target/litellm/bin/pip install 'litellm[proxy]', or --litellm PATH)"
        ),
    }
    println!(
        "rates: {:?} req/s for {} s each; {} generator threads; emulator answers at once; errors: non-200 or over {} s",
        o.rates,
        o.seconds,
        o.threads,
        TIMEOUT.as_secs()
    );
    if o.rounds > 1 {
        println!(
            "{} rounds, each running every target in turn at each rate; figures are medians over the rounds, \
             added latency the median of each round's difference from that round's direct run",
            o.rounds
        );
    }
    // Every target warm before it is measured: the cache-hit path's one answer is in its cache.
    for (_, server, same) in &targets {
        if *same {
            let _ = step(&rt, o.threads, server.as_ref().unwrap_or(&emulator), 10, 1, true, 0);
        }
    }
    // steps[t][r]: target t at rate r, one per round.
    let mut steps: Vec<Vec<Vec<Step>>> = targets.iter().map(|_| o.rates.iter().map(|_| Vec::new()).collect()).collect();
    let mut offset = 0;
    for _ in 0..o.rounds {
        for (r, &rate) in o.rates.iter().enumerate() {
            for (t, (_, server, same)) in targets.iter().enumerate() {
                let s = step(&rt, o.threads, server.as_ref().unwrap_or(&emulator), rate, o.seconds, *same, offset);
                offset += s.sent;
                steps[t][r].push(s);
            }
        }
    }
    println!("| target | rate | errors | p50 | p99 | added p50 | added p99 | server CPU | peak memory |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut highest: Vec<(String, Option<u32>)> = Vec::new();
    for (t, (name, server, _)) in targets.iter().enumerate() {
        let server = server.as_ref().unwrap_or(&emulator);
        let mut best = None;
        for (r, &rate) in o.rates.iter().enumerate() {
            let runs = &steps[t][r];
            let direct = &steps[0][r];
            let (sent, ok) = runs.iter().fold((0, 0), |(s, k), x| (s + x.sent, k + x.ok));
            let err = (sent - ok) as f64 / sent as f64 * 100.0;
            let added = |f: fn(&Step) -> f64| {
                if t == 0 {
                    return "-".to_string();
                }
                format!("{:+.2} ms", median(runs.iter().zip(direct).map(|(a, d)| f(a) - f(d)).collect()))
            };
            println!(
                "| {name} | {rate}/s | {err:.2} % | {:.2} ms | {:.2} ms | {} | {} | {:.0} % | {:.1} MB |",
                median(runs.iter().map(|s| s.p50_ms).collect()),
                median(runs.iter().map(|s| s.p99_ms).collect()),
                added(|s| s.p50_ms),
                added(|s| s.p99_ms),
                median(runs.iter().map(|s| s.cpu_pct).collect()),
                server.peak_mb()
            );
            if err < 1.0 {
                best = Some(rate);
            }
        }
        highest.push((name.to_string(), best));
    }
    println!();
    println!("| target | highest rate with < 1 % errors |");
    println!("| --- | --- |");
    for (name, best) in highest {
        println!("| {name} | {} |", best.map_or("none of those tried".to_string(), |r| format!("{r}/s")));
    }
}
