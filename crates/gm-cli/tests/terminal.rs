//! `gm` on a terminal, under a pseudo-terminal: progress, line editing and history, colour.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use expectrl::{Eof, Expect, Session};
use gm_emulator::EmulatorConfig;
use gm_testkit::emulator::Background;
use gm_testkit::TempDir;

/// `gm` with `args`, its state in `data`, nothing from the environment (see [`gm_testkit::cli::isolate`]; no
/// `NO_COLOR` either), a colour terminal, and `env` set. Its standard input is the pseudo-terminal's.
fn command(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gm"));
    gm_testkit::cli::isolate(&mut cmd)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("TERM", "xterm-256color")
        .envs(env.iter().copied());
    cmd
}

/// Runs `cmd` on a pseudo-terminal to its end: everything it drew, and its exit code.
fn on_terminal(cmd: Command) -> (String, i32) {
    let mut session = Session::spawn(cmd).expect("a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(60)));
    let drawn = session.expect(Eof).expect("gm ends");
    let text = String::from_utf8_lossy(drawn.as_bytes()).into_owned();
    (text, exit_code(&session))
}

fn exit_code(session: &expectrl::session::OsSession) -> i32 {
    let status = format!("{:?}", session.get_process().wait().expect("gm's exit status"));
    // `Exited(Pid(n), code)`
    let code = status.rsplit(", ").next().and_then(|c| c.trim_end_matches(')').parse().ok());
    code.unwrap_or_else(|| panic!("gm did not exit: {status}"))
}

fn quickstart() -> String {
    gm_testkit::repo("docs/examples/quickstart.prompt.yml").display().to_string()
}

/// `gm bench` of two models on the quickstart suite against `emu`, one case at a time.
fn two_model_bench(emu: &Background) -> Vec<String> {
    let (url, tasks) = (emu.openai_url(), quickstart());
    let args = ["--provider", "openai-compatible", "--base-url", &url, "bench", "--models", "gpt-4o-mini,gpt-4.1"];
    args.iter().chain(&["--tasks", &tasks, "--concurrency", "1"]).map(|a| a.to_string()).collect()
}

#[test]
fn bench_draws_a_bar_for_the_bench_and_each_cell() {
    // Answers that take a while, so the bench runs long enough to be drawn.
    let emu = Background::start(EmulatorConfig { latency: Duration::from_millis(150), ..EmulatorConfig::default() });
    let data = TempDir::new("terminal-bench");
    let args = two_model_bench(&emu);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (drawn, code) = on_terminal(command(data.path(), &args, &[]));
    assert_eq!(code, 0, "{drawn}");
    assert!(drawn.contains("test cases"), "no bar for the whole bench: {drawn}");
    for cell in ["gpt-4o-mini on Quickstart", "gpt-4.1 on Quickstart"] {
        assert!(drawn.contains(cell), "no bar for {cell}: {drawn}");
    }
    assert!(drawn.contains("Best model:"), "{drawn}");

    // Not on a terminal: no bar at all on standard error.
    let out = command(data.path(), &args, &[]).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("test cases") && !stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn interactive_run_recalls_the_last_line_with_up_and_keeps_the_history() {
    let data = TempDir::new("terminal-run");
    let mut session = Session::spawn(command(data.path(), &["--provider", "demo", "run", "openai/gpt-4.1"], &[]))
        .expect("a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session.expect(">>> ").unwrap();
    session.send("What is 6 * 7?\r").unwrap();
    session.expect("42").unwrap();
    session.expect(">>> ").unwrap();
    // Up arrow, then Enter: the same question again, answered again.
    session.send("\u{1b}[A").unwrap();
    session.expect("What is 6 * 7?").unwrap();
    session.send("\r").unwrap();
    session.expect("42").unwrap();
    session.expect(">>> ").unwrap();
    session.send("/bye\r").unwrap();
    session.expect(Eof).unwrap();
    assert_eq!(exit_code(&session), 0);
    let history = std::fs::read_to_string(data.path().join("run_history.txt")).expect("the history file");
    assert!(history.contains("What is 6 * 7?") && history.contains("/bye"), "{history}");
}

#[test]
fn colour_on_a_terminal_and_never_with_no_color_or_a_pipe() {
    let data = TempDir::new("terminal-colour");
    let args = ["--provider", "demo", "eval", &quickstart()];
    let (drawn, code) = on_terminal(command(data.path(), &args, &[]));
    assert_eq!(code, 0, "{drawn}");
    assert!(drawn.contains("\u{1b}[32m✓ PASSED"), "no green pass mark: {drawn}");
    assert!(drawn.contains("\u{1b}[36mnote:"), "no coloured note: {drawn}");

    let (drawn, _) = on_terminal(command(data.path(), &args, &[("NO_COLOR", "1")]));
    assert!(drawn.contains("✓ PASSED") && drawn.contains("note:"), "{drawn}");
    assert!(!drawn.contains("\u{1b}[32m") && !drawn.contains("\u{1b}[36m"), "coloured despite NO_COLOR: {drawn}");

    // An error: red on a terminal, plain in a pipe.
    let missing = ["score", "--input", "missing.jsonl"];
    let (drawn, code) = on_terminal(command(data.path(), &missing, &[]));
    assert_eq!(code, 2);
    assert!(drawn.contains("\u{1b}[31merror:"), "no red error: {drawn}");
    let out = command(data.path(), &args, &[]).stdin(Stdio::null()).output().unwrap();
    let piped = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(piped.contains("✓ PASSED") && !piped.contains('\u{1b}'), "escapes in a pipe: {piped}");
}

#[test]
fn logs_are_coloured_like_the_rest_and_plain_with_no_color() {
    let data = TempDir::new("terminal-log-colour");
    let emu = Background::start(EmulatorConfig::default());
    let v1 = emu.openai_url();
    let args = ["--provider", "openai-compatible", "--base-url", &v1, "run", "gpt-4o-mini", "hi"];
    let (drawn, code) = on_terminal(command(data.path(), &args, &[("GM_LOG", "trace")]));
    assert_eq!(code, 0, "{drawn}");
    assert!(drawn.contains("TRACE") && has_sgr(&drawn), "no coloured log lines: {drawn}");
    let (drawn, code) = on_terminal(command(data.path(), &args, &[("GM_LOG", "trace"), ("NO_COLOR", "1")]));
    assert_eq!(code, 0, "{drawn}");
    assert!(drawn.contains("TRACE") && !has_sgr(&drawn), "coloured despite NO_COLOR: {drawn}");
}

/// Whether `text` holds an SGR escape (`ESC [ digits m`), the kind that colours text.
fn has_sgr(text: &str) -> bool {
    text.split("\u{1b}[").skip(1).any(|rest| {
        let params = rest.find(|c: char| !c.is_ascii_digit() && c != ';').unwrap_or(rest.len());
        rest[params..].starts_with('m')
    })
}

/// What an 80-column terminal shows at the end of `transcript`, a row a line (every row ever written, none
/// scrolled away): enough of a terminal for progress bars (cursor up and down, erasing a line, wrapping).
fn screen(transcript: &str) -> Vec<String> {
    const WIDTH: usize = 80;
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = transcript.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let command = loop {
                    match chars.next() {
                        Some(p) if p.is_ascii_digit() || p == ';' => params.push(p),
                        other => break other,
                    }
                };
                let n = params.parse::<usize>().unwrap_or(1);
                match command {
                    Some('A') => row = row.saturating_sub(n),
                    Some('B') => row += n,
                    Some('K') => rows[row].clear(),
                    _ => {}
                }
            }
            '\r' => col = 0,
            // The program means a new line (the pseudo-terminal passes it on without a carriage return).
            '\n' => (row, col) = (row + 1, 0),
            c if c.is_control() => {}
            c => {
                if col == WIDTH {
                    (row, col) = (row + 1, 0);
                }
                while rows.len() <= row {
                    rows.push(Vec::new());
                }
                let line = &mut rows[row];
                line.resize(line.len().max(col + 1), ' ');
                line[col] = c;
                col += 1;
            }
        }
        while rows.len() <= row {
            rows.push(Vec::new());
        }
    }
    rows.into_iter().map(|r| r.into_iter().collect::<String>().trim_end().to_string()).collect()
}

