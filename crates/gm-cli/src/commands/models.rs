//! `gm models list` and `gm models view`: the provider's catalog.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;
use crate::commands::print_json;
use crate::context;
use crate::progress::AfterASecond;

/// Runs `gm models list`: the chat models as a table, or every model as JSON.
pub async fn list(global: &Global, json: bool) -> Result<ExitCode> {
    let session = context::open(context::config(global, false)?);
    let waiting = AfterASecond::spinner(format!("reading the {} catalog", session.config().provider));
    let catalog = session.models().await?;
    drop(waiting);
    if json {
        print_json(&*catalog.models)?;
        return Ok(ExitCode::SUCCESS);
    }
    let chat = catalog.chat_models();
    let width = chat.iter().map(|m| m.id.len()).max().unwrap_or(2).max(2);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<width$}  DISPLAY NAME", "ID")?;
    for m in &chat {
        writeln!(out, "{:<width$}  {}", m.id, m.name.as_deref().unwrap_or(""))?;
    }
    eprintln!("Showing {} available chat models from {}", chat.len(), catalog.provider);
    Ok(ExitCode::SUCCESS)
}

/// Runs `gm models view MODEL`: one catalog entry, as rows or as JSON.
pub async fn view(global: &Global, model: &str, json: bool) -> Result<ExitCode> {
    let session = context::open(context::config(global, false)?);
    let waiting = AfterASecond::spinner(format!("reading the {} catalog", session.config().provider));
    let m = session.model(model).await?;
    drop(waiting);
    if json {
        print_json(&m)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    let row = |out: &mut std::io::StdoutLock, k: &str, v: String| -> std::io::Result<()> {
        if v.is_empty() {
            Ok(())
        } else {
            writeln!(out, "{k:<22}{v}")
        }
    };
    row(&mut out, "ID:", m.id.clone())?;
    row(&mut out, "Display name:", m.name.clone().unwrap_or_default())?;
    row(&mut out, "Publisher:", m.publisher.clone().unwrap_or_default())?;
    row(&mut out, "Registry:", m.registry.clone().unwrap_or_default())?;
    row(&mut out, "Version:", m.version.clone().unwrap_or_default())?;
    row(&mut out, "Summary:", m.summary.clone().unwrap_or_default())?;
    row(&mut out, "Rate limit tier:", m.rate_limit_tier.clone().unwrap_or_default())?;
    if let Some(l) = &m.limits {
        let f = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        row(
            &mut out,
            "Context:",
            format!("{} input tokens, {} output tokens", f(l.max_input_tokens), f(l.max_output_tokens)),
        )?;
    }
    row(&mut out, "Capabilities:", m.capabilities.join(", "))?;
    row(&mut out, "Input modalities:", m.supported_input_modalities.join(", "))?;
    row(&mut out, "Output modalities:", m.supported_output_modalities.join(", "))?;
    row(&mut out, "Tags:", m.tags.join(", "))?;
    row(&mut out, "URL:", m.html_url.clone().unwrap_or_default())?;
    Ok(ExitCode::SUCCESS)
}
