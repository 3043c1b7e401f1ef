//! The project file and its layers (`gm config show`), `gm init`, and recorded answers (`--record`,
//! `--replay`, `--record-missing`, `gm cache export | import`), end to end.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gm_emulator::EmulatorConfig;
use gm_testkit::cli::{code, gm_command, text};
use gm_testkit::emulator::Background;
use gm_testkit::{CountingProxy, TempDir};

/// A `gm` command in `dir` whose environment holds only what the test gives (see [`gm_command`]), and a home
/// of its own where gm looks for the user file (`XDG_CONFIG_HOME` unset), so no user file but the test's.
fn gm(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = gm_command(env!("CARGO_BIN_EXE_gm"));
    cmd.current_dir(dir).args(args).env_remove("XDG_CONFIG_HOME");
    cmd.env("HOME", dir.join("home")).env("GM_DATA_DIR", dir.join("data")).envs(env.iter().copied());
    cmd.output().unwrap()
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// `gm config show --json`: each setting's value and origin kind.
fn shown(out: &Output) -> BTreeMap<String, (Option<String>, String)> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let value = s["value"].as_str().map(str::to_string);
            (s["key"].as_str().unwrap().to_string(), (value, s["origin"]["kind"].as_str().unwrap().to_string()))
        })
        .collect()
}

