//! `gm serve`: flags and environment into a gateway configuration; the gateway itself is gm-serve.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use gm_core::ProviderKind;
use gm_serve::keys::{self, Budget};
use gm_serve::{PublicLimits, Routing, ServeConfig, ServeError, UpstreamConfig};

use crate::cli::Global;
use crate::context;
use crate::exit::usage;

/// `gm serve`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  gm serve                                   # the demo provider on 127.0.0.1:8080\n  \
gm --provider openai-compatible --base-url http://localhost:11434/v1 serve   # every model of one upstream\n  \
gm serve --config gateway.toml --port 9000  # routes, fallbacks and limits from a file (docs/serve.md)\n  \
gm serve keys create --name ci --limits 60/1m --budget requests=1000,usd=5/1d\n  \
gm serve --host 0.0.0.0 --public --visitor-limits 5/1m,50/1d"
)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub keys: Option<ServeCommand>,
    /// The address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port to listen on (0 picks a free one)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// A routing file (TOML): upstreams, credentials by variable name, routes with fallbacks, limits
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve keyless visitors, each within --visitor-limits and all within --public-limits
    #[arg(long)]
    pub public: bool,
    /// Limits for each public visitor (by client address)
    #[arg(long, value_name = "SPEC", default_value = gm_serve::DEFAULT_VISITOR_LIMITS, value_parser = parse_spec)]
    pub visitor_limits: gm_limits::LimitSpec,
    /// Limits for all public visitors together
    #[arg(long, value_name = "SPEC", default_value = gm_serve::DEFAULT_PUBLIC_LIMITS, value_parser = parse_spec)]
    pub public_limits: gm_limits::LimitSpec,
    /// Take a visitor's address from X-Forwarded-For (only behind a proxy that sets it)
    #[arg(long)]
    pub trust_proxy: bool,
    /// How long requests in flight may finish after SIGINT or SIGTERM
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// No access log on standard error
    #[arg(long)]
    pub no_access_log: bool,
}

