//! The subcommands, one file each: arguments, then the library call, then rendering.

pub mod auth;
pub mod cache;
pub mod emulate;
pub mod eval;
pub mod limits;
pub mod models;
pub mod run;
pub mod runs;
pub mod score;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use gm_eval::prompt::PromptFile;

use crate::cli::{
    AuthCommand, BenchArgs, CacheCommand, Cli, Command, Global, LimitsCommand, ModelsCommand, RunsCommand,
};
use crate::context;
use crate::exit::usage;

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Models(ModelsCommand::List { json }) => models::list(&cli.global, json).await,
        Command::Models(ModelsCommand::View { model, json }) => models::view(&cli.global, &model, json).await,
        Command::Run(args) => run::run(&cli.global, args).await,
        Command::Auth(AuthCommand::Status { json }) => auth::status(&cli.global, json),
        Command::Emulate(args) => emulate::run(args).await,
        Command::Eval(args) => eval::run(&cli.global, args).await,
        Command::Bench(args) => bench(&cli.global, args).await,
        Command::Score(args) => score::run(&args),
        Command::Cache(CacheCommand::Stats { json }) => cache::stats(&cli.global, json),
        Command::Cache(CacheCommand::Clear) => cache::clear(&cli.global),
        Command::Runs(RunsCommand::List { json }) => runs::list(&cli.global, json),
        Command::Runs(RunsCommand::Show { id, json, html, baseline }) => {
            runs::show(&cli.global, id, json, html.as_deref(), baseline)
        }
        Command::Runs(RunsCommand::Compare { a, b, json }) => runs::compare(&cli.global, a, b, json),
        Command::Limits(LimitsCommand::Status { json }) => limits::status(&cli.global, json),
        Command::Limits(LimitsCommand::Reset { key }) => limits::reset(&cli.global, key.as_deref()),
    }
}

