//! End-to-end tests of the `gm` binary on the demo provider and against the emulator.

use std::process::{Command, Output, Stdio};

use gm_emulator::EmulatorConfig;
use gm_testkit::cli::{gm_command, text};
use gm_testkit::emulator::Background;
use gm_testkit::{RedisServer, TempDir};

const SECRET: &str = "ghp_verysecrettokenvalue42";

/// `gm ARGS…` with the test's `env` alone (see [`gm_command`]), and a state file of its own per call, so quotas
/// counted by other runs on this machine do not apply.
fn gm(args: &[&str], env: &[(&str, &str)]) -> Output {
    let state = TempDir::new("cli-state");
    let mut cmd = gm_command(env!("CARGO_BIN_EXE_gm"));
    cmd.env("GM_DATA_DIR", state.path()).args(args).envs(env.iter().copied());
    cmd.output().unwrap()
}

/// Starts `n` gm processes at once, each set up by `setup(i, cmd)`, and waits for every one to succeed.
fn run_at_once(n: usize, setup: impl Fn(usize, &mut Command)) {
    let children: Vec<_> = (0..n)
        .map(|i| {
            let mut cmd = gm_command(env!("CARGO_BIN_EXE_gm"));
            setup(i, &mut cmd);
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

#[test]
fn models_and_run_on_the_demo_provider_say_so() {
    let out = gm(&["models", "list"], &[]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("openai/gpt-4.1"));
    assert!(text(&out.stderr).contains("demo provider"), "{}", text(&out.stderr));

    let out = gm(&["models", "list", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.as_array().unwrap().iter().all(|m| m["id"].is_string()));

    let out = gm(&["run", "openai/gpt-4.1", "What is 6 * 7?"], &[]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "The answer is 42.\n");
    assert!(text(&out.stderr).contains("demo provider"));

    let out = gm(&["run", "openai/gpt-4.1", "What is the capital of France?"], &[("GITHUB_TOKEN", "demo_token")]);
    assert_eq!(text(&out.stdout), "Paris\n");
}

#[test]
fn run_with_a_prompt_file_and_vars() {
    let dir = TempDir::new("cli-test");
    let file = dir.join("calc.prompt.yml");
    std::fs::write(
        &file,
        "name: calc\nmodel: openai/gpt-4.1\nmodelParameters:\n  maxTokens: 100\nmessages:\n  - role: system\n    content: You compute.\n  - role: user\n    content: 'What is {{a}} + {{input}}?'\n",
    )
    .unwrap();
    let out = gm(&["run", "openai/gpt-4.1", "--file", file.to_str().unwrap(), "--var", "a=40", "2"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "The answer is 42.\n");

    std::fs::write(&file, "name: bad\nmessages: [\n").unwrap();
    let out = gm(&["run", "--file", file.to_str().unwrap(), "x"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("calc.prompt.yml:"), "{}", text(&out.stderr));
}

#[test]
fn run_against_the_emulator_on_github_and_openai_paths() {
    let emu = Background::start(EmulatorConfig::default());
    let url = emu.url();
    let out = gm(
        &["--provider", "github", "--base-url", &url, "run", "openai/gpt-4o-mini", "hi there"],
        &[("GITHUB_TOKEN", SECRET)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi there\n");

    let v1 = emu.openai_url();
    let out =
        gm(&["--provider", "openai-compatible", "--base-url", &v1, "run", "gpt-4o-mini", "streamed words arrive"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "streamed words arrive\n");

    let out = gm(&["--provider", "github", "--base-url", &url, "models", "list"], &[("GITHUB_TOKEN", SECRET)]);
    assert!(text(&out.stdout).contains("openai/gpt-4.1-mini"));

    let out = gm(
        &["--provider", "github", "--base-url", &url, "run", "openai/unknown-model", "hi"],
        &[("GITHUB_TOKEN", SECRET)],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("unknown_model"));
    for o in [&out.stdout, &out.stderr] {
        assert!(!text(o).contains(SECRET));
    }
    assert_eq!(emu.stats().by_path["/inference/chat/completions"], 2);
}

#[test]
fn an_unreadable_state_file_is_moved_aside_whatever_opens_it_first() {
    let emu = Background::start(EmulatorConfig::default());
    let url = emu.url();
    let dir = TempDir::new("cli-garbage");
    let data = dir.to_str().unwrap();
    // On github the limiter opens the state first; twice, so the second file must not replace the first.
    for i in 0..2 {
        std::fs::write(dir.join("gm.sqlite"), format!("not a database {i}")).unwrap();
        let args = ["--data-dir", data, "--provider", "github", "--base-url", &url, "run", "openai/gpt-4.1", "hi"];
        let out = gm(&args, &[("GITHUB_TOKEN", SECRET)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("was unreadable or damaged; it was moved to"), "{}", text(&out.stderr));
    }
    let mut kept: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".unreadable-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, ["not a database 0", "not a database 1"]);
}

#[test]
fn a_retired_service_gives_one_request_one_clear_error_and_no_token() {
    let emu = Background::start(EmulatorConfig { retired: true, ..Default::default() });
    let out = gm(
        &["-vv", "--provider", "github", "--base-url", &emu.url(), "run", "openai/gpt-4o-mini", "hi"],
        &[("GITHUB_TOKEN", SECRET)],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("retired on 2026-07-30") && err.contains("--provider"), "{err}");
    assert!(!err.contains(SECRET) && !text(&out.stdout).contains(SECRET));
    assert_eq!(emu.stats().total, 1);
}

#[test]
fn usage_errors_exit_2_and_say_what_to_do() {
    let out = gm(&["--provider", "openai", "run", "gpt-4o", "hi"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("OPENAI_API_KEY"));
    let out = gm(&["--provider", "openai-compatible", "run", "x", "hi"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--base-url"));
    let out = gm(&["run", "openai/", "hi"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = gm(&["--bogus-flag"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn auth_status_redacts_the_token() {
    let out = gm(&["auth", "status", "--json"], &[("GITHUB_TOKEN", SECRET)]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains(SECRET), "{all}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["provider"], "github");
    assert_eq!(v["credential"]["source"], "the GITHUB_TOKEN environment variable");
}

#[test]
fn the_key_of_an_openai_compatible_server_is_findable() {
    let out = gm(&["--base-url", "http://127.0.0.1:4000/v1", "auth", "status"], &[]);
    let shown = text(&out.stdout);
    assert!(shown.contains("Provider:    openai-compatible (a base URL was given without a provider)"), "{shown}");
    assert!(shown.contains("Credential:  none set; this server may need one: set GM_API_KEY"), "{shown}");
    let out = gm(&["--base-url", "http://127.0.0.1:4000/v1", "auth", "status"], &[("GM_API_KEY", SECRET)]);
    assert!(text(&out.stdout).contains("from the GM_API_KEY environment variable"), "{}", text(&out.stdout));
    let args = ["--base-url", "http://h/v1", "--api-key-env", "LITELLM_MASTER_KEY", "auth", "status", "--json"];
    let out = gm(&args, &[("LITELLM_MASTER_KEY", SECRET)]);
    assert!(!text(&out.stdout).contains(SECRET));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["credential"]["source"], "the LITELLM_MASTER_KEY environment variable (api_key_env)");
    let help = text(&gm(&["--help"], &[]).stdout);
    assert!(help.contains("--api-key-env <NAME>") && help.contains("GM_API_KEY"), "{help}");
}

#[test]
fn the_same_run_with_cache_twice_reaches_the_emulator_once() {
    let emu = Background::start(EmulatorConfig::default());
    let dir = TempDir::new("cli-cache");
    let data = dir.to_str().unwrap();
    let args = [
        "--data-dir",
        data,
        "--provider",
        "github",
        "--base-url",
        &emu.url(),
        "run",
        "--cache",
        "openai/gpt-4o-mini",
        "cache me",
    ];
    let first = gm(&args, &[("GITHUB_TOKEN", SECRET)]);
    let second = gm(&args, &[("GITHUB_TOKEN", SECRET)]);
    assert_eq!(text(&first.stdout), "cache me\n");
    assert_eq!(text(&second.stdout), "cache me\n");
    assert!(text(&second.stderr).contains("cached answer"));
    let chats = || emu.stats().by_path.get("/inference/chat/completions").copied().unwrap_or(0);
    assert_eq!(chats(), 1);
    // --refresh sends again; without --cache nothing is cached.
    let mut refresh = args.to_vec();
    refresh.insert(0, "--refresh");
    gm(&refresh, &[("GITHUB_TOKEN", SECRET)]);
    assert_eq!(chats(), 2);
    let out = gm(&["--data-dir", data, "cache", "stats", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["persistent"]["entries"], 1);
    assert_eq!(v["persistent"]["hits"], 1);
    let out = gm(&["--data-dir", data, "cache", "clear"], &[]);
    assert!(out.status.success());
    let out = gm(&["--data-dir", data, "cache", "stats", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["persistent"]["entries"], 0);
}

#[test]
fn processes_starting_together_on_a_new_state_file_all_open_it() {
    // Opening a new state file at the same moment, SQLite may tell all but one of them "database is locked"
    // without waiting (waiting could deadlock); each must try again rather than fail.
    for round in 0..8 {
        let dir = TempDir::new(&format!("cli-open-{round}"));
        run_at_once(8, |i, cmd| {
            cmd.arg("--data-dir").arg(&dir).args(["--limits", "1000/1s,concurrency=2"]);
            cmd.args(["run", "openai/gpt-4.1", &format!("request {i}")]);
        });
    }
}

#[test]
fn concurrent_processes_share_the_concurrency_cap_without_a_429() {
    let limits = gm_emulator::EmulatorLimits { windows: vec![], concurrency: Some(2) };
    let config =
        EmulatorConfig { limits: Some(limits), latency: std::time::Duration::from_millis(300), ..Default::default() };
    let emu = Background::start(config);
    let dir = TempDir::new("cli-leases");
    let url = format!("{}/v1", emu.url());
    run_at_once(6, |i, cmd| {
        cmd.arg("--data-dir").arg(&dir);
        cmd.args(["--provider", "openai-compatible", "--base-url", &url, "--limits", "1000/1s,concurrency=2"]);
        cmd.args(["run", "openai/gpt-4o-mini", &format!("request {i}")]);
    });
    let stats = emu.stats();
    assert_eq!(stats.by_status.get(&429), None, "{stats:?}");
    assert_eq!(stats.by_status[&200], 6);
}

#[test]
fn twelve_concurrent_processes_share_one_quota_without_a_429() {
    let limits = gm_emulator::EmulatorLimits {
        windows: vec![gm_emulator::Window { limit: 5, window: std::time::Duration::from_secs(1), daily: false }],
        concurrency: None,
    };
    let emu = Background::start(EmulatorConfig { limits: Some(limits), ..Default::default() });
    let dir = TempDir::new("cli-limits");
    let url = emu.url();
    // Transit times differ from process to process (by more than the default 100 ms on a loaded machine), so a
    // request admitted a full window after another can still reach the server inside that window; a wider
    // margin keeps the server's count in agreement with the shared one.
    let limits = "5/1s,margin=400ms";
    run_at_once(12, |i, cmd| {
        cmd.args(["--data-dir", dir.to_str().unwrap(), "--provider", "github", "--base-url", &url, "--limits", limits]);
        cmd.args(["run", "openai/gpt-4o-mini", &format!("request {i}")]).env("GITHUB_TOKEN", SECRET);
    });
    let stats = emu.stats();
    assert_eq!(stats.by_status.get(&429), None, "{stats:?}");
    assert_eq!(stats.by_status[&200], 12);
    let out = gm(&["--data-dir", dir.to_str().unwrap(), "--limits", "5/1s", "limits", "status", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["windows"][0]["limit"], 5);
    assert!(v[0]["counted"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v[0]["requests"]["last_day"], v[0]["counted"], "{v}");
    // Within a second of the last admission, it says when the window frees (nothing once all have expired).
    if let Some(frees) = v[0]["windows"][0]["next_frees_in_s"].as_f64() {
        assert!(frees > 0.0 && frees <= 1.0, "a place frees within the 1 s window: {v}");
    }
    assert!(v[0]["blocked"].is_null(), "no 429 was seen: {v}");
    assert!(!text(&out.stdout).contains(SECRET));
    let out = gm(&["--data-dir", dir.to_str().unwrap(), "--limits", "5/1s", "limits", "status"], &[]);
    let human = text(&out.stdout);
    assert!(human.contains("in the last day") && human.contains("window 5/1s"), "{human}");
    assert!(!human.contains("null"), "{human}");
    // The key exactly as status prints it is accepted too.
    let whole = v[0]["key"].as_str().unwrap().to_string();
    let out = gm(&["--data-dir", dir.to_str().unwrap(), "limits", "reset", &whole], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = gm(&["--data-dir", dir.to_str().unwrap(), "limits", "reset", "github:openai/gpt-4o-mini"], &[]);
    assert_eq!(out.status.code(), Some(2), "the key is gone: {}", text(&out.stderr));
    let again = [
        "--data-dir",
        dir.to_str().unwrap(),
        "--provider",
        "github",
        "--base-url",
        &url,
        "--limits",
        "5/1s",
        "run",
        "openai/gpt-4o-mini",
        "again",
    ];
    let out = gm(&again, &[("GITHUB_TOKEN", SECRET)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = gm(&["--data-dir", dir.to_str().unwrap(), "limits", "reset", "github:openai/gpt-4o-mini"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = gm(&["--data-dir", dir.to_str().unwrap(), "limits", "status", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(0));
}

#[test]
fn machines_with_their_own_state_share_one_quota_through_redis() {
    let Some(redis) = RedisServer::start() else { return };
    let limits = gm_emulator::EmulatorLimits {
        windows: vec![gm_emulator::Window { limit: 4, window: std::time::Duration::from_secs(1), daily: false }],
        concurrency: None,
    };
    let emu = Background::start(EmulatorConfig { limits: Some(limits), ..Default::default() });
    let url = format!("{}/v1", emu.url());
    let base = TempDir::new("cli-redis");
    // Eight processes as if on four machines: each pair has its own state file, all share the Redis server.
    run_at_once(8, |i, cmd| {
        cmd.arg("--data-dir").arg(base.join(format!("machine-{}", i % 4)));
        cmd.args(["--redis", &redis.url(), "--provider", "openai-compatible", "--base-url", &url]);
        // A wider transit margin than the default, as in the test above.
        cmd.args(["--limits", "4/1s,margin=400ms", "run", "openai/gpt-4o-mini", &format!("request {i}")]);
    });
    let stats = emu.stats();
    assert_eq!(stats.by_status.get(&429), None, "{stats:?}");
    assert_eq!(stats.by_status[&200], 8);
    // The answers are shared too: a cached run on one machine answers the same request on another.
    let before = emu.stats().total;
    for machine in ["machine-0", "machine-1"] {
        let data = base.join(machine);
        let args = ["--data-dir", data.to_str().unwrap(), "--redis", &redis.url(), "--provider", "openai-compatible"];
        // The same --limits as above, so the quota shared through Redis keeps this request from a 429 too.
        let run = [
            "--base-url",
            &url,
            "--limits",
            "4/1s,margin=400ms",
            "run",
            "--cache",
            "openai/gpt-4o-mini",
            "shared answer",
        ];
        let out = gm(&[&args[..], &run[..]].concat(), &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "shared answer\n");
    }
    assert_eq!(emu.stats().total, before + 1, "the second machine was answered from Redis: {:?}", emu.stats());
    let stats = gm(
        &["--data-dir", base.join("machine-1").to_str().unwrap(), "--redis", &redis.url(), "cache", "stats", "--json"],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(v["redis"]["entries"].as_u64().unwrap() >= 1, "{v}");
    // An unreachable server is a clear error, and its address is not repeated (it may hold a password).
    let out = gm(
        &[
            "--redis",
            "redis://:secret-pw@127.0.0.1:1/",
            "--provider",
            "openai-compatible",
            "--base-url",
            &url,
            "--limits",
            "4/1s",
            "run",
            "m",
            "hi",
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("--redis"), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("secret-pw"), "{}", text(&out.stderr));
}

#[test]
fn list_tasks_keeps_its_columns_aligned() {
    let out = gm(&["bench", "--list-tasks"], &[]);
    assert!(out.status.success());
    let listing = text(&out.stdout);
    let header = listing.lines().next().unwrap();
    let column = header.find("DESCRIPTION").unwrap();
    for line in listing.lines().skip(1) {
        let before: String = line.chars().take(column).collect();
        assert!(before.ends_with("  ") && !line.chars().nth(column).unwrap().is_whitespace(), "{line}");
    }
}

#[test]
fn help_shows_only_the_global_options_a_command_uses_under_their_own_heading() {
    let help = |args: &[&str]| text(&gm(args, &[]).stdout);
    let run = help(&["run", "--help"]);
    let (own, global) = run.split_once("Global options:").expect("a heading of their own");
    assert!(own.contains("--system-prompt") && !own.contains("--redis"), "{run}");
    assert!(global.contains("--redis") && global.contains("--provider") && !global.contains("--system-prompt"));
    // An environment variable is named, never shown with a value (an unset one would read `GM_LIMITS=`).
    assert!(global.contains("GM_LIMITS]") && !global.contains("=]"), "{run}");
    // The options of the settings apply wherever settings are read.
    for command in ["models", "auth", "eval", "bench", "cache", "runs", "limits", "config"] {
        let help = help(&[command, "--help"]);
        assert!(help.contains("--config <FILE>"), "gm {command} --help: {help}");
    }
    assert!(help(&["init", "--help"]).contains("--api-key-env"));
    // The cap per server applies wherever requests are sent.
    for command in ["run", "eval", "bench", "config"] {
        let help = help(&[command, "--help"]);
        assert!(help.contains("--server-concurrency <N>"), "gm {command} --help: {help}");
    }
    for command in ["score", "emulate"] {
        let help = help(&[command, "--help"]);
        for unused in ["--redis", "--plan", "--max-wait", "--limits ", "--provider", "--data-dir"] {
            assert!(!help.contains(unused), "gm {command} --help shows {unused}: {help}");
        }
    }
    assert!(!help(&["runs", "--help"]).contains("--provider"));
    assert!(help(&["cache", "--help"]).contains("--redis"));
    // Given anyway, an option the command does not use is refused, before or after its name.
    for args in [&["score", "--redis", "redis://x/", "--list"][..], &["--redis", "redis://x/", "score", "--list"]] {
        let out = gm(args, &[]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("--redis does not apply to `gm score`"), "{}", text(&out.stderr));
    }
    let out = gm(&["emulate", "--limits", "5/1s"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("did you mean `gm emulate --limit`?"), "{}", text(&out.stderr));
}
