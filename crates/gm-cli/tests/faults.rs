//! The fault matrix: the `gm` binary against the emulator's injected faults (servers that fail, stall, cut
//! answers short, lie, or send too much; processes killed; a damaged state file), through `gm run`, `gm eval`
//! and `gm bench`. Each scenario checks what a user relies on: the requests sent, the cases recorded (each
//! once: nothing lost, nothing duplicated), the exit code and message, and time and memory within bounds
//! (bounds, never speeds: a run ends within its configured timeout plus slack, a process stays under a memory
//! cap). docs/RELIABILITY.md states the guarantees and the figures; `GM_FAULTS_REPORT=1` prints them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gm_emulator::{EmulatorConfig, FaultKind};
use gm_testkit::emulator::{self, Background};
use gm_testkit::TempDir;

/// What one `gm` process did.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
    /// The largest resident set seen while it ran (VmHWM), in MiB; a lower bound of its peak.
    peak_mib: u64,
}

impl Ran {
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// The address space every `gm` here may use: a process that outgrows it fails its allocation and the
/// scenario with it, so this is a bound on memory, not only a reading.
const MEMORY_CAP_KIB: u64 = 3 << 20;

fn command(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("/bin/sh");
    // `ulimit -v` bounds the process's address space; `exec` keeps its pid the one waited for.
    cmd.arg("-c").arg(format!("ulimit -v {MEMORY_CAP_KIB} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_gm"));
    cmd.arg("--data-dir").arg(data).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // The shell is found by its path, so the PATH gm gets may name nothing.
    gm_testkit::cli::isolate(&mut cmd);
    cmd
}

/// The peak resident set of a running process so far, in KiB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for `child`, reading its peak memory as it runs, and gathers its output.
fn finish(mut child: Child, started: Instant) -> Ran {
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).map(|_| s).unwrap_or_default()
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).map(|_| s).unwrap_or_default()
    });
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = vm_hwm(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    Ran { status, stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap(), took, peak_mib: peak >> 10 }
}

