//! Running generated Python against an item's tests, for pass@k on code-generation tasks.
//!
//! [`Sandbox::run`] takes a model answer and the item's tests, extracts the code with
//! [`extract_code`], writes `solution.py` and `test_solution.py` (which does
//! `from solution import *` and then the tests) into a fresh temporary directory, and runs
//! `python3 -I -B test_solution.py` there. The directory is removed afterwards, whatever happened.
//!
//! # This is not a security boundary
//!
//! The sandbox keeps honest mistakes in generated code from hurting the machine running the
//! evaluation. It does **not** contain code written to escape it. Only run code from models you
//! would let run as your own user. Running code is off unless `--allow-code-exec` is passed or the
//! task config enables it ([`SandboxPolicy`]).
//!
//! What it does:
//! - a wall-clock timeout: the child runs in its own process group and the whole group is killed
//!   with `SIGKILL` when the time is up;
//! - limits applied with the shell's `ulimit` before `exec`ing the interpreter: address space
//!   (`-v`, so large allocations fail with `MemoryError`), CPU seconds (`-t`) and file size (`-f`);
//! - a minimal environment: the variables are cleared except `PATH`, and `HOME` and the working
//!   directory are the temporary directory; Python runs in isolated mode (`-I`: no user site
//!   directory, no `PYTHON*` variables) with the temporary directory as the only local import path;
//! - no network where `unshare -r -n` works (a new user and network namespace with only a loopback
//!   interface that is down), recorded in [`RunOutcome::network_isolated`];
//! - a read-only view of the filesystem except the temporary directory where `unshare -r -n -m`
//!   works (every mount is remounted read-only inside a private mount namespace), recorded in
//!   [`RunOutcome::filesystem_isolated`].
//!
//! What it does not do:
//! - it is not a filesystem jail: the code can *read* every file your user can read, and where the
//!   mount namespace is unavailable it can also *write* anywhere your user can;
//! - where user namespaces are unavailable (many containers, macOS) the code can use the network;
//! - the read-only remounts are best effort: a mount that refuses one stays writable;
//! - it does not limit the number of processes and does not filter system calls;
//! - the process group is killed when the interpreter exits or times out, but a process that
//!   leaves its group (`setsid`) survives.
//!
//! A run whose wrapper cannot set up the directory mount or the limits (exit status 125 or 126,
//! which the code under test could also use) is [`RunStatus::Unavailable`].
//!
//! [`Sandbox::probe`] reports what this machine supports.
//!
//! # Example
//! ```
//! use gm_eval::sandbox::{extract_code, SandboxPolicy};
//!
//! let answer = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\n";
//! assert_eq!(extract_code(answer), "def add(a, b):\n    return a + b\n");
//! // Running code must be enabled explicitly.
//! assert!(SandboxPolicy::default().check().is_err());
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;

/// The most bytes of stdout and of stderr kept in a [`RunOutcome`].
pub const OUTPUT_EXCERPT_BYTES: usize = 4096;

/// Whether generated code may be run at all.
///
/// Off by default; `gm` turns it on for `--allow-code-exec` or when a task config enables it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Run generated code when true.
    pub enabled: bool,
}

impl SandboxPolicy {
    /// `Ok` when running code is enabled.
    ///
    /// # Errors
    /// [`Error::CodeExecutionDisabled`] when it is not; the message says to pass `--allow-code-exec`.
    pub fn check(&self) -> Result<(), Error> {
        if self.enabled {
            Ok(())
        } else {
            Err(Error::CodeExecutionDisabled)
        }
    }

    /// A sandbox with `config`, if the policy allows running code.
    ///
    /// # Errors
    /// [`Error::CodeExecutionDisabled`] when running code is not enabled.
    pub fn sandbox(&self, config: SandboxConfig) -> Result<Sandbox, Error> {
        self.check()?;
        Ok(Sandbox::new(config))
    }
}

/// Limits and the interpreter of a [`Sandbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Wall-clock time after which the run is killed.
    pub timeout: Duration,
    /// Address-space limit in MiB (`ulimit -v`).
    pub memory_mb: u64,
    /// CPU-time limit in seconds (`ulimit -t`).
    pub cpu_seconds: u64,
    /// The Python interpreter; a bare name is looked up on `PATH` once, when the sandbox is made.
    pub python: PathBuf,
}

impl Default for SandboxConfig {
    /// 10 s wall clock, 512 MiB, 10 CPU seconds, `python3`.
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), memory_mb: 512, cpu_seconds: 10, python: PathBuf::from("python3") }
    }
}

