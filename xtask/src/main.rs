//! Development tasks for the gm workspace: `cargo xtask ci|fmt|lint|test|doc|bench|tidy|deny`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;

mod real_model;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci      everything CI runs: fmt --check, clippy -D warnings, tests, docs, benches compiled, tidy, deny (when installed)
  fmt     format the workspace
  lint    clippy on every target and feature, warnings denied
  test    the test suite (all features), then the tests that reported themselves skipped
  doc     rustdoc with warnings denied
  bench   run the criterion benchmarks (pass a bench name to run one)
  tidy    check the layering of docs/ARCHITECTURE.md (Invariants) from `cargo metadata`, what gm-metrics pulls in from `cargo tree`,
          and that no library prints or reads the environment
  deny    cargo-deny licences, bans and sources (skipped with a note when cargo-deny is missing, unless
          GM_REQUIRE_SERVICES=1, which also makes a missing chromium, redis-server or python3 fail the run)
  faults  the fault matrix (crates/gm-cli/tests/faults.rs, also part of `test`), one scenario at a time, with
          each scenario's figures printed (docs/RELIABILITY.md)
  check-html
          renders a gm bench page in headless Chromium (apt-get install chromium) and fails on a blank page
  bench-eval [--cases N] [--promptfoo DIR]
          a gm eval suite of N cases (default 1000) against the emulator enforcing 15 per second, 5 at once:
          wall time against the quota bound, 429s, CPU and peak memory; beside promptfoo when DIR holds
          node_modules/.bin/promptfoo (npm install promptfoo@0.119.0)
  bench-score [--pairs N]
          gm score beside sacreBLEU 2.6.0 and rouge-score 0.1.2 (pip-installed into target/) on N generated pairs
          (default 100000): CPU, wall and memory of both, and a check that every score agrees within 1e-6
  real-model
          gm against a real model: Gemma 3 270M served by llama-cpp-python (built from source once; the wheel and
          the model cached outside target/): models list, run (streamed and whole), eval of a base-model suite and
          a bench of one model under two names in both orders, checked against the server's own log
  bench-matrix [--models a,b,c] [--runs N]
          gm bench of 3 models x the 5 built-in tasks (code execution on) against the emulator enforcing 15 per
          second and 5 at once per model: wall time against the quota bound, 429s, and gm's own CPU per request
  bench-serve [--rates 500,2000] [--seconds N] [--rounds N] [--threads N] [--only NAME,..] [--litellm PATH]
          chat requests at fixed rates to the emulator directly and through gm serve (limits on in the state
          file and in Redis, limits off, cache hits), beside LiteLLM's proxy (PATH, or target/litellm/bin/litellm
          when installed there): latency p50/p99 added over direct, errors, the server's CPU and peak memory";

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("fmt") => cargo(&["fmt", "--all"]),
        Some("lint") => lint(),
        Some("test") => test(),
        Some("doc") => doc(),
        Some("bench") => {
            let mut a = vec!["bench", "-p", "gm-benches"];
            if let Some(name) = args.get(1) {
                a.extend(["--bench", name]);
            }
            cargo(&a)
        }
        Some("tidy") => tidy(),
        Some("deny") => deny(),
        Some("bench-eval") => bench_eval(&args[1..]),
        Some("bench-matrix") => bench_matrix(&args[1..]),
        Some("bench-score") => bench_score(&args[1..]),
        Some("bench-serve") => bench_serve(&args[1..]),
        Some("check-html") => check_html(),
        Some("faults") => cargo_env(
            &["test", "-p", "gm-cli", "--test", "faults", "--", "--nocapture", "--test-threads", "1"],
            &[("GM_FAULTS_REPORT", "1")],
        ),
        Some("real-model") => real_model::run(&root),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(args: &[&str]) -> Result<()> {
    cargo_env(args, &[])
}