/// `gm serve keys …`.
#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// Client keys: create, list, revoke
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `gm serve keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key; it is printed once, alone on standard output, and stored only as a hash
    Create {
        /// A name for logs, metrics and `keys list`
        #[arg(long)]
        name: String,
        /// The key's own limits, e.g. 60/1m,1000/1d,concurrency=4
        #[arg(long, value_name = "SPEC", value_parser = parse_spec)]
        limits: Option<gm_limits::LimitSpec>,
        /// Its budget, e.g. requests=1000,tokens=200000,usd=5/1d
        #[arg(long, value_name = "BUDGET")]
        budget: Option<String>,
    },
    /// List the keys (never the keys themselves)
    List {
        /// As JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or name; it is refused from its next request on, in every replica
    Revoke {
        /// The key's id or name
        key: String,
    },
}

fn parse_spec(s: &str) -> Result<gm_limits::LimitSpec, String> {
    gm_limits::LimitSpec::parse(s).map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    gm_limits::parse_duration(s).map_err(|e| e.to_string())
}

fn serve_err(e: ServeError) -> anyhow::Error {
    match e {
        ServeError::Config(_) | ServeError::MissingCredential { .. } | ServeError::Exposed { .. } => {
            usage(e.to_string())
        }
        other => anyhow::Error::new(other),
    }
}

/// The upstreams: the routing file's; else the provider of --provider/--base-url; else the demo provider.
fn routing(global: &Global, args: &ServeArgs) -> Result<Routing> {
    if let Some(file) = &args.config {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("could not read the routing file {}", file.display()))?;
        return Routing::from_toml(&text, &context::env_var).map_err(|e| usage(format!("{}: {e}", file.display())));
    }
    if global.provider.is_none() && global.base_url.is_none() {
        return Ok(Routing::demo());
    }
    // The provider, base URL and credential resolved as every command resolves them.
    let res = context::config(global, false)?;
    let provider = global.provider.unwrap_or(ProviderKind::OpenAiCompatible);
    let mut up = UpstreamConfig::new(provider.as_str(), provider);
    up.base_url = global.base_url.clone().or(res.base_url);
    up.credential = if global.provider.is_some() { res.credential } else { None };
    up.org = global.org.clone();
    Ok(Routing::single(up))
}

/// The gateway's configuration from the flags.
fn config(global: &Global, args: &ServeArgs) -> Result<ServeConfig> {
    let mut config = ServeConfig::new(routing(global, args)?);
    config.addr = SocketAddr::new(args.host, args.port);
    // The limits, waits, cache lifetime and state file of the settings and flags, as every command reads them.
    let session = context::open(context::state_config(global)?);
    config.limits = session.limits_config()?;
    config.max_wait = session.config().max_wait;
    config.cache = !global.no_cache;
    config.cache_ttl = session.config().cache.ttl;
    config.redis = session.config().redis_url.clone();
    config.state_file = session.state_file()?;
    config.trust_proxy = args.trust_proxy;
    config.grace = args.grace;
    if args.no_access_log {
        config.log = gm_serve::LogTarget::Off;
    }
    if args.public {
        config.public = Some(PublicLimits { visitor: args.visitor_limits.clone(), global: args.public_limits.clone() });
    }
    Ok(config)
}

/// Runs `gm serve` or `gm serve keys …`.
pub async fn run(global: &Global, args: ServeArgs) -> Result<ExitCode> {
    if let Some(ServeCommand::Keys(cmd)) = args.keys {
        return keys_command(global, cmd);
    }
    let config = config(global, &args)?;
    let gateway = gm_serve::Gateway::bind(config).await.map_err(serve_err)?;
    eprintln!("gm serve: listening on http://{}", gateway.local_addr());
    gateway.run(gm_serve::shutdown_signal()).await.map_err(serve_err)?;
    eprintln!("gm serve: stopped");
    Ok(ExitCode::SUCCESS)
}

fn keys_command(global: &Global, cmd: KeysCommand) -> Result<ExitCode> {
    let state = match &global.redis {
        Some(_) => None,
        None => context::open(context::state_config(global)?).state_file()?,
    };
    let store = keys::open_store(state.as_deref(), global.redis.as_deref()).map_err(serve_err)?;
    match cmd {
        KeysCommand::Create { name, limits, budget } => {
            let budget = budget.map(|b| Budget::parse(&b)).transpose().map_err(serve_err)?;
            let key = keys::generate(&name, limits, budget).map_err(serve_err)?;
            store.insert(&key.record).map_err(serve_err)?;
            eprintln!("created key {} ({name}); it is shown once, below, and stored only as a hash", key.record.id);
            println!("{}", key.secret);
        }
        KeysCommand::List { json } => {
            let all = store.list().map_err(serve_err)?;
            if json {
                let view: Vec<_> = all
                    .iter()
                    .map(|k| {
                        serde_json::json!({"id": k.id, "name": k.name, "limits": k.limits.as_ref().map(|l| l.to_string()),
                            "budget": k.budget.as_ref().map(|b| b.to_string()), "created": k.created, "revoked": k.revoked})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("{:<14} {:<20} {:<8} {:<28} BUDGET", "ID", "NAME", "STATE", "LIMITS");
                for k in all {
                    let limits = k.limits.as_ref().map(|l| l.to_string()).unwrap_or_else(|| "-".into());
                    let budget = k.budget.as_ref().map(|b| b.to_string()).unwrap_or_else(|| "-".into());
                    let state = if k.revoked.is_some() { "revoked" } else { "active" };
                    println!("{:<14} {:<20} {:<8} {:<28} {budget}", k.id, k.name, state, limits);
                }
            }
        }
        KeysCommand::Revoke { key } => {
            let k = store.revoke(&key).map_err(|e| match e {
                ServeError::UnknownKey(_) => usage(e.to_string()),
                other => anyhow::Error::new(other),
            })?;
            eprintln!("revoked key {} ({})", k.id, k.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
