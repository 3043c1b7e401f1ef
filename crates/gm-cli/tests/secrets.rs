//! No credential is ever printed or stored: fake tokens of each provider's shape go through every command that
//! sends, lists or reports, and appear in none of standard output, standard error at `-vv`, the report files
//! of every format, the state file, or the keys and values of a Redis server, also when a server echoes the
//! token back in an error body.

use std::path::{Path, PathBuf};
use std::process::Output;

use gm_emulator::EmulatorConfig;
use gm_testkit::emulator::{self, Background};
use gm_testkit::{RedisServer, TempDir};

/// A provider, the variable its credential comes from, and a fake token of its shape.
struct Case {
    provider: &'static str,
    env: &'static str,
    token: &'static str,
    /// The base URL's path under the emulator.
    path: &'static str,
}

const CASES: [Case; 5] = [
    // The first goes through every command; the others through those that send.
    Case {
        provider: "openai-compatible",
        env: "GM_API_KEY",
        token: "sk-FAKEcompatKEYforLEAKtests0123456789abcdefgh",
        path: "/v1",
    },
    Case { provider: "github", env: "GITHUB_TOKEN", token: "ghp_FAKEgithubTOKENforLEAKtests0123456789", path: "" },
    Case {
        provider: "github",
        env: "GH_TOKEN",
        token: "github_pat_11FAKEFINEGRAINED0123_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW",
        path: "",
    },
    Case {
        provider: "openai",
        env: "OPENAI_API_KEY",
        token: "sk-proj-FAKEopenAIkeyForLeakTests0123456789abcdefghijklmnopqrstuvwxyzT3BlbkFJ",
        path: "/v1",
    },
    Case {
        provider: "azure",
        env: "AZURE_OPENAI_API_KEY",
        token: "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        path: "/openai/v1",
    },
];

fn gm(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = gm_testkit::cli::gm_command(env!("CARGO_BIN_EXE_gm"));
    // The data folder from the environment: `gm models` and `gm auth` refuse --data-dir, which they do not use.
    cmd.arg("-vv").args(args).env("RUST_LOG", "trace").env("GM_DATA_DIR", data).envs(env.iter().copied());
    cmd.output().unwrap()
}

/// Fails when `haystack` holds the token or a telling piece of it (16 characters from its middle).
fn assert_absent(token: &str, haystack: &[u8], place: &str) {
    let text = String::from_utf8_lossy(haystack);
    let middle = &token[token.len() / 2 - 8..token.len() / 2 + 8];
    assert!(!text.contains(token) && !text.contains(middle), "the token appears in {place}:\n{text}");
}

fn suite(dir: &Path) -> PathBuf {
    let path = dir.join("leak.prompt.yml");
    std::fs::write(
        &path,
        "name: leak\nmodel: openai/gpt-4.1\nmessages:\n  - role: user\n    content: \"say {{w}}\"\ntestData:\n  - {w: one}\n  \
         - {w: two}\nevaluators:\n  - name: said\n    string: {contains: \"say\"}\n",
    )
    .unwrap();
    path
}

