//! `gm config show`: every setting in effect and where it came from, secrets redacted.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::cli::Global;
use crate::commands::print_json;
use crate::context;

/// What `gm config show --json` prints.
#[derive(Serialize)]
struct Shown<'a> {
    project_file: Option<&'a std::path::Path>,
    user_file: Option<&'a std::path::Path>,
    provider_reason: &'a str,
    settings: &'a [gm_app::settings::Shown],
}

/// Runs `gm config show`.
pub fn show(global: &Global, json: bool) -> Result<ExitCode> {
    let effective = context::settings(global)?;
    let resolution = effective.resolve_provider(&context::env_var, &context::gh_auth_token);
    let rows = effective.show(&resolution);
    if json {
        print_json(&Shown {
            project_file: effective.project_file.as_deref(),
            user_file: effective.user_file.as_deref(),
            provider_reason: &resolution.reason,
            settings: &rows,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    let file =
        |f: &Option<std::path::PathBuf>, none: &str| f.as_ref().map_or(none.to_string(), |p| p.display().to_string());
    writeln!(out, "Project file:  {}", file(&effective.project_file, "none (no gm.toml here or in a folder above)"))?;
    writeln!(out, "User file:     {}", file(&effective.user_file, "none"))?;
    writeln!(out, "Provider:      {}", resolution.reason)?;
    writeln!(out)?;
    let key_w = rows.iter().map(|r| r.key.len()).max().unwrap_or(0).max("SETTING".len());
    let value_w = rows.iter().map(|r| r.value.as_deref().map_or(1, str::len)).max().unwrap_or(0).max("VALUE".len());
    writeln!(out, "{:<key_w$}  {:<value_w$}  FROM", "SETTING", "VALUE")?;
    for r in &rows {
        writeln!(out, "{:<key_w$}  {:<value_w$}  {}", r.key, r.value.as_deref().unwrap_or("-"), r.origin)?;
    }
    Ok(ExitCode::SUCCESS)
}
