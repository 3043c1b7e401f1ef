//! The code-execution sandbox: passing, failing, timeouts, limits, network and filesystem.
//!
//! Tests that run Python follow the skip policy of `gm_testkit::skip` where no interpreter is found.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gm_eval::sandbox::{extract_code, RunStatus, Sandbox, SandboxConfig, SandboxPolicy, SandboxSupport};
use gm_eval::Error;
use gm_testkit::TempDir;

const TESTS: &str = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n";

fn config() -> SandboxConfig {
    SandboxConfig { timeout: Duration::from_secs(5), memory_mb: 256, cpu_seconds: 5, python: PathBuf::from("python3") }
}

#[track_caller]
fn sandbox_with(config: SandboxConfig) -> Option<Sandbox> {
    let sandbox = Sandbox::new(config);
    if sandbox.support().python.is_none() {
        gm_testkit::skip::missing_service("python3", "apt-get install python3");
        return None;
    }
    Some(sandbox)
}

#[track_caller]
fn sandbox() -> Option<Sandbox> {
    sandbox_with(config())
}

#[tokio::test]
async fn a_correct_solution_passes() {
    let Some(sandbox) = sandbox() else { return };
    let answer = "Sure:\n```python\ndef add(a, b):\n    return a + b\n```\nThat adds.";
    let outcome = sandbox.run(answer, TESTS).await;
    assert_eq!(outcome.status, RunStatus::Passed, "{outcome:?}");
    assert!(outcome.passed);
}

#[tokio::test]
async fn a_wrong_solution_fails_with_the_assertion_in_stderr() {
    let Some(sandbox) = sandbox() else { return };
    let outcome = sandbox.run("def add(a, b):\n    return a - b\n", TESTS).await;
    assert_eq!(outcome.status, RunStatus::Failed, "{outcome:?}");
    assert!(!outcome.passed);
    assert!(outcome.stderr.contains("AssertionError"), "{}", outcome.stderr);
}

#[tokio::test]
async fn a_syntax_error_fails() {
    let Some(sandbox) = sandbox() else { return };
    let outcome = sandbox.run("def add(a, b) return a + b", TESTS).await;
    assert_eq!(outcome.status, RunStatus::Failed, "{outcome:?}");
}

#[tokio::test]
async fn an_infinite_loop_is_killed_by_the_timeout_and_its_directory_removed() {
    let Some(sandbox) = sandbox_with(SandboxConfig { timeout: Duration::from_secs(2), ..config() }) else { return };
    let code = "import os\nprint(os.getcwd(), flush=True)\nwhile True:\n    pass\n";
    let outcome = sandbox.run(code, TESTS).await;
    assert_eq!(outcome.status, RunStatus::TimedOut, "{outcome:?}");
    assert!(!outcome.passed);
    assert!(outcome.stderr.contains("timed out"), "{}", outcome.stderr);
    // Output printed before the timeout is kept.
    let dir = outcome.stdout.lines().next().expect("the run printed its directory before the timeout");
    assert!(dir.contains("gm-sandbox-"), "{dir}");
    assert!(!Path::new(dir).exists(), "the run directory {dir} is removed after the timeout");
}

#[tokio::test]
async fn a_child_process_is_killed_with_the_group_on_timeout() {
    let Some(sandbox) = sandbox_with(SandboxConfig { timeout: Duration::from_secs(1), ..config() }) else { return };
    // The child holds the output pipe open; without the group kill the run would never finish.
    let code = "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'while True: pass'])\n\
                while True:\n    pass\n";
    let outcome = sandbox.run(code, TESTS).await;
    assert_eq!(outcome.status, RunStatus::TimedOut, "{outcome:?}");
}

#[tokio::test]
async fn the_directory_is_removed_after_a_normal_run() {
    let Some(sandbox) = sandbox() else { return };
    let code = "import os\nprint(os.getcwd())\nprint(os.environ.get('HOME'))\nprint(sorted(os.environ))\n\
                def add(a, b):\n    return a + b\n";
    let outcome = sandbox.run(code, TESTS).await;
    assert!(outcome.passed, "{outcome:?}");
    let mut lines = outcome.stdout.lines();
    let cwd = lines.next().expect("cwd printed");
    assert_eq!(lines.next(), Some(cwd), "HOME is the run directory");
    assert!(cwd.contains("gm-sandbox-"), "{cwd}");
    assert!(!Path::new(cwd).exists(), "the run directory is removed");
    let env = lines.next().expect("environment printed");
    for secret in ["GITHUB_TOKEN", "OPENAI_API_KEY", "CARGO"] {
        assert!(!env.contains(&format!("'{secret}'")), "{env}");
    }
}