fn cargo_env(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let started = Instant::now();
    eprintln!("xtask: cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().with_context(|| format!("could not run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    eprintln!("xtask: cargo {} took {:.1}s", args[0], started.elapsed().as_secs_f64());
    Ok(())
}

fn lint() -> Result<()> {
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;
    // gm-eval also builds without its features; the code-exec gates are checked both ways.
    cargo(&["clippy", "-p", "gm-eval", "--all-targets", "--", "-D", "warnings"])
}

/// Whether a missing service or tool fails the run instead of being skipped (`GM_REQUIRE_SERVICES=1`, set
/// by `.ci/run`); the tests read the same variable through `gm_testkit::skip`.
fn services_required() -> bool {
    std::env::var("GM_REQUIRE_SERVICES").as_deref() == Ok("1")
}

/// The test suite, then the list of tests that reported themselves skipped (`gm_testkit::skip`).
fn test() -> Result<()> {
    let log = workspace_root().join("target/skipped-tests.txt");
    let _ = std::fs::remove_file(&log);
    let log_path = log.to_string_lossy();
    let result = cargo_env(&["test", "--workspace", "--all-features"], &[("GM_SKIP_LOG", log_path.as_ref())]);
    let skipped = std::fs::read_to_string(&log).unwrap_or_default();
    if !skipped.is_empty() {
        eprintln!("xtask: {} test(s) reported themselves skipped:", skipped.lines().count());
        for line in skipped.lines() {
            eprintln!("xtask:   {line}");
        }
    }
    result
}

fn doc() -> Result<()> {
    cargo_env(&["doc", "--workspace", "--no-deps", "--all-features"], &[("RUSTDOCFLAGS", "-D warnings")])
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"]).context("formatting differs; run `cargo xtask fmt`")?;
    tidy()?;
    lint()?;
    test()?;
    doc()?;
    // The benches are compiled in the dev profile the tests already built, not the bench profile: the check is
    // that they compile, and a second optimised build of the whole dependency tree took most of CI's time.
    build_like_tests()?;
    if chromium().is_some() {
        check_html()?;
    } else if services_required() {
        bail!("chromium is not installed and GM_REQUIRE_SERVICES=1 requires check-html (apt-get install chromium)");
    } else {
        eprintln!("xtask: chromium is not installed; skipping check-html (apt-get install chromium)");
    }
    deny()?;
    eprintln!("xtask: ci passed");
    Ok(())
}

/// `gm` and the benches, with the features and dev-dependencies `cargo test --workspace --all-features`
/// resolves, so that after the tests nothing but the benches is compiled: `gm` built with other features (`cargo
/// build -p gm-cli`) rebuilt five crates of the workspace and two of the TLS stack.
fn build_like_tests() -> Result<()> {
    cargo(&["build", "--workspace", "--all-features", "--bin", "gm", "--benches"])
}

fn deny() -> Result<()> {
    let have = Command::new("cargo").args(["deny", "--version"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !have && services_required() {
        bail!("cargo-deny is not installed and GM_REQUIRE_SERVICES=1 requires it (cargo install cargo-deny@0.20.2 --locked)");
    }
    if !have {
        eprintln!(
            "xtask: cargo-deny is not installed; skipping `deny` (install with `cargo install cargo-deny@0.20.2 --locked`)"
        );
        return Ok(());
    }
    // Advisories need the RustSec database from the network; licences, bans and sources are checked offline.
    cargo(&["deny", "check", "licenses", "bans", "sources"])
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
    })
}

/// Builds a bench page from the emulator's answers (priced models, so every chart is drawn: the demo provider
/// has no cost), renders it in headless Chromium, and fails when the page is blank (no rendered charts or text)
/// or the screenshot is empty.
fn check_html() -> Result<()> {
    let chrome = chromium().context("chromium is not installed; apt-get install chromium")?;
    build_like_tests()?;
    let root = workspace_root();
    let dir = root.join("target/check-html");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let page = dir.join("bench.html");
    let gm = root.join("target/debug/gm");
    let (mut emu, addr) = start_emulator(&gm, "1000/1s", 0)?;
    let status = Command::new(&gm)
        .arg("--data-dir")
        .arg(dir.join("state"))
        .args(["--provider", "openai-compatible", "--base-url", &format!("http://{addr}/v1")])
        .args(["bench", "--models", "openai/gpt-4.1,openai/gpt-4.1-mini", "--tasks"])
        .arg(root.join("docs/examples/quickstart.prompt.yml"))
        .arg("--html")
        .arg(&page)
        .stdout(std::process::Stdio::null())
        .status();
    let _ = emu.kill();
    let _ = emu.wait();
    let status = status?;
    if !status.success() {
        bail!("gm bench failed ({status})");
    }
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let profile = format!("--user-data-dir={}", dir.join("profile").display());
    let url = format!("file://{}", page.display());
    let dom = Command::new(&chrome).args(flags).arg(&profile).args(["--dump-dom", &url]).output()?;
    let dom = String::from_utf8_lossy(&dom.stdout);
    for needle in ["<svg", "Best model", "Quality by model and task", "<rect", "<circle"] {
        if !dom.contains(needle) {
            bail!("the rendered bench page has no `{needle}`: it renders blank or broken ({})", page.display());
        }
    }
    let shot = dir.join("bench.png");
    let _ = Command::new(&chrome)
        .args(flags)
        .arg(&profile)
        .args(["--window-size=1200,1400", &format!("--screenshot={}", shot.display()), &url])
        .output()?;
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    // A blank 1200x1400 PNG compresses to a few kilobytes; charts and text make it far larger.
    if size < 20_000 {
        bail!("the screenshot of the bench page is {size} bytes: the page renders blank ({})", shot.display());
    }
    eprintln!("xtask: check-html: the bench page renders ({size}-byte screenshot at {})", shot.display());
    Ok(())
}

/// What `/usr/bin/time -v` and the emulator say about one run.
struct Measured {
    wall_s: f64,
    /// CPU of the measured process and every subprocess it waited for.
    cpu_s: f64,
    /// The part of `cpu_s` spent in the measured process's own subprocesses (e.g. code-execution sandboxes).
    children_cpu_s: f64,
    peak_mb: f64,
    ok: u64,
    refused: u64,
    stats: Value,
}

fn emulator_stats(addr: &str) -> Result<Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(s, "GET /_emulator/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("{}");
    Ok(serde_json::from_str(body)?)
}

fn emulator_reset(addr: &str) -> Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(s, "POST /_emulator/reset HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut sink = String::new();
    s.read_to_string(&mut sink)?;
    Ok(())
}

/// What `/usr/bin/time -v` said of one command, and how it ended.
struct TimeReport {
    wall_s: f64,
    cpu_s: f64,
    children_cpu_s: f64,
    peak_mb: f64,
    status: std::process::ExitStatus,
    report: String,
}

/// Runs a command under `/usr/bin/time -v` and reads wall time, CPU and peak memory from its report. While it
/// runs, the CPU of the measured process's reaped subprocesses is read from `/proc` (`cutime` + `cstime`), so
/// its own CPU can be told apart. Its standard output goes to `stdout_to`.
fn time_v(cmd: &mut Command, stdout_to: &Path) -> Result<TimeReport> {
    let err_path = stdout_to.with_extension("stderr");
    cmd.stdout(std::fs::File::create(stdout_to)?).stderr(std::fs::File::create(&err_path)?);
    let mut child = cmd.spawn().context("could not run the command under /usr/bin/time (apt-get install time)")?;
    let ticks = clock_ticks();
    let mut children_cpu_s = 0.0f64;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        // `time` has one child: the measured process.
        let measured = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap_or_default();
        if let Some(pid) = measured.split_whitespace().next() {
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                // Fields after the command name: state is the first; cutime and cstime the 14th and 15th.
                let rest: Vec<&str> =
                    stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
                let tick = |i: usize| rest.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                if rest.len() > 14 {
                    children_cpu_s = children_cpu_s.max((tick(13) + tick(14)) / ticks);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let report = std::fs::read_to_string(&err_path)?;
    let field = |name: &str| report.lines().find_map(|l| l.trim().strip_prefix(name)).map(|v| v.trim().to_string());
    let secs = |v: Option<String>| v.and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):").unwrap_or_default();
    let wall_s = wall.split(':').fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap_or(0.0));
    let cpu_s = secs(field("User time (seconds):")) + secs(field("System time (seconds):"));
    let peak_mb = secs(field("Maximum resident set size (kbytes):")) / 1024.0;
    Ok(TimeReport { wall_s, cpu_s, children_cpu_s, peak_mb, status, report })
}

/// [`time_v`] against a freshly reset emulator, with what the emulator answered.
fn timed(cmd: &mut Command, addr: &str, stdout_to: &Path) -> Result<Measured> {
    emulator_reset(addr)?;
    let t = time_v(cmd, stdout_to)?;
    let stats = emulator_stats(addr)?;
    let by = |code: &str| stats["by_status"][code].as_u64().unwrap_or(0);
    if !t.status.success() && t.status.code() != Some(1) {
        eprintln!("{}", t.report);
        bail!("the run failed ({})", t.status);
    }
    Ok(Measured {
        wall_s: t.wall_s,
        cpu_s: t.cpu_s,
        children_cpu_s: t.children_cpu_s,
        peak_mb: t.peak_mb,
        ok: by("200"),
        refused: by("429"),
        stats,
    })
}

/// `gm score` beside the reference Python packages on the same pairs, in one run: installs sacreBLEU 2.6.0
/// and rouge-score 0.1.2 in a virtual environment under `target/`, generates `pairs` pairs, scores them with
/// both (one thread for gm), checks that every score agrees within 1e-6, and prints CPU, wall and memory.
fn bench_score(args: &[String]) -> Result<()> {
    let mut pairs = 100_000usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--pairs" => pairs = it.next().and_then(|v| v.parse().ok()).context("--pairs needs a number")?,
            other => bail!("unknown bench-score argument `{other}`"),
        }
    }
    // The virtual environment is kept between runs.
    let (gm, dir) = release_gm("bench-score", false)?;
    let root = workspace_root();
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status()?.success();
        if !ok {
            bail!("could not make a virtual environment (apt-get install python3-venv)");
        }
    }
    let ok = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "sacrebleu==2.6.0", "rouge-score==0.1.2"])
        .status()?
        .success();
    if !ok {
        bail!("pip could not install sacrebleu 2.6.0 and rouge-score 0.1.2");
    }
    let script = root.join("benches/reference/score_reference.py");
    let metrics = "bleu,chrf,rouge1,rouge2,rougeL,squad_f1";
    let input = dir.join("pairs.jsonl");
    let status = Command::new(&python)
        .arg(&script)
        .args(["generate", "--n", &pairs.to_string(), "--seed", "1", "--output"])
        .arg(&input)
        .status()?;
    if !status.success() {
        bail!("generating the pairs failed");
    }
    let mut gm_cmd = Command::new("/usr/bin/time");
    gm_cmd.arg("-v").arg(&gm).arg("score").arg("--input").arg(&input);
    gm_cmd.args(["--metrics", metrics, "--threads", "1", "--output"]).arg(dir.join("gm.jsonl"));
    let g = time_v(&mut gm_cmd, &dir.join("gm.out"))?;
    let mut py_cmd = Command::new("/usr/bin/time");
    py_cmd.arg("-v").arg(&python).arg(&script).arg("score").arg("--input").arg(&input);
    py_cmd.args(["--metrics", metrics, "--output"]).arg(dir.join("reference.jsonl"));
    let p = time_v(&mut py_cmd, &dir.join("reference.out"))?;
    for (name, t) in [("gm score", &g), ("reference", &p)] {
        if !t.status.success() {
            eprintln!("{}", t.report);
            bail!("{name} failed ({})", t.status);
        }
    }
    let compare = Command::new(&python)
        .arg(&script)
        .arg("compare")
        .arg(dir.join("reference.jsonl"))
        .arg(dir.join("gm.jsonl"))
        .status()?;
    if !compare.success() {
        bail!("gm score and the reference packages disagree (see above)");
    }
    println!("pairs: {pairs}; metrics: {metrics}; gm score with one thread");
    println!("| | gm score | reference (sacreBLEU 2.6.0, rouge-score 0.1.2, SQuAD) | ratio |");
    println!("| --- | --- | --- | --- |");
    println!("| CPU time | {:.2} s | {:.2} s | {:.1}× |", g.cpu_s, p.cpu_s, p.cpu_s / g.cpu_s.max(0.01));
    println!("| wall clock | {:.2} s | {:.2} s | {:.1}× |", g.wall_s, p.wall_s, p.wall_s / g.wall_s.max(0.01));
    println!(
        "| peak memory | {:.1} MB | {:.1} MB | {:.1}× less |",
        g.peak_mb,
        p.peak_mb,
        p.peak_mb / g.peak_mb.max(0.1)
    );
    Ok(())
}

