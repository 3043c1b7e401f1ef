//! The `gm` binary as a test runs it: nothing of the test's own environment that gm reads, and its output read
//! back as text, JSON and an exit code.
//!
//! ```no_run
//! # fn test() {
//! use gm_testkit::cli;
//! let data = gm_testkit::TempDir::new("doc-cli");
//! // In a test of gm-cli: `cli::gm_command(env!("CARGO_BIN_EXE_gm"))`.
//! let out = cli::gm_command("gm").env("GM_DATA_DIR", &data).args(["models", "list", "--json"]).output().unwrap();
//! assert_eq!(cli::code(&out), 0, "{}", cli::text(&out.stderr));
//! assert!(cli::json(&out).is_array());
//! # }
//! ```

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

/// Every variable of the environment that changes what `gm` does: credentials and where they are found,
/// gm's own settings, the user settings file and the default data folder, the log filter, and colour.
/// [`isolate`] removes them all, so a developer's shell never changes a test's outcome.
pub const GM_VARIABLES: &[&str] = &[
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "OPENAI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "GM_PROVIDER",
    "GM_BASE_URL",
    "GM_API_KEY",
    "GM_API_KEY_ENV",
    "GM_DATA_DIR",
    "GM_REDIS_URL",
    "GM_LIMITS",
    "GM_LIMITS_CONFIG",
    "GM_LOG",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
];

/// Removes [`GM_VARIABLES`] from `cmd`'s environment, leaves no `gh` on its `PATH` (so a credential comes
/// only from what the test sets) and no user settings file where gm looks for one (`XDG_CONFIG_HOME` names a
/// folder that does not exist). For a command that runs `gm` itself or through a shell.
pub fn isolate(cmd: &mut Command) -> &mut Command {
    for var in GM_VARIABLES {
        cmd.env_remove(var);
    }
    cmd.env("PATH", "/nonexistent").env("XDG_CONFIG_HOME", "/nonexistent")
}

/// The `gm` binary at `bin` (`env!("CARGO_BIN_EXE_gm")` in gm-cli's tests), [`isolate`]d, its standard input
/// closed. Give it its state folder (`--data-dir`, or `GM_DATA_DIR` for the commands that refuse the flag),
/// its arguments and whatever variables the test needs.
pub fn gm_command(bin: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(bin);
    isolate(&mut cmd).stdin(Stdio::null());
    cmd
}

/// Bytes a process wrote, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Standard output read as JSON; fails the test with standard error when it is not.
#[track_caller]
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stderr)))
}

/// The exit code; fails the test when a signal ended the process.
#[track_caller]
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| panic!("killed by a signal: {out:?}"))
}