/// What this machine supports, found by running small commands once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxSupport {
    /// The interpreter's real path (`sys.executable`), or `None` when it does not run.
    pub python: Option<PathBuf>,
    /// The interpreter's version line, e.g. `3.11.7`.
    pub python_version: Option<String>,
    /// `/bin/sh` accepts `ulimit -v`, `-t` and `-f`.
    pub ulimit: bool,
    /// `unshare -r -n` works: runs get no network.
    pub network_isolation: bool,
    /// `unshare -r -n -m` with read-only remounts works: runs can write only their directory.
    pub filesystem_isolation: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunStatus {
    /// The tests ran and exited with status 0.
    Passed,
    /// The tests exited with a non-zero status (a failed assertion, an exception, `MemoryError`).
    Failed,
    /// The wall-clock timeout expired and the process group was killed.
    TimedOut,
    /// The interpreter was ended by a signal (the CPU limit's `SIGXCPU`, a crash).
    Crashed,
    /// Nothing was run: no interpreter, or the process could not be started.
    Unavailable,
}

/// The result of running one answer against its tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// `status == RunStatus::Passed`.
    pub passed: bool,
    /// How the run ended.
    pub status: RunStatus,
    /// The start of stdout, at most [`OUTPUT_EXCERPT_BYTES`] bytes, lossily decoded.
    pub stdout: String,
    /// The start of stderr, at most [`OUTPUT_EXCERPT_BYTES`] bytes, lossily decoded; for
    /// [`RunStatus::Unavailable`], the reason.
    pub stderr: String,
    /// Wall-clock time from start to exit or kill.
    pub duration: Duration,
    /// The run had no network (a fresh network namespace).
    pub network_isolated: bool,
    /// The run could write only inside its temporary directory.
    pub filesystem_isolated: bool,
}

/// Runs generated Python against tests with limits; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Sandbox {
    config: SandboxConfig,
    support: SandboxSupport,
}

const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The wrapper's exit status when the run directory cannot be bind-mounted.
const SETUP_FAILED: i32 = 125;
/// The wrapper's exit status when `ulimit` refuses a limit.
const LIMITS_FAILED: i32 = 126;

/// Inside the namespaces: keep the run directory writable, make every other mount read-only
/// (best effort, failures ignored), then apply the limits and start Python.
const FS_SCRIPT: &str = r#"d="$1"; shift
mount --bind "$d" "$d" 2>/dev/null || exit 125
ms=$(while read -r _ m _; do echo "$m"; done </proc/self/mounts)
for m in $ms; do [ "$m" = "$d" ] || mount -o remount,bind,ro "$m" 2>/dev/null; done
{ ulimit -v "$1" && ulimit -t "$2" && ulimit -f "$3"; } 2>/dev/null || exit 126
shift 3
exec "$@""#;

/// Outside a mount namespace: apply the limits and start Python.
const LIMIT_SCRIPT: &str = r#"{ ulimit -v "$1" && ulimit -t "$2" && ulimit -f "$3"; } 2>/dev/null || exit 126
shift 3
exec "$@""#;

/// The start of `test_solution.py`. Isolated mode (`-I`, which implies `-P` from Python 3.11)
/// leaves the script's directory off `sys.path`, so it is put back explicitly, and only it.
const TEST_PRELUDE: &str = "import os as _gm_os, sys as _gm_sys\n\
    _gm_sys.path.insert(0, _gm_os.path.dirname(_gm_os.path.abspath(__file__)))\n\
    from solution import *\n\n";

/// The file-size limit, in 1 KiB blocks (64 MiB).
const FILE_SIZE_BLOCKS: u64 = 64 * 1024;

impl Sandbox {
    /// What this machine supports for the default interpreter, `python3`.
    pub fn probe() -> SandboxSupport {
        SandboxSupport::detect(Path::new("python3"))
    }

    /// A sandbox with `config`, probing the machine once (see [`SandboxSupport::detect`]).
    ///
    /// This does not check a [`SandboxPolicy`]; use [`SandboxPolicy::sandbox`] where the user
    /// must have enabled running code.
    pub fn new(config: SandboxConfig) -> Self {
        let support = SandboxSupport::detect(&config.python);
        Self { config, support }
    }

    /// A sandbox that uses `support` as given instead of probing, e.g. to turn isolation off.
    pub fn with_support(config: SandboxConfig, support: SandboxSupport) -> Self {
        Self { config, support }
    }

    /// The limits and interpreter.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// What the runs will use.
    pub fn support(&self) -> &SandboxSupport {
        &self.support
    }