#[test]
fn a_log_line_during_a_bench_prints_above_its_bars_not_into_them() {
    let emu = Background::start(EmulatorConfig { latency: Duration::from_millis(150), ..EmulatorConfig::default() });
    let data = TempDir::new("terminal-bench-log");
    let args = two_model_bench(&emu);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Retries are logged at info: one 500 once the bars are drawn makes one log line among them.
    let cmd = command(data.path(), &args, &[("GM_LOG", "gm_http=info")]);
    let mut session = Session::spawn(cmd).expect("a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(60)));
    session.expect("test cases").expect("the bars are drawn");
    let started = std::time::Instant::now();
    while emu.stats().total < 3 && started.elapsed() < Duration::from_secs(30) {
        std::thread::yield_now();
    }
    emu.inject(gm_testkit::emulator::fault(gm_emulator::FaultKind::Status { status: 500, retry_after: None }, 1));
    let drawn = session.expect(Eof).expect("gm ends");
    let drawn = String::from_utf8_lossy(drawn.as_bytes()).into_owned();
    assert_eq!(exit_code(&session), 0, "{drawn}");
    assert!(drawn.contains("retrying"), "no retry was logged: {drawn:?}");
    // On the screen, the log line is whole and in the first column: not drawn into a bar, nor over-drawn by one.
    let shown = screen(&drawn);
    let logged: Vec<usize> = (0..shown.len()).filter(|&i| shown[i].contains("retrying")).collect();
    // The line is longer than the terminal is wide, so it goes on in the next row.
    let whole = |i: usize| format!("{}{}", shown[i], shown.get(i + 1).map_or("", String::as_str));
    assert!(
        logged.len() == 1
            && shown[logged[0]].starts_with(|c: char| c.is_ascii_digit())
            && whole(logged[0]).contains("told=false"),
        "{}",
        shown.join("\n")
    );
}
