//! `gm eval`: `.prompt.yml` suites to the run store, with a progress bar, gh-models' output and CI reports.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{Context, Result};
use gm_app::{BoxError, CaseFinished, Observer, Outcome, Resume, RunStarted, SuiteFinished, SuiteRun};
use gm_eval::evaluators::JudgeMode;
use gm_eval::run::EvaluationSummary;

use crate::cli::{EvalArgs, Global};
use crate::commands::{ctrl_c_cancels, write_atomically};
use crate::context;

/// Runs `gm eval`.
pub async fn run(global: &Global, args: EvalArgs) -> Result<ExitCode> {
    if args.max_tokens.is_some() {
        eprintln!(
            "warning: --max-tokens of gm eval is a budget for the whole run and is now called --token-budget; the cap \
             on each answer is the prompt file's modelParameters.maxTokens"
        );
    }
    let jsonl = match &args.jsonl {
        Some(p) => Some(Mutex::new(BufWriter::new(
            File::create(p).with_context(|| format!("could not create {}", p.display()))?,
        ))),
        None => None,
    };
    let mut config = context::config(global, true)?;
    config.recording = context::recording(&args.recorded);
    let session = context::open(config);
    // The files named, else the suites folder's.
    let files = session.suite_files(&args.files)?;
    let run = SuiteRun {
        model: args.model.clone(),
        concurrency: args.concurrency.map(usize::from),
        judge_mode: JudgeMode::from_name(&args.judge_mode).unwrap_or_default(),
        judge_model: args.judge_model.clone(),
        resume: args.resume,
        prices: args.prices.clone(),
        repeat: args.repeat,
        max_requests: args.max_requests,
        max_tokens: args.token_budget.or(args.max_tokens),
        ..SuiteRun::new(files.clone())
    };
    let progress = Progress {
        files: &files,
        human: !args.json,
        jsonl,
        bar: Mutex::new(None),
        print_failed: Mutex::new(None),
        done: Mutex::new(Vec::new()),
    };
    let cancel = ctrl_c_cancels();
    let outcome = session.run_suites(&run, &progress, &cancel).await;
    progress.clear_bar();
    let results = match outcome {
        Ok(Outcome::Finished(results)) => results,
        Ok(Outcome::Interrupted(i)) => {
            eprintln!(
                "interrupted: {} test cases of run {} are recorded; `gm eval --resume {}` finishes the run",
                i.recorded, i.run_id, i.file
            );
            session.finish();
            return Ok(ExitCode::from(crate::exit::INTERRUPTED));
        }
        Err(e) => {
            if let gm_app::Error::SuiteStopped { file, run_id, recorded, .. } = &e {
                if e.is_budget() {
                    // What was done before the budget ran out is a result too: printed as a finished run is.
                    let mut done = progress.done.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Ok(gm_app::StoredRun::Eval(partial)) = session.show_run(*run_id) {
                        if args.json {
                            done.push(partial);
                            let mut out = std::io::stdout().lock();
                            gm_eval::report::json(&done, &mut out)?;
                            writeln!(out)?;
                        } else {
                            gm_eval::report::human(&partial, &mut std::io::stdout().lock())?;
                        }
                    }
                }
                // A strict replay stopped by a missing answer stops there again: its error says what to do.
                if *recorded > 0 && !session.replays_only() {
                    eprintln!(
                        "{recorded} test cases of run {run_id} are recorded; `gm eval --resume {file}` continues from there"
                    );
                }
            }
            session.finish();
            return Err(e.into());
        }
    };
    if let Some(e) = progress.print_failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        return Err(e.into());
    }
    let summaries: Vec<EvaluationSummary> = results.into_iter().map(|r| r.summary).collect();
    session.finish();
    if args.json {
        let mut out = std::io::stdout().lock();
        gm_eval::report::json(&summaries, &mut out)?;
        writeln!(out)?;
    }
    type Render = fn(&[EvaluationSummary], &mut dyn Write) -> std::io::Result<()>;
    let reports: [(&Option<PathBuf>, Render); 3] = [
        (&args.junit, |s, w| gm_eval::report::junit(s, w)),
        (&args.markdown, |s, w| gm_eval::report::markdown(s, w)),
        (&args.html, |s, w| gm_eval::report::html(s, w)),
    ];
    for (path, render) in reports {
        if let Some(path) = path {
            write_atomically(path, |w| render(&summaries, w))?;
        }
    }
    let all_passed = summaries.iter().all(|s| s.all_passed());
    Ok(if all_passed { ExitCode::SUCCESS } else { ExitCode::from(crate::exit::TESTS_FAILED) })
}

/// What `gm eval` shows as suites run: the resume note, a progress bar on a terminal, each case as a line of
/// the `--jsonl` file, and each suite's human report as it finishes.
struct Progress<'a> {
    files: &'a [PathBuf],
    human: bool,
    jsonl: Option<Mutex<BufWriter<File>>>,
    bar: Mutex<Option<indicatif::ProgressBar>>,
    /// A failure to print a human report, returned once the run ends.
    print_failed: Mutex<Option<std::io::Error>>,
    /// The suites finished so far, for the partial results of a run stopped by its budget.
    done: Mutex<Vec<EvaluationSummary>>,
}

impl Progress<'_> {
    fn clear_bar(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress<'_> {
    fn run_started(&self, run: &RunStarted) {
        match run.resume {
            Resume::Resumed => eprintln!(
                "resuming run {} of {}: {} of {} test cases already done",
                run.run_id, run.file, run.done, run.total
            ),
            Resume::NothingToResume => {
                eprintln!("{}: no unfinished run to resume; starting a new one", run.file)
            }
            Resume::New => {}
        }
        *self.bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            progress_bar(run.total, run.done, &run.name);
    }

    fn case_finished(&self, case: &CaseFinished<'_>) -> Result<(), BoxError> {
        if let Some(out) = &self.jsonl {
            let file = self.files.get(case.suite).map(|p| p.display().to_string()).unwrap_or_default();
            let mut w = out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            writeln!(w, "{}", gm_eval::report::jsonl_line(case.result, case.figures, &file, case.index))?;
            w.flush()?;
        }
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            bar.inc(1);
        }
        Ok(())
    }

    fn suite_finished(&self, suite: &SuiteFinished<'_>) {
        self.clear_bar();
        self.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(suite.summary.clone());
        if self.human {
            let options = gm_eval::report::HumanOptions { color: true, stored: false };
            if let Err(e) = gm_eval::report::human_with(suite.summary, options, &mut anstream::stdout().lock()) {
                self.print_failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(e);
            }
        }
    }
}

/// A progress bar on standard error when it is a terminal.
fn progress_bar(total: usize, done: usize, name: &str) -> Option<indicatif::ProgressBar> {
    if !crate::progress::drawn() || total == 0 {
        return None;
    }
    let bar = crate::progress::bar(total, done, "{msg} [{bar:30}] {pos}/{len} test cases, {elapsed} (eta {eta})");
    bar.set_message(name.to_string());
    Some(bar)
}