    /// Runs the code of `answer` (see [`extract_code`]) against `tests`, Python statements that
    /// follow `from solution import *`.
    ///
    /// A failing or misbehaving answer is an outcome, never a panic or an error.
    pub async fn run(&self, answer: &str, tests: &str) -> RunOutcome {
        let started = Instant::now();
        let isolated_net = self.support.network_isolation;
        let isolated_fs = self.support.filesystem_isolation;
        let unavailable = |reason: String| RunOutcome {
            passed: false,
            status: RunStatus::Unavailable,
            stdout: String::new(),
            stderr: reason,
            duration: started.elapsed(),
            network_isolated: false,
            filesystem_isolated: false,
        };
        let Some(python) = self.support.python.clone() else {
            return unavailable(format!("python interpreter `{}` is not available", self.config.python.display()));
        };
        if !self.support.ulimit {
            return unavailable("/bin/sh does not accept ulimit -v/-t/-f, so limits cannot be applied".into());
        }
        let dir = match TempDir::create() {
            Ok(dir) => dir,
            Err(e) => return unavailable(format!("cannot create a temporary directory: {e}")),
        };
        let code = extract_code(answer);
        let test_file = format!("{TEST_PRELUDE}{tests}\n");
        if let Err(e) = std::fs::write(dir.path.join("solution.py"), code)
            .and_then(|()| std::fs::write(dir.path.join("test_solution.py"), test_file))
        {
            return unavailable(format!("cannot write the test files: {e}"));
        }

        let limits = [
            (self.config.memory_mb.saturating_mul(1024)).to_string(),
            self.config.cpu_seconds.to_string(),
            FILE_SIZE_BLOCKS.to_string(),
        ];
        let python_args = [python.into_os_string(), "-I".into(), "-B".into(), "test_solution.py".into()];
        let mut command = if isolated_fs || isolated_net {
            let mut c = tokio::process::Command::new("unshare");
            c.args(["-r", "-n"]);
            if isolated_fs {
                c.args(["-m", "--", "/bin/sh", "-c", FS_SCRIPT, "sh"]).arg(&dir.path);
            } else {
                c.args(["--", "/bin/sh", "-c", LIMIT_SCRIPT, "sh"]);
            }
            c
        } else {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.args(["-c", LIMIT_SCRIPT, "sh"]);
            c
        };
        command
            .args(&limits)
            .args(&python_args)
            .current_dir(&dir.path)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", &dir.path)
            .env("TMPDIR", &dir.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return unavailable(format!("cannot start the interpreter: {e}")),
        };
        let pid = child.id();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut out = Capture::default();
        let mut err = Capture::default();
        let finished = tokio::time::timeout(self.config.timeout, async {
            // Once the interpreter exits, whatever it left running in its group is killed, so that
            // a background child holding the pipes open does not keep the run going.
            let exited = async {
                let status = child.wait().await;
                if let Some(pid) = pid {
                    kill_group(pid).await;
                }
                status
            };
            let ((), (), status) = tokio::join!(out.read_from(stdout), err.read_from(stderr), exited);
            status
        })
        .await;
        let status = match finished {
            Ok(Ok(exit)) => {
                let status = classify(exit);
                if status == RunStatus::Unavailable {
                    err.note("the sandbox could not set up its directory mount or limits");
                }
                status
            }
            Ok(Err(e)) => {
                err.note(&format!("waiting for the interpreter failed: {e}"));
                RunStatus::Crashed
            }
            Err(_) => {
                if let Some(pid) = pid {
                    kill_group(pid).await;
                }
                // The group kill covers the child too; this is for when it could not be sent.
                let _ = child.start_kill();
                let _ = child.wait().await;
                err.note(&format!("timed out after {:?}", self.config.timeout));
                RunStatus::TimedOut
            }
        };
        let (stdout, stderr) = (out.into_text(), err.into_text());
        drop(dir);
        RunOutcome {
            passed: status == RunStatus::Passed,
            status,
            stdout,
            stderr,
            duration: started.elapsed(),
            network_isolated: isolated_net,
            filesystem_isolated: isolated_fs,
        }
    }

    /// Runs every sample against `tests` one after another and returns `(c, n, pass@k)`: the number
    /// that passed, the number run, and [`pass_at_k`](crate::metrics::pass_at_k) for each `k` in
    /// `k` with `1 <= k <= n` (other values of `k` are left out).
    pub async fn score_samples(&self, samples: &[String], tests: &str, k: &[u64]) -> (u64, u64, BTreeMap<u64, f64>) {
        let mut c = 0;
        for sample in samples {
            if self.run(sample, tests).await.passed {
                c += 1;
            }
        }
        let n = samples.len() as u64;
        let scores = k.iter().filter_map(|&k| crate::metrics::pass_at_k(n, c, k).ok().map(|p| (k, p))).collect();
        (c, n, scores)
    }
}

