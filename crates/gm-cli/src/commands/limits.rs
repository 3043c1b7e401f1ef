//! `gm limits status | reset`: the rate-limit keys counted in the state file.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;
use crate::commands::print_json;
use crate::context;

/// Runs `gm limits status`.
pub fn status(global: &Global, json: bool) -> Result<ExitCode> {
    let status = context::open(context::state_config(global)?).limits_status(std::time::SystemTime::now())?;
    if json {
        print_json(&status.keys)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    if status.keys.is_empty() {
        writeln!(
            out,
            "No requests counted in {}: requests are counted where rate limits apply, and the demo provider has \
             none unless --limits gives some.",
            status.state_file.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let secs = |s: f64| gm_limits::format_duration(std::time::Duration::from_secs_f64(s.ceil()));
    for k in &status.keys {
        writeln!(out, "{}  (credential {})", k.key, k.credential)?;
        writeln!(out, "  limits:   {}", if k.limits.is_empty() { "none configured" } else { &k.limits })?;
        if let Some(margin) = &k.margin {
            writeln!(out, "  margin:   each window counted {margin} longer, for the time requests spend in transit")?;
        }
        let q = &k.requests;
        writeln!(
            out,
            "  requests: {} in the last minute, {} in the last hour, {} in the last day",
            q.last_minute, q.last_hour, q.last_day
        )?;
        for w in &k.windows {
            let frees = w.next_frees_in_s.map(|s| format!(", the oldest frees in {}", secs(s))).unwrap_or_default();
            writeln!(out, "  window {}/{}: {} used, {} remaining{frees}", w.limit, w.per, w.used, w.remaining)?;
        }
        if let Some(b) = &k.blocked {
            let why = if b.daily_quota_spent { "the day's quota is spent" } else { "the server asked to wait" };
            writeln!(out, "  blocked:  {why}; frees in {}", secs(b.for_s))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `gm limits reset [KEY]`.
pub fn reset(global: &Global, which: Option<&str>) -> Result<ExitCode> {
    let n = context::open(context::state_config(global)?).reset_limits(which)?;
    eprintln!("reset {n} rate-limit {}", if n == 1 { "key" } else { "keys" });
    Ok(ExitCode::SUCCESS)
}