#[tokio::test]
async fn a_memory_hog_fails_under_the_memory_cap() {
    let Some(sandbox) = sandbox() else { return };
    // 2 GiB, well over the 256 MiB cap.
    let code = "hog = bytearray(2 * 1024 ** 3)\ndef add(a, b):\n    return a + b\n";
    let outcome = sandbox.run(code, TESTS).await;
    assert!(matches!(outcome.status, RunStatus::Failed | RunStatus::Crashed), "{outcome:?}");
    assert!(outcome.stderr.contains("MemoryError"), "{}", outcome.stderr);
}

#[tokio::test]
async fn the_cpu_limit_ends_a_busy_loop() {
    // The wall clock is far above the CPU limit, so only the CPU limit can end this.
    let Some(sandbox) = sandbox_with(SandboxConfig { timeout: Duration::from_secs(30), cpu_seconds: 1, ..config() })
    else {
        return;
    };
    let outcome = sandbox.run("while True:\n    pass\n", TESTS).await;
    assert_eq!(outcome.status, RunStatus::Crashed, "{outcome:?}");
}

#[tokio::test]
async fn code_that_tries_the_network_fails_when_isolated() {
    let Some(sandbox) = sandbox() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    let port = listener.local_addr().expect("local address").port();
    let code = format!(
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n\
         def add(a, b):\n    return a + b\n"
    );
    let outcome = sandbox.run(&code, TESTS).await;
    if sandbox.support().network_isolation {
        assert!(outcome.network_isolated);
        assert_eq!(outcome.status, RunStatus::Failed, "{outcome:?}");
        assert!(outcome.stderr.contains("Error"), "{}", outcome.stderr);
    } else {
        eprintln!("`unshare -r -n` is not available here: the run has network access, as documented");
        assert!(!outcome.network_isolated);
        assert!(outcome.passed, "{outcome:?}");
    }
}

#[tokio::test]
async fn without_namespaces_the_run_reaches_the_network_and_says_so() {
    let Some(sandbox) = sandbox() else { return };
    let support = SandboxSupport { network_isolation: false, filesystem_isolation: false, ..sandbox.support().clone() };
    let sandbox = Sandbox::with_support(config(), support);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    let port = listener.local_addr().expect("local address").port();
    let code = format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).close()\ndef add(a, b):\n    return a + b\n");
    let outcome = sandbox.run(&code, TESTS).await;
    assert!(!outcome.network_isolated);
    assert!(!outcome.filesystem_isolated);
    assert!(outcome.passed, "{outcome:?}");
}

fn write_outside_code(target: &Path) -> String {
    format!(
        "with open({:?}, 'w') as f:\n    f.write('escaped')\ndef add(a, b):\n    return a + b\n",
        target.to_string_lossy()
    )
}

#[tokio::test]
async fn writing_outside_the_directory_fails_when_the_filesystem_is_isolated() {
    let Some(sandbox) = sandbox() else { return };
    let outside = TempDir::new("sandbox-outside-write");
    let target = outside.path().join("escaped.txt");
    let outcome = sandbox.run(&write_outside_code(&target), TESTS).await;
    if sandbox.support().filesystem_isolation {
        assert!(outcome.filesystem_isolated);
        assert_eq!(outcome.status, RunStatus::Failed, "{outcome:?}");
        assert!(outcome.stderr.contains("Read-only file system"), "{}", outcome.stderr);
        assert!(!target.exists());
    } else {
        eprintln!("mount namespaces are not available here: the write outside succeeds, as documented");
        assert!(!outcome.filesystem_isolated);
        assert!(outcome.passed, "{outcome:?}");
        assert!(target.exists());
    }
}

