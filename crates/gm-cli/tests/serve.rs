//! gm as a client of itself: `gm eval` and `gm bench` through `gm serve` give what they give directly; `gm
//! serve` alone serves the demo provider until SIGTERM; `gm serve keys` prints a key once, alone on standard
//! output; the dashboard of `gm serve` works in a real browser (Chromium driven by Playwright).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gm_app::{Session, SessionConfig};
use gm_core::ProviderKind;
use gm_emulator::{Emulator, EmulatorConfig};
use gm_serve::{Gateway, LogTarget, Routing, ServeConfig, UpstreamConfig};
use gm_testkit::cli::json;
use gm_testkit::TempDir;

/// `gm` with `--data-dir data`, and nothing from the environment (see [`gm_testkit::cli::gm_command`]).
fn command(data: &Path, args: &[&str]) -> Command {
    let mut cmd = gm_testkit::cli::gm_command(env!("CARGO_BIN_EXE_gm"));
    cmd.arg("--data-dir").arg(data).args(args);
    cmd
}

fn gm(data: &Path, args: &[&str]) -> Output {
    command(data, args).output().unwrap()
}

/// What a run decides, without its timings and ids.
fn eval_outcome(v: &serde_json::Value) -> serde_json::Value {
    let cases: Vec<_> = v["testResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| serde_json::json!([t["modelResponse"], t["evaluationResults"]]))
        .collect();
    serde_json::json!({"cases": cases, "passed": v["summary"]["passedTests"], "failed": v["summary"]["failedTests"]})
}

fn bench_outcome(v: &serde_json::Value) -> serde_json::Value {
    let cells: Vec<_> = v["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| serde_json::json!([c["model"], c["task"], c["metrics"]["quality"], c["metrics"]["cost_usd"]]))
        .collect();
    // The best model is left out: between models of equal quality the faster wins, which timing decides.
    serde_json::json!({"cells": cells})
}

#[test]
fn eval_and_bench_through_the_gateway_match_the_direct_run() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let emu = rt.block_on(Emulator::start(EmulatorConfig { require_auth: false, ..Default::default() })).unwrap();
    let mut up = UpstreamConfig::new("emulator", ProviderKind::OpenAiCompatible);
    up.base_url = Some(emu.openai_url());
    let mut config = ServeConfig::new(Routing::single(up));
    config.addr = "127.0.0.1:0".parse().unwrap();
    config.log = LogTarget::Off;
    let gateway = rt.block_on(Gateway::bind(config, Session::new(SessionConfig::default()))).unwrap();
    let through = format!("http://{}/v1", gateway.local_addr());
    rt.spawn(gateway.run(std::future::pending()));
    let direct = emu.openai_url();

    let suite = gm_testkit::repo("docs/examples/quickstart.prompt.yml");
    let suite = suite.to_str().unwrap();
    let run = |base: &str, name: &str, args: &[&str]| {
        let data = TempDir::new(name);
        let mut all = vec!["--provider", "openai-compatible", "--base-url", base, "--no-cache"];
        all.extend_from_slice(args);
        let out = gm(&data, &all);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        json(&out)
    };
    let eval = ["eval", "--json", suite];
    assert_eq!(eval_outcome(&run(&direct, "eval-direct", &eval)), eval_outcome(&run(&through, "eval-gw", &eval)));
    let bench = ["bench", "--json", "--models", "openai/gpt-4.1,openai/gpt-4.1-mini", "--tasks", suite];
    let (d, g) = (run(&direct, "bench-direct", &bench), run(&through, "bench-gw", &bench));
    assert_eq!(bench_outcome(&d), bench_outcome(&g));
    assert_eq!(d["cells"].as_array().unwrap().len(), 2);
    assert_eq!(emu.stats().by_status.get(&429), None);
}

#[test]
fn a_key_is_printed_once_alone_and_listed_without_its_secret() {
    let data = TempDir::new("serve-cli-keys");
    let out = gm(
        &data,
        &["serve", "keys", "create", "--name", "ci", "--limits", "60/1m", "--budget", "requests=100,usd=2/1d"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8(out.stdout).unwrap();
    let secret = secret.trim_end_matches('\n');
    assert!(secret.starts_with("gm_") && !secret.contains(char::is_whitespace), "{secret:?}");
    let list = gm(&data, &["serve", "keys", "list", "--json"]);
    let v = json(&list);
    assert_eq!(v[0]["name"], "ci");
    assert_eq!(v[0]["budget"], "requests=100/1d,usd=2/1d");
    assert!(!String::from_utf8_lossy(&list.stdout).contains(secret));
    assert_eq!(gm(&data, &["serve", "keys", "revoke", "ci"]).status.code(), Some(0));
    assert!(json(&gm(&data, &["serve", "keys", "list", "--json"]))[0]["revoked"].is_u64());
    assert_eq!(gm(&data, &["serve", "keys", "revoke", "nobody"]).status.code(), Some(2));
    // An exposed address without keys is refused with the reason.
    let open = TempDir::new("serve-cli-open");
    let out = gm(&open, &["serve", "--host", "0.0.0.0", "--port", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public"));
}

#[test]
fn an_admin_key_is_listed_as_one_and_lost_keys_keep_the_gateway_closed() {
    let data = TempDir::new("serve-cli-admin");
    let out = gm(&data, &["serve", "keys", "create", "--name", "root", "--admin"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the dashboard's administrator"));
    let v = json(&gm(&data, &["serve", "keys", "list", "--json"]));
    assert_eq!((v[0]["name"].as_str(), v[0]["admin"].as_bool()), (Some("root"), Some(true)));
    let table = String::from_utf8(gm(&data, &["serve", "keys", "list"]).stdout).unwrap();
    assert!(table.lines().nth(1).is_some_and(|l| l.contains("root") && l.contains("admin")), "{table}");

    // The state file is destroyed whole: its key cannot be read back, and gm serve will not start open.
    let state = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .expect("the state file");
    let len = std::fs::metadata(&state).unwrap().len() as usize;
    std::fs::write(&state, vec![0x5a; len]).unwrap();
    for _ in 0..2 {
        let out = gm(&data, &["serve", "--port", "0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("could not be read back") && err.contains(".unreadable-"), "{err}");
        assert!(err.contains("gm serve keys create") && err.contains("gm serve keys accept-lost"), "{err}");
    }
    assert_eq!(gm(&data, &["serve", "keys", "accept-lost"]).status.code(), Some(0));
    let (mut child, lines, _, _) = serve(&data, &["serve", "--port", "0", "--no-access-log"]);
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let _said: Vec<String> = lines.collect();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// `gm serve` on a free port: the process, the rest of its standard error, what it said before listening, and
/// its address.
fn serve(data: &Path, args: &[&str]) -> (std::process::Child, impl Iterator<Item = String>, Vec<String>, String) {
    let mut child = command(data, args).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
    let mut said = Vec::new();
    let addr = loop {
        let line = lines.next().unwrap_or_else(|| panic!("gm serve stopped before listening: {said:?}"));
        if let Some(addr) = line.strip_prefix("gm serve: listening on http://") {
            break addr.to_string();
        }
        said.push(line);
    };
    (child, lines, said, addr)
}

#[test]
fn gm_serve_alone_serves_the_demo_provider_and_stops_cleanly_on_sigterm() {
    let data = TempDir::new("serve-cli-demo");
    let (mut child, lines, said, addr) = serve(&data, &["serve", "--port", "0"]);
    assert!(said.iter().any(|l| l.starts_with("note: the demo provider answers")), "{said:?}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer = rt.block_on(async {
        let body = r#"{"model":"openai/gpt-4.1","messages":[{"role":"user","content":"What is 6 * 7?"}]}"#;
        let request = gm_http::HttpRequest {
            method: http::Method::POST,
            url: format!("http://{addr}/inference/chat/completions").parse().unwrap(),
            headers: [(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"))]
                .into_iter()
                .collect(),
            body: body.into(),
        };
        let t = gm_http::HyperTransport::new(Default::default()).unwrap();
        let resp = gm_http::Transport::send(&t, request).await.unwrap();
        assert_eq!(resp.status, 200);
        resp.collect(1 << 20).await.unwrap()
    });
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().contains("42"), "{v}");
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let rest: Vec<String> = lines.collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest:?}");
    // The access log's line for the request, then the farewell.
    assert!(rest.iter().any(|l| l.contains("\"path\":\"/inference/chat/completions\"")), "{rest:?}");
    assert_eq!(rest.last().map(String::as_str), Some("gm serve: stopped"), "{rest:?}");
}

#[test]
fn a_routing_file_over_1_mib_is_refused_unread() {
    let data = TempDir::new("serve-cli-big-routes");
    std::fs::create_dir_all(data.path()).unwrap();
    let routes = data.join("gateway.toml");
    std::fs::write(&routes, "# padding\n".repeat(200_000)).unwrap();
    let out = gm(&data, &["serve", "--port", "0", "--routes", routes.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("could not read the routing file") && err.contains("larger than 1 MiB"), "{err}");
}

/// The Python of the virtual environment with Playwright (`.ci/run` makes it), and Debian's Chromium; where
/// either is missing, the skip policy has its say (a failure in CI).
fn browser() -> Option<std::path::PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-browser/bin/python");
    let ok = py.exists()
        && Command::new(&py).args(["-c", "import playwright.sync_api"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        gm_testkit::skip::missing_service(
            "target/py-browser with Playwright",
            "python3 -m venv target/py-browser && target/py-browser/bin/pip install playwright",
        );
        return None;
    }
    if !Path::new("/usr/bin/chromium").exists() {
        gm_testkit::skip::missing_service("chromium", "apt-get install chromium");
        return None;
    }
    Some(py)
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let Some(py) = browser() else { return };
    let data = TempDir::new("serve-cli-browser");
    let (mut child, lines, said, addr) = serve(&data, &["serve", "--port", "0", "--no-access-log"]);
    assert!(said.iter().any(|l| l.starts_with("note: the demo provider answers")), "{said:?}");
    // Screenshots of every page, at desktop and phone width, stay under target/ for a person to look at.
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-shots");
    let out = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard_browser.py"))
        .arg(format!("http://{addr}"))
        .arg(&shots)
        .arg(data.path().join("chromium-profile"))
        .output()
        .unwrap();
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let rest: Vec<String> = lines.collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest:?}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
