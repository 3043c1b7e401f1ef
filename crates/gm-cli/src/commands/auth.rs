//! `gm auth status`: the provider, where its credential comes from (redacted), and the base URL.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use gm_core::ProviderKind;

use crate::cli::Global;
use crate::commands::print_json;
use crate::context;

/// Runs `gm auth status`.
pub fn status(global: &Global, json: bool) -> Result<ExitCode> {
    let status = context::open(context::config(global, false)?).auth_status();
    if json {
        print_json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "Provider:    {} ({})", status.provider, status.reason)?;
    writeln!(out, "Base URL:    {}", status.base_url.as_deref().unwrap_or("(none: pass --base-url)"))?;
    match &status.credential {
        Some(c) => writeln!(out, "Credential:  {} from {}", c.token, c.source)?,
        None if status.credential_required => writeln!(out, "Credential:  none found; {}", status.credential_hint)?,
        None if status.provider == ProviderKind::Demo => writeln!(out, "Credential:  none needed")?,
        // A server of one's own may or may not want a key; it cannot be told before asking it.
        None => writeln!(out, "Credential:  none set; this server may need one: {}", status.credential_hint)?,
    }
    if status.provider == ProviderKind::Github {
        writeln!(
            out,
            "Note:        GitHub Models was retired on {}; its API answers 410. Use --provider azure, openai or openai-compatible.",
            gm_http::GITHUB_MODELS_RETIRED_ON
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