/// The gateway under load (benches/benches/serve_load.rs) with the release `gm`, and a redis-server of its own
/// when one is installed.
fn bench_serve(args: &[String]) -> Result<()> {
    let (gm, dir) = release_gm("bench-serve", true)?;
    let mut redis = None;
    let mut env = vec![("GM_BENCH_GM", gm.display().to_string()), ("GM_BENCH_DIR", dir.display().to_string())];
    if Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        redis = Some(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .context("could not start redis-server")?,
        );
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        env.push(("GM_BENCH_REDIS", format!("redis://127.0.0.1:{port}/")));
    }
    // LiteLLM's proxy joins when it is installed in the harness's own virtual environment.
    let litellm = workspace_root().join("target/litellm/bin/litellm");
    if litellm.exists() && !args.iter().any(|a| a == "--litellm") {
        env.push(("GM_BENCH_LITELLM", litellm.display().to_string()));
    }
    let mut cargo_args = vec!["bench", "-p", "gm-benches", "--bench", "serve_load", "--"];
    cargo_args.extend(args.iter().map(String::as_str));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let result = cargo_env(&cargo_args, &env);
    if let Some(mut r) = redis {
        let _ = r.kill();
        let _ = r.wait();
    }
    result
}

/// Clock ticks per second, the unit of `/proc/PID/stat` times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Builds the release `gm` and returns it with the harness's folder `target/NAME`, emptied first when `fresh`.
fn release_gm(name: &str, fresh: bool) -> Result<(PathBuf, PathBuf)> {
    cargo(&["build", "--release", "-p", "gm-cli"])?;
    let root = workspace_root();
    let dir = root.join("target").join(name);
    if fresh {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir)?;
    Ok((root.join("target/release/gm"), dir))
}