#[tokio::test]
async fn without_a_mount_namespace_the_sandbox_is_not_a_filesystem_jail() {
    // The documented behaviour where mount namespaces are unavailable: writes elsewhere succeed.
    let Some(sandbox) = sandbox() else { return };
    let support = SandboxSupport { filesystem_isolation: false, ..sandbox.support().clone() };
    let sandbox = Sandbox::with_support(config(), support);
    let outside = TempDir::new("sandbox-outside-nojail");
    let target = outside.path().join("escaped.txt");
    let outcome = sandbox.run(&write_outside_code(&target), TESTS).await;
    assert!(!outcome.filesystem_isolated);
    assert!(outcome.passed, "{outcome:?}");
    assert_eq!(std::fs::read_to_string(&target).expect("the file was written"), "escaped");
}

#[tokio::test]
async fn a_missing_interpreter_is_unavailable() {
    let sandbox = Sandbox::new(SandboxConfig { python: PathBuf::from("/nonexistent/python3"), ..config() });
    assert_eq!(sandbox.support().python, None);
    let outcome = sandbox.run("x = 1", "assert x == 1").await;
    assert_eq!(outcome.status, RunStatus::Unavailable);
    assert!(!outcome.passed);
    assert!(outcome.stderr.contains("not available"), "{}", outcome.stderr);
}

#[tokio::test]
async fn long_output_is_capped() {
    let Some(sandbox) = sandbox() else { return };
    let outcome = sandbox.run("print('x' * 100000)\ndef add(a, b):\n    return a + b\n", TESTS).await;
    assert!(outcome.passed, "{outcome:?}");
    assert!(outcome.stdout.len() < 5000);
    assert!(outcome.stdout.ends_with("[output truncated]"));
}

#[tokio::test]
async fn score_samples_counts_passes_and_computes_pass_at_k() {
    let Some(sandbox) = sandbox() else { return };
    let right = "def add(a, b):\n    return a + b\n".to_string();
    let wrong = "def add(a, b):\n    return a * b\n".to_string();
    let samples = vec![right.clone(), wrong.clone(), right, wrong];
    let (c, n, scores) = sandbox.score_samples(&samples, TESTS, &[1, 2, 10]).await;
    assert_eq!((c, n), (2, 4));
    assert!((scores[&1] - 0.5).abs() < 1e-12);
    assert!((scores[&2] - (1.0 - 1.0 / 6.0)).abs() < 1e-12);
    assert!(!scores.contains_key(&10), "k > n is left out");
}

#[test]
fn probe_reports_a_consistent_picture() {
    let support = Sandbox::probe();
    eprintln!("sandbox support on this machine: {support:?}");
    assert_eq!(support.python.is_some(), support.python_version.is_some());
    assert!(!support.filesystem_isolation || support.network_isolation);
}

#[test]
fn extract_code_prefers_the_first_python_block() {
    let answer = "Text\n```bash\nls\n```\n```python\nfirst = 1\n```\n```python\nsecond = 2\n```\n";
    assert_eq!(extract_code(answer), "first = 1\n");
    assert_eq!(extract_code("```py\nx = 1\n```"), "x = 1\n");
    assert_eq!(extract_code("```Python3\nx = 1\n```"), "x = 1\n");
}

#[test]
fn extract_code_falls_back_to_any_block_then_the_whole_answer() {
    assert_eq!(extract_code("Here:\n```\ny = 2\n```\nDone"), "y = 2\n");
    assert_eq!(extract_code("Here:\n```js\nlet y = 2;\n```\n"), "let y = 2;\n");
    assert_eq!(extract_code("def f():\n    return 1\n"), "def f():\n    return 1\n");
    assert_eq!(extract_code("```python\nunclosed = True\n"), "unclosed = True\n");
    assert_eq!(extract_code("  ```python\n  indented = 1\n  ```\n"), "  indented = 1\n");
}

#[test]
fn the_policy_is_off_by_default_and_says_how_to_turn_it_on() {
    let policy = SandboxPolicy::default();
    assert!(!policy.enabled);
    let err = policy.check().expect_err("disabled by default");
    assert!(matches!(err, Error::CodeExecutionDisabled));
    assert!(err.to_string().contains("--allow-code-exec"), "{err}");
    assert!(policy.sandbox(config()).is_err());
    assert!(SandboxPolicy { enabled: true }.check().is_ok());
    assert!(SandboxPolicy { enabled: true }.sandbox(config()).is_ok());
}
