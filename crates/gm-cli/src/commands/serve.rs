//! `gm serve`: flags and environment into the gateway's configuration and session; the gateway is gm-serve.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use gm_app::{Notice, SessionConfig};
use gm_serve::keys::{self, Budget};
use gm_serve::ui::{Dashboard, DashboardOptions};
use gm_serve::{PublicLimits, Routing, ServeConfig, UpstreamConfig};

use crate::cli::Global;
use crate::context;
use crate::exit::usage;

/// `gm serve`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  gm serve                                   # the demo provider on 127.0.0.1:8080\n  \
gm --provider openai-compatible --base-url http://localhost:11434/v1 serve   # every model of one upstream\n  \
gm serve --routes gateway.toml --port 9000  # routes, fallbacks and limits from a file (docs/serve.md)\n  \
gm serve keys create --name ci --limits 60/1m --budget requests=1000,usd=5/1d\n  \
gm serve keys create --name admin --admin    # a key that also administers the dashboard\n  \
gm serve --host 0.0.0.0 --public --visitor-limits 5/1m,50/1d\n\n\
The web dashboard (models, playground, evaluations, runs, quotas) is served at / unless --no-ui."
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
    pub routes: Option<PathBuf>,
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
    /// Serve no web dashboard at / (the API alone)
    #[arg(long)]
    pub no_ui: bool,
    /// The dashboard's task folder to offer besides the built-in tasks (as `gm bench --tasks-dir`)
    #[arg(long, value_name = "DIR")]
    pub tasks_dir: Option<PathBuf>,
    /// The dashboard's folder of .prompt.yml suites to offer
    #[arg(long, value_name = "DIR")]
    pub suites_dir: Option<PathBuf>,
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
        /// It also administers the dashboard: client keys, resetting limits, clearing the cache, larger
        /// evaluations, everyone's runs
        #[arg(long)]
        admin: bool,
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
    /// After a damaged state file's keys could not be read back: serve without keys on loopback again
    /// (only for a gateway that never had any)
    AcceptLost,
}

fn parse_spec(s: &str) -> Result<gm_limits::LimitSpec, String> {
    gm_limits::LimitSpec::parse(s).map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    gm_limits::parse_duration(s).map_err(|e| e.to_string())
}

/// Whether the flags name the one upstream to serve (else a routing file names them, or the demo answers).
fn names_an_upstream(global: &Global, args: &ServeArgs) -> bool {
    args.routes.is_none() && (global.provider.is_some() || global.base_url.is_some())
}

/// The gateway's session: its state (the data folder or Redis), its cache, the upstream limits and the longest
/// wait from the global flags. With `--provider` or `--base-url`, also the one upstream, resolved with the
/// environment's credentials like every command's; otherwise the demo provider (a routing file names its own
/// upstreams), so `gm serve` alone works on any machine.
fn session_config(global: &Global, args: &ServeArgs) -> Result<SessionConfig> {
    if names_an_upstream(global, args) {
        return context::config(global, true);
    }
    let mut config = context::serving_config(global)?;
    config.provider_reason = "gm serve without --provider, --base-url or --routes serves the demo provider".into();
    Ok(config)
}

/// The upstreams: the routing file's, else the session's one provider.
fn routing(args: &ServeArgs, session: &SessionConfig) -> Result<Routing> {
    let Some(file) = &args.routes else { return Ok(Routing::single(UpstreamConfig::of_session(session))) };
    let text = gm_app::settings::read_config_file(file)
        .with_context(|| format!("could not read the routing file {}", file.display()))?;
    Routing::from_toml(&text, &context::env_var).map_err(|e| usage(format!("{}: {e}", file.display())))
}