#[test]
fn each_setting_comes_from_the_highest_layer_that_gives_it() {
    let dir = TempDir::new("project-layers");
    let root = dir.path();
    let xdg = root.join("xdg");
    write(
        &xdg.join("gm/config.toml"),
        r#"provider = "openai"
base_url = "http://user.example/v1"
org = "user-org"
api_key_env = "USER_KEY"
data_dir = "user-data"
redis_url = "redis://127.0.0.1:6399/"
max_wait = "1s"
suites_dir = "user-suites"
tasks_dir = "user-tasks"
prices = "user-prices.toml"
[limits]
spec = "1/1s"
file = "user-limits.toml"
plan = "free"
margin = "1ms"
default = "1/1m"
[cache]
enabled = true
ttl = "1h"
[aliases]
a = "user-a"
b = "user-b"
"#,
    );
    write(
        &root.join("gm.toml"),
        r#"base_url = "http://project.example/v1"
org = "project-org"
api_key_env = "PROJECT_KEY"
data_dir = "project-data"
max_wait = "2s"
suites_dir = "evals"
[limits]
spec = "2/1s"
plan = "pro"
[cache]
ttl = "2h"
[aliases]
b = "project-b"
"#,
    );
    // Found from a folder below the project file's.
    let below = root.join("deep/down");
    std::fs::create_dir_all(&below).unwrap();
    let env = [
        ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
        ("GM_BASE_URL", "http://env.example/v1"),
        ("GM_API_KEY_ENV", "ENV_KEY"),
        ("GM_DATA_DIR", "/env-data"),
        ("GM_LIMITS", "3/1s"),
    ];
    let flags = [
        "--base-url",
        "http://flag.example/v1",
        "--data-dir",
        "/flag-data",
        "--limits",
        "4/1s",
        "--max-wait",
        "4s",
        "--no-cache",
        "config",
        "show",
        "--json",
    ];
    let s = shown(&gm(&below, &flags, &env));
    let is = |key: &str, value: &str, origin: &str| {
        assert_eq!(s[key], (Some(value.to_string()), origin.to_string()), "{key}");
    };
    let user = |p: &str| xdg.join("gm").join(p).display().to_string();
    let project = |p: &str| root.join(p).display().to_string();
    is("provider", "openai", "user_file");
    is("base_url", "http://flag.example/v1", "flag");
    is("org", "project-org", "project_file");
    is("api_key_env", "ENV_KEY", "env");
    is("data_dir", "/flag-data", "flag");
    is("redis_url", "redis://127.0.0.1:6399/", "user_file");
    is("max_wait", "4s", "flag");
    is("suites_dir", &project("evals"), "project_file");
    is("tasks_dir", &user("user-tasks"), "user_file");
    is("prices", &user("user-prices.toml"), "user_file");
    is("limits.spec", "4/1s", "flag");
    is("limits.file", &user("user-limits.toml"), "user_file");
    is("limits.plan", "pro", "project_file");
    is("limits.margin", "1ms", "user_file");
    is("limits.default", "1/1m", "user_file");
    is("cache.enabled", "false", "flag");
    is("cache.ttl", "2h", "project_file");
    is("aliases.a", "user-a", "user_file");
    is("aliases.b", "project-b", "project_file");
    assert_eq!(s["limits.providers"], (None, "default".into()));

    // Without flags, the environment wins; without the environment, the project file; with neither file, the
    // defaults.
    let s = shown(&gm(&below, &["config", "show", "--json"], &env));
    assert_eq!(s["base_url"], (Some("http://env.example/v1".into()), "env".into()));
    assert_eq!(s["limits.spec"], (Some("3/1s".into()), "env".into()));
    assert_eq!(s["data_dir"], (Some("/env-data".into()), "env".into()));
    let s = shown(&gm(&below, &["config", "show", "--json"], &[env[0], ("GM_DATA_DIR", "")]));
    assert_eq!(s["base_url"], (Some("http://project.example/v1".into()), "project_file".into()));
    assert_eq!(s["data_dir"], (Some(project("project-data")), "project_file".into()));
    let elsewhere = TempDir::new("project-none");
    let s = shown(&gm(elsewhere.path(), &["config", "show", "--json"], &[("GM_DATA_DIR", "")]));
    assert_eq!(s["provider"], (Some("demo".into()), "default".into()));
    assert_eq!(s["max_wait"], (Some("2m".into()), "default".into()));
    assert_eq!(s["cache.ttl"], (Some("7d".into()), "default".into()));
    let home_data = elsewhere.path().join("home/.local/share/gm").display().to_string();
    assert_eq!(s["data_dir"], (Some(home_data), "default".into()));

    // The provider: flag over environment over file.
    let s = shown(&gm(&below, &["config", "show", "--json"], &[("GM_PROVIDER", "demo")]));
    assert_eq!(s["provider"], (Some("demo".into()), "env".into()));
    let s = shown(&gm(&below, &["--provider", "azure", "config", "show", "--json"], &[("GM_PROVIDER", "demo")]));
    assert_eq!(s["provider"], (Some("azure".into()), "flag".into()));

    // The user file under $HOME when XDG_CONFIG_HOME is unset; --config names the project file.
    let home = elsewhere.path().join("home/.config/gm/config.toml");
    write(&home, "org = \"home-org\"\n");
    let s = shown(&gm(elsewhere.path(), &["config", "show", "--json"], &[]));
    assert_eq!(s["org"], (Some("home-org".into()), "user_file".into()));
    let missing = gm(elsewhere.path(), &["--config", "nowhere.toml", "config", "show"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("could not read the settings file nowhere.toml"),
        "{}",
        text(&missing.stderr)
    );
    let named = elsewhere.path().join("ci.toml");
    write(&named, "org = \"named-org\"\n");
    let s = shown(&gm(elsewhere.path(), &["--config", named.to_str().unwrap(), "config", "show", "--json"], &[]));
    assert_eq!(s["org"], (Some("named-org".into()), "project_file".into()));
}

#[test]
fn an_unknown_key_names_its_file_line_and_the_closest_known_key() {
    let dir = TempDir::new("project-unknown");
    write(&dir.path().join("gm.toml"), "provider = \"demo\"\n\n[cache]\nenabled = true\ntll = \"1d\"\n");
    for args in [&["config", "show"][..], &["eval"], &["runs", "list"]] {
        let out = gm(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        let file = dir.path().join("gm.toml").display().to_string();
        assert!(err.contains(&format!("{file}:5:1: unknown key `cache.tll` (did you mean `cache.ttl`?)")), "{err}");
    }
    write(&dir.path().join("gm.toml"), "providr = \"demo\"\n");
    let err = text(&gm(dir.path(), &["config", "show"], &[]).stderr);
    assert!(err.contains("gm.toml:1:1: unknown key `providr` (did you mean `provider`?)"), "{err}");
    write(&dir.path().join("gm.toml"), "provider = \"nope\"\n");
    let out = gm(dir.path(), &["config", "show"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("gm.toml:1:12: "), "{}", text(&out.stderr));
    let out = gm(dir.path(), &["config", "show"], &[("GM_PROVIDER", "nope")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("GM_PROVIDER: "), "{}", text(&out.stderr));
}

#[test]
fn config_show_redacts_every_secret() {
    let dir = TempDir::new("project-secrets");
    write(
        &dir.path().join("gm.toml"),
        "provider = \"openai-compatible\"\nbase_url = \"http://bob:url-secret-1@127.0.0.1:9/v1\"\n\
         redis_url = \"redis://:redis-secret-2@127.0.0.1:6399/\"\napi_key_env = \"TEAM_KEY\"\n",
    );
    let env = [("TEAM_KEY", "sk-team-secret-3-abcdefgh")];
    for args in [&["config", "show"][..], &["config", "show", "--json"]] {
        let out = gm(dir.path(), args, &env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        for secret in ["url-secret-1", "redis-secret-2", "team-secret-3"] {
            assert!(!all.contains(secret), "{secret} shown: {all}");
        }
        assert!(all.contains("sk-***") && all.contains("TEAM_KEY"), "{all}");
        assert!(all.contains("http://bob:***@127.0.0.1:9/v1"), "{all}");
    }
}

/// The suite the recorded-answers tests run: three cases, each with a model and a judge answer.
const SUITE: &str = r#"name: Capitals
description: Names the capital
model: openai/gpt-4.1-mini
messages:
  - role: user
    content: "Name the capital of {{country}}."
testData:
  - {country: France, expected: Paris}
  - {country: Japan, expected: Tokyo}
  - {country: Peru, expected: Lima}
evaluators:
  - name: names the country
    string: {contains: "{{country}}"}
  - name: similar
    uses: github/similarity
"#;

/// A project using the emulator through a proxy that counts connections.
fn recorded_project(label: &str, proxy: &CountingProxy) -> TempDir {
    let dir = TempDir::new(label);
    let toml = format!("provider = \"openai-compatible\"\nbase_url = \"{}\"\n", proxy.openai_url());
    write(&dir.path().join("gm.toml"), &toml);
    write(&dir.path().join("capitals.prompt.yml"), SUITE);
    dir
}

/// Runs gm with a state folder of its own (a fresh machine), and a key that must not reach any file.
fn fresh(dir: &Path, label: &str, args: &[&str]) -> Output {
    let data = dir.join(label);
    let mut all = vec!["--data-dir", data.to_str().unwrap()];
    all.extend_from_slice(args);
    gm(dir, &all, &[("GM_API_KEY", "sk-never-in-a-recording-0123")])
}

#[test]
fn a_suite_recorded_then_replayed_prints_the_same_json_and_connects_nowhere() {
    let emu = Background::start(EmulatorConfig::default());
    let proxy = CountingProxy::start(emu.addr());
    let dir = recorded_project("record-suite", &proxy);
    let p = dir.path();
    let judge = ["--judge-model", "openai/gpt-4.1-mini"];
    let eval = |label: &str, extra: &[&str]| {
        let mut args = vec!["eval", "--json", "capitals.prompt.yml"];
        args.extend_from_slice(&judge);
        args.extend_from_slice(extra);
        fresh(p, label, &args)
    };
    let recorded = eval("a", &["--record", "answers.jsonl"]);
    assert!(matches!(code(&recorded), 0 | 1), "{}", text(&recorded.stderr));
    assert_eq!(emu.stats().total, 6, "3 model answers and 3 judge answers");
    let sent = proxy.connections();
    assert!(sent > 0);
    let file = std::fs::read_to_string(p.join("answers.jsonl")).unwrap();
    assert_eq!(file.lines().count(), 6, "{file}");
    assert!(!file.contains("sk-never-in-a-recording"), "{file}");
    let v: serde_json::Value = serde_json::from_slice(&recorded.stdout).unwrap();
    assert_eq!(v["gm"]["timing"], "recorded");
    assert_eq!(v["gm"]["wall_ms"], 0.0);

    // Replayed on another machine: the same JSON, byte for byte, the same exit code, and no connection.
    let replayed = eval("b", &["--replay", "answers.jsonl"]);
    assert_eq!(code(&replayed), code(&recorded), "{}", text(&replayed.stderr));
    assert_eq!(text(&replayed.stdout), text(&recorded.stdout));
    assert_eq!(proxy.connections(), sent, "a replay connects nowhere");

    // A prompt changed without recording again: exit 3, naming the case and the request, no connection.
    let changed = SUITE.replace("Name the capital of", "What is the capital of");
    write(&p.join("changed.prompt.yml"), &changed);
    let out = fresh(p, "c", &["eval", "--json", "changed.prompt.yml", "--replay", "answers.jsonl", judge[0], judge[1]]);
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("test case 1 failed") && err.contains("holds no answer for request"), "{err}");
    assert!(err.contains("What is the capital of France."), "{err}");
    assert_eq!(proxy.connections(), sent, "a failed replay connects nowhere");

    // One case changed: the others replay, and the failure points at the recording, not at --resume.
    write(
        &p.join("peru.prompt.yml"),
        &SUITE.replace("{country: Peru, expected: Lima}", "{country: Chile, expected: Santiago}"),
    );
    let args = ["eval", "peru.prompt.yml", "--concurrency", "1", "--replay", "answers.jsonl", judge[0], judge[1]];
    let out = fresh(p, "e", &args);
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("test case 3 failed") && err.contains("--record-missing"), "{err}");
    assert!(!err.contains("--resume"), "{err}");

    // --record-missing sends only what the file lacks: here, the first answer of the file.
    let lines: Vec<&str> = file.lines().collect();
    std::fs::write(p.join("answers.jsonl"), lines[1..].join("\n") + "\n").unwrap();
    let before = emu.stats().total;
    let filled = eval("d", &["--replay", "answers.jsonl", "--record-missing"]);
    assert_eq!(code(&filled), code(&recorded), "{}", text(&filled.stderr));
    assert_eq!(emu.stats().total, before + 1, "one request sent");
    let refilled = std::fs::read_to_string(p.join("answers.jsonl")).unwrap();
    assert_eq!(refilled.lines().count(), 6);
    assert_eq!(refilled.lines().skip(1).collect::<Vec<_>>(), lines[1..], "the other answers are kept as they were");
}

#[test]
fn a_bench_recorded_then_replayed_prints_the_same_json_and_connects_nowhere() {
    let emu = Background::start(EmulatorConfig::default());
    let proxy = CountingProxy::start(emu.addr());
    let dir = recorded_project("record-bench", &proxy);
    let p = dir.path();
    let bench = |label: &str, extra: &[&str]| {
        let mut args =
            vec!["bench", "--json", "--models", "openai/gpt-4.1-mini,openai/gpt-4o", "--tasks", "capitals.prompt.yml"];
        args.extend_from_slice(extra);
        fresh(p, label, &args)
    };
    let recorded = bench("a", &["--record", "bench.jsonl"]);
    assert_eq!(code(&recorded), 0, "{}", text(&recorded.stderr));
    let sent = proxy.connections();
    assert!(sent > 0);
    let replayed = bench("b", &["--replay", "bench.jsonl"]);
    assert_eq!(code(&replayed), 0, "{}", text(&replayed.stderr));
    assert_eq!(text(&replayed.stdout), text(&recorded.stdout));
    assert_eq!(proxy.connections(), sent);
    // A model the file holds no answer for.
    let out = fresh(
        p,
        "c",
        &["bench", "--json", "--models", "openai/o1", "--tasks", "capitals.prompt.yml", "--replay", "bench.jsonl"],
    );
    assert_eq!(code(&out), 3, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("openai/o1"), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("--resume"), "{}", text(&out.stderr));
    assert_eq!(proxy.connections(), sent);
}

#[test]
fn a_project_naming_its_key_variable_replays_in_ci_without_it() {
    let emu = Background::start(EmulatorConfig::default());
    let proxy = CountingProxy::start(emu.addr());
    let dir = TempDir::new("record-keyed");
    let p = dir.path();
    let toml = format!("provider = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"TEAM_KEY\"\n", proxy.openai_url());
    write(&p.join("gm.toml"), &toml);
    write(&p.join("capitals.prompt.yml"), SUITE);
    let eval = ["eval", "--json", "capitals.prompt.yml", "--judge-model", "openai/gpt-4.1-mini"];
    let with = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = eval.to_vec();
        args.extend_from_slice(extra);
        gm(p, &args, env)
    };
    let recorded = with(&["--record", "answers.jsonl"], &[("TEAM_KEY", "sk-team-key-never-written-0123")]);
    assert!(matches!(code(&recorded), 0 | 1), "{}", text(&recorded.stderr));
    assert!(!std::fs::read_to_string(p.join("answers.jsonl")).unwrap().contains("sk-team-key"));
    let sent = proxy.connections();

    // CI: no key, no network; the same JSON.
    let replayed = with(&["--replay", "answers.jsonl"], &[]);
    assert_eq!(code(&replayed), code(&recorded), "{}", text(&replayed.stderr));
    assert_eq!(text(&replayed.stdout), text(&recorded.stdout));
    assert_eq!(proxy.connections(), sent);

    // Without the replay, the missing key is asked for by the variable gm.toml names.
    let live = with(&[], &[]);
    assert_eq!(code(&live), 2, "{}", text(&live.stderr));
    assert!(text(&live.stderr).contains("set TEAM_KEY (named by api_key_env)"), "{}", text(&live.stderr));
    let status = gm(p, &["auth", "status"], &[]);
    assert!(text(&status.stdout).contains("none found; set TEAM_KEY"), "{}", text(&status.stdout));
    assert_eq!(proxy.connections(), sent);
}

#[test]
fn a_cache_exported_on_one_machine_answers_on_another() {
    let emu = Background::start(EmulatorConfig::default());
    let proxy = CountingProxy::start(emu.addr());
    let dir = recorded_project("cache-export", &proxy);
    let p = dir.path();
    let first = fresh(p, "a", &["eval", "--json", "capitals.prompt.yml"]);
    assert_eq!(code(&first), 0, "{}", text(&first.stderr));
    let sent = emu.stats().total;
    let export = fresh(p, "a", &["cache", "export", "cache.jsonl"]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    // Three model answers and three judge answers.
    assert!(text(&export.stderr).contains("wrote 6 cached answers"), "{}", text(&export.stderr));
    let exported = std::fs::read_to_string(p.join("cache.jsonl")).unwrap();
    assert_eq!(exported.lines().count(), 6);
    assert!(!exported.contains("sk-never-in-a-recording"));

    let import = fresh(p, "b", &["cache", "import", "cache.jsonl"]);
    assert!(import.status.success(), "{}", text(&import.stderr));
    let second = fresh(p, "b", &["eval", "--json", "capitals.prompt.yml"]);
    assert_eq!(code(&second), 0, "{}", text(&second.stderr));
    assert_eq!(emu.stats().total, sent, "the imported cache answered every case");
    let v: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(v["gm"]["cache_hits"], 3);
    // An exported cache replays too, each answer as a cached one.
    let replayed = fresh(p, "c", &["eval", "--json", "capitals.prompt.yml", "--replay", "cache.jsonl"]);
    assert_eq!(code(&replayed), 0, "{}", text(&replayed.stderr));
    // A file that is not a recording is refused, naming its line.
    write(&p.join("bad.jsonl"), "{\"key\": \"x\"}\n");
    let bad = fresh(p, "b", &["cache", "import", "bad.jsonl"]);
    assert_eq!(code(&bad), 2);
    assert!(text(&bad.stderr).contains("bad.jsonl:1: "), "{}", text(&bad.stderr));
}

/// A loopback port nothing listens on (free when the test asked for it).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port().to_string()
}

/// The port the emulator listens on.
fn port(emu: &Background) -> String {
    emu.url().rsplit(':').next().unwrap().to_string()
}

#[test]
fn init_without_a_terminal_finds_the_local_server_and_its_gm_toml_works_at_once() {
    let emu = Background::start(EmulatorConfig::default());
    let dir = TempDir::new("init-yes");
    let p = dir.path();
    let ports = format!("{},{}", closed_port(), port(&emu));
    let env = [("OPENAI_API_KEY", "sk-init-secret-abcdef"), ("GITHUB_TOKEN", "ghp_initsecret")];
    let out = gm(p, &["init", "--yes", "--model", "openai/gpt-4.1-mini", "--probe-ports", &ports], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("GitHub Models was retired on 2026-07-30"), "{err}");
    assert!(err.contains(&format!("OpenAI-compatible server on port {}", port(&emu))), "{err}");
    assert!(err.contains("OpenAI (OPENAI_API_KEY is set)") && err.contains("retired, so it cannot answer"), "{err}");
    assert!(text(&out.stdout).contains("Next: gm eval"), "{}", text(&out.stdout));
    let toml = std::fs::read_to_string(p.join("gm.toml")).unwrap();
    assert!(toml.contains(&format!("base_url = \"{}\"", emu.openai_url())), "{toml}");
    assert!(!toml.contains("sk-init-secret") && !toml.contains("ghp_initsecret"), "{toml}");
    let catalog_calls = emu.stats().total;
    assert_eq!(catalog_calls, 2, "one probe and one check");

    // The written project runs its starter suite at once.
    let eval = gm(p, &["eval"], &[]);
    assert_eq!(eval.status.code(), Some(0), "{}{}", text(&eval.stdout), text(&eval.stderr));
    assert!(emu.stats().total > catalog_calls);

    // It refuses to overwrite, unless forced.
    let again = gm(p, &["init", "--yes", "--probe-ports", &ports], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("gm.toml exists; pass --force"), "{}", text(&again.stderr));
    let forced = gm(p, &["--provider", "demo", "init", "--yes", "--force"], &[]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(std::fs::read_to_string(p.join("gm.toml")).unwrap().contains("provider = \"demo\""));

    // With nothing found and nothing given, it says what to pass.
    let empty = TempDir::new("init-nothing");
    let out = gm(empty.path(), &["init", "--yes", "--probe-ports", &closed_port()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("pass --provider"), "{}", text(&out.stderr));
    assert!(!empty.path().join("gm.toml").exists());
}

#[test]
fn init_on_a_terminal_asks_and_its_gm_toml_works_at_once() {
    if !gm_testkit::skip::program("script", "apt-get install bsdutils") {
        return;
    }
    let emu = Background::start(EmulatorConfig::default());
    let dir = TempDir::new("init-tty");
    let p = dir.path();
    let gm_bin = env!("CARGO_BIN_EXE_gm");
    let line = format!("{gm_bin} init --probe-ports {}", port(&emu));
    // `script` gives gm a pseudo-terminal; what the test writes reaches gm as typed keys.
    let mut cmd = Command::new("script");
    cmd.current_dir(p).args(["-qfec", &line, "/dev/null"]).env_clear();
    cmd.env("PATH", "/usr/bin:/bin").env("HOME", p.join("home")).env("TERM", "xterm");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut keys = child.stdin.take().unwrap();
    let screen = Screen::read(child.stdout.take().unwrap());
    use std::io::Write;
    screen.wait_for("Which provider should gm use?");
    keys.write_all(b"\r").unwrap();
    screen.wait_for("Which model should the starter suite evaluate?");
    // The emulator's models by name: the fourth is openai/gpt-4.1-mini.
    keys.write_all(b"\x1b[B\x1b[B\x1b[B\r").unwrap();
    screen.wait_for("Next: gm eval");
    drop(keys);
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", screen.text());
    let toml = std::fs::read_to_string(p.join("gm.toml")).unwrap();
    assert!(toml.contains(&emu.openai_url()), "{toml}");
    let suite = std::fs::read_to_string(p.join("evals/starter.prompt.yml")).unwrap();
    assert!(suite.contains("model: \"openai/gpt-4.1-mini\""), "{suite}");
    let eval = gm(p, &["eval"], &[]);
    assert_eq!(eval.status.code(), Some(0), "{}{}", text(&eval.stdout), text(&eval.stderr));
}

/// What a program under a pseudo-terminal has shown so far, read on a thread of its own.
struct Screen {
    shown: std::sync::Arc<(std::sync::Mutex<String>, std::sync::Condvar)>,
}

impl Screen {
    fn read(mut from: impl std::io::Read + Send + 'static) -> Self {
        let shown = std::sync::Arc::new((std::sync::Mutex::new(String::new()), std::sync::Condvar::new()));
        let writer = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                writer.0.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                writer.1.notify_all();
            }
            // The end of the output wakes a waiter for good.
            writer.0.lock().unwrap().push('\u{4}');
            writer.1.notify_all();
        });
        Self { shown }
    }

    /// Waits until `what` has been shown; fails if the program ends first.
    fn wait_for(&self, what: &str) {
        let (lock, cond) = &*self.shown;
        let mut shown = lock.lock().unwrap();
        while !shown.contains(what) {
            assert!(!shown.ends_with('\u{4}'), "the program ended before showing {what:?}:\n{shown}");
            shown = cond.wait(shown).unwrap();
        }
    }

    fn text(&self) -> String {
        self.shown.0.lock().unwrap().clone()
    }
}

#[test]
fn an_alias_names_the_model_wherever_a_model_is_given() {
    let emu = Background::start(EmulatorConfig::default());
    let dir = TempDir::new("project-aliases");
    let p = dir.path();
    let toml = format!(
        "provider = \"openai-compatible\"\nbase_url = \"{}\"\n[aliases]\n\"openai/gpt-4o-mini\" = \"openai/gpt-4.1-mini\"\n\
         small = \"openai/gpt-4.1-mini\"\njudge = \"openai/gpt-4o\"\n",
        emu.openai_url()
    );
    write(&p.join("gm.toml"), &toml);
    // A suite written for GitHub Models' gpt-4o-mini, which the emulator does not serve.
    write(&p.join("retired.prompt.yml"), &SUITE.replace("openai/gpt-4.1-mini", "openai/gpt-4o-mini"));
    let by_model = || emu.stats().answered_by_model;

    // The prompt file's model, and the judge model of the built-in judge.
    let out = gm(p, &["eval", "--json", "--judge-model", "judge", "retired.prompt.yml"], &[]);
    assert!(matches!(code(&out), 0 | 1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "openai/gpt-4.1-mini", "the report names the model that answered");
    assert_eq!(by_model().get("openai/gpt-4.1-mini"), Some(&3));
    assert_eq!(by_model().get("openai/gpt-4o"), Some(&3));
    assert_eq!(by_model().get("openai/gpt-4o-mini"), None);

    // --model, gm run and gm bench.
    let out = gm(p, &["eval", "--json", "--model", "small", "--no-cache", "retired.prompt.yml"], &[]);
    assert!(matches!(code(&out), 0 | 1), "{}", text(&out.stderr));
    assert_eq!(by_model().get("openai/gpt-4.1-mini"), Some(&6));
    let out = gm(p, &["run", "small", "hello"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(by_model().get("openai/gpt-4.1-mini"), Some(&7));
    let out = gm(p, &["--no-cache", "bench", "--json", "--models", "small", "--tasks", "retired.prompt.yml"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cells"][0]["model"], "openai/gpt-4.1-mini");
    assert_eq!(by_model().get("openai/gpt-4.1-mini"), Some(&10));
    assert_eq!(by_model().get("small"), None);

    // An alias of an alias is refused: it would resolve in two steps.
    write(&p.join("gm.toml"), &format!("{toml}tiny = \"small\"\n"));
    let out = gm(p, &["config", "show"], &[]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("alias `tiny` names `small`, itself an alias"), "{}", text(&out.stderr));
}
