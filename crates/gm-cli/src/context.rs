//! Turning the global flags and the environment into a client.

use std::process::Command;

use anyhow::Result;
use gm_core::ProviderKind;
use gm_http::auth::{self, Resolution};
use gm_http::Client;

use crate::cli::Global;

/// Reads an environment variable; the CLI is the only place that does.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs `gh auth token`, quietly; `None` when gh is missing or not logged in.
pub fn gh_auth_token() -> Option<String> {
    let out = Command::new("gh").args(["auth", "token"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|t| !t.is_empty())
}

/// Resolves the provider and credential from the flags and the environment.
pub fn resolve(global: &Global) -> Resolution {
    auth::resolve(global.provider, &env_var, &gh_auth_token)
}

/// Builds the client for the global flags, printing the demo notice when the demo provider answers.
pub fn client(global: &Global) -> Result<(Client, Resolution)> {
    let res = resolve(global);
    let mut b = Client::builder().provider(res.provider);
    if let Some(url) = global.base_url.clone().or(res.base_url.clone()) {
        b = b.base_url(url);
    }
    if let Some(org) = &global.org {
        b = b.org(org.clone());
    }
    if let Some(c) = &res.credential {
        b = b.credential(c.clone());
    }
    let client = b.build()?;
    if res.provider == ProviderKind::Demo {
        eprintln!("note: demo provider ({}); answers are computed offline by gm, not by a model", res.reason);
    }
    Ok((client, res))
}
