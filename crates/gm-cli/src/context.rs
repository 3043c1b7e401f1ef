//! Turning the global flags, the environment and the settings files into the library's configuration: the
//! only place that reads the environment or runs `gh`.

use std::process::Command;

use anyhow::{Context, Result};
use gm_app::settings::{self, Effective, Settings, Sources};
use gm_app::{Session, SessionConfig};
use gm_limits::Margin;

use crate::cli::{Global, RecordArgs};

/// Reads an environment variable; the CLI is the only place that does.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs `gh auth token`, quietly; `None` when gh is missing or not logged in.
pub fn gh_auth_token() -> Option<String> {
    let out = Command::new("gh").args(["auth", "token"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|t| !t.is_empty())
}

/// The transit-time margin the CLI adds to every window: 100 ms plus 0.1 % of the window.
pub const CLI_MARGIN: Margin = Margin { fixed: std::time::Duration::from_millis(100), ppm: 1000 };

/// What the flags set, as the highest layer of the settings (a flag left out sets nothing).
fn flags(global: &Global) -> Settings {
    let mut s = Settings {
        provider: global.provider,
        base_url: global.base_url.clone(),
        org: global.org.clone(),
        api_key_env: global.api_key_env.clone(),
        data_dir: global.data_dir.clone(),
        redis_url: global.redis.clone(),
        max_wait: global.max_wait,
        ..Settings::default()
    };
    s.limits.spec = global.limits.clone();
    s.limits.file = global.limits_config.clone();
    s.limits.plan = global.plan;
    s.cache.ttl = global.cache_ttl;
    if global.no_cache {
        s.cache.enabled = Some(false);
    }
    s
}

/// The settings in effect: flags, environment, the project file (`--config`, else `gm.toml` from the current
/// folder upward), the user file, and the defaults.
pub fn settings(global: &Global) -> Result<Effective> {
    let cwd = std::env::current_dir().context("could not read the current folder")?;
    let sources = Sources { project_file: global.config.clone(), ..Sources::new(flags(global), &env_var, &cwd) };
    Ok(settings::load(&sources)?)
}

/// The CLI's own defaults on top of the library's: the margin below, `--refresh` and `--server-concurrency`.
fn cli_defaults(global: &Global, mut config: SessionConfig) -> SessionConfig {
    // Requests from several processes each open their own connection, so the time between admission and
    // arrival at the server can reach tens of milliseconds on a busy machine; windows are lengthened by this
    // much so the server's count agrees. A `margin` in the spec, the limits file or gm.toml overrides it.
    if config.limits.margin.is_none() {
        config.limits.margin = Some(CLI_MARGIN);
    }
    config.cache.refresh = global.refresh;
    if let Some(bytes) = global.max_response_bytes {
        config.max_response_bytes = bytes;
    }
    if let Some(timeout) = global.timeout {
        config.timeout = timeout;
    }
    config.limits.server_concurrency = global.server_concurrency.map(usize::from);
    config
}

/// The configuration of a command: the provider and credential resolved from the settings and the
/// environment, and the state in the data folder. `caches` says whether the command caches answers (before
/// `--no-cache` and the settings' `cache.enabled`).
pub fn config(global: &Global, caches: bool) -> Result<SessionConfig> {
    let mut config = cli_defaults(global, settings(global)?.session_config(&env_var, &gh_auth_token));
    config.cache.enabled &= caches;
    Ok(config)
}

/// The configuration of a command that only reads the state file: no provider is resolved, so neither the
/// environment's credentials nor `gh` are consulted.
pub fn state_config(global: &Global) -> Result<SessionConfig> {
    let mut config = cli_defaults(global, settings(global)?.state_config());
    config.cache.enabled = false;
    Ok(config)
}

/// The configuration of a server whose upstreams are configured apart: its state and cache from the settings,
/// and no provider resolved.
pub fn serving_config(global: &Global) -> Result<SessionConfig> {
    Ok(cli_defaults(global, settings(global)?.state_config()))
}

/// The recorded answers file of `--record`, `--replay` and `--record-missing`, if any.
pub fn recording(args: &RecordArgs) -> Option<gm_app::Recording> {
    use gm_http::RecordMode;
    match (&args.record, &args.replay) {
        (Some(path), _) => Some(gm_app::Recording { path: path.clone(), mode: RecordMode::Record }),
        (None, Some(path)) => Some(gm_app::Recording {
            path: path.clone(),
            mode: if args.record_missing { RecordMode::ReplayRecordMissing } else { RecordMode::Replay },
        }),
        (None, None) => None,
    }
}

/// The demo provider's notice, held until the command has printed its result (see [`open`]).
static DEMO_NOTICE: std::sync::Mutex<Option<gm_app::Notice>> = std::sync::Mutex::new(None);

/// A session for `config` whose notices are printed on standard error as they arise, but the demo provider's:
/// that one is printed by [`print_held_notice`] when the command ends, below its result or its error, where a
/// reader looks last (at the start it would scroll away above a long report).
pub fn open(config: SessionConfig) -> Session {
    Session::new(config).on_notice(|n| match n {
        gm_app::Notice::DemoProvider { .. } => {
            *DEMO_NOTICE.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(n.clone());
        }
        _ => print_notice(n),
    })
}

/// Prints a notice as `warning:` or `note:`.
fn print_notice(n: &gm_app::Notice) {
    if n.is_warning() {
        crate::style::warning(n);
    } else {
        crate::style::note(n);
    }
}

/// Prints the demo provider's notice held by a session of this command, if any, on a line of its own.
pub fn print_held_notice() {
    if let Some(n) = DEMO_NOTICE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
        print_notice(&n);
    }
}