impl SandboxSupport {
    /// Probes `python` (resolving its real path, which also sees through version-manager shims),
    /// `ulimit`, `unshare -r -n`, and `unshare -r -n -m` with a read-only remount.
    pub fn detect(python: &Path) -> Self {
        let resolved = std::process::Command::new(python)
            .args(["-c", "import sys; print(sys.executable); print(sys.version.split()[0])"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                let text = String::from_utf8(o.stdout).ok()?;
                let mut lines = text.lines();
                let exe = lines.next().filter(|l| !l.is_empty())?;
                Some((PathBuf::from(exe), lines.next().unwrap_or_default().to_string()))
            });
        let ulimit = succeeds(
            std::process::Command::new("/bin/sh").args(["-c", "ulimit -v 1048576 && ulimit -t 5 && ulimit -f 65536"]),
        );
        let network_isolation = succeeds(std::process::Command::new("unshare").args(["-r", "-n", "true"]));
        let filesystem_isolation = network_isolation
            && succeeds(std::process::Command::new("unshare").args([
                "-r",
                "-n",
                "-m",
                "/bin/sh",
                "-c",
                "mount -o remount,bind,ro / && ! touch /gm-sandbox-probe 2>/dev/null",
            ]));
        let (python, python_version) = match resolved {
            Some((exe, version)) => (Some(exe), Some(version)),
            None => (None, None),
        };
        Self { python, python_version, ulimit, network_isolation, filesystem_isolation }
    }
}

fn succeeds(command: &mut std::process::Command) -> bool {
    command
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn classify(exit: ExitStatus) -> RunStatus {
    use std::os::unix::process::ExitStatusExt;
    if exit.success() {
        RunStatus::Passed
    } else if exit.signal().is_some() {
        RunStatus::Crashed
    } else if matches!(exit.code(), Some(SETUP_FAILED | LIMITS_FAILED)) {
        RunStatus::Unavailable
    } else {
        RunStatus::Failed
    }
}

/// Kills the process group `pgid` with the shell's `kill` (no `unsafe` signal calls here).
async fn kill_group(pgid: u32) {
    let _ = tokio::process::Command::new("/bin/sh")
        .args(["-c", "kill -KILL -- -\"$1\"", "sh", &pgid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

/// The first [`OUTPUT_EXCERPT_BYTES`] bytes of an output stream, kept outside the reading future
/// so that what was read before a timeout survives it.
#[derive(Default)]
struct Capture {
    kept: Vec<u8>,
    truncated: bool,
    notes: String,
}

impl Capture {
    /// Reads `reader` to the end; draining past the cap keeps a chatty child from blocking on a
    /// full pipe.
    async fn read_from<R: AsyncRead + Unpin>(&mut self, reader: Option<R>) {
        let Some(mut reader) = reader else { return };
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = OUTPUT_EXCERPT_BYTES - self.kept.len();
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                    self.truncated |= n > room;
                }
            }
        }
    }

    fn note(&mut self, line: &str) {
        self.notes.push('\n');
        self.notes.push_str(line);
    }

    fn into_text(self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.truncated {
            text.push_str("\n[output truncated]");
        }
        if !self.notes.is_empty() {
            if text.is_empty() {
                text.push_str(self.notes.trim_start());
            } else {
                text.push_str(&self.notes);
            }
        }
        text
    }
}

/// A fresh directory under [`std::env::temp_dir`], removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create() -> std::io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let mut last = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("gm-sandbox-{}-{n}-{nanos:08x}", std::process::id()));
            match std::fs::create_dir(&path) {
                // The mount script compares this path with /proc/self/mounts, which lists
                // canonical paths (on macOS and some Linux setups the temp dir is a symlink).
                Ok(()) => return Ok(Self { path: std::fs::canonicalize(&path).unwrap_or(path) }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no unique temporary directory name")))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The Python code in a model answer: the first ```` ```python ```` (or ```` ```py ````) fenced
/// block, else the first fenced block of any language, else the whole answer.
///
/// ```
/// use gm_eval::sandbox::extract_code;
/// assert_eq!(extract_code("x = 1"), "x = 1");
/// assert_eq!(extract_code("```\nx = 1\n```"), "x = 1\n");
/// assert_eq!(extract_code("```text\nno\n```\n```python\nx = 1\n```"), "x = 1\n");
/// ```
pub fn extract_code(answer: &str) -> String {
    let blocks = fenced_blocks(answer);
    let python =
        blocks.iter().find(|(lang, _)| matches!(lang.to_ascii_lowercase().as_str(), "python" | "py" | "python3"));
    match python.or(blocks.first()) {
        Some((_, body)) => body.clone(),
        None => answer.to_string(),
    }
}

/// The fenced blocks of `text` as (info-string language, body); an unclosed block runs to the end.
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        match open.as_mut() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let lang = info.split_whitespace().next().unwrap_or_default().to_string();
                    open = Some((lang, String::new()));
                }
            }
            Some((_, body)) => {
                if trimmed.trim_end() == "```" {
                    if let Some(block) = open.take() {
                        blocks.push(block);
                    }
                } else {
                    body.push_str(line);
                }
            }
        }
    }
    if let Some(block) = open {
        blocks.push(block);
    }
    blocks
}
