//! `gm eval` end to end: the gh-models example suites, gh-models' semantics, resuming, and limits.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use gm_emulator::EmulatorConfig;
use gm_testkit::cli::{gm_command, json};
use gm_testkit::emulator::Background;
use gm_testkit::TempDir;

const TOKEN: &str = "ghp_evaltesttoken";

fn examples() -> Vec<PathBuf> {
    let dir = gm_testkit::shared("fixtures/github-models/gh-models-examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("evals_action.yml"))
        .collect();
    files.sort();
    files
}

fn scratch(name: &str) -> TempDir {
    TempDir::new(&format!("cli-eval-{name}"))
}

/// `gm --data-dir data ARGS…` with the test's `env` alone (see [`gm_command`]).
fn gm(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = gm_command(env!("CARGO_BIN_EXE_gm"));
    cmd.arg("--data-dir").arg(data).args(args).envs(env.iter().copied());
    cmd.output().unwrap()
}

fn quickstart() -> PathBuf {
    gm_testkit::repo("docs/examples/quickstart.prompt.yml")
}

fn check_shape(v: &serde_json::Value) {
    for key in ["name", "description", "model", "testResults", "summary"] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    for t in v["testResults"].as_array().unwrap() {
        assert!(t["testCase"].is_object() && t["modelResponse"].is_string() && t["evaluationResults"].is_array());
    }
    let s = &v["summary"];
    assert_eq!(
        s["totalTests"].as_u64().unwrap(),
        s["passedTests"].as_u64().unwrap() + s["failedTests"].as_u64().unwrap()
    );
}

#[test]
fn every_example_suite_runs_on_the_demo_provider() {
    let data = scratch("demo");
    for file in examples() {
        let out = gm(&data, &["eval", "--json", file.to_str().unwrap()], &[]);
        let code = out.status.code().unwrap();
        assert!(code == 0 || code == 1, "{}: {code} {}", file.display(), String::from_utf8_lossy(&out.stderr));
        let v = json(&out);
        check_shape(&v);
        assert_eq!(code == 0, v["summary"]["failedTests"] == 0, "{}", file.display());
    }
}

#[test]
fn every_example_suite_runs_against_the_emulator() {
    let emu = Background::start(EmulatorConfig::default());
    let data = scratch("emu");
    let url = emu.url();
    for file in examples() {
        // Without --limits the free plan's real tiers would apply (10 requests a minute for gpt-4o).
        let args = [
            "--provider",
            "github",
            "--base-url",
            &url,
            "--limits",
            "1000/1s",
            "eval",
            "--json",
            file.to_str().unwrap(),
        ];
        let out = gm(&data, &args, &[("GITHUB_TOKEN", TOKEN)]);
        let code = out.status.code().unwrap();
        assert!(code == 0 || code == 1, "{}: {code} {}", file.display(), String::from_utf8_lossy(&out.stderr));
        check_shape(&json(&out));
        assert!(!String::from_utf8_lossy(&out.stdout).contains(TOKEN));
    }
    assert_eq!(emu.stats().by_status.get(&429), None);
}

#[test]
fn failing_tests_exit_1_and_still_print_the_json() {
    let data = scratch("failing");
    let file = examples().into_iter().find(|p| p.ends_with("failing_test_prompt.yml")).unwrap();
    let out = gm(&data, &["eval", "--json", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["summary"]["failedTests"], 2);
    assert_eq!(v["summary"]["passRate"], 0.0);
    let r = &v["testResults"][0]["evaluationResults"][0];
    assert_eq!(r["details"], "Expected to contain: 'this-text-will-never-appear-in-any-response'");
}

#[test]
fn gh_models_semantics_hold_end_to_end() {
    let data = scratch("semantics");
    let file = data.join("semantics.prompt.yml");
    std::fs::write(
        &file,
        r#"name: semantics
model: openai/gpt-4.1
messages:
  - role: user
    content: "What is {{a}} + {{b}}?"
testData:
  - {a: 40, b: 2, want: "The answer is 42."}
evaluators:
  - name: precedence
    string: {equals: "{{want}}", contains: "nothing like this"}
  - name: case-insensitive contains
    string: {contains: "THE ANSWER"}
  - name: case-sensitive equals
    string: {equals: "the answer is 42."}
  - name: no such plugin
    uses: github/does-not-exist
"#,
    )
    .unwrap();
    let out = gm(&data, &["eval", "--json", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    let r = v["testResults"][0]["evaluationResults"].as_array().unwrap().clone();
    assert_eq!(
        (r[0]["passed"].as_bool(), r[1]["passed"].as_bool(), r[2]["passed"].as_bool()),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(
        r[3],
        serde_json::json!({"evaluatorName": "no such plugin", "score": 0.0, "passed": false, "details": "Plugin evaluator 'github/does-not-exist' not found"})
    );
}

#[test]
fn a_malformed_file_exits_2_naming_the_place() {
    let data = scratch("malformed");
    let file = data.join("bad.prompt.yml");
    std::fs::write(&file, "name: bad\nmessages:\n  - role: user\n    content: [oops\n").unwrap();
    let out = gm(&data, &["eval", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.prompt.yml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Errors found after the YAML is read name the line and column too, and the fix.
    let cases = [
        (
            "name: t\nmessages:\n  - role: user\n    content: hi\nevaluators:\n  - name: fine\n    string: {contains: hi}\n  - name: broken\n    rougeL: {}\n",
            "bad.prompt.yml:8:5: evaluator `broken` (evaluators[1]): `rougeL` needs a passing threshold",
        ),
        ("name: t\nmessages:\n  - role: user\n    content: hi\n  - role: wizard\n    content: x\n", "bad.prompt.yml:5:5: messages[1] has role `wizard`"),
        ("name: t\nresponseFormat: xml\nmessages: []\n", "bad.prompt.yml:2:1: responseFormat `xml` is not supported; use text"),
    ];
    for (yaml, expected) in cases {
        std::fs::write(&file, yaml).unwrap();
        let out = gm(&data, &["eval", file.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{err}");
    }
}

fn suite(n: usize, path: &Path) {
    let mut yaml = String::from(
        "name: big\nmodel: openai/gpt-4o-mini\nmessages:\n  - role: user\n    content: \"case {{i}}\"\ntestData:\n",
    );
    for i in 0..n {
        yaml.push_str(&format!("  - {{i: {i}}}\n"));
    }
    yaml.push_str("evaluators:\n  - name: mentions the case\n    string: {contains: \"case\"}\n");
    std::fs::write(path, yaml).unwrap();
}

#[test]
fn a_200_case_suite_under_a_scaled_tier_gets_no_429() {
    // GitHub's low tier per minute, scaled 600x: 15 per 100 ms, 5 at once (its daily window left out).
    let limits = gm_emulator::EmulatorLimits {
        windows: vec![gm_emulator::Window { limit: 15, window: std::time::Duration::from_millis(100), daily: false }],
        concurrency: Some(5),
    };
    let emu = Background::start(EmulatorConfig { limits: Some(limits), ..Default::default() });
    let data = scratch("tier");
    let file = data.join("big.prompt.yml");
    suite(200, &file);
    let args = [
        "--provider",
        "github",
        "--base-url",
        &emu.url(),
        "--limits",
        "15/100ms,concurrency=5",
        "eval",
        "--json",
        "--concurrency",
        "8",
        file.to_str().unwrap(),
    ];
    let out = gm(&data, &args, &[("GITHUB_TOKEN", TOKEN)]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["summary"]["passedTests"], 200);
    assert_eq!(v["gm"]["rate_limited"], 0);
    let stats = emu.stats();
    assert_eq!(stats.by_status.get(&429), None, "{stats:?}");
    assert_eq!(stats.by_status[&200], 200);
}

#[test]
fn a_killed_run_resumes_without_repeating_a_finished_case() {
    let emu = Background::start(EmulatorConfig { latency: std::time::Duration::from_millis(40), ..Default::default() });
    let data = scratch("resume");
    let file = data.join("resume.prompt.yml");
    suite(40, &file);
    let url = emu.url();
    let base = [
        "--provider",
        "openai-compatible",
        "--base-url",
        &format!("{url}/v1"),
        "--no-cache",
        "eval",
        "--json",
        "--concurrency",
        "2",
    ];
    let mut cmd = gm_command(env!("CARGO_BIN_EXE_gm"));
    cmd.arg("--data-dir").arg(&data).args(base).arg(&file).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Kill it part-way: once the server has answered some requests.
    let started = std::time::Instant::now();
    while emu.stats().total < 10 && started.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::yield_now();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first = emu.stats().total;
    assert!(first < 40, "the first run finished before it was killed");

    let mut args: Vec<&str> = base.to_vec();
    args.push("--resume");
    args.push(file.to_str().unwrap());
    let out = gm(&data, &args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming run"));
    let v = json(&out);
    assert_eq!(v["summary"]["totalTests"], 40);
    let inputs: Vec<String> =
        v["testResults"].as_array().unwrap().iter().map(|t| t["modelResponse"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = (0..40).map(|i| format!("case {i}")).collect();
    assert_eq!(inputs, expected, "every case once, in order");
    // Only cases whose answers were lost in the kill (at most the two in flight) were sent twice.
    assert!(emu.stats().total <= 40 + 2, "{} requests for 40 cases", emu.stats().total);
}

#[test]
fn a_request_budget_stops_the_run_cleanly_and_resume_finishes_it() {
    let data = scratch("budget");
    let file = data.join("budget.prompt.yml");
    suite(20, &file);
    let f = file.to_str().unwrap();
    let out = gm(&data, &["--no-cache", "eval", "--json", "--concurrency", "1", "--max-requests", "5", f], &[]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("budget of 5 requests") && err.contains("--resume"), "{err}");
    let out = gm(&data, &["--no-cache", "eval", "--json", "--resume", f], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("5 of 20 test cases already done"));
    let v = json(&out);
    assert_eq!(v["summary"]["totalTests"], 20);
    assert_eq!(v["gm"]["requests"], 15);
}

#[test]
fn repeated_sampling_reports_pass_at_k_and_pass_hat_k() {
    let emu = Background::start(EmulatorConfig::default());
    let data = scratch("repeat");
    let file = data.join("repeat.prompt.yml");
    suite(4, &file);
    let v1 = format!("{}/v1", emu.url());
    let args = ["--provider", "openai-compatible", "--base-url", &v1, "eval", "--json", "--repeat", "3"];
    let args = [&args[..], &[file.to_str().unwrap()]].concat();
    let out = gm(&data, &args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["gm"]["repeat"]["n"], 3);
    assert_eq!(v["gm"]["repeat"]["pass_at_k"]["3"], 1.0);
    assert_eq!(v["gm"]["repeat"]["pass_hat_k"]["3"], 1.0);
    assert_eq!(v["gm"]["cases"][0]["samples"], serde_json::json!([3, 3]));
    // Each sample is its own request (and its own cache entry), and the figures count every one.
    assert_eq!(emu.stats().total, 12);
    assert_eq!(v["gm"]["cache_hits"], 0);
    assert_eq!(v["gm"]["cases"][0]["more_samples"].as_array().unwrap().len(), 2);
    let every_call: u64 = v["gm"]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let more = c["more_samples"].as_array().unwrap();
            c["tokens_out"].as_u64().unwrap() + more.iter().map(|m| m["tokens_out"].as_u64().unwrap()).sum::<u64>()
        })
        .sum();
    assert_eq!(v["gm"]["tokens_out"].as_u64().unwrap(), every_call);
    assert!(every_call > v["gm"]["cases"][0]["tokens_out"].as_u64().unwrap() * 4, "{}", v["gm"]);
    // Run again: every sample is a cache hit.
    let again = gm(&data, &args, &[]);
    let w = json(&again);
    assert_eq!(w["gm"]["cache_hits"], 12);
    assert_eq!(emu.stats().total, 12);
}

#[test]
fn ci_reports_are_written_beside_the_run() {
    let data = scratch("reports");
    let file = data.join("reports.prompt.yml");
    suite(3, &file);
    let (junit, md, html, jsonl) = (data.join("r.xml"), data.join("r.md"), data.join("r.html"), data.join("r.jsonl"));
    let out = gm(
        &data,
        &[
            "eval",
            "--junit",
            junit.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
            "--jsonl",
            jsonl.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("Running evaluation: big") && human.contains("🎉 All tests passed!"), "{human}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite") && xml.contains("tests=\"3\""), "{xml}");
    assert!(std::fs::read_to_string(&md).unwrap().contains("3/3 tests passed"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && !page.contains("https://"));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["passed"] == true));
}

#[test]
fn the_readme_quickstart_suite_passes_on_the_demo_provider() {
    let data = scratch("quickstart");
    let file = quickstart();
    let out = gm(&data, &["eval", "--json", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(json(&out)["summary"]["passedTests"], 5);
}

#[test]
fn runs_are_listed_shown_and_compared_and_only_a_real_regression_is_flagged() {
    let data = scratch("runs");
    let file = gm_testkit::suite::write_sums(&data, "arith", 0..30, 7);
    let f = file.to_str().unwrap();
    // Run 1 and 2: the same model twice (run 2 from the cache); run 3: a model that answers wordily.
    assert_eq!(gm(&data, &["eval", "--json", f], &[]).status.code(), Some(0));
    assert_eq!(gm(&data, &["eval", "--json", f], &[]).status.code(), Some(0));
    assert_eq!(gm(&data, &["eval", "--json", "--model", "openai/gpt-4.1-mini", f], &[]).status.code(), Some(1));

    let v = json(&gm(&data, &["runs", "list", "--json"], &[]));
    let ids: Vec<i64> = v.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![3, 2, 1]);
    let shown = json(&gm(&data, &["runs", "show", "3", "--json"], &[]));
    assert_eq!(shown["summary"]["failedTests"], 30);

    let same = json(&gm(&data, &["runs", "compare", "1", "2", "--json"], &[]));
    assert_eq!(same["comparison"]["verdict"], "no_significant_change");
    let worse = json(&gm(&data, &["runs", "compare", "1", "3", "--json"], &[]));
    assert_eq!(worse["comparison"]["verdict"], "regression");
    assert_eq!(worse["comparison"]["newly_failing"].as_array().unwrap().len(), 30);
    let text = gm(&data, &["runs", "compare", "1", "3"], &[]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("REGRESSION"));
    let missing = gm(&data, &["runs", "show", "99"], &[]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn gm_bench_runs_the_matrix_with_the_documented_json() {
    let data = scratch("bench");
    let quickstart = quickstart();
    let suite_file = data.join("cases.prompt.yml");
    suite(6, &suite_file);
    let tasks = format!("{},{}", quickstart.display(), suite_file.display());
    let out = gm(&data, &["bench", "--json", "--models", "openai/gpt-4.1,openai/gpt-4.1-mini", "--tasks", &tasks], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert!(v["run_id"].is_i64());
    for key in ["best_model", "best_model_rule", "average_latency_ms"] {
        assert!(v["summary"].get(key).is_some(), "{key}");
    }
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        for key in [
            "latency_p50_ms",
            "latency_p95_ms",
            "tokens_per_second",
            "quality",
            "quality_ci95",
            "cost_usd",
            "quality_per_dollar",
        ] {
            assert!(c["metrics"].get(key).is_some(), "{key}: {c}");
        }
    }
    assert_eq!(v["summary"]["best_model"], "openai/gpt-4.1");
    let shown = json(&gm(&data, &["runs", "show", &v["run_id"].to_string(), "--json"], &[]));
    assert_eq!(shown["cells"].as_array().unwrap().len(), 4);
}

#[test]
fn gm_bench_lists_and_runs_the_built_in_tasks_and_refuses_code_without_permission() {
    let data = scratch("builtin-bench");
    let out = gm(&data, &["bench", "--list-tasks"], &[]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    for task in ["text_generation", "question_answering", "summarization", "code_generation", "reasoning"] {
        assert!(listing.contains(task), "{listing}");
    }
    let out = gm(
        &data,
        &[
            "bench",
            "--json",
            "--models",
            "openai/gpt-4.1,openai/gpt-4.1-mini",
            "--tasks",
            "question_answering,summarization,reasoning,text_generation",
            "--limit-items",
            "3",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["cells"].as_array().unwrap().len(), 8);
    let out = gm(&data, &["bench", "--models", "openai/gpt-4.1", "--tasks", "code_generation"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-code-exec"));
    let out = gm(&data, &["bench", "--models", "openai/gpt-4.1", "--tasks", "no_such_task"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_interrupted_bench_resumes_without_repeating_a_recorded_case() {
    let emu = Background::start(EmulatorConfig::default());
    let data = scratch("bench-resume");
    let v1 = format!("{}/v1", emu.url());
    let mut args = vec!["--provider", "openai-compatible", "--base-url", &v1, "--no-cache", "bench", "--json"];
    args.extend(["--models", "openai/gpt-4.1,openai/gpt-4o-mini", "--tasks", "question_answering,reasoning"]);
    args.extend(["--limit-items", "5", "--concurrency", "1"]);
    // 2 models x 2 tasks x 5 items, no judges: 20 requests in all. The budget stops the first run part-way.
    let first = gm(&data, &[&args[..], &["--max-requests", "7"]].concat(), &[]);
    assert_eq!(
        first.status.code(),
        Some(3),
        "{}{}",
        String::from_utf8_lossy(&first.stderr),
        String::from_utf8_lossy(&first.stdout)
    );
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(err.contains("budget of 7 requests") && err.contains("--resume"), "{err}");
    let sent_first = emu.stats().total;
    assert!((7..20).contains(&sent_first), "{sent_first}");

    let out = gm(&data, &[&args[..], &["--resume"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{sent_first} of 20 test cases already done")), "{err}");
    // Every case was asked once over both runs, and the report covers all of them.
    assert_eq!(emu.stats().total, 20);
    let v = json(&out);
    assert_eq!(v["cells"].as_array().unwrap().len(), 4);
    let listed = json(&gm(&data, &["runs", "list", "--json"], &[]));
    assert_eq!(listed.as_array().unwrap().len(), 1, "the resumed run is the same run: {listed}");
    assert_eq!(listed[0]["cases"], 20);
    assert_eq!(listed[0]["id"], v["run_id"]);
}

#[test]
fn gm_bench_metrics_choose_the_scorers_of_every_task() {
    let data = scratch("bench-metrics");
    let args =
        ["bench", "--json", "--models", "openai/gpt-4.1", "--limit-items", "3", "--metrics", "squad_f1,bleu:0.3"];
    // code_generation graded by BLEU alone runs no code, so it needs no --allow-code-exec.
    let tasks = ["--tasks", "question_answering,summarization,code_generation"];
    let out = gm(&data, &[&args[..], &tasks[..]].concat(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    let scorers =
        |i: usize| -> Vec<String> { v["cells"][i]["metrics"]["scores"].as_object().unwrap().keys().cloned().collect() };
    // The task's own SQuAD F1 scorer is kept under its name; elsewhere the metric is added against `expected`.
    assert_eq!(scorers(0), ["bleu", "token F1"]);
    assert_eq!(scorers(1), ["bleu", "squad_f1"]);
    assert_eq!(scorers(2), ["bleu", "squad_f1"]);
    // The same bench again is answered from the cache, and every cell says so.
    let again = json(&gm(&data, &[&args[..], &tasks[..]].concat(), &[]));
    for (first, second) in v["cells"].as_array().unwrap().iter().zip(again["cells"].as_array().unwrap()) {
        assert_eq!(first["metrics"]["cache_hits"], 0, "{first}");
        assert_eq!(second["metrics"]["cache_hits"], 3, "{second}");
        assert_eq!(first["metrics"]["quality"], second["metrics"]["quality"]);
    }
    for cell in v["cells"].as_array().unwrap() {
        let scores = cell["metrics"]["scores"].as_object().unwrap();
        let mean = scores.values().map(|s| s.as_f64().unwrap()).sum::<f64>() / scores.len() as f64;
        assert!((cell["metrics"]["quality"].as_f64().unwrap() - mean).abs() < 1e-9, "{cell}");
    }

    let out = gm(
        &data,
        &["bench", "--models", "openai/gpt-4.1", "--tasks", "question_answering", "--metrics", "coherence"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exact match, token F1"));
    let out = gm(
        &data,
        &["bench", "--models", "openai/gpt-4.1", "--tasks", "reasoning", "--metrics", "final answer,nope"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nope` is neither"));
    let out = gm(&data, &["bench", "--models", "openai/gpt-4.1", "--tasks", "reasoning", "--metrics", "bleu:3"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn gm_bench_runs_two_demo_models_on_all_five_tasks() {
    let data = scratch("bench-five");
    let path = std::env::var("PATH").unwrap_or_default();
    // code_generation runs the generated code with python3.
    if !gm_testkit::skip::program("python3", "apt-get install python3") {
        return;
    }
    let tasks = "text_generation,question_answering,summarization,code_generation,reasoning";
    let models = "openai/gpt-4.1,openai/gpt-4.1-mini";
    let args = ["bench", "--json", "--allow-code-exec", "--models", models, "--tasks", tasks, "--limit-items", "3"];
    let out = gm(&data, &args, &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 10);
    let scorers = |task: &str| -> Vec<String> {
        let cell = cells.iter().find(|c| c["task"] == task && c["model"] == "openai/gpt-4.1").unwrap();
        cell["metrics"]["scores"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(scorers("question_answering"), ["exact match", "token F1"]);
    assert_eq!(scorers("summarization"), ["ROUGE-L", "ROUGE-Lsum", "coherence"]);
    assert_eq!(scorers("reasoning"), ["final answer"]);
    assert!(scorers("code_generation").contains(&"pass@1".to_string()), "{:?}", scorers("code_generation"));
    assert!(scorers("text_generation").contains(&"fluency".to_string()), "{:?}", scorers("text_generation"));
    for c in cells {
        let q = c["metrics"]["quality"].as_f64().unwrap();
        let [lo, hi] = [0, 1].map(|i| c["metrics"]["quality_ci95"][i].as_f64().unwrap());
        assert!((0.0..=1.0).contains(&q) && lo <= q && q <= hi, "{c}");
    }
    let best = v["summary"]["best_model"].as_str().unwrap();
    assert!(models.split(',').any(|m| m == best), "{v}");
    assert!(v["summary"]["best_model_rule"].as_str().unwrap().contains("highest mean quality"));
}

/// A task of 30 multiplications whose string check asks for `{{b}}` followed by `suffix`.
fn arithmetic_task(path: &Path, suffix: &str) {
    let mut yaml =
        String::from("name: arith\nmessages:\n  - role: user\n    content: \"What is {{a}} * 3?\"\ntestData:\n");
    for a in 1..=30 {
        yaml.push_str(&format!("  - {{a: {a}, b: {}}}\n", a * 3));
    }
    yaml.push_str(&format!("evaluators:\n  - name: product\n    string: {{contains: \"{{{{b}}}}{suffix}\"}}\n"));
    std::fs::write(path, yaml).unwrap();
}

#[test]
fn gm_runs_compare_flags_a_planted_bench_regression_cell_by_cell_and_not_noise() {
    let data = scratch("bench-compare");
    let (good, bad) = (data.join("good.prompt.yml"), data.join("bad.prompt.yml"));
    arithmetic_task(&good, "");
    arithmetic_task(&bad, "000");
    let run = |file: &Path| -> i64 {
        let f = file.to_str().unwrap();
        let out = gm(&data, &["bench", "--json", "--models", "openai/gpt-4.1,openai/gpt-4o-mini", "--tasks", f], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        json(&out)["run_id"].as_i64().unwrap()
    };
    let (a, b, c) = (run(&good), run(&good), run(&bad));
    let compare =
        |x: i64, y: i64| json(&gm(&data, &["runs", "compare", &x.to_string(), &y.to_string(), "--json"], &[]));
    let same = compare(a, b);
    let cells = same["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2, "{same}");
    for cell in cells {
        assert_eq!(cell["task"], "arith");
        assert_eq!(cell["comparison"]["verdict"], "no_significant_change", "{cell}");
        assert_eq!(cell["comparison"]["shared_cases"], 30, "cases are matched within the cell: {cell}");
    }
    let worse = compare(a, c);
    for cell in worse["cells"].as_array().unwrap() {
        assert_eq!(cell["comparison"]["verdict"], "regression", "{cell}");
    }
    let text = String::from_utf8_lossy(&gm(&data, &["runs", "compare", &a.to_string(), &c.to_string()], &[]).stdout)
        .to_string();
    assert!(text.contains("2 shared cells, 2 significantly worse"), "{text}");
    assert!(text.contains("openai/gpt-4o-mini on arith"), "{text}");
    // A bench run and an eval run are not compared.
    let out = gm(&data, &["eval", "--json", good.to_str().unwrap(), "--model", "openai/gpt-4.1"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = json(&gm(&data, &["runs", "list", "--json"], &[]));
    let eval_id = listed.as_array().unwrap().iter().find(|r| r["kind"] == "eval").unwrap()["id"].to_string();
    let out = gm(&data, &["runs", "compare", &a.to_string(), &eval_id], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_task_config_may_enable_code_execution_and_pass_at_k_takes_k_samples() {
    if !gm_testkit::skip::program("python3", "apt-get install python3") {
        return;
    }
    let emu = Background::start(EmulatorConfig::default());
    let data = scratch("pass-at-k");
    let dir = data.join("tasks/add");
    std::fs::create_dir_all(&dir).unwrap();
    // The emulator answers with the prompt itself, so the prompt is the program.
    std::fs::write(
        dir.join("task.yaml"),
        "messages: [{role: user, content: \"{{code}}\"}]\nevaluators:\n  - {name: pass@3, execute: {language: python, k: 3, allowCodeExec: true}}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("data.jsonl"),
        "{\"code\": \"def add(a, b):\\n    return a + b\", \"tests\": [\"assert add(1, 2) == 3\"]}\n{\"code\": \"def add(a, b):\\n    return a - b\", \"tests\": [\"assert add(1, 2) == 3\"]}\n",
    )
    .unwrap();
    let v1 = format!("{}/v1", emu.url());
    let tasks_dir = data.join("tasks");
    let args = [
        "--provider",
        "openai-compatible",
        "--base-url",
        &v1,
        "bench",
        "--json",
        "--tasks-dir",
        tasks_dir.to_str().unwrap(),
        "--models",
        "openai/gpt-4o-mini",
        "--tasks",
        "add",
    ];
    let path = std::env::var("PATH").unwrap_or_default();
    let out = gm(&data, &args, &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("enables code execution in its task.yaml"));
    let v = json(&out);
    // One correct and one wrong program: pass@3 is 1 and 0.
    assert_eq!(v["cells"][0]["metrics"]["scores"]["pass@3"], 0.5, "{v}");
    // Three samples of each of the two items.
    assert_eq!(emu.stats().total, 6);
}

#[test]
fn a_base_url_without_a_provider_reaches_the_server_and_never_the_demo() {
    let emu = Background::start(EmulatorConfig::default());
    let data = scratch("base-url");
    let suite = quickstart();
    let url = format!("{}/v1", emu.url());
    let args = ["--limits", "1000/1s", "eval", "--json", "--model", "openai/gpt-4.1", suite.to_str().unwrap()];
    let out = gm(&data, &args, &[("GM_BASE_URL", &url)]);
    let v = json(&out);
    assert_eq!(v["gm"]["provider"], "openai-compatible", "{v}");
    let cases = v["summary"]["totalTests"].as_u64().unwrap();
    assert_eq!(emu.stats().by_path.get("/v1/chat/completions").copied(), Some(cases), "{:?}", emu.stats());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("demo provider"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_demo_run_says_so_in_every_report_and_refuses_models_outside_its_catalog() {
    let data = scratch("demo-marked");
    let suite = quickstart();
    let (junit, md, html) = (data.join("r.xml"), data.join("r.md"), data.join("r.html"));
    let args = [
        "eval",
        suite.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ];
    let out = gm(&data, &args, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("DEMO RUN:"), "{stdout}");
    for report in [&junit, &md, &html] {
        let text = std::fs::read_to_string(report).unwrap();
        assert!(text.contains("DEMO RUN:"), "{}: {text}", report.display());
    }
    // The notice comes last on standard error, on lines of its own (the second indented under the first).
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notice = stderr.rfind("note: the demo provider answers").map(|at| &stderr[at..]).unwrap_or_default();
    assert!(notice.lines().count() == 2 && notice.lines().skip(1).all(|l| l.starts_with("      ")), "{stderr}");
    assert!(stderr.lines().filter(|l| l.starts_with("note: the demo provider")).count() == 1, "{stderr}");

    let out = gm(&data, &["eval", "--json", "--model", "openai/gpt-5-nonexistent", suite.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("model `openai/gpt-5-nonexistent` is not in the demo catalog"), "{stderr}");
    let out = gm(&data, &["eval", "--json", "--model", "openai/gpt-4.2", suite.to_str().unwrap()], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("(did you mean openai/gpt-4.1"), "{out:?}");

    let out = gm(&data, &["bench", "--json", "--models", "nope/x,openai/gpt-4.1", "--tasks", "reasoning"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let out = gm(
        &data,
        &["bench", "--json", "--limit-items", "2", "--models", "openai/gpt-4.1", "--tasks", "reasoning"],
        &[],
    );
    assert_eq!(json(&out)["provider"], "demo");
    let out = gm(&data, &["bench", "--limit-items", "2", "--models", "openai/gpt-4.1", "--tasks", "reasoning"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("DEMO RUN:"));
}

#[test]
fn a_token_budget_is_reserved_before_sending_and_stopping_at_it_prints_the_partial_results() {
    let data = scratch("token-budget");
    let suite = quickstart();
    let file = suite.to_str().unwrap();
    // Each call reserves its input and its maxTokens (200): five at once would pass 300, so they cannot start.
    let out = gm(&data, &["eval", "--json", "--concurrency", "5", "--token-budget", "300", file], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let partial = json(&out);
    let done = partial["testResults"].as_array().unwrap().len();
    assert!((1..5).contains(&done), "{partial}");
    let used = partial["gm"]["tokens_in"].as_u64().unwrap() + partial["gm"]["tokens_out"].as_u64().unwrap();
    assert!(used <= 300, "{used} tokens spent on a budget of 300");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("budget of 300 tokens") && stderr.contains("--resume"), "{stderr}");
    // The run is left unfinished, and resuming it finishes it.
    let listed = json(&gm(&data, &["runs", "list", "--json"], &[]));
    assert!(listed[0]["finished_at"].is_null(), "{listed}");
    let out = gm(&data, &["eval", "--json", "--resume", file], &[]);
    assert_eq!(json(&out)["testResults"].as_array().unwrap().len(), 5);
    // The old name still works, with a word on what it is.
    let out = gm(&data, &["eval", "--max-tokens", "1", file], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("now called --token-budget"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Running evaluation: Quickstart"));
}

#[test]
fn a_demo_run_has_no_cost_in_any_report_nor_a_cost_efficiency() {
    let data = scratch("demo-cost");
    let suite = quickstart();
    let (junit, md, html) = (data.join("r.xml"), data.join("r.md"), data.join("r.html"));
    let reports = ["--junit", junit.to_str().unwrap(), "--markdown", md.to_str().unwrap(), "--html"];
    let args = [&["eval", suite.to_str().unwrap()][..], &reports[..], &[html.to_str().unwrap()]].concat();
    let out = gm(&data, &args, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The demo's models are named after priced ones, but no priced model answered.
    assert!(text.contains("n/a (demo provider: no model was asked)") && !text.contains("$0."), "{text}");
    for report in [&junit, &md, &html] {
        let page = std::fs::read_to_string(report).unwrap();
        assert!(!page.contains("$0."), "{}: {page}", report.display());
    }
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("n/a (demo provider: no model was asked)"), "{md}");
    let v = json(&gm(&data, &["eval", "--json", suite.to_str().unwrap()], &[]));
    assert!(v["gm"]["cost_usd"].is_null(), "{}", v["gm"]);

    let bench_html = data.join("bench.html");
    let args = ["bench", "--limit-items", "2", "--models", "openai/gpt-4.1,openai/gpt-4o-mini", "--tasks", "reasoning"];
    let v = json(&gm(&data, &[&args[..], &["--json", "--html", bench_html.to_str().unwrap()]].concat(), &[]));
    for cell in v["cells"].as_array().unwrap() {
        assert!(cell["metrics"]["cost_usd"].is_null() && cell["metrics"]["quality_per_dollar"].is_null(), "{cell}");
    }
    let page = std::fs::read_to_string(&bench_html).unwrap();
    assert!(page.contains("the demo provider asks no model") && !page.contains("$0."), "{page}");
    let table = String::from_utf8_lossy(&gm(&data, &args, &[]).stdout).into_owned();
    assert!(table.contains("n/a (demo)") && !table.contains("$0."), "{table}");
}
