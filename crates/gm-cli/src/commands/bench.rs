//! `gm bench`: every model on every task to the run store, as a table, JSON and a page with charts.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use std::sync::{Mutex, PoisonError};

use gm_app::{BenchRun, BoxError, CaseFinished, Observer, Outcome, Resume, RunStarted};

use crate::cli::{BenchArgs, Global};
use crate::commands::runs::cells;
use crate::commands::{ctrl_c_cancels, print_json, write_atomically};
use crate::context;
use crate::progress::BenchBars;

/// Runs `gm bench` (and `gm bench --list-tasks`).
pub async fn run(global: &Global, args: BenchArgs) -> Result<ExitCode> {
    if args.list_tasks {
        let tasks = context::open(context::state_config(global)?).task_catalog(args.tasks_dir.as_deref())?;
        let mut out = std::io::stdout().lock();
        // Columns as wide as their longest value, so that long task names and scorer lists keep them aligned.
        let scorers: Vec<String> = tasks.iter().map(|t| t.scorers.join(", ")).collect();
        let name_w = tasks.iter().map(|t| t.name.chars().count()).chain(["TASK".len()]).max().unwrap_or(0);
        let scorers_w = scorers.iter().map(|s| s.chars().count()).chain(["SCORERS".len()]).max().unwrap_or(0);
        writeln!(out, "{:<name_w$}  {:>5}  {:<scorers_w$}  DESCRIPTION", "TASK", "ITEMS", "SCORERS")?;
        for (info, scorers) in tasks.iter().zip(&scorers) {
            writeln!(out, "{:<name_w$}  {:>5}  {:<scorers_w$}  {}", info.name, info.items, scorers, info.description)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let run = BenchRun {
        tasks_dir: args.tasks_dir.clone(),
        metrics: args.metrics.clone(),
        allow_code_exec: args.allow_code_exec,
        limit_items: args.limit_items,
        concurrency: args.concurrency,
        serial: args.serial,
        resume: args.resume,
        max_requests: args.max_requests,
        prices: args.prices.clone(),
        // The baseline is compared only for the page.
        baseline: args.html.as_ref().and(args.baseline),
        ..BenchRun::new(args.models.clone(), args.tasks.clone())
    };
    let mut config = context::config(global, true)?;
    config.recording = context::recording(&args.recorded);
    let session = context::open(config);
    let resume_hint = |recorded: usize, total: usize, run_id: i64| {
        format!(
            "{recorded} of {total} test cases of bench run {run_id} are recorded; the same command with --resume finishes it"
        )
    };
    let progress = Progress::default();
    let outcome = session.run_bench(&run, &progress, &ctrl_c_cancels()).await;
    progress.clear();
    let result = match outcome {
        Ok(Outcome::Finished(result)) => result,
        Ok(Outcome::Interrupted(i)) => {
            eprintln!("interrupted: {}", resume_hint(i.recorded, i.total, i.run_id));
            session.finish();
            return Ok(ExitCode::from(crate::exit::INTERRUPTED));
        }
        Err(e) => {
            if let gm_app::Error::BenchStopped { run_id, recorded, total, .. } = &e {
                // A strict replay stopped by a missing answer stops there again: its error says what to do.
                if !session.replays_only() {
                    eprintln!("{}", resume_hint(*recorded, *total, *run_id));
                }
            }
            session.finish();
            return Err(e.into());
        }
    };
    session.finish();
    if let Some(path) = &args.html {
        write_atomically(path, |w| gm_eval::report::bench_html(&result.report, &cells(&result.baseline), w))?;
    }
    if args.json {
        print_json(&result.report)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_bench_table(&result.report)?;
    Ok(ExitCode::SUCCESS)
}

/// What `gm bench` shows as it runs: whether it resumes, then a bar for the whole bench and one per cell.
#[derive(Default)]
struct Progress {
    bars: Mutex<Option<BenchBars>>,
}

impl Progress {
    fn clear(&self) {
        if let Some(bars) = self.bars.lock().unwrap_or_else(PoisonError::into_inner).take() {
            bars.clear();
        }
    }
}

impl Observer for Progress {
    fn run_started(&self, run: &RunStarted) {
        match run.resume {
            Resume::Resumed => {
                eprintln!("resuming bench run {}: {} of {} test cases already done", run.run_id, run.done, run.total)
            }
            Resume::NothingToResume => {
                eprintln!("no unfinished bench run of these models and tasks; starting a new one")
            }
            Resume::New => {}
        }
        *self.bars.lock().unwrap_or_else(PoisonError::into_inner) = BenchBars::new(run);
    }

    fn case_finished(&self, case: &CaseFinished<'_>) -> Result<(), BoxError> {
        if let Some(bars) = &*self.bars.lock().unwrap_or_else(PoisonError::into_inner) {
            bars.inc(case.suite);
        }
        Ok(())
    }
}

/// The human form of a bench report: one line a cell, then the best model and the rule.
pub(crate) fn print_bench_table(report: &gm_eval::bench::BenchReport) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let demo = gm_eval::report::is_demo(&report.provider);
    if demo {
        writeln!(out, "{}", gm_eval::report::DEMO_NOTE)?;
        writeln!(out)?;
    }
    let model_w = report.cells.iter().map(|c| c.model.len()).max().unwrap_or(0).max("MODEL".len());
    let task_w = report.cells.iter().map(|c| c.task.len()).max().unwrap_or(0).max("TASK".len());
    writeln!(
        out,
        "{:<model_w$}  {:<task_w$}  {:>8}  {:>15}  {:>9}  {:>10}  {:>9}  {:>9}  {:>10}  {:>6}",
        "MODEL", "TASK", "QUALITY", "95% INTERVAL", "P50", "QUEUE P50", "TOK/S REQ", "TOK/S WALL", "COST", "CACHED"
    )?;
    for c in &report.cells {
        let m = &c.metrics;
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |l| format!("{l:.0} ms"));
        let rate = |v: Option<f64>| v.map_or("-".to_string(), |t| format!("{t:.0}"));
        writeln!(
            out,
            "{:<model_w$}  {:<task_w$}  {:>8.3}  {:>15}  {:>9}  {:>10}  {:>9}  {:>9}  {:>10}  {:>6}",
            c.model,
            c.task,
            m.quality,
            format!("[{:.2}, {:.2}]", m.quality_ci95[0], m.quality_ci95[1]),
            ms(m.latency_p50_ms),
            ms(m.queue_p50_ms),
            rate(m.tokens_per_second),
            rate(m.tokens_per_second_wall),
            match m.cost_usd {
                Some(c) => format!("${c:.5}"),
                None if demo => "n/a (demo)".into(),
                None => "-".into(),
            },
            m.cache_hits,
        )?;
    }
    let s = &report.summary;
    writeln!(out)?;
    writeln!(
        out,
        "P50: service time (the server's own figure where it gives one); QUEUE P50: the wait in gm before sending; \
         TOK/S REQ: output tokens over latency, per request; TOK/S WALL: output tokens over the bench's wall time"
    )?;
    let estimated: u64 = report.cells.iter().map(|c| c.metrics.tokens_estimated).sum();
    if estimated > 0 {
        writeln!(
            out,
            "The server sent no usage for {estimated} model calls: their tokens are estimated with the tokenizer"
        )?;
    }
    let cached: u64 = report.cells.iter().map(|c| c.metrics.cache_hits).sum();
    if cached > 0 {
        writeln!(
            out,
            "{cached} answers came from the response cache (no latency, no cost); --refresh asks the provider again"
        )?;
    }
    writeln!(out, "Best model: {} ({})", s.best_model.as_deref().unwrap_or("-"), s.best_model_reason)?;
    writeln!(out, "Rule: {}", s.best_model_rule)?;
    if let Some(id) = report.run_id {
        writeln!(out, "Run {id}; `gm runs show {id}` shows it again")?;
    }
    Ok(())
}
