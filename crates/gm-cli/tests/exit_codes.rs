//! The exit codes of `gm` as documented (README, `gm --help`): each produced by at least one command, and no
//! local file problem ever taken for the provider's; and reading (or clearing) commands that create nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gm_emulator::EmulatorConfig;
use gm_testkit::cli::code;
use gm_testkit::emulator::Background;
use gm_testkit::TempDir;

/// `gm` with `args`, its state under `GM_DATA_DIR=data`, and the test's `env` alone (see
/// [`gm_testkit::cli::gm_command`]).
fn gm_command(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = gm_testkit::cli::gm_command(env!("CARGO_BIN_EXE_gm"));
    cmd.args(args).env("GM_DATA_DIR", data).envs(env.iter().copied());
    cmd
}

fn gm(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    gm_command(data, args, env).output().unwrap()
}

fn quickstart() -> PathBuf {
    gm_testkit::repo("docs/examples/quickstart.prompt.yml")
}

/// A suite of one case the demo's answer fails.
fn failing_suite(dir: &Path) -> PathBuf {
    let path = dir.join("fails.prompt.yml");
    std::fs::write(
        &path,
        "name: fails\nmodel: openai/gpt-4.1\nmessages:\n  - role: user\n    content: \"hello\"\ntestData:\n  - {}\n\
         evaluators:\n  - name: impossible\n    string: {contains: \"not in any answer\"}\n",
    )
    .unwrap();
    path
}

#[test]
fn every_documented_exit_code_is_produced_and_local_file_problems_exit_2() {
    let scratch = TempDir::new("exit-codes");
    let dir = scratch.path();
    let data = dir.join("state");
    let s = |p: &Path| p.display().to_string();
    let quickstart = s(&quickstart());

    // 0: success.
    assert_eq!(code(&gm(&data, &["models", "list"], &[])), 0);
    // 1: an evaluation ran and a test failed.
    assert_eq!(code(&gm(&data, &["eval", &s(&failing_suite(dir))], &[])), 1);

    // 2: every usage or local file problem, never 3.
    let malformed_tasks = dir.join("tasks");
    std::fs::create_dir_all(malformed_tasks.join("broken")).unwrap();
    std::fs::write(malformed_tasks.join("broken/task.yaml"), "name: [unclosed\n").unwrap();
    std::fs::write(malformed_tasks.join("broken/data.jsonl"), "{}\n").unwrap();
    let a_file = dir.join("a-file");
    std::fs::write(&a_file, "not a folder").unwrap();
    let missing = s(&dir.join("missing.jsonl"));
    let nowhere = s(&dir.join("no/such/folder/report.html"));
    let local_problems: Vec<Vec<String>> = vec![
        vec!["--bogus-flag".into()],
        vec!["score".into(), "--input".into(), missing.clone()],
        vec!["score".into(), "--input".into(), quickstart.clone()],
        vec!["eval".into(), s(&dir.join("missing.prompt.yml"))],
        vec!["eval".into(), "--jsonl".into(), nowhere.clone(), quickstart.clone()],
        vec!["eval".into(), "--html".into(), nowhere.clone(), quickstart.clone()],
        vec!["eval".into(), "--prices".into(), missing.clone(), quickstart.clone()],
        vec![
            "--limits-config".into(),
            missing.clone(),
            "--provider".into(),
            "openai-compatible".into(),
            "--base-url".into(),
            "http://127.0.0.1:9/v1".into(),
            "run".into(),
            "m".into(),
            "hi".into(),
        ],
        vec!["bench".into(), "--tasks-dir".into(), s(&malformed_tasks), "--list-tasks".into()],
        vec![
            "bench".into(),
            "--tasks-dir".into(),
            s(&dir.join("no-tasks")),
            "--models".into(),
            "m".into(),
            "--tasks".into(),
            "broken".into(),
        ],
        vec!["bench".into(), "--models".into(), "openai/gpt-4.1".into(), "--tasks".into(), "no_such_task".into()],
        vec!["runs".into(), "show".into(), "99".into()],
        vec!["--data-dir".into(), s(&a_file), "eval".into(), quickstart.clone()],
        vec!["--provider".into(), "openai".into(), "run".into(), "gpt-4o".into(), "hi".into()],
    ];
    for args in &local_problems {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = gm(&data, &args, &[]);
        assert_eq!(code(&out), 2, "gm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }

    // 3: the provider failed (here, a retired service).
    let retired = Background::start(EmulatorConfig { retired: true, ..EmulatorConfig::default() });
    let url = retired.url();
    let out = gm(
        &data,
        &["--provider", "github", "--base-url", &url, "run", "openai/gpt-4.1", "hi"],
        &[("GITHUB_TOKEN", "ghp_x")],
    );
    assert_eq!(code(&out), 3, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_interrupted_run_exits_130_and_says_how_to_resume() {
    let scratch = TempDir::new("exit-interrupted");
    let emu = Background::start(EmulatorConfig { latency: Duration::from_millis(1500), ..EmulatorConfig::default() });
    let v1 = emu.openai_url();
    let quickstart = quickstart().display().to_string();
    let args = ["--provider", "openai-compatible", "--base-url", &v1, "eval", "--concurrency", "1", &quickstart];
    let child = gm_command(&scratch.path().join("state"), &args, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once a request reached the provider, the run is under way and Ctrl-C is handled.
    let started = Instant::now();
    while emu.stats().total == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "gm sent nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 130, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
}

#[test]
fn reading_and_clearing_commands_leave_a_missing_data_folder_missing() {
    let scratch = TempDir::new("read-only");
    let data = scratch.path().join("not/there/yet");
    let export = scratch.path().join("export.jsonl").display().to_string();
    for (args, expected) in [
        (&["cache", "stats"][..], 0),
        (&["cache", "stats", "--json"], 0),
        (&["limits", "status"], 0),
        (&["runs", "list"], 0),
        (&["runs", "show", "1"], 2),
        (&["runs", "compare", "1", "2"], 2),
        (&["auth", "status"], 0),
        (&["models", "list"], 0),
        (&["models", "view", "openai/gpt-4.1"], 0),
        (&["bench", "--list-tasks"], 0),
        (&["cache", "export", &export], 0),
        // Clearing what is not there reads as clearing nothing.
        (&["cache", "clear"], 0),
        (&["limits", "reset"], 0),
        (&["limits", "reset", "openai:gpt-4.1"], 2),
    ] {
        let out = gm(&data, args, &[]);
        assert_eq!(code(&out), expected, "gm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        assert!(!scratch.path().join("not").exists(), "gm {} created {}", args.join(" "), data.display());
    }
    // With a provider that has limits and a credential, the catalog still opens no state.
    let emu = Background::start(EmulatorConfig::default());
    let out = gm(
        &data,
        &["--provider", "openai", "--base-url", &emu.openai_url(), "models", "list"],
        &[("OPENAI_API_KEY", "sk-x")],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!scratch.path().join("not").exists(), "gm models list created {}", data.display());
}