fn gm(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = command(data, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    finish(cmd.spawn().unwrap(), started)
}

/// Prints a scenario's figures for docs/RELIABILITY.md when `GM_FAULTS_REPORT` is set.
fn report(scenario: &str, figures: &str) {
    if std::env::var_os("GM_FAULTS_REPORT").is_some() {
        eprintln!("FAULTS | {scenario} | {figures}");
    }
}

/// The openai-compatible provider at the emulator.
fn at(emu: &Background) -> Vec<String> {
    vec!["--provider".into(), "openai-compatible".into(), "--base-url".into(), emu.openai_url()]
}

fn args<'a>(base: &'a [String], rest: &[&'a str]) -> Vec<&'a str> {
    base.iter().map(String::as_str).chain(rest.iter().copied()).collect()
}

/// A suite of `n` cases whose check every echoed answer passes.
fn suite(dir: &Path, name: &str, n: usize) -> PathBuf {
    let mut yaml = format!(
        "name: {name}\nmodel: openai/gpt-4.1\nmessages:\n  - role: user\n    content: \"case {{{{i}}}} of {name}\"\ntestData:\n"
    );
    for i in 1..=n {
        yaml.push_str(&format!("  - {{i: {i}}}\n"));
    }
    yaml.push_str("evaluators:\n  - name: echoed\n    string: {contains: \"case\"}\n");
    let path = dir.join(format!("{name}.prompt.yml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The recorded cases of every run in the state file: (run id, case index), and SQLite's integrity check.
fn recorded(data: &Path) -> (Vec<(i64, i64)>, String) {
    let conn = rusqlite::Connection::open(data.join("gm.sqlite")).unwrap();
    let cases = conn
        .prepare("SELECT run_id, idx FROM run_cases ORDER BY run_id, idx")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).unwrap();
    (cases, check)
}

/// Every index of 1..=n recorded exactly once for run `run`.
fn each_once(cases: &[(i64, i64)], run: i64, n: i64) {
    let mine: Vec<i64> = cases.iter().filter(|(r, _)| *r == run).map(|(_, i)| *i).collect();
    assert_eq!(mine, (1..=n).collect::<Vec<_>>(), "run {run}: every case recorded exactly once");
}

fn answered(emu: &Background) -> u64 {
    emu.stats().answered_by_model.values().sum()
}

#[test]
fn faults_a_200_with_an_error_body_is_an_error_and_never_cached() {
    let emu = Background::with_faults(EmulatorConfig::default(), [emulator::error_as_200("model overloaded", 1)]);
    let data = TempDir::new("faults-200-error");
    let base = at(&emu);
    let first = gm(&data, &args(&base, &["run", "--no-stream", "openai/gpt-4.1", "hello"]), &[]);
    assert_eq!(first.code(), 3, "{}", first.stderr);
    assert!(first.stderr.contains("with an error instead of an answer: model overloaded"), "{}", first.stderr);
    assert!(first.stdout.is_empty(), "nothing is printed as an answer: {}", first.stdout);
    // Nothing was cached: the same prompt is sent again and answered.
    let second = gm(&data, &args(&base, &["run", "--no-stream", "openai/gpt-4.1", "hello"]), &[]);
    assert_eq!(second.code(), 0, "{}", second.stderr);
    assert_eq!(second.stdout.trim(), "hello");
    assert_eq!((emu.stats().received, answered(&emu)), (2, 1));
    report("gm run, a 200 whose body is an error", "exit 3, then 1 request answered (not cached): 2 requests");

    // In a suite the failed case stops the run; the resume sends only what is not recorded.
    emu.inject(emulator::error_as_200("model overloaded", 1));
    let file = suite(&data, "overloaded", 8);
    let file = file.to_str().unwrap();
    let before = emu.stats().received;
    let run = gm(&data, &args(&base, &["eval", "--concurrency", "1", file]), &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr);
    let resumed = gm(&data, &args(&base, &["eval", "--resume", file]), &[]);
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr);
    let (cases, check) = recorded(&data);
    each_once(&cases, 1, 8);
    assert_eq!(check, "ok");
    assert_eq!(emu.stats().received - before, 9, "8 cases and the one error, nothing sent twice");
    report("gm eval (8 cases), a 200 whose body is an error", "exit 3, resume exit 0; 9 requests, 8 recorded once");
}

#[test]
fn faults_a_429_without_a_wait_backs_off_briefly() {
    // With a minute-long guess the suite would wait longer than --max-wait allows and fail; with a short,
    // growing backoff it finishes.
    let emu = Background::with_faults(EmulatorConfig::default(), [emulator::untold_429(2)]);
    let data = TempDir::new("faults-untold-429");
    let file = suite(&data, "untold", 10);
    let base = at(&emu);
    let run =
        gm(&data, &args(&base, &["--max-wait", "20s", "eval", "--concurrency", "2", file.to_str().unwrap()]), &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr);
    let (cases, check) = recorded(&data);
    each_once(&cases, 1, 10);
    assert_eq!(check, "ok");
    assert_eq!(emu.stats().by_status.get(&429), Some(&2));
    assert_eq!(emu.stats().received, 12);
    assert!(run.took < Duration::from_secs(20), "within --max-wait: {:?}", run.took);
    report(
        "gm eval (10 cases), two 429s without a wait",
        &format!("exit 0; 12 requests, 10 recorded once; {:.1} s", run.took.as_secs_f64()),
    );
}

#[test]
fn faults_a_server_that_never_answers_fails_within_the_timeout() {
    let emu = Background::with_faults(EmulatorConfig::default(), [emulator::fault(FaultKind::Hang, 1)]);
    let data = TempDir::new("faults-hang");
    let base = at(&emu);
    let run =
        gm(&data, &args(&base, &["--timeout", "2s", "run", "--no-stream", "openai/gpt-4.1", "anyone there"]), &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert!(run.stderr.contains("no whole answer within 2s"), "{}", run.stderr);
    assert_eq!(emu.stats().received, 1, "a request that may have been sent is not sent again");
    assert!(run.took < Duration::from_secs(2 + 20), "the timeout plus slack: {:?}", run.took);
    report(
        "gm run, a server that accepts and never answers",
        &format!("exit 3 after {:.1} s (--timeout 2s); 1 request", run.took.as_secs_f64()),
    );

    // In a bench, the stalled cell fails and the others go on; the resume finishes it.
    emu.inject(emulator::fault(FaultKind::Hang, 1));
    let task = suite(&data, "stalled", 4);
    let bench = ["bench", "--models", "openai/gpt-4.1,openai/gpt-4.1-mini", "--tasks", task.to_str().unwrap()];
    let before = emu.stats().received;
    let run = gm(&data, &args(&base, &[&["--timeout", "2s"][..], &bench[..], &["--concurrency", "1"]].concat()), &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr);
    let resumed = gm(&data, &args(&base, &[&bench[..], &["--resume"]].concat()), &[]);
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr);
    let (cases, check) = recorded(&data);
    assert_eq!(check, "ok");
    let bench_cases: Vec<i64> = cases.iter().filter(|(r, _)| *r == 1).map(|(_, i)| *i).collect();
    assert_eq!(bench_cases.len(), 8, "{bench_cases:?}");
    assert_eq!(emu.stats().received - before, 9, "8 cases and the stalled request");
    report("gm bench (2 models x 4 items), one stalled request", "exit 3, resume exit 0; 9 requests, 8 recorded once");
}

#[test]
fn faults_an_answer_cut_mid_body_stops_the_suite_and_the_resume_finishes_it() {
    let emu = Background::with_faults(
        EmulatorConfig::default(),
        [emulator::fault(FaultKind::CutBody { after_bytes: 40 }, 1)],
    );
    let data = TempDir::new("faults-cut");
    let file = suite(&data, "cut", 6);
    let file = file.to_str().unwrap();
    let base = at(&emu);
    let run = gm(&data, &args(&base, &["eval", "--concurrency", "1", file]), &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert!(run.stderr.contains("test case 1 failed"), "{}", run.stderr);
    let resumed = gm(&data, &args(&base, &["eval", "--resume", file]), &[]);
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr);
    let (cases, check) = recorded(&data);
    each_once(&cases, 1, 6);
    assert_eq!(check, "ok");
    assert_eq!(emu.stats().received, 7);

    // A stream cut short is an error too, never a short answer.
    emu.inject(emulator::fault(FaultKind::CutBody { after_bytes: 300 }, 1));
    let streamed = gm(&data, &args(&base, &["run", "openai/gpt-4.1", "a streamed answer cut short"]), &[]);
    assert_eq!(streamed.code(), 3, "{}", streamed.stderr);
    assert!(streamed.stderr.contains("broke off"), "{}", streamed.stderr);
    report(
        "gm eval (6 cases) and gm run, an answer cut mid-body",
        "exit 3, resume exit 0; 7 requests, 6 recorded once",
    );
}

#[test]
fn faults_a_huge_stream_is_refused_at_the_cap_in_bounded_memory() {
    // 1 GiB of valid deltas: refused at the 32 MiB cap, with memory far below what gathering it would take.
    let emu =
        Background::with_faults(EmulatorConfig::default(), [emulator::fault(FaultKind::Huge { bytes: 1 << 30 }, 2)]);
    let data = TempDir::new("faults-huge");
    let base = at(&emu);
    let run = gm(&data, &args(&base, &["run", "openai/gpt-4.1", "say a lot"]), &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert!(run.stderr.contains("larger than the cap of 33554432 bytes"), "{}", run.stderr);
    assert!(run.peak_mib < 512, "peak {} MiB", run.peak_mib);
    let small = gm(
        &data,
        &args(&base, &["--max-response-bytes", "1MiB", "run", "--no-stream", "openai/gpt-4.1", "say a lot"]),
        &[],
    );
    assert_eq!(small.code(), 3, "{}", small.stderr);
    assert!(small.stderr.contains("larger than the cap of 1048576 bytes"), "{}", small.stderr);
    report(
        "gm run, a 1 GiB stream of valid deltas",
        &format!("exit 3 at the 32 MiB cap; peak resident {} MiB, {:.1} s", run.peak_mib, run.took.as_secs_f64()),
    );
}

#[test]
fn faults_an_html_page_on_a_streamed_request_says_so() {
    let page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    let emu = Background::with_faults(EmulatorConfig::default(), [emulator::raw(200, "text/html", page, 1)]);
    let data = TempDir::new("faults-html");
    let run = gm(&data, &args(&at(&emu), &["run", "openai/gpt-4.1", "hello"]), &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr);
    assert!(run.stderr.contains("text/html") && run.stderr.contains("502 Bad Gateway"), "{}", run.stderr);
    assert!(!run.stderr.contains("[DONE]"), "{}", run.stderr);
}

#[test]
fn faults_a_damaged_state_file_is_moved_aside_and_the_history_kept() {
    let emu = Background::start(EmulatorConfig::default());
    let data = TempDir::new("faults-damaged");
    let base = at(&emu);
    let file = suite(&data, "history", 30);
    assert_eq!(gm(&data, &args(&base, &["eval", file.to_str().unwrap()]), &[]).code(), 0);
    // Damage the cache table's root page.
    let path = data.join("gm.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let root: usize =
        conn.query_row("SELECT rootpage FROM sqlite_master WHERE name = 'cache_entries'", [], |r| r.get(0)).unwrap();
    let page: usize = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(root - 1) * page..root * page].fill(0xA5);
    std::fs::write(&path, bytes).unwrap();
    let list = gm(&data, &["runs", "list"], &[]);
    assert_eq!(list.code(), 0, "{}", list.stderr);
    assert!(list.stderr.contains("Kept: the run history (1 runs, 30 test cases)"), "{}", list.stderr);
    assert!(list.stdout.contains("history"), "{}", list.stdout);
    let again = gm(&data, &args(&base, &["eval", file.to_str().unwrap()]), &[]);
    assert_eq!(again.code(), 0, "{}", again.stderr);
    report("a state file with a damaged page", "exit 0; moved aside, 1 run and 30 cases kept, the cache lost");
}

#[test]
fn faults_a_first_ctrl_c_records_the_cases_in_flight() {
    let emu = Background::start(EmulatorConfig { latency: Duration::from_millis(300), ..Default::default() });
    let data = TempDir::new("faults-sigint");
    let file = suite(&data, "interrupted", 40);
    let file = file.to_str().unwrap();
    let base = at(&emu);
    let started = Instant::now();
    let child = command(&data, &args(&base, &["eval", "--concurrency", "4", file])).spawn().unwrap();
    // Wait until cases are recorded and others are in flight, then interrupt as a terminal would.
    while recorded_now(&data) < 4 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let run = finish(child, started);
    assert_eq!(run.code(), 130, "{}", run.stderr);
    assert!(run.stderr.contains("stopping: no new test case starts"), "{}", run.stderr);
    assert!(run.stderr.contains("--resume"), "{}", run.stderr);
    let (cases, check) = recorded(&data);
    assert_eq!(check, "ok");
    assert_eq!(cases.len() as u64, emu.stats().received, "every answer paid for is recorded");
    let resumed = gm(&data, &args(&base, &["eval", "--resume", file]), &[]);
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr);
    let (cases, _) = recorded(&data);
    each_once(&cases, 1, 40);
    assert_eq!(emu.stats().received, 40, "no case sent twice");
    report(
        "gm eval (40 cases, 4 at once), Ctrl-C",
        "exit 130; the cases in flight recorded; resume exit 0; 40 requests in all",
    );
}

/// Whether the first run in the state file is marked finished.
fn run_finished(data: &Path) -> bool {
    let Ok(conn) = rusqlite::Connection::open(data.join("gm.sqlite")) else { return false };
    conn.query_row("SELECT finished_at IS NOT NULL FROM runs WHERE id = 1", [], |r| r.get(0)).unwrap_or(false)
}

/// Cases recorded so far, 0 before the state file has its tables.
fn recorded_now(data: &Path) -> usize {
    let Ok(conn) = rusqlite::Connection::open(data.join("gm.sqlite")) else { return 0 };
    conn.query_row("SELECT COUNT(*) FROM run_cases", [], |r| r.get::<_, i64>(0)).map(|n| n as usize).unwrap_or(0)
}

#[test]
fn faults_kill_9_at_random_points_of_a_200_case_eval_loses_and_duplicates_nothing() {
    // 20 ms an answer, 4 at once: a whole run takes about a second, so most kills land mid-run.
    let emu = Background::start(EmulatorConfig { latency: Duration::from_millis(20), ..Default::default() });
    let data = TempDir::new("faults-kill");
    let file = suite(&data, "killed", 200);
    let file = file.to_str().unwrap();
    let base = at(&emu);
    // Fixed pseudo-random kill points (a linear congruential sequence), so a failure can be replayed.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut kills = 0;
    let mut finished = None;
    for _ in 0..40 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let after = Duration::from_millis(40 + (seed >> 33) % 400);
        let started = Instant::now();
        let mut child =
            command(&data, &args(&base, &["eval", "--resume", "--concurrency", "4", file])).spawn().unwrap();
        std::thread::sleep(after);
        if child.try_wait().unwrap().is_some() {
            finished = Some(finish(child, started));
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        // Killed after marking the run finished but before exiting: a further --resume would find nothing
        // to resume and start a new run.
        if run_finished(&data) {
            break;
        }
    }
    if let Some(last) = finished {
        assert_eq!(last.code(), 0, "{}", last.stderr);
    } else if !run_finished(&data) {
        let last = gm(&data, &args(&base, &["eval", "--resume", file]), &[]);
        assert_eq!(last.code(), 0, "{}", last.stderr);
    }
    let (cases, check) = recorded(&data);
    assert_eq!(check, "ok", "the state file is intact");
    each_once(&cases, 1, 200);
    let runs: i64 = rusqlite::Connection::open(data.join("gm.sqlite"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1, "every resume continued the one run");
    assert!(kills >= 2, "only {kills} kills landed mid-run");
    let sent = emu.stats().received;
    // A kill drops at most the cases in flight, which are sent again.
    assert!(sent >= 200 && sent <= 200 + 4 * kills, "{sent} requests for 200 cases and {kills} kills");
    report(
        "gm eval (200 cases, 4 at once), kill -9 at random points",
        &format!("{kills} kills; 200 recorded once; {sent} requests (at most 4 re-sent per kill); quick_check ok"),
    );
}
