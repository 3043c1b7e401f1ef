//! Turning the global flags and the environment into the library's configuration: the only place that reads
//! the environment or runs `gh`.

use std::path::PathBuf;
use std::process::Command;

use gm_app::{CacheSettings, LimitsSettings, Session, SessionConfig};
use gm_http::auth::{self, Resolution};
use gm_limits::Margin;

use crate::cli::Global;

/// Reads an environment variable; the CLI is the only place that does.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs `gh auth token`, quietly; `None` when gh is missing or not logged in.
fn gh_auth_token() -> Option<String> {
    let out = Command::new("gh").args(["auth", "token"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|t| !t.is_empty())
}

/// Resolves the provider and credential from the flags and the environment.
fn resolve(global: &Global) -> Resolution {
    auth::resolve(global.provider, &env_var, &gh_auth_token)
}

/// The folder of the state file: `--data-dir`/`GM_DATA_DIR`, else `$XDG_DATA_HOME/gm`, else
/// `~/.local/share/gm`.
fn data_dir(global: &Global) -> PathBuf {
    if let Some(d) = &global.data_dir {
        return d.clone();
    }
    if let Some(x) = env_var("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("gm");
    }
    match env_var("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/gm"),
        None => PathBuf::from(".gm"),
    }
}

/// The transit-time margin the CLI adds to every window: 100 ms plus 0.1 % of the window.
pub const CLI_MARGIN: Margin = Margin { fixed: std::time::Duration::from_millis(100), ppm: 1000 };

/// The configuration of a command: the provider and credential resolved from the flags and the environment,
/// and the state in the data folder. `caches` says whether the command caches answers (before `--no-cache`).
pub fn config(global: &Global, caches: bool) -> SessionConfig {
    SessionConfig {
        base_url: global.base_url.clone(),
        org: global.org.clone(),
        cache: CacheSettings { enabled: caches && !global.no_cache, ttl: global.cache_ttl, refresh: global.refresh },
        ..state_config(global)
    }
    .resolved(resolve(global))
}

/// The configuration of a command that only reads the state file: no provider is resolved, so neither the
/// environment's credentials nor `gh` are consulted.
pub fn state_config(global: &Global) -> SessionConfig {
    SessionConfig {
        limits: LimitsSettings {
            spec: global.limits.clone(),
            file: global.limits_config.clone(),
            plan: global.plan,
            // Requests from several processes each open their own connection, so the time between admission
            // and arrival at the server can reach tens of milliseconds on a busy machine; windows are
            // lengthened by this much so the server's count agrees. A `margin=` in the spec or file overrides it.
            margin: Some(CLI_MARGIN),
        },
        max_wait: global.max_wait,
        cache: CacheSettings { enabled: false, ..CacheSettings::default() },
        data_dir: Some(data_dir(global)),
        redis_url: global.redis.clone(),
        ..SessionConfig::default()
    }
}

/// A session for `config` whose notices are printed on standard error as they arise.
pub fn open(config: SessionConfig) -> Session {
    Session::new(config).on_notice(|n| eprintln!("{}: {n}", if n.is_warning() { "warning" } else { "note" }))
}