/// A token that Ctrl-C cancels, for a run to stop at.
pub(crate) fn ctrl_c_cancels() -> gm_app::Cancel {
    let cancel = gm_app::Cancel::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
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

/// Writes a report next to `path` and renames it into place, so a failed write leaves no half file.
pub(crate) fn write_atomically(
    path: &std::path::Path,
    render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        render(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("could not write {}", path.display()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("could not write {}", path.display()))
}

async fn bench(global: &Global, args: BenchArgs) -> Result<ExitCode> {
    let catalog = gm_eval::tasks::catalog(args.tasks_dir.as_deref())?;
    if args.list_tasks {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{:<22}  {:>5}  {:<40}  DESCRIPTION", "TASK", "ITEMS", "SCORERS")?;
        for t in &catalog {
            let info = t.info();
            let scorers = info.scorers.join(", ");
            writeln!(out, "{:<22}  {:>5}  {:<40}  {}", info.name, info.items, scorers, info.description)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let choices = args
        .metrics
        .iter()
        .map(|m| gm_eval::tasks::MetricChoice::parse(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    let mut applied = vec![false; choices.len()];
    let mut mark = |a: &[bool]| applied.iter_mut().zip(a).for_each(|(x, y)| *x |= *y);
    let mut tasks = Vec::with_capacity(args.tasks.len());
    let mut code_tasks = std::collections::BTreeMap::new();
    for t in &args.tasks {
        let mut file = if let Some(task) = catalog.iter().find(|c| c.name == *t) {
            let task = if choices.is_empty() {
                task.clone()
            } else {
                let (task, a) = task.with_metrics(&choices).map_err(usage)?;
                mark(&a);
                task
            };
            let task_allows = task.execution.as_ref().is_some_and(|e| e.allow_code_exec);
            if task_allows && !args.allow_code_exec {
                eprintln!(
                    "note: task `{t}` enables code execution in its task.yaml (allowCodeExec); the generated code runs \
                     in a sandbox that is not a security boundary"
                );
            }
            if task.needs_code_execution && !args.allow_code_exec && !task_allows {
                return Err(usage(format!(
                    "task `{t}` scores by running the generated code; pass --allow-code-exec to run it (not a security \
                     boundary), or leave the task out"
                )));
            }
            if let Some(exec) = &task.execution {
                code_tasks.insert(t.clone(), exec.clone());
            }
            task.to_prompt_file(args.models.first().map(String::as_str).unwrap_or(""), None)
        } else if std::path::Path::new(t).is_file() {
            let mut file = PromptFile::load(std::path::Path::new(t))?;
            if !choices.is_empty() {
                let s = gm_eval::tasks::select_scorers(t, &file.evaluators, None, &choices).map_err(usage)?;
                mark(&s.applied);
                file.evaluators = s.evaluators;
            }
            file
        } else {
            let names: Vec<&str> = catalog.iter().map(|c| c.name.as_str()).collect();
            return Err(usage(format!("task `{t}` is neither a task ({}) nor a .prompt.yml file", names.join(", "))));
        };
        if std::path::Path::new(t).is_file() {
            check_evaluators(std::path::Path::new(t), &file)?;
        } else {
            gm_eval::evaluators::EvaluatorSpec::parse_all(&file.evaluators)
                .with_context(|| format!("task {t}: an evaluator is malformed"))?;
        }
        if let Some(n) = args.limit_items {
            file.test_data.truncate(n);
        }
        let name =
            if catalog.iter().any(|c| c.name == *t) || file.name.is_empty() { t.clone() } else { file.name.clone() };
        tasks.push((name, file));
    }
    if let Some(c) = choices.iter().zip(&applied).find_map(|(c, a)| (!a).then_some(c)) {
        return Err(usage(format!(
            "`{}` is neither a scorer of the tasks ({}) nor a metric of `gm score --list`",
            c.name,
            args.tasks.join(", ")
        )));
    }
    let session = context::session(global, true)?;
    let client = session.client()?;
    let store = gm_eval::store::RunStore::open(&context::state_file(global)?)?;
    let who = gm_eval::store::RunIdentity {
        kind: "bench".into(),
        name: format!("{} models x {} tasks", args.models.len(), tasks.len()),
        file: args.tasks.join(","),
        // What the cells run: the tasks as prompt files, after --metrics and --limit-items.
        digest: gm_cache::RequestKey::for_body("bench", "", "", format!("{tasks:?}").as_bytes(), 0, &[])
            .map(|k| k.to_string())
            .unwrap_or_default(),
        model: args.models.join(","),
        provider: client.provider().to_string(),
        base_url: client.base_url().to_string(),
    };
    let options = gm_eval::run::RunOptions {
        concurrency: args.concurrency.max(1),
        max_requests: args.max_requests,
        prices: Some(price_table(args.prices.as_deref())?),
        ..Default::default()
    };
    // One sandbox for every code task, with the strictest limits they ask for.
    let sandbox = if code_tasks.is_empty() {
        None
    } else {
        let timeout = code_tasks.values().map(|e| e.timeout_seconds).min().unwrap_or(10);
        let memory = code_tasks.values().map(|e| e.memory_mb).min().unwrap_or(512);
        let config = gm_eval::sandbox::SandboxConfig {
            timeout: std::time::Duration::from_secs(u64::from(timeout)),
            memory_mb: u64::from(memory),
            cpu_seconds: u64::from(timeout),
            ..Default::default()
        };
        // Reaching here, every code task was allowed: by --allow-code-exec or by its own config.
        let sandbox = gm_eval::sandbox::SandboxPolicy { enabled: true }.sandbox(config)?;
        if sandbox.support().python.is_none() {
            return Err(usage("the code tasks need python3 on the PATH to run the generated code"));
        }
        Some(sandbox)
    };
    let code = sandbox.as_ref().map(|s| gm_eval::bench::CodeScoring { sandbox: s, tasks: code_tasks.clone() });
    let total: usize = args.models.len() * tasks.iter().map(|(_, f)| f.test_data.len()).sum::<usize>();
    let (run_id, finished) = match args.resume.then(|| store.unfinished(&who)).transpose()?.flatten() {
        Some((id, done)) => {
            eprintln!("resuming bench run {id}: {} of {total} test cases already done", done.len());
            (id, done)
        }
        None => {
            if args.resume {
                eprintln!("no unfinished bench run of these models and tasks; starting a new one");
            }
            (store.begin(&who)?, Default::default())
        }
    };
    let sink = store.sink(run_id);
    let resume_hint = |done: usize| {
        format!("{done} of {total} test cases of bench run {run_id} are recorded; the same command with --resume finishes it")
    };
    let outcome = tokio::select! {
        r = gm_eval::bench::run_matrix_with(&client, &options, &args.models, &tasks, code.as_ref(), Some(&sink), finished) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: {}", resume_hint(store.cases(run_id).map(|c| c.len()).unwrap_or(0)));
            session.finish();
            return Ok(ExitCode::from(130));
        }
    };
    let mut report = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", resume_hint(store.cases(run_id).map(|c| c.len()).unwrap_or(0)));
            session.finish();
            return Err(anyhow::Error::new(e).context("gm bench did not finish"));
        }
    };
    report.run_id = Some(run_id);
    let stored = StoredBench {
        report: serde_json::to_value(&report)?,
        evaluations: report.cells.iter().map(|c| c.evaluation.clone()).collect(),
    };
    store.finish_with(run_id, &stored)?;
    session.finish();
    if let Some(path) = &args.html {
        let baseline = match args.baseline {
            Some(b) => bench_comparisons(&load_bench(&store, b)?, &stored)?,
            None => Vec::new(),
        };
        write_atomically(path, |w| gm_eval::report::bench_html(&report, &baseline, w))?;
    }
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_bench_table(&report)?;
    Ok(ExitCode::SUCCESS)
}

/// Checks every evaluator of a prompt file; a malformed one is a usage error that names the file, the line
/// and column of the evaluator, and what to fix.
fn check_evaluators(path: &std::path::Path, f: &PromptFile) -> Result<()> {
    for (i, raw) in f.evaluators.iter().enumerate() {
        if let Err(e) = gm_eval::evaluators::EvaluatorSpec::parse(i, raw) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let at = gm_eval::prompt::locate_item(&text, "evaluators", i)
                .map(|(line, column)| format!(":{line}:{column}"))
                .unwrap_or_default();
            return Err(usage(format!("{}{at}: {e}", path.display())));
        }
    }
    Ok(())
}

/// The built-in price table, with the entries of a `--prices` file added or replaced.
fn price_table(file: Option<&std::path::Path>) -> Result<gm_eval::prices::PriceTable> {
    let mut prices = gm_eval::prices::PriceTable::builtin();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the price table {}", path.display()))?;
        prices.extend_from_toml(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    }
    Ok(prices)
}

/// The human form of a bench report: one line a cell, then the best model and the rule.
pub(crate) fn print_bench_table(report: &gm_eval::bench::BenchReport) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let model_w = report.cells.iter().map(|c| c.model.len()).max().unwrap_or(0).max("MODEL".len());
    let task_w = report.cells.iter().map(|c| c.task.len()).max().unwrap_or(0).max("TASK".len());
    writeln!(
        out,
        "{:<model_w$}  {:<task_w$}  {:>8}  {:>15}  {:>9}  {:>9}  {:>10}  {:>6}",
        "MODEL", "TASK", "QUALITY", "95% INTERVAL", "P50", "TOKENS/S", "COST", "CACHED"
    )?;
    for c in &report.cells {
        let m = &c.metrics;
        writeln!(
            out,
            "{:<model_w$}  {:<task_w$}  {:>8.3}  {:>15}  {:>9}  {:>9}  {:>10}  {:>6}",
            c.model,
            c.task,
            m.quality,
            format!("[{:.2}, {:.2}]", m.quality_ci95[0], m.quality_ci95[1]),
            m.latency_p50_ms.map_or("-".into(), |l| format!("{l:.0} ms")),
            m.tokens_per_second.map_or("-".into(), |t| format!("{t:.0}")),
            m.cost_usd.map_or("-".into(), |c| format!("${c:.5}")),
            m.cache_hits,
        )?;
    }
    let s = &report.summary;
    writeln!(out)?;
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

/// A bench run as the run store keeps it: the report and each cell's evaluation (for comparisons).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredBench {
    report: serde_json::Value,
    evaluations: Vec<gm_eval::run::EvaluationSummary>,
}

fn load_bench(store: &gm_eval::store::RunStore, id: i64) -> Result<StoredBench> {
    match store.get(id)? {
        Some(r) if r.kind == "bench" => {}
        Some(_) => return Err(usage(format!("run {id} is not a bench run; `gm runs list` shows the kinds"))),
        None => return Err(usage(format!("there is no run {id}; `gm runs list` shows the runs"))),
    }
    let json = store.summary_json(id)?.ok_or_else(|| usage(format!("bench run {id} did not finish")))?;
    Ok(serde_json::from_value(json)?)
}

fn finished_of(e: &gm_eval::run::EvaluationSummary) -> gm_eval::run::Finished {
    e.test_results.iter().cloned().zip(e.gm.cases.iter().cloned()).enumerate().map(|(i, tf)| (i + 1, tf)).collect()
}

/// Each (task, model) cell of `after` compared with the same cell of `before`.
fn bench_comparisons(
    before: &StoredBench,
    after: &StoredBench,
) -> Result<Vec<(String, String, gm_eval::compare::Comparison)>> {
    let mut out = Vec::new();
    for a in &after.evaluations {
        if let Some(b) = before.evaluations.iter().find(|b| b.name == a.name && b.model == a.model) {
            out.push((a.name.clone(), a.model.clone(), gm_eval::compare::compare(&finished_of(b), &finished_of(a))?));
        }
    }
    Ok(out)
}