/// Runs `gm serve` or `gm serve keys …`.
pub async fn run(global: &Global, args: ServeArgs) -> Result<ExitCode> {
    if let Some(ServeCommand::Keys(cmd)) = args.keys {
        return keys_command(global, cmd);
    }
    let session = session_config(global, &args)?;
    let mut config = ServeConfig::new(routing(&args, &session)?);
    config.addr = SocketAddr::new(args.host, args.port);
    config.trust_proxy = args.trust_proxy;
    config.grace = args.grace;
    if args.no_access_log {
        config.log = gm_serve::LogTarget::Off;
    }
    if args.public {
        config.public = Some(PublicLimits { visitor: args.visitor_limits, global: args.public_limits });
    }
    let demo: Vec<&str> = config
        .routing
        .upstreams
        .iter()
        .filter(|u| u.provider == gm_core::ProviderKind::Demo)
        .map(|u| u.name.as_str())
        .collect();
    if !demo.is_empty() {
        let reason = match args.routes {
            Some(_) => format!("the routing file's upstream {}", demo.join(", ")),
            None => session.provider_reason.clone(),
        };
        eprintln!("note: {}", Notice::DemoProvider { reason });
    }
    let options = DashboardOptions { tasks_dir: args.tasks_dir, suites_dir: args.suites_dir };
    let dashboard = (!args.no_ui).then(|| Dashboard::new(&config, options));
    let ui = dashboard.is_some();
    let gateway = gm_serve::Gateway::bind_with(config, context::open(session), move |state| {
        dashboard.map(|d| d.router(state)).unwrap_or_default()
    })
    .await?;
    // SIGINT and SIGTERM are handled before the address is announced: a client may signal at once.
    let stop = gm_serve::shutdown_signal();
    eprintln!("gm serve: listening on http://{}", gateway.local_addr());
    if ui {
        eprintln!("gm serve: the dashboard is at http://{}/", gateway.local_addr());
    }
    gateway.run(stop).await?;
    eprintln!("gm serve: stopped");
    Ok(ExitCode::SUCCESS)
}

fn keys_command(global: &Global, cmd: KeysCommand) -> Result<ExitCode> {
    // Keys live where the gateway keeps them: in Redis when given, else in the state file.
    let session = context::open(context::state_config(global)?);
    // A damaged state file's keys are read back from it, whichever command finds it damaged.
    let store = keys::open_salvaging(&session, false)?;
    match cmd {
        KeysCommand::Create { name, limits, budget, admin } => {
            let budget = budget.map(|b| Budget::parse(&b)).transpose()?;
            let mut key = keys::generate(&name, limits, budget)?;
            key.record.admin = admin;
            store.insert(&key.record)?;
            let role = if admin { ", the dashboard's administrator" } else { "" };
            eprintln!(
                "created key {} ({name}{role}); it is shown once, below, and stored only as a hash",
                key.record.id
            );
            println!("{}", key.secret);
        }
        KeysCommand::List { json } => {
            let all = store.list()?;
            if json {
                let view: Vec<_> = all
                    .iter()
                    .map(|k| {
                        serde_json::json!({"id": k.id, "name": k.name, "admin": k.admin, "limits": k.limits.as_ref().map(|l| l.to_string()),
                            "budget": k.budget.as_ref().map(|b| b.to_string()), "created": k.created, "revoked": k.revoked})
                    })
                    .collect();
                super::print_json(&view)?;
            } else {
                println!("{:<14} {:<20} {:<7} {:<8} {:<28} BUDGET", "ID", "NAME", "ROLE", "STATE", "LIMITS");
                for k in all {
                    let limits = k.limits.as_ref().map(|l| l.to_string()).unwrap_or_else(|| "-".into());
                    let budget = k.budget.as_ref().map(|b| b.to_string()).unwrap_or_else(|| "-".into());
                    let state = if k.revoked.is_some() { "revoked" } else { "active" };
                    let role = if k.admin { "admin" } else { "client" };
                    println!("{:<14} {:<20} {:<7} {:<8} {:<28} {budget}", k.id, k.name, role, state, limits);
                }
            }
        }
        KeysCommand::Revoke { key } => {
            let k = store.revoke(&key)?;
            eprintln!("revoked key {} ({})", k.id, k.name);
        }
        KeysCommand::AcceptLost => {
            let Some(path) = session.state_file()?.filter(|_| global.redis.is_none()) else {
                return Err(usage("keys in Redis or in memory are never lost with a state file; nothing to accept"));
            };
            if keys::SqliteKeys::open(&path)?.accept_lost()? {
                eprintln!("the lost keys are forgotten: without keys, gm serve serves loopback without one again");
            } else {
                eprintln!("no keys were lost in {}; nothing changed", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
