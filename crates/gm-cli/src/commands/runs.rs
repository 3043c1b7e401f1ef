//! `gm runs list | show | compare`: the run history.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use gm_app::{RunComparison, StoredRun};
use gm_eval::report::HumanOptions;

use crate::cli::Global;
use crate::commands::bench::print_bench_table;
use crate::commands::{print_json, write_atomically};
use crate::context;
use crate::progress::AfterASecond;

/// Runs `gm runs list`.
pub fn list(global: &Global, json: bool) -> Result<ExitCode> {
    let rows = context::open(context::state_config(global)?).list_runs()?;
    if json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        writeln!(out, "No runs yet; `gm eval FILE` records one.")?;
        return Ok(ExitCode::SUCCESS);
    }
    // Columns as wide as their longest value, so long provider and model names keep the table aligned.
    let provider_w = rows.iter().map(|r| r.provider.len()).max().unwrap_or(0).max("PROVIDER".len());
    let model_w = rows.iter().map(|r| r.model.len()).max().unwrap_or(0).max("MODEL".len());
    writeln!(
        out,
        "{:>5}  {:<5}  {:<10}  {:<provider_w$}  {:>5}  {:<model_w$}  {:<16}  FILE",
        "ID", "KIND", "STATUS", "PROVIDER", "CASES", "MODEL", "STARTED"
    )?;
    for r in rows {
        let status = if r.finished_at.is_some() { "finished" } else { "unfinished" };
        let started = gm_app::utc_minutes(r.started_at);
        writeln!(
            out,
            "{:>5}  {:<5}  {:<10}  {:<provider_w$}  {:>5}  {:<model_w$}  {:<16}  {}",
            r.id, r.kind, status, r.provider, r.cases, r.model, started, r.file
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `gm runs show ID`: the run as gm eval or gm bench printed it, and with `--html` as a page (a bench
/// compared with `--baseline`).
pub fn show(global: &Global, id: i64, json: bool, html: Option<&Path>, baseline: Option<i64>) -> Result<ExitCode> {
    let session = context::open(context::state_config(global)?);
    match session.show_run(id)? {
        // gm runs show has always refused an unfinished bench; `gm bench --resume` finishes it.
        StoredRun::UnfinishedBench(_) => return Err(gm_app::Error::UnfinishedBench { id }.into()),
        StoredRun::Bench(bench) => {
            if let Some(path) = html {
                let comparisons = match baseline {
                    Some(b) => session.compare_benches(b, id)?,
                    None => Vec::new(),
                };
                write_atomically(path, |w| gm_eval::report::bench_html(&bench.report, &cells(&comparisons), w))?;
            }
            if json {
                print_json(&bench.printed)?;
            } else {
                print_bench_table(&bench.report)?;
            }
        }
        StoredRun::Eval(summary) => {
            if let Some(path) = html {
                write_atomically(path, |w| gm_eval::report::html(std::slice::from_ref(&summary), w))?;
            }
            if json {
                let mut out = std::io::stdout().lock();
                gm_eval::report::json(std::slice::from_ref(&summary), &mut out)?;
                writeln!(out)?;
            } else {
                let options = HumanOptions { color: true, stored: true };
                gm_eval::report::human_with(&summary, options, &mut anstream::stdout().lock())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The cell comparisons as the bench page takes them.
pub(crate) fn cells(c: &[gm_app::CellComparison]) -> Vec<(String, String, gm_eval::compare::Comparison)> {
    c.iter().map(|c| (c.task.clone(), c.model.clone(), c.comparison.clone())).collect()
}

/// Runs `gm runs compare A B`.
pub fn compare(global: &Global, a: i64, b: i64, json: bool) -> Result<ExitCode> {
    // A paired bootstrap per cell: a large bench takes a moment.
    let waiting = AfterASecond::spinner(format!("comparing run {b} with run {a}"));
    let comparison = context::open(context::state_config(global)?).compare_runs(a, b)?;
    drop(waiting);
    if json {
        print_json(&comparison)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    match &comparison {
        RunComparison::Eval { comparison: c, .. } => {
            writeln!(
                out,
                "Run {b} against baseline run {a}: {} shared test cases ({} only in {a}, {} only in {b})",
                c.shared_cases, c.only_before, c.only_after
            )?;
            print_comparison(&mut out, c, "")?;
        }
        RunComparison::Bench { cells, .. } => {
            if cells.is_empty() {
                writeln!(out, "Bench run {b} and baseline run {a} share no model and task; nothing to compare")?;
                return Ok(ExitCode::SUCCESS);
            }
            let regressions =
                cells.iter().filter(|c| c.comparison.verdict == gm_eval::compare::Verdict::Regression).count();
            writeln!(
                out,
                "Bench run {b} against baseline run {a}: {} shared cells, {regressions} significantly worse",
                cells.len()
            )?;
            for c in cells {
                writeln!(out)?;
                writeln!(out, "{} on {}: {} shared test cases", c.model, c.task, c.comparison.shared_cases)?;
                print_comparison(&mut out, &c.comparison, "  ")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_comparison(out: &mut impl Write, c: &gm_eval::compare::Comparison, indent: &str) -> Result<()> {
    if c.shared_cases > 0 {
        writeln!(out, "{indent}Pass rate:   {:.1}% -> {:.1}%", c.pass_rate_before * 100.0, c.pass_rate_after * 100.0)?;
    }
    if c.shared_cases > 0 {
        writeln!(
            out,
            "{indent}Mean score:  {:.3} -> {:.3} (difference {:+.3}, 95% interval {:+.3} to {:+.3}, p = {:.3})",
            c.mean_before, c.mean_after, c.difference, c.interval.0, c.interval.1, c.p_value
        )?;
    }
    let verdict = match c.verdict {
        gm_eval::compare::Verdict::Regression => "REGRESSION: the candidate is significantly worse",
        gm_eval::compare::Verdict::Improvement => "improvement: the candidate is significantly better",
        gm_eval::compare::Verdict::NoSignificantChange => "no significant change (differences within noise)",
        gm_eval::compare::Verdict::NothingShared => "nothing to compare: the runs share no test case",
    };
    writeln!(out, "{indent}Verdict:     {verdict}")?;
    for (title, list) in [("Now failing", &c.newly_failing), ("Now passing", &c.newly_passing)] {
        if !list.is_empty() {
            writeln!(out, "{indent}{title}:")?;
            for ch in list.iter() {
                let row = serde_json::Value::Object(ch.test_case.clone()).to_string();
                let short: String = row.chars().take(80).collect();
                writeln!(
                    out,
                    "{indent}  {short}  score {:.2} -> {:.2}  {}",
                    ch.before,
                    ch.after,
                    ch.now_failing.join(", ")
                )?;
            }
        }
    }
    Ok(())
}
