//! Test support shared by the tests of several gm crates, in one place instead of a copy per crate.
//!
//! - [`skip`]: the policy for a test that needs something outside the Rust toolchain (a `redis-server`, a
//!   `python3`, live credentials). Where it is missing the test says so on the terminal, past the test
//!   harness's output capture; with `GM_REQUIRE_SERVICES=1` (set by CI) a missing service fails the test, so
//!   a green CI run has run every test.
//! - [`RedisServer`]: a throwaway `redis-server` on a free loopback port.
//! - [`emulator`]: the gm emulator with faults queued, on the test's runtime or on one of its own.
//! - [`shared`]: paths into `../shared` (fixtures, reference data) beside the repository.
//! - [`CountingListener`] and [`CountingProxy`]: loopback ports that count the connections made to them (a
//!   replayed run makes none).
//! - [`TempDir`] and [`StateFile`]: temporary folders and state files, removed when dropped.
//! - [`child_test`]: one test of the running test binary in a child process (several processes sharing a
//!   state file). Such a child is `#[ignore]`d with the name of its parent, so it never runs alone.
//! - [`cli`]: the `gm` binary with nothing of the test's environment that gm reads, and its output as text,
//!   JSON and an exit code.
//! - [`suite`]: prompt files that tests of several crates run; [`repo`]: paths in this repository (the
//!   documented examples).
//!
//! This crate is only ever a dev-dependency: `cargo xtask tidy` fails when any crate uses it as a normal or
//! build dependency.

pub mod cli;
pub mod emulator;
mod listener;
mod redis;
pub mod skip;
pub mod suite;
mod temp;

pub use listener::{CountingListener, CountingProxy};
pub use redis::RedisServer;
pub use temp::{StateFile, TempDir};

use std::path::{Path, PathBuf};
use std::process::Command;

/// The path of `relative` under `../shared`, the folder of fixtures and reference data that sits beside the
/// repository. Fails with a clear message when `../shared` is missing.
///
/// ```
/// let errors = gm_testkit::shared("fixtures/github-models/errors");
/// assert!(errors.ends_with("shared/fixtures/github-models/errors"));
/// ```
pub fn shared(relative: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    assert!(root.is_dir(), "{}: shared/ must sit beside the repository (fixtures and reference data)", root.display());
    root.join(relative)
}

/// The path of `relative` in this repository, such as `docs/examples/quickstart.prompt.yml`.
///
/// ```
/// assert!(gm_testkit::repo("docs/examples/quickstart.prompt.yml").is_file());
/// ```
pub fn repo(relative: &str) -> PathBuf {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("gm-testkit sits in crates/");
    crates.parent().expect("crates/ sits in the repository").join(relative)
}

/// The bytes of the file at `relative` under `../shared`.
pub fn read_shared(relative: &str) -> Vec<u8> {
    let path = shared(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A command that runs the test `name` of the running test binary, and only it, in a child process: give it
/// what the child needs (`.env(..)`) and run it. The child test is `#[ignore]`d (it runs only for its parent),
/// so the command includes ignored tests.
pub fn child_test(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the running test binary"));
    cmd.args(["--exact", name, "--include-ignored", "--quiet", "--test-threads=1"]);
    cmd
}