/// `gm emulate` (the binary at `gm`) on a free loopback port with `limit` and `latency_ms`; returns it and its
/// address.
fn start_emulator(gm: &Path, limit: &str, latency_ms: u64) -> Result<(std::process::Child, String)> {
    let mut emu = Command::new(gm)
        .args(["emulate", "--port", "0", "--limit", limit, "--latency-ms", &latency_ms.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("could not start gm emulate")?;
    let mut first = String::new();
    let mut stderr = std::io::BufReader::new(emu.stderr.take().context("emulator stderr")?);
    std::io::BufRead::read_line(&mut stderr, &mut first)?;
    // Keep draining the emulator's standard error: a closed pipe would end it at its next line.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .context("emulator address")?
        .to_string();
    Ok((emu, addr))
}

fn bench_eval(args: &[String]) -> Result<()> {
    let mut cases = 1000usize;
    let mut promptfoo: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cases" => cases = it.next().and_then(|v| v.parse().ok()).context("--cases needs a number")?,
            "--promptfoo" => promptfoo = Some(PathBuf::from(it.next().context("--promptfoo needs a folder")?)),
            other => bail!("unknown bench-eval argument `{other}`"),
        }
    }
    let (gm, dir) = release_gm("bench-eval", true)?;
    let (limit, per_s, latency_ms) = (15usize, 1.0f64, 20u64);
    let (mut emu, addr) = start_emulator(&gm, "15/1s,concurrency=5", latency_ms)?;
    let result = (|| -> Result<()> {
        let mut suite = String::from(
            "name: bench\nmodel: gpt-4o-mini\nmessages:\n  - role: user\n    content: \"case {{i}}\"\ntestData:\n",
        );
        let mut csv = String::from("i\n");
        for i in 0..cases {
            suite.push_str(&format!("  - {{i: {i}}}\n"));
            csv.push_str(&format!("{i}\n"));
        }
        suite.push_str("evaluators:\n  - name: echo\n    string: {contains: \"case\"}\n");
        std::fs::write(dir.join("bench.prompt.yml"), suite)?;
        let url = format!("http://{addr}/v1");
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-v").arg(&gm).arg("--data-dir").arg(dir.join("state"));
        cmd.args([
            "--provider",
            "openai-compatible",
            "--base-url",
            &url,
            "--no-cache",
            "--limits",
            "15/1s,margin=10ms,concurrency=5",
        ]);
        cmd.args(["eval", "--json", "--concurrency", "8"]).arg(dir.join("bench.prompt.yml"));
        let gm_run = timed(&mut cmd, &addr, &dir.join("gm.json"))?;
        let windows = cases.div_ceil(limit).saturating_sub(1) as f64;
        let bound = windows * per_s + latency_ms as f64 / 1000.0;
        println!("cases: {cases}; server: 15 per 1 s, 5 at once, {latency_ms} ms per answer; quota bound plus one latency: {bound:.3} s");
        println!("| tool | wall | wall / bound | CPU | peak memory | answered | 429s |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        let row = |name: &str, m: &Measured| {
            println!(
                "| {name} | {:.2} s | {:.4} | {:.2} s | {:.1} MB | {} | {} |",
                m.wall_s,
                m.wall_s / bound,
                m.cpu_s,
                m.peak_mb,
                m.ok,
                m.refused
            )
        };
        row("gm eval", &gm_run);
        if let Some(pf) = promptfoo {
            let bin = pf.join("node_modules/.bin/promptfoo");
            std::fs::write(dir.join("tests.csv"), csv)?;
            std::fs::write(
                dir.join("promptfooconfig.yaml"),
                format!(
                    "description: bench\nprompts:\n  - \"case {{{{i}}}}\"\nproviders:\n  - id: openai:chat:gpt-4o-mini\n    config:\n      apiBaseUrl: {url}\n      apiKey: bench\ntests: file://tests.csv\ndefaultTest:\n  assert:\n    - type: contains\n      value: case\n"
                ),
            )?;
            let mut cmd = Command::new("/usr/bin/time");
            cmd.arg("-v").arg(&bin).args(["eval", "--no-cache", "--max-concurrency", "5", "--no-progress-bar", "-c"]);
            cmd.arg(dir.join("promptfooconfig.yaml")).arg("-o").arg(dir.join("promptfoo.json"));
            cmd.current_dir(&dir).env("PROMPTFOO_DISABLE_TELEMETRY", "1").env("PROMPTFOO_DISABLE_UPDATE", "1");
            cmd.env("PROMPTFOO_CONFIG_DIR", dir.join("promptfoo-home"));
            let pf_run = timed(&mut cmd, &addr, &dir.join("promptfoo.out"))?;
            row("promptfoo 0.119.0", &pf_run);
        }
        Ok(())
    })();
    let _ = emu.kill();
    let _ = emu.wait();
    result
}