/// Every file under `dir`, read whole (the state file and its write-ahead log included).
fn every_file(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

#[test]
fn no_channel_shows_a_credential_of_any_provider() {
    for (n, case) in CASES.iter().enumerate() {
        let emu = Background::start(EmulatorConfig::default());
        let dir = TempDir::new("secrets");
        let data = dir.join("data");
        let reports = dir.join("reports");
        std::fs::create_dir_all(&reports).unwrap();
        let base = format!("{}{}", emu.url(), case.path);
        let env = [(case.env, case.token)];
        let common = ["--provider", case.provider, "--base-url", &base];
        let file = suite(&dir);
        let file = file.to_str().unwrap();
        let r = |name: &str| reports.join(name).to_str().unwrap().to_string();
        let (junit, markdown, html, jsonl, bench_html) =
            (r("junit.xml"), r("report.md"), r("report.html"), r("cases.jsonl"), r("bench.html"));
        let model = "openai/gpt-4.1";
        let mut runs: Vec<Vec<&str>> = vec![
            vec!["run", "--no-stream", model, "hello"],
            vec!["run", model, "hello streamed"],
            vec![
                "eval",
                "--json",
                "--junit",
                &junit,
                "--markdown",
                &markdown,
                "--html",
                &html,
                "--jsonl",
                &jsonl,
                file,
            ],
            vec!["eval", file],
            vec!["bench", "--models", model, "--tasks", file, "--json", "--html", &bench_html],
            vec!["models", "list", "--json"],
            vec!["auth", "status"],
        ];
        // The reports do not depend on the provider: every command for the first, the sending ones for the rest.
        if n > 0 {
            runs.truncate(3);
        }
        let sent: Vec<Output> = runs.drain(..).map(|a| gm(&data, &[&common[..], &a[..]].concat(), &env)).collect();
        // Commands that only read the state.
        let mut read = vec![
            vec!["runs", "list", "--json"],
            vec!["runs", "show", "1", "--json"],
            vec!["limits", "status", "--json"],
            vec!["cache", "stats", "--json"],
        ];
        if n > 0 {
            read.clear();
        }
        let read: Vec<Output> = read.iter().map(|a| gm(&data, a, &env)).collect();
        // A server that echoes the credential back in its error body.
        let echo = format!(
            r#"{{"error":{{"code":"invalid_api_key","message":"Incorrect API key provided: {}."}}}}"#,
            case.token
        );
        emu.inject(emulator::raw(401, "application/json", &echo, 2));
        let echoed = [
            gm(&data, &[&common[..], &["run", "--no-stream", model, "echo"]].concat(), &env),
            gm(&data, &[&common[..], &["run", model, "echo streamed"]].concat(), &env),
        ];
        for out in &echoed {
            assert!(!out.status.success());
            assert!(String::from_utf8_lossy(&out.stderr).contains("Incorrect API key provided"), "{out:?}");
        }
        for (i, out) in sent.iter().chain(&read).chain(&echoed).enumerate() {
            assert_absent(case.token, &out.stdout, &format!("{} command {i}'s standard output", case.provider));
            assert_absent(case.token, &out.stderr, &format!("{} command {i}'s standard error", case.provider));
        }
        assert!(sent.iter().all(|o| o.status.success()), "{:?}", sent.iter().map(|o| o.status).collect::<Vec<_>>());
        let files = every_file(&dir);
        assert!(files.iter().any(|(p, _)| p.ends_with("gm.sqlite")), "{files:?}");
        assert!(files.iter().filter(|(p, _)| p.starts_with(&reports)).count() >= 4);
        for (path, bytes) in &files {
            assert_absent(case.token, bytes, &path.display().to_string());
        }
    }
}

#[test]
fn redis_holds_no_credential() {
    let Some(redis) = RedisServer::start() else { return };
    let emu = Background::start(EmulatorConfig::default());
    let dir = TempDir::new("secrets-redis");
    let case = &CASES[1];
    let env = [(case.env, case.token)];
    let url = redis.url();
    let common = ["--provider", case.provider, "--base-url", &emu.url(), "--redis", &url];
    for args in [
        ["run", "--no-stream", "--cache", "openai/gpt-4.1", "cache me"],
        ["run", "--cache", "--no-stream", "openai/gpt-4.1", "again"],
    ] {
        let out = gm(&dir, &[&common[..], &args[..]].concat(), &env);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_absent(case.token, &out.stderr, "standard error");
    }
    let dump = redis_dump(redis.port());
    assert!(dump.contains("gm:limits"), "the limiter counted in Redis: {dump}");
    assert_absent(case.token, dump.as_bytes(), "Redis");
}

/// Every key of the Redis server with its value, as text, through its plain protocol.
fn redis_dump(port: u16) -> String {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut ask = |args: &[&str]| -> Vec<String> {
        let mut cmd = format!("*{}\r\n", args.len());
        for a in args {
            cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        writer.write_all(cmd.as_bytes()).unwrap();
        read_reply(&mut reader)
    };
    let keys = ask(&["KEYS", "*"]);
    let mut out = String::new();
    for key in keys {
        let kind = ask(&["TYPE", &key]).join("");
        let value = match kind.as_str() {
            "string" => ask(&["GET", &key]),
            "hash" => ask(&["HGETALL", &key]),
            "zset" => ask(&["ZRANGE", &key, "0", "-1", "WITHSCORES"]),
            "list" => ask(&["LRANGE", &key, "0", "-1"]),
            "set" => ask(&["SMEMBERS", &key]),
            _ => vec![],
        };
        out.push_str(&format!("{key} ({kind}): {}\n", value.join(" ")));
    }
    fn read_reply(r: &mut impl BufRead) -> Vec<String> {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let (kind, rest) = line.trim_end().split_at(1);
        match kind {
            "+" | "-" | ":" => vec![rest.to_string()],
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return vec![];
                }
                let mut buf = vec![0; n as usize + 2];
                std::io::Read::read_exact(r, &mut buf).unwrap();
                vec![String::from_utf8_lossy(&buf[..n as usize]).into_owned()]
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                (0..n.max(0)).flat_map(|_| read_reply(r)).collect()
            }
            other => panic!("unexpected reply {other}{rest}"),
        }
    }
    out
}
