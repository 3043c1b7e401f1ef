//! `gm cache stats | clear`: the response cache in the state file (or the Redis server).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;
use crate::commands::print_json;
use crate::context;

/// Runs `gm cache stats`.
pub fn stats(global: &Global, json: bool) -> Result<ExitCode> {
    let report = context::open(context::state_config(global)?).cache_stats()?;
    if json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &report.persistent;
    let mut out = std::io::stdout().lock();
    writeln!(out, "Cache file:   {}", report.path.display())?;
    if let Some(r) = &report.redis {
        writeln!(
            out,
            "Redis:        {} entries, {} bytes (shared; the figures below are this machine's)",
            r.entries, r.bytes
        )?;
    }
    writeln!(out, "Entries:      {}", s.entries)?;
    writeln!(out, "Bytes:        {}", s.bytes)?;
    writeln!(out, "Hits:         {}", s.hits)?;
    writeln!(out, "Misses:       {}", s.misses)?;
    writeln!(out, "Hit rate:     {:.1}%", report.hit_rate * 100.0)?;
    writeln!(out, "Inserts:      {}", s.inserts)?;
    writeln!(out, "Expirations:  {}", s.expirations)?;
    writeln!(out, "Evictions:    {}", s.evictions)?;
    writeln!(out, "(the memory tier lives in each process; these totals cover every run that used this file)")?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `gm cache clear`.
pub fn clear(global: &Global) -> Result<ExitCode> {
    let cleared = context::open(context::state_config(global)?).clear_cache()?;
    match &cleared.from {
        Some(path) => eprintln!("removed {} cached answers from {}", cleared.removed, path.display()),
        None => eprintln!("removed {} cached answers from the Redis server of --redis", cleared.removed),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `gm cache export FILE`.
pub fn export(global: &Global, file: &std::path::Path) -> Result<ExitCode> {
    let moved = context::open(context::state_config(global)?).export_cache(file)?;
    eprintln!("wrote {} cached answers from {} to {}", moved.answers, from(&moved), moved.file.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs `gm cache import FILE`.
pub fn import(global: &Global, file: &std::path::Path) -> Result<ExitCode> {
    let moved = context::open(context::state_config(global)?).import_cache(file)?;
    eprintln!("added {} answers from {} to {}", moved.answers, moved.file.display(), from(&moved));
    Ok(ExitCode::SUCCESS)
}

/// The cache an export or import used.
fn from(moved: &gm_app::Moved) -> String {
    match &moved.cache {
        Some(path) => path.display().to_string(),
        None => "the Redis server of --redis".into(),
    }
}