/// `gm bench` of several models on every built-in task against the emulator's per-model quota: wall time
/// against the quota bound, 429s, and the engine's CPU per request. The engine's CPU is gm's own, less the
/// code-execution subprocesses; its marginal cost per request comes from a second, smaller run in the same
/// session (the difference removes start-up).
fn bench_matrix(args: &[String]) -> Result<()> {
    let mut models = "openai/gpt-4.1,openai/gpt-4.1-mini,openai/gpt-4o-mini".to_string();
    let mut runs = 3usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--models" => models = it.next().context("--models needs a comma-separated list")?.clone(),
            "--runs" => {
                runs = it.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).context("--runs needs a number")?
            }
            other => bail!("unknown bench-matrix argument `{other}`"),
        }
    }
    let (gm, dir) = release_gm("bench-matrix", true)?;
    let (limit, per_s, latency_ms) = (15u64, 1.0f64, 20u64);
    let (mut emu, addr) = start_emulator(&gm, "15/1s,concurrency=5", latency_ms)?;
    let tasks = "text_generation,question_answering,summarization,code_generation,reasoning";
    let result = (|| -> Result<()> {
        let url = format!("http://{addr}/v1");
        let run = |items: Option<usize>, name: &str| -> Result<Measured> {
            let mut cmd = Command::new("/usr/bin/time");
            cmd.arg("-v").arg(&gm).arg("--data-dir").arg(dir.join(format!("state-{name}")));
            cmd.args(["--provider", "openai-compatible", "--base-url", &url, "--no-cache"]);
            cmd.args(["--limits", "15/1s,margin=10ms,concurrency=5"]);
            cmd.args([
                "bench",
                "--json",
                "--allow-code-exec",
                "--concurrency",
                "8",
                "--models",
                &models,
                "--tasks",
                tasks,
            ]);
            if let Some(n) = items {
                cmd.args(["--limit-items", &n.to_string()]);
            }
            timed(&mut cmd, &addr, &dir.join(format!("{name}.json")))
        };
        // CPU times come in hundredths of a second: each size runs `runs` times and the median run stands.
        let median = |items: Option<usize>, name: &str| -> Result<(Measured, Vec<f64>)> {
            let mut all = (0..runs).map(|i| run(items, &format!("{name}-{i}"))).collect::<Result<Vec<_>>>()?;
            let walls = all.iter().map(|m| m.wall_s).collect();
            all.sort_by(|a, b| (a.cpu_s - a.children_cpu_s).total_cmp(&(b.cpu_s - b.children_cpu_s)));
            Ok((all.swap_remove(all.len() / 2), walls))
        };
        let (small, _) = median(Some(5), "small")?;
        let (full, full_walls) = median(None, "full")?;
        let per_model = |m: &Measured| -> Vec<(String, u64)> {
            m.stats["answered_by_model"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
                .unwrap_or_default()
        };
        let bound = |m: &Measured| {
            per_model(m).iter().map(|(_, n)| n.div_ceil(limit).saturating_sub(1) as f64 * per_s).fold(0.0, f64::max)
                + latency_ms as f64 / 1000.0
        };
        let own = |m: &Measured| m.cpu_s - m.children_cpu_s;
        println!("models: {models}; tasks: all five, code execution on; server: 15 per 1 s and 5 at once per model, {latency_ms} ms per answer; the median of {runs} runs each");
        println!(
            "requests per model (full run): {}",
            per_model(&full).iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
        );
        println!("| run | requests | wall | quota bound + latency | wall / bound | 429s | gm CPU (own) | sandbox CPU | gm CPU per request | peak memory |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for (name, m) in [("5 items a task", &small), ("every item", &full)] {
            println!(
                "| {name} | {} | {:.2} s | {:.2} s | {:.3} | {} | {:.3} s | {:.3} s | {:.0} µs | {:.1} MB |",
                m.ok,
                m.wall_s,
                bound(m),
                m.wall_s / bound(m),
                m.refused,
                own(m),
                m.children_cpu_s,
                own(m) / m.ok.max(1) as f64 * 1e6,
                m.peak_mb
            );
        }
        let ratios: Vec<String> = full_walls.iter().map(|w| format!("{:.3}", w / bound(&full))).collect();
        println!("wall / bound of every full run: {}", ratios.join(", "));
        let extra = full.ok.saturating_sub(small.ok).max(1) as f64;
        println!(
            "marginal gm CPU per request (full − small, start-up removed): {:.1} µs over {} requests",
            (own(&full) - own(&small)) / extra * 1e6,
            full.ok.saturating_sub(small.ok)
        );
        Ok(())
    })();
    let _ = emu.kill();
    let _ = emu.wait();
    result
}

