//! The subcommands, one file each: arguments, then the library call, then rendering.

pub mod auth;
pub mod bench;
pub mod cache;
pub mod config;
pub mod emulate;
pub mod eval;
pub mod init;
pub mod limits;
pub mod models;
pub mod run;
pub mod runs;
pub mod score;
pub mod serve;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::{AuthCommand, CacheCommand, Cli, Command, ConfigCommand, LimitsCommand, ModelsCommand, RunsCommand};

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Models(ModelsCommand::List { json }) => models::list(&cli.global, json).await,
        Command::Models(ModelsCommand::View { model, json }) => models::view(&cli.global, &model, json).await,
        Command::Run(args) => run::run(&cli.global, args).await,
        Command::Auth(AuthCommand::Status { json }) => auth::status(&cli.global, json),
        Command::Emulate(args) => emulate::run(args).await,
        Command::Serve(args) => serve::run(&cli.global, *args).await,
        Command::Eval(args) => eval::run(&cli.global, args).await,
        Command::Bench(args) => bench::run(&cli.global, args).await,
        Command::Score(args) => score::run(&args),
        Command::Cache(CacheCommand::Stats { json }) => cache::stats(&cli.global, json),
        Command::Cache(CacheCommand::Clear) => cache::clear(&cli.global),
        Command::Cache(CacheCommand::Export { file }) => cache::export(&cli.global, &file),
        Command::Cache(CacheCommand::Import { file }) => cache::import(&cli.global, &file),
        Command::Config(ConfigCommand::Show { json }) => config::show(&cli.global, json),
        Command::Init(args) => init::run(&cli.global, args).await,
        Command::Runs(RunsCommand::List { json }) => runs::list(&cli.global, json),
        Command::Runs(RunsCommand::Show { id, json, html, baseline }) => {
            runs::show(&cli.global, id, json, html.as_deref(), baseline)
        }
        Command::Runs(RunsCommand::Compare { a, b, json }) => runs::compare(&cli.global, a, b, json),
        Command::Limits(LimitsCommand::Status { json }) => limits::status(&cli.global, json),
        Command::Limits(LimitsCommand::Reset { key }) => limits::reset(&cli.global, key.as_deref()),
    }
}

/// A token that Ctrl-C stops, for a run to stop at: the first Ctrl-C stops gently (no new case starts; the
/// cases in flight finish and are recorded, within [`gm_app::STOP_GRACE`]), a second one at once.
pub(crate) fn ctrl_c_cancels() -> gm_app::Cancel {
    let cancel = gm_app::Cancel::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "\nstopping: no new test case starts; the cases in flight finish and are recorded (at most {}s). \
             Press Ctrl-C again to stop at once",
            gm_app::STOP_GRACE.as_secs()
        );
        on_signal.stop(gm_app::STOP_GRACE);
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping now; the cases in flight are dropped and run again on resume");
            on_signal.cancel();
        }
    });
    cancel
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// Writes a report whole or not at all (see [`gm_eval::report::write_atomically`]).
pub(crate) fn write_atomically(
    path: &std::path::Path,
    render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    gm_eval::report::write_atomically(path, render).with_context(|| format!("could not write {}", path.display()))
}
