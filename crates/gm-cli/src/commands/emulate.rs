//! `gm emulate`: a GitHub-Models-compatible server on loopback until Ctrl-C.

use std::process::ExitCode;

use anyhow::{Context, Result};
use gm_emulator::{Emulator, EmulatorConfig, EmulatorLimits, Window};

use crate::cli::EmulateArgs;
use crate::exit::usage;

/// Runs `gm emulate`.
pub async fn run(args: EmulateArgs) -> Result<ExitCode> {
    if !(args.time_scale.is_finite() && args.time_scale > 0.0) {
        return Err(usage(format!("--time-scale {} must be a positive number, e.g. 30", args.time_scale)));
    }
    let catalog_tiers = (args.tier.as_deref() == Some("catalog")).then_some(args.time_scale);
    let limits = match args.tier.as_deref().filter(|t| *t != "catalog") {
        None if args.limit.is_some() => args.limit.as_ref().map(|spec| EmulatorLimits {
            windows: spec
                .windows
                .iter()
                .map(|w| Window {
                    limit: w.limit,
                    window: w.per,
                    daily: w.per >= std::time::Duration::from_secs(86_400),
                })
                .collect(),
            concurrency: spec.concurrency.map(|c| c as usize),
        }),
        None => None,
        Some(t) => Some(EmulatorLimits::tier(t, args.time_scale).ok_or_else(|| {
            usage(format!("--tier {t} is not a GitHub Models tier; use low, high, embeddings, custom or catalog"))
        })?),
    };
    let config = EmulatorConfig {
        limits,
        catalog_tiers,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
        retired: args.retired,
        require_auth: !args.no_auth,
        latency: std::time::Duration::from_millis(args.latency_ms),
        slots: args.slots.map(usize::from),
        token: args.token.clone(),
        timings: args.timings,
        ..Default::default()
    };
    let emu = Emulator::start(config).await.with_context(|| format!("could not listen on 127.0.0.1:{}", args.port))?;
    eprintln!(
        "gm emulator listening on {} (GitHub paths; use --provider github --base-url {}) and {} (OpenAI-style paths){}",
        emu.url(),
        emu.url(),
        emu.openai_url(),
        if args.retired { "; answering 410 everywhere (retired)" } else { "" }
    );
    match args.tier.as_deref() {
        Some("catalog") => eprintln!(
            "enforcing each model's catalog tier (free plan) per token and model, time scaled by {}",
            args.time_scale
        ),
        Some(t) => eprintln!("enforcing the {t} tier per token and model, time scaled by {}", args.time_scale),
        None => {}
    }
    if let Some(spec) = &args.limit {
        eprintln!("enforcing {spec} per token and model");
    }
    eprintln!(
        "admin: GET {0}/_emulator/stats, POST {0}/_emulator/faults, POST {0}/_emulator/reset; Ctrl-C stops",
        emu.url()
    );
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    emu.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