/// One row of the layering table: what a crate's normal dependencies may and may not include.
struct Rule {
    krate: &'static str,
    /// When set, the only workspace-external crates allowed (besides the allowed gm crates).
    only_external: Option<&'static [&'static str]>,
    /// gm crates this crate may use.
    gm_allowed: &'static [&'static str],
    /// External crates this crate must not use.
    never: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        krate: "gm-core",
        only_external: Some(&["serde", "serde_json", "thiserror"]),
        gm_allowed: &[],
        never: &["tokio", "hyper"],
    },
    Rule {
        krate: "gm-metrics",
        only_external: None,
        gm_allowed: &["gm-core"],
        never: &["tokio", "hyper", "hyper-util", "rusqlite"],
    },
    Rule { krate: "gm-limits", only_external: None, gm_allowed: &["gm-core"], never: &["hyper", "hyper-util"] },
    Rule { krate: "gm-cache", only_external: None, gm_allowed: &["gm-core"], never: &["hyper", "hyper-util"] },
    Rule { krate: "gm-http", only_external: None, gm_allowed: &["gm-core", "gm-limits", "gm-cache"], never: &[] },
    Rule {
        krate: "gm-eval",
        only_external: None,
        gm_allowed: &["gm-core", "gm-metrics", "gm-http", "gm-limits", "gm-cache"],
        never: &["hyper", "hyper-util", "hyper-rustls"],
    },
    Rule {
        krate: "gm-app",
        only_external: None,
        gm_allowed: &["gm-core", "gm-metrics", "gm-http", "gm-limits", "gm-cache", "gm-eval"],
        never: &["clap", "anyhow", "indicatif"],
    },
    Rule { krate: "gm-emulator", only_external: None, gm_allowed: &["gm-core"], never: &[] },
    Rule { krate: "gm-testkit", only_external: None, gm_allowed: &["gm-core", "gm-emulator"], never: &[] },
    // The gateway is a front end beside gm-cli: it stands on gm-app and the crates below it, never on the CLI.
    Rule {
        krate: "gm-serve",
        only_external: None,
        gm_allowed: &["gm-core", "gm-metrics", "gm-http", "gm-limits", "gm-cache", "gm-eval", "gm-app"],
        never: &["clap", "anyhow", "indicatif"],
    },
    Rule { krate: "xtask", only_external: None, gm_allowed: &[], never: &[] },
];

