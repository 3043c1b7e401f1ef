//! What a test does when something it needs from outside the Rust toolchain is missing.
//!
//! A test never passes silently without having run. Where a service (a program such as `redis-server` or
//! `python3`) is missing, [`missing_service`] fails the test when `GM_REQUIRE_SERVICES=1` (CI sets it, after
//! installing every service), and otherwise reports the test as skipped on the terminal; the test then
//! returns. Live tests against real providers need `GM_LIVE_TESTS=1` and credentials ([`live`]); without
//! them they report themselves skipped, whatever `GM_REQUIRE_SERVICES` says.
//!
//! A skip is written straight to the process's standard error, which the test harness does not capture (it
//! captures only `print!` and `eprint!`), and appended to the file `GM_SKIP_LOG` names when set, so that
//! `cargo xtask test` can list every skipped test at the end of a run.

use std::io::Write;
use std::panic::Location;
use std::process::{Command, Stdio};

/// The variable that turns a missing service into a failure.
pub const REQUIRE_SERVICES: &str = "GM_REQUIRE_SERVICES";

/// The variable that enables the live tests.
pub const LIVE_TESTS: &str = "GM_LIVE_TESTS";

/// The variable naming a file that collects one line per skipped test.
pub const SKIP_LOG: &str = "GM_SKIP_LOG";

/// Whether a missing service fails the test (`GM_REQUIRE_SERVICES=1`).
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES).as_deref() == Ok("1")
}

/// The running test cannot run without `what` (`install` says how to get it): fails the test when services
/// are required, and otherwise reports it skipped. The caller returns after this.
#[track_caller]
pub fn missing_service(what: &str, install: &str) {
    let test = test_name();
    if services_required() {
        panic!("{test} needs {what}, which is missing ({install}); {REQUIRE_SERVICES}=1 makes that a failure");
    }
    report(&test, Location::caller(), &format!("needs {what} ({install}); {REQUIRE_SERVICES}=1 makes this a failure"));
}

/// Whether `program --version` runs; when it does not, reports it as a [`missing_service`].
#[track_caller]
pub fn program(program: &str, install: &str) -> bool {
    let runs = Command::new(program).arg("--version").stdin(Stdio::null()).output().is_ok_and(|o| o.status.success());
    if !runs {
        missing_service(program, install);
    }
    runs
}

/// The values of `vars` for a live test, when `GM_LIVE_TESTS=1` and each is set and not empty; otherwise
/// `None`, after reporting the test skipped (never a failure: live tests reach real providers, which CI
/// does not).
///
/// ```no_run
/// # fn test() {
/// let Some([key]) = gm_testkit::skip::live(["OPENAI_API_KEY"]) else { return };
/// # }
/// ```
#[track_caller]
pub fn live<const N: usize>(vars: [&str; N]) -> Option<[String; N]> {
    let at = Location::caller();
    if std::env::var(LIVE_TESTS).as_deref() != Ok("1") {
        report(&test_name(), at, &format!("a live test; set {LIVE_TESTS}=1 and {}", vars.join(", ")));
        return None;
    }
    let values = vars.map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    let missing: Vec<&str> = vars.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(n, _)| *n).collect();
    if !missing.is_empty() {
        report(&test_name(), at, &format!("a live test; {} not set", missing.join(", ")));
        return None;
    }
    Some(values.map(Option::unwrap_or_default))
}

/// The test harness names each test's thread after the test.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "a test".to_string(),
    }
}

fn report(test: &str, at: &Location<'_>, reason: &str) {
    let line = format!("SKIPPED {test} ({}:{}): {reason}\n", at.file(), at.line());
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os(SKIP_LOG) {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            panic!("could not append to {SKIP_LOG} ({}): {e}", std::path::Path::new(&log).display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TempDir;

    /// Run by the tests below in a child process, with the variables each sets.
    #[test]
    #[ignore = "a child process of the skip tests, which run it"]
    fn child_missing_service() {
        missing_service("a-service-that-is-not-here", "nowhere to get it");
    }

    fn child(env: &[(&str, &str)]) -> (bool, String) {
        let mut cmd = crate::child_test("skip::tests::child_missing_service");
        cmd.env_remove(REQUIRE_SERVICES).env_remove(SKIP_LOG);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("the test binary runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    #[test]
    fn a_skip_is_shown_past_the_output_capture_and_logged() {
        let dir = TempDir::new("skip-log");
        let log = dir.join("skipped.txt");
        let (passed, text) = child(&[(SKIP_LOG, log.to_str().unwrap())]);
        assert!(passed, "{text}");
        let line = "SKIPPED skip::tests::child_missing_service (";
        assert!(text.contains(line) && text.contains("needs a-service-that-is-not-here"), "{text}");
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.starts_with(line) && logged.lines().count() == 1, "{logged}");
    }

    #[test]
    fn a_missing_service_fails_the_test_when_services_are_required() {
        let (passed, text) = child(&[(REQUIRE_SERVICES, "1")]);
        assert!(!passed, "{text}");
        assert!(text.contains("needs a-service-that-is-not-here, which is missing"), "{text}");
        assert!(!text.contains("SKIPPED"), "{text}");
    }
}