/// The crate of test support, which every crate may use in its tests and none in what it ships.
const TESTKIT: &str = "gm-testkit";

/// Crates whose normal dependencies, direct or not, must include none of some crates, as
/// `cargo tree -p <crate> -e normal` shows them: a crate meant to be depended on alone stays free of a runtime,
/// a network stack and a database.
const CLOSED: &[(&str, &[&str])] = &[("gm-metrics", &["tokio", "hyper", "rusqlite", "gm-http"])];

/// The crates that never print or read the environment: every one but gm-cli. gm-serve is the gateway's library;
/// the CLI reads the environment for it, and its access log goes where its configuration says.
const LIBRARIES: &[&str] =
    &["gm-core", "gm-metrics", "gm-limits", "gm-cache", "gm-http", "gm-eval", "gm-app", "gm-emulator", "gm-serve"];

/// What a library must not do: print, or read the environment (a front end passes values in).
const FRONT_END_ONLY: &[&str] =
    &["println!(", "eprintln!(", "print!(", "eprint!(", "dbg!(", "env::var(", "env::var_os(", "env::vars("];

/// The lines of a library source file that print or read the environment, with their 1-based numbers.
/// Comments are skipped, and so is everything from the file's `#[cfg(test)]` on (tests may say they skip).
fn front_end_only_uses(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .filter(|(_, line)| FRONT_END_ONLY.iter().any(|p| line.contains(p)))
        .map(|(i, line)| (i + 1, line.trim().to_string()))
        .collect()
}

/// Every place in the library crates' sources that prints or reads the environment.
fn check_front_end_only(root: &Path) -> Vec<String> {
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut problems = Vec::new();
    for krate in LIBRARIES {
        let mut files = Vec::new();
        rust_files(&root.join("crates").join(krate).join("src"), &mut files);
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for (line, code) in front_end_only_uses(&text) {
                let shown = file.strip_prefix(root).unwrap_or(&file).display();
                problems.push(format!(
                    "{shown}:{line}: `{code}`: only the front ends print or read the environment; return data instead"
                ));
            }
        }
    }
    problems
}

fn tidy() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("could not run cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    let mut problems = check_layering(&meta);
    for (krate, forbidden) in CLOSED {
        // Every platform's dependencies, so a target-specific edge cannot slip through.
        let out = Command::new(&cargo)
            .args(["tree", "-p", krate, "-e", "normal", "--target", "all", "--prefix", "none", "--format", "{p}"])
            .output()
            .with_context(|| format!("could not run cargo tree -p {krate}"))?;
        if !out.status.success() {
            bail!("cargo tree -p {krate} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        problems.extend(check_tree(krate, &String::from_utf8_lossy(&out.stdout), forbidden));
    }
    problems.extend(check_front_end_only(&workspace_root()));
    if problems.is_empty() {
        eprintln!("xtask: tidy: the layering of docs/ARCHITECTURE.md holds, and only the front ends print or read the environment");
        Ok(())
    } else {
        for p in &problems {
            eprintln!("xtask: tidy: {p}");
        }
        bail!("{} layering problem(s); see docs/ARCHITECTURE.md (Invariants)", problems.len())
    }
}

fn check_layering(meta: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = Vec::new();
    for pkg in meta["packages"].as_array().unwrap_or(&empty) {
        let name = pkg["name"].as_str().unwrap_or("");
        let lints_inherited = pkg["manifest_path"]
            .as_str()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .is_some_and(|m| m.contains("[lints]") && m.contains("workspace = true"));
        if !lints_inherited {
            problems.push(format!("{name} does not inherit the workspace lints ([lints] workspace = true)"));
        }
        for dep in pkg["dependencies"].as_array().unwrap_or(&empty) {
            if dep["name"] == TESTKIT && dep["kind"] != "dev" {
                problems.push(format!("{name} uses {TESTKIT} outside [dev-dependencies]; it is test support only"));
            }
        }
        let Some(rule) = RULES.iter().find(|r| r.krate == name) else { continue };
        for dep in pkg["dependencies"].as_array().unwrap_or(&empty) {
            // Dev- and build-dependencies may use test servers and tools; the layering is about what ships.
            if !dep["kind"].is_null() {
                continue;
            }
            let d = dep["name"].as_str().unwrap_or("");
            if d.starts_with("gm-") {
                if !rule.gm_allowed.contains(&d) {
                    problems.push(format!("{name} depends on {d}, which the layering forbids"));
                }
                if name == "gm-eval" && d == "gm-http" {
                    let features: Vec<&str> =
                        dep["features"].as_array().unwrap_or(&empty).iter().filter_map(Value::as_str).collect();
                    let default = dep["uses_default_features"].as_bool().unwrap_or(true);
                    if default || features.contains(&"hyper") {
                        problems.push(
                            "gm-eval uses gm-http with its `hyper` feature; gm-eval knows nothing about hyper".into(),
                        );
                    }
                }
                continue;
            }
            if rule.never.contains(&d) {
                problems.push(format!("{name} depends on {d}, which the layering forbids"));
            }
            if let Some(only) = rule.only_external {
                if !only.contains(&d) {
                    problems.push(format!("{name} may use only {} but depends on {d}", only.join(", ")));
                }
            }
        }
    }
    problems
}

/// The crates of `forbidden` in `tree`, the output of `cargo tree -p <krate> --prefix none --format {p}` (one
/// `name version [(path)] [(*)]` a line).
fn check_tree(krate: &str, tree: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| forbidden.contains(name))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
        .into_iter()
        .map(|d| {
            format!(
                "{krate} reaches {d} through its normal dependencies, which the layering forbids \
                 (`cargo tree -p {krate} -e normal -i {d}` shows the path)"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_forbidden_crate_deep_in_the_tree_is_reported() {
        let tree = "gm-metrics v0.1.0 (/src/crates/gm-metrics)\njsonschema v0.61.2\nreqwest v0.12.9\n\
                    tokio v1.54.1\nhyper v1.5.0\ntokio v1.54.1 (*)\nregex v1.13.2\n";
        let p = check_tree("gm-metrics", tree, &["tokio", "hyper", "rusqlite", "gm-http"]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("gm-metrics reaches hyper through its normal dependencies"), "{p:?}");
        assert!(p[1].starts_with("gm-metrics reaches tokio"), "{p:?}");
        let clean = "gm-metrics v0.1.0 (/src/crates/gm-metrics)\nregex v1.13.2\ntokio-util-free v0.1.0\n";
        assert!(check_tree("gm-metrics", clean, &["tokio"]).is_empty());
    }

    #[test]
    fn gm_metrics_may_use_no_gm_crate_but_gm_core() {
        let meta = json!({"packages": [
            {"name": "gm-metrics", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "gm-core", "kind": null}, {"name": "gm-http", "kind": null},
                {"name": "rusqlite", "kind": null}, {"name": "tokio", "kind": "dev"}]}
        ]});
        let p = check_layering(&meta);
        assert!(p.iter().any(|s| s.contains("gm-metrics depends on gm-http")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("gm-metrics depends on rusqlite")), "{p:?}");
        assert!(!p.iter().any(|s| s.contains("gm-core") || s.contains("tokio")), "{p:?}");
    }

    #[test]
    fn a_forbidden_edge_is_reported() {
        let meta = json!({"packages": [
            {"name": "gm-core", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "tokio", "kind": null}, {"name": "proptest", "kind": "dev"}]},
            {"name": "gm-eval", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "gm-http", "kind": null, "features": [], "uses_default_features": true}]},
            {"name": "gm-serve", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "gm-cli", "kind": null}, {"name": "gm-eval", "kind": null}]}
        ]});
        let p = check_layering(&meta);
        assert!(p.iter().any(|s| s.contains("gm-core depends on tokio")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("gm-eval uses gm-http with its `hyper` feature")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("gm-serve depends on gm-cli")), "{p:?}");
        assert!(!p.iter().any(|s| s.contains("proptest") || s.contains("gm-serve depends on gm-eval")));
    }

    #[test]
    fn the_testkit_is_only_ever_a_dev_dependency() {
        let meta = json!({"packages": [
            {"name": "gm-cache", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "gm-testkit", "kind": "dev"}]},
            {"name": "gm-cli", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "gm-testkit", "kind": null}]},
            {"name": "gm-limits", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "gm-testkit", "kind": "build"}]}
        ]});
        let p = check_layering(&meta);
        let testkit: Vec<&String> = p.iter().filter(|s| s.contains("gm-testkit")).collect();
        assert_eq!(testkit.len(), 2, "{p:?}");
        assert!(testkit[0].starts_with("gm-cli uses gm-testkit outside [dev-dependencies]"), "{p:?}");
        assert!(testkit[1].starts_with("gm-limits uses gm-testkit"), "{p:?}");
    }

    #[test]
    fn the_library_layer_may_not_use_the_front_ends_crates() {
        let meta = json!({"packages": [
            {"name": "gm-app", "manifest_path": "/nonexistent", "dependencies": [
                {"name": "gm-eval", "kind": null}, {"name": "gm-cli", "kind": null}, {"name": "clap", "kind": null},
                {"name": "anyhow", "kind": "dev"}]}
        ]});
        let p = check_layering(&meta);
        assert!(p.iter().any(|s| s.contains("gm-app depends on gm-cli")), "{p:?}");
        assert!(p.iter().any(|s| s.contains("gm-app depends on clap")), "{p:?}");
        assert!(!p.iter().any(|s| s.contains("gm-eval") || s.contains("anyhow")), "{p:?}");
    }

    #[test]
    fn a_library_that_prints_or_reads_the_environment_is_found() {
        let text = "//! Docs may say println!(\"x\").\nfn f() {\n    let v = std::env::var(\"HOME\");\n    \
                    eprintln!(\"{v:?}\");\n}\n#[cfg(test)]\nmod tests { fn t() { println!(\"skipped\"); } }\n";
        let found = front_end_only_uses(text);
        assert_eq!(found.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [3, 4], "{found:?}");
        assert!(check_front_end_only(&workspace_root()).is_empty(), "{:?}", check_front_end_only(&workspace_root()));
    }
}
