//! The models × tasks matrix: every model on every task through the eval runner, with latency, throughput,
//! quality and cost-efficiency per cell, and a best model chosen by a stated rule.
//!
//! Each cell is an ordinary evaluation run ([`crate::run::EvalRunner`]), so it is concurrent, rate-limited,
//! cached and recorded like `gm eval`. The cells' cases are interleaved (item k of every cell before item
//! k + 1, the models in the order of their names turned by one at each item), so a server's queue and
//! whatever else depends on going first fall on every model alike, and swapping the order of the models
//! sends the same requests in the same order; with
//! `RunOptions::serial` one case is in flight at a time. A cell's quality is the mean case score (the mean of its evaluator
//! scores, clamped to [0, 1]) with a seeded 95% bootstrap interval.
//!
//! **The best-model rule:** the model with the highest mean quality over the tasks wins; when the runner-up's
//! quality is not significantly different (a paired bootstrap over the cases both ran includes zero), the two
//! are tied on quality and the one that is significantly faster (the same test over the latencies of the cases
//! both sent) wins; with no significant difference in either, the report says so and names the higher quality,
//! then the first name: never the first model listed. Cached answers have no latency: with no case sent for
//! both, the reason says latency was not compared.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use serde::Serialize;

use crate::prompt::PromptFile;
use crate::run::{CaseSink, EvalRunner, EvaluationSummary, Finished, RunError, RunOptions, TestResult};
use crate::stats::{bootstrap_mean, paired_bootstrap, BootstrapOptions};
use gm_core::metrics::LatencySummary;

/// One model × task cell's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellMetrics {
    /// Median latency of the model calls that were sent: the server's service time where it reports one,
    /// else the time on the wire, without the wait in gm before sending (`queue_p50_ms`).
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile.
    pub latency_p95_ms: Option<f64>,
    /// Median time a model call waited in gm (rate limits, the server's cap) before it was sent.
    pub queue_p50_ms: Option<f64>,
    /// Tokens per second per request: the mean of each sent call's completion tokens over its latency.
    pub tokens_per_second: Option<f64>,
    /// Tokens per second over wall time: the cell's completion tokens over the wall time of the bench, which
    /// runs its cells interleaved.
    pub tokens_per_second_wall: Option<f64>,
    /// Model calls whose token counts are estimated with the tokenizer (the server sent no usage).
    pub tokens_estimated: u64,
    /// Mean case score in [0, 1].
    pub quality: f64,
    /// The 95% bootstrap interval of `quality`.
    pub quality_ci95: [f64; 2],
    /// Pass rate in [0, 1].
    pub pass_rate: f64,
    /// What the cell's model calls cost, when the price table knows the model.
    pub cost_usd: Option<f64>,
    /// `quality / cost_usd`, when there was a cost.
    pub quality_per_dollar: Option<f64>,
    /// The mean score of each scorer over the cell's cases, by scorer name.
    pub scores: BTreeMap<String, f64>,
    /// Model answers of the cell served from the response cache: they cost nothing and have no latency, so
    /// a cell answered wholly from the cache has no latency figures (`--refresh` asks again).
    pub cache_hits: u64,
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The model.
    pub model: String,
    /// The task.
    pub task: String,
    /// Its figures.
    pub metrics: CellMetrics,
    /// The underlying evaluation, as `gm eval --json` prints it.
    #[serde(skip)]
    pub evaluation: EvaluationSummary,
}

/// The matrix's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchSummary {
    /// The best model by the rule.
    pub best_model: Option<String>,
    /// The rule, in words.
    pub best_model_rule: String,
    /// Whether the best model's lead in quality over the runner-up is significant.
    pub best_model_significant: Option<bool>,
    /// Why the best model won, in words.
    pub best_model_reason: String,
    /// Mean model-call latency over every cell.
    pub average_latency_ms: Option<f64>,
    /// Mean quality per model over its tasks.
    pub quality_by_model: BTreeMap<String, f64>,
    /// Mean latency per model over its tasks.
    pub latency_by_model: BTreeMap<String, f64>,
}

/// A whole benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// The id of the run in the run store, once recorded.
    pub run_id: Option<i64>,
    /// The provider that answered (`demo`: nothing was measured).
    pub provider: String,
    /// The summary.
    pub summary: BenchSummary,
    /// Every model × task cell, models outer, tasks inner.
    pub cells: Vec<Cell>,
}

/// The rule by which the best model is chosen.
pub const BEST_MODEL_RULE: &str = "highest mean quality over the tasks; when the runner-up is not significantly \
    different (paired bootstrap over shared cases, 95%), the significantly faster one wins (the same test over \
    the latencies of the cases both sent); with no significant difference in either, the higher quality, then \
    the name";

fn case_score(t: &TestResult) -> f64 {
    if t.evaluation_results.is_empty() {
        return f64::from(u8::from(t.passed()));
    }
    t.evaluation_results.iter().map(|r| r.score.clamp(0.0, 1.0)).sum::<f64>() / t.evaluation_results.len() as f64
}

/// The figures of one evaluated cell.
pub fn cell_metrics(e: &EvaluationSummary) -> CellMetrics {
    let scores: Vec<f64> = e.test_results.iter().map(case_score).collect();
    let est = bootstrap_mean(&scores, BootstrapOptions::default()).ok();
    let quality = est.map_or(0.0, |e| e.mean);
    let cost = e.gm.cost_usd;
    let mut by_scorer: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in e.test_results.iter().flat_map(|t| &t.evaluation_results) {
        let s = by_scorer.entry(r.evaluator_name.clone()).or_default();
        *s = (s.0 + r.score.clamp(0.0, 1.0), s.1 + 1);
    }
    CellMetrics {
        scores: by_scorer.into_iter().map(|(name, (sum, n))| (name, sum / n as f64)).collect(),
        cache_hits: e.gm.cache_hits,
        latency_p50_ms: e.gm.latency_p50_ms,
        latency_p95_ms: e.gm.latency_p95_ms,
        queue_p50_ms: e.gm.queue_p50_ms,
        tokens_per_second: e.gm.tokens_per_second,
        tokens_per_second_wall: e.gm.tokens_per_second_wall,
        tokens_estimated: e.gm.tokens_estimated,
        quality,
        quality_ci95: est.map_or([0.0, 0.0], |e| [e.low, e.high]),
        pass_rate: e.summary.pass_rate / 100.0,
        cost_usd: cost,
        quality_per_dollar: cost.and_then(|c| gm_core::metrics::quality_per_dollar(quality, c)),
    }
}

/// Runs every model on every task through `client` (its limiter and cache apply), each cell an evaluation run
/// with `options` and the cell's model. `tasks` pairs a task name with the task as a prompt file.
///
/// With `code` (feature `code-exec`), the tasks it names are also scored by running each answer's code against its
/// item's tests.
pub async fn run_matrix(
    client: &gm_http::Client,
    options: &RunOptions,
    models: &[String],
    tasks: &[(String, PromptFile)],
    code: Option<&CodeScoring<'_>>,
) -> Result<BenchReport, RunError> {
    run_matrix_with(client, options, models, tasks, code, None, Finished::new()).await
}

/// Case indices of one cell in a matrix's record: cell `c` (models outer, tasks inner, from 0) holds the
/// indices `c * CELL_STRIDE + 1 ..`, so one run of the run store keeps every cell's cases.
pub const CELL_STRIDE: usize = 1_000_000;

/// [`run_matrix`], handing every finished case to `sink` as it finishes (at its cell's offset, see
/// [`CELL_STRIDE`]), and not running again the cases `finished` holds: an interrupted matrix resumes from
/// what it recorded. Code-execution scores are not recorded; they are computed again on resuming.
///
/// # Errors
/// As [`run_matrix`]; a task with [`CELL_STRIDE`] items or more cannot be recorded.
pub async fn run_matrix_with(
    client: &gm_http::Client,
    options: &RunOptions,
    models: &[String],
    tasks: &[(String, PromptFile)],
    code: Option<&CodeScoring<'_>>,
    sink: Option<&dyn CaseSink>,
    mut finished: Finished,
) -> Result<BenchReport, RunError> {
    if let Some((task, _)) = tasks.iter().find(|(_, f)| f.test_data.len() >= CELL_STRIDE) {
        return Err(RunError::TooManyItems { task: task.clone(), max: CELL_STRIDE - 1 });
    }
    // One budget for the whole matrix: every cell counts --max-requests from the same start.
    let baseline = options.requests_baseline.or(Some(client.stats().requests));
    let runners: Vec<EvalRunner> = models
        .iter()
        .map(|m| {
            let cell = RunOptions { model: Some(m.clone()), requests_baseline: baseline, ..options.clone() };
            EvalRunner::new(client.clone(), cell)
        })
        .collect();
    // Cells: models outer, tasks inner, each with the cases an earlier run finished.
    let mut cells = Vec::with_capacity(models.len() * tasks.len());
    for (m, runner) in runners.iter().enumerate() {
        for (t, (_, file)) in tasks.iter().enumerate() {
            let offset = cells.len() * CELL_STRIDE;
            let rest = finished.split_off(&(offset + CELL_STRIDE));
            let done: Finished = std::mem::replace(&mut finished, rest)
                .into_iter()
                .filter(|(i, _)| *i > offset)
                .map(|(i, case)| (i - offset, case))
                .collect();
            let in_cell = |e: RunError| RunError::Cell {
                model: models[m].clone(),
                task: tasks[t].0.clone(),
                source: Box::new(e),
            };
            let run = runner.begin(file).map_err(in_cell)?;
            cells.push(MatrixCell { model: m, task: t, offset, run, done: std::sync::Mutex::new(done) });
        }
    }
    // The cases of every cell are interleaved: item k of every task for every model before item k + 1, the
    // models in the order of their names turned by one at each item. A server that answers one request at a
    // time (or a cap on it) then queues every model alike, and whatever depends on which request comes first
    // (a queue, a server's prompt cache) falls on each model equally often, never by where --models lists
    // them: swapping the list sends the same requests in the same order.
    let items = tasks.iter().map(|(_, f)| f.test_data.len()).max().unwrap_or(0);
    let by_name = by_name(models);
    let mut jobs = Vec::new();
    for k in 1..=items {
        let mut order = by_name.clone();
        order.rotate_left((k - 1) % models.len().max(1));
        for t in 0..tasks.len() {
            for &m in &order {
                let c = m * tasks.len() + t;
                let cell = &cells[c];
                let todo = k <= tasks[t].1.test_data.len() && !lock(&cell.done).contains_key(&k);
                if todo {
                    jobs.push((c, k));
                }
            }
        }
    }
    // As many cases in flight as the cells together had before (`concurrency` each), or one with `serial`.
    let in_flight = if options.serial { 1 } else { options.concurrency.max(1) * cells.len().max(1) };
    let cells_ref = &cells;
    let runners_ref = &runners;
    let halted = std::sync::atomic::AtomicBool::new(false);
    let halted = &halted;
    let run_job = |(c, index): (usize, usize)| async move {
        if halted.load(std::sync::atomic::Ordering::Relaxed) {
            return (c, index, None);
        }
        let cell = &cells_ref[c];
        let file = &tasks[cell.task].1;
        let outcome = runners_ref[cell.model].run_case(&cell.run, file, index).await;
        let recorded = outcome.and_then(|(result, figures)| {
            if let Some(sink) = sink {
                sink.record(cell.offset + index, &result, &figures)
                    .map_err(|error| RunError::Record { index, error })?;
            }
            Ok((result, figures))
        });
        (c, index, Some(recorded))
    };
    // A job is taken only when a slot frees, so a stop raised meanwhile (`RunOptions::stop`, a first Ctrl-C)
    // keeps it and all after it unsent, while the cases in flight finish and are recorded.
    let left = jobs.len();
    let stop = &options.stop;
    let taken = std::sync::atomic::AtomicUsize::new(0);
    let taken_ref = &taken;
    let jobs = jobs.into_iter().take_while(move |_| !stop.is_stopped()).inspect(move |_| {
        taken_ref.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let mut running = futures_util::stream::iter(jobs.map(run_job)).buffer_unordered(in_flight);
    // A failed case stops the matrix: no new case starts, those in flight finish and are recorded. A budget
    // stops only new calls, as in a single run.
    let mut stopped: Option<(usize, RunError)> = None;
    let mut over_budget = None;
    while let Some((c, index, outcome)) = running.next().await {
        match outcome {
            None => {}
            Some(Ok(case)) => {
                lock(&cells[c].done).insert(index, case);
            }
            Some(Err(RunError::Budget { what, limit, .. })) => over_budget = Some((c, what, limit)),
            Some(Err(e)) => {
                halted.store(true, std::sync::atomic::Ordering::Relaxed);
                stopped.get_or_insert((c, e));
            }
        }
    }
    drop(running);
    let cell_error = |c: usize, e: RunError| {
        let cell = &cells[c];
        RunError::Cell { model: models[cell.model].clone(), task: tasks[cell.task].0.clone(), source: Box::new(e) }
    };
    if let Some((c, e)) = stopped {
        return Err(cell_error(c, e));
    }
    if let Some((c, what, limit)) = over_budget {
        let index_done = lock(&cells[c].done).len();
        return Err(cell_error(c, RunError::Budget { what, limit, index_done }));
    }
    if taken.load(std::sync::atomic::Ordering::SeqCst) < left {
        let index_done = cells.iter().map(|cell| lock(&cell.done).len()).sum();
        return Err(RunError::Stopped { index_done });
    }
    let mut done = Vec::with_capacity(cells.len());
    for cell in cells {
        let (model, (task, file)) = (&models[cell.model], &tasks[cell.task]);
        let finished = cell.done.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut evaluation = runners[cell.model].summarize(&cell.run, file, finished);
        let in_cell = |e: RunError| RunError::Cell { model: model.clone(), task: task.clone(), source: Box::new(e) };
        execute_code(client, code, model, task, file, &mut evaluation).await.map_err(in_cell)?;
        done.push(Cell { model: model.clone(), task: task.clone(), metrics: cell_metrics(&evaluation), evaluation });
    }
    Ok(report(done))
}

/// The indices of `models` in the order of their names, the same wherever each is listed.
fn by_name(models: &[String]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..models.len()).collect();
    order.sort_by(|&a, &b| models[a].cmp(&models[b]).then(a.cmp(&b)));
    order
}

/// One model × task cell of a running matrix.
struct MatrixCell {
    /// Indices into the models and tasks.
    model: usize,
    task: usize,
    /// Where its cases are recorded (see [`CELL_STRIDE`]).
    offset: usize,
    run: crate::run::CellRun,
    /// Its finished cases, by 1-based index.
    done: std::sync::Mutex<Finished>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Scores `task`'s answers by running their code, when `code` names it. Without `code-exec` there is no
/// [`CodeScoring`] to be given, so there is nothing to run.
async fn execute_code(
    client: &gm_http::Client,
    code: Option<&CodeScoring<'_>>,
    model: &str,
    task: &str,
    file: &PromptFile,
    evaluation: &mut EvaluationSummary,
) -> Result<(), RunError> {
    #[cfg(feature = "code-exec")]
    if let Some((sandbox, exec)) = code.and_then(|c| c.tasks.get(task).map(|e| (c.sandbox, e))) {
        let more = more_samples(client, file, model, exec.k, evaluation).await?;
        score_code(sandbox, exec, evaluation, &more).await;
    }
    #[cfg(not(feature = "code-exec"))]
    {
        let _ = (client, model, task, file, evaluation);
        if let Some(c) = code {
            match c.never {}
        }
    }
    Ok(())
}

/// For pass@k with k above 1: each case's samples 1 to k - 1 (sample 0 is the answer the run scored), asked
/// of the provider as repeated samples are (each cached apart).
#[cfg(feature = "code-exec")]
async fn more_samples(
    client: &gm_http::Client,
    file: &PromptFile,
    model: &str,
    k: u32,
    e: &EvaluationSummary,
) -> Result<Vec<Vec<String>>, RunError> {
    if k <= 1 {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(e.test_results.len());
    for (i, t) in e.test_results.iter().enumerate() {
        let request = file.to_request(model, &t.test_case);
        let mut answers = Vec::with_capacity(k as usize - 1);
        for sample in 1..k {
            let answer =
                client.chat_sample(&request, sample).await.map_err(|error| RunError::Case { index: i + 1, error })?;
            answers.push(answer.text().trim().to_string());
        }
        out.push(answers);
    }
    Ok(out)
}

/// Builds the report of evaluated cells: the summary and the best model by [`BEST_MODEL_RULE`].
pub fn report(cells: Vec<Cell>) -> BenchReport {
    let mut quality: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut latency: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for c in &cells {
        quality.entry(c.model.clone()).or_default().push(c.metrics.quality);
        if let Some(l) = c.metrics.latency_p50_ms {
            latency.entry(c.model.clone()).or_default().push(l);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let quality_by_model: BTreeMap<String, f64> = quality.iter().map(|(m, v)| (m.clone(), mean(v))).collect();
    let latency_by_model: BTreeMap<String, f64> = latency.iter().map(|(m, v)| (m.clone(), mean(v))).collect();
    let all_latencies: Vec<f64> = cells.iter().filter_map(|c| c.metrics.latency_p50_ms).collect();
    let average_latency_ms = (!all_latencies.is_empty()).then(|| mean(&all_latencies));

    let mut ranked: Vec<(&String, f64)> = quality_by_model.iter().map(|(m, q)| (m, *q)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let (best_model, significant, reason) = match ranked.as_slice() {
        [] => (None, None, "no cells were run".to_string()),
        [(only, q)] => (Some((*only).clone()), None, format!("the only model (quality {q:.3})")),
        [(first, q1), (second, q2), ..] => {
            let (a, b) = paired_scores(&cells, first, second);
            let p = paired_bootstrap(&a, &b, BootstrapOptions { resamples: 2000, seed: 11 }).ok();
            let significant = p.as_ref().is_some_and(|p| p.low > 0.0 || p.high < 0.0);
            if significant {
                (
                    Some((*first).clone()),
                    Some(true),
                    format!("highest quality ({q1:.3} against {second}'s {q2:.3}), a significant difference"),
                )
            } else {
                let tied =
                    format!("{first} ({q1:.3}) and {second} ({q2:.3}) are not significantly different in quality");
                // "Faster" takes the same paired test as quality, over the latencies of the cases both sent.
                let (la, lb) = paired_latencies(&cells, first, second);
                let named = format!("{first} is named for its higher quality, or its name where quality is equal");
                // Cached answers have no latency: with no case sent for both, there is no latency to compare.
                let medians = LatencySummary::from_millis(&la).zip(LatencySummary::from_millis(&lb));
                let faster = medians.and_then(|(s1, s2)| {
                    paired_bootstrap(&la, &lb, BootstrapOptions { resamples: 2000, seed: 11 })
                        .ok()
                        .filter(|p| p.low > 0.0 || p.high < 0.0)
                        .map(|p| {
                            if p.high < 0.0 {
                                (*first, s1.p50_ms, s2.p50_ms)
                            } else {
                                (*second, s2.p50_ms, s1.p50_ms)
                            }
                        })
                });
                let reason = match (faster, medians) {
                    (Some((winner, own, other)), _) => format!(
                        "{tied}; {winner} is faster ({own:.0} ms against {other:.0} ms at the median, a significant \
                         difference over {} paired cases)",
                        la.len()
                    ),
                    (None, Some((s1, s2))) => format!(
                        "{tied}, and there is no significant difference in latency ({:.0} ms against {:.0} ms at the \
                         median); {named}",
                        s1.p50_ms, s2.p50_ms
                    ),
                    (None, None) => format!(
                        "{tied}; latency was not compared (no case of both was sent: the answers came from the cache \
                         or a recording of cached answers); {named}"
                    ),
                };
                (Some(faster.map_or(*first, |f| f.0).clone()), Some(false), reason)
            }
        }
    };
    BenchReport {
        run_id: None,
        provider: cells.first().map(|c| c.evaluation.gm.provider.clone()).unwrap_or_default(),
        summary: BenchSummary {
            best_model,
            best_model_rule: BEST_MODEL_RULE.to_string(),
            best_model_significant: significant,
            best_model_reason: reason,
            average_latency_ms,
            quality_by_model,
            latency_by_model,
        },
        cells,
    }
}

/// The latencies of two models' model calls over the cases both sent (same task, same test row; cached
/// answers have no latency and are left out).
fn paired_latencies(cells: &[Cell], a: &str, b: &str) -> (Vec<f64>, Vec<f64>) {
    let index = |model: &str| -> BTreeMap<(String, String), f64> {
        cells
            .iter()
            .filter(|c| c.model == model)
            .flat_map(|c| {
                c.evaluation.test_results.iter().zip(&c.evaluation.gm.cases).filter(|(_, f)| !f.cached).map(
                    move |(t, f)| {
                        ((c.task.clone(), serde_json::Value::Object(t.test_case.clone()).to_string()), f.latency_ms)
                    },
                )
            })
            .collect()
    };
    let (ia, ib) = (index(a), index(b));
    ia.iter().filter_map(|(k, s)| ib.get(k).map(|t| (*s, *t))).unzip()
}

/// Case scores of two models over the cases both ran (same task, same test row).
fn paired_scores(cells: &[Cell], a: &str, b: &str) -> (Vec<f64>, Vec<f64>) {
    let index = |model: &str| -> BTreeMap<(String, String), f64> {
        cells
            .iter()
            .filter(|c| c.model == model)
            .flat_map(|c| {
                c.evaluation.test_results.iter().map(move |t| {
                    ((c.task.clone(), serde_json::Value::Object(t.test_case.clone()).to_string()), case_score(t))
                })
            })
            .collect()
    };
    let (ia, ib) = (index(a), index(b));
    ia.iter().filter_map(|(k, s)| ib.get(k).map(|t| (*s, *t))).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gm_core::ProviderKind;

    fn arithmetic() -> PromptFile {
        let mut yaml = String::from(
            "name: arithmetic\nmessages:\n  - role: user\n    content: \"What is {{a}} * 3?\"\ntestData:\n",
        );
        for i in 1..=30 {
            yaml.push_str(&format!("  - {{a: {i}, expected: \"The answer is {}.\"}}\n", i * 3));
        }
        yaml.push_str("evaluators:\n  - name: exact\n    string: {equals: \"{{expected}}\"}\n");
        PromptFile::parse(&yaml, "arithmetic.prompt.yml").unwrap()
    }

    /// A demo client that answers at once, and the two demo models the tests compare.
    fn instant_demo() -> (gm_http::Client, Vec<String>) {
        let client = gm_http::Client::builder()
            .provider(ProviderKind::Demo)
            .transport(std::sync::Arc::new(gm_http::DemoTransport::instant()))
            .build()
            .unwrap();
        (client, vec!["openai/gpt-4.1-mini".to_string(), "openai/gpt-4.1".to_string()])
    }

    #[tokio::test]
    async fn cells_running_at_once_count_only_their_own_requests_and_share_one_budget() {
        let (client, models) = instant_demo();
        let tasks = [("arithmetic".to_string(), arithmetic())];
        let r = run_matrix(&client, &RunOptions::default(), &models, &tasks, None).await.unwrap();
        for cell in &r.cells {
            assert_eq!(cell.evaluation.gm.requests, 30, "{}: its own 30 cases, not the other cell's", cell.model);
        }
        // --max-requests is one budget for the matrix: the two cells together stop near it, not at twice it.
        let options = RunOptions { concurrency: 1, max_requests: Some(10), ..RunOptions::default() };
        let before = client.stats().requests;
        let e = run_matrix(&client, &options, &models, &tasks, None).await.unwrap_err();
        assert!(matches!(e.root(), RunError::Budget { limit: 10, .. }), "{e}");
        let sent = client.stats().requests - before;
        assert!((10..=11).contains(&sent), "{sent} requests for a budget of 10");
    }

    /// The errors from a run down to the first without a source, as text.
    fn chain(e: &RunError) -> Vec<String> {
        std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source()).map(ToString::to_string).collect()
    }

    #[tokio::test]
    async fn a_failed_case_keeps_the_client_error_as_its_source() {
        let (client, _) = instant_demo();
        let tasks = [("arithmetic".to_string(), arithmetic())];
        let models = ["no//such-model".to_string()];
        let e = run_matrix(&client, &RunOptions::default(), &models, &tasks, None).await.unwrap_err();
        let case = e.root();
        assert!(matches!(case, RunError::Case { .. }), "{e}");
        let source = std::error::Error::source(case).and_then(|s| s.downcast_ref::<gm_http::Error>());
        assert!(matches!(source, Some(gm_http::Error::InvalidRequest(_))), "{case:?}");
        // Cell, case, client error: each message carries the next, so a printer can leave the repeats out.
        let chain = chain(&e);
        assert_eq!(chain.len(), 3, "{chain:?}");
        assert!(chain.windows(2).all(|w| w[0].contains(&w[1])), "{chain:?}");
    }

    #[tokio::test]
    async fn a_case_that_cannot_be_recorded_keeps_the_sink_error_as_its_source() {
        struct DiskFull;
        impl CaseSink for DiskFull {
            fn record(
                &self,
                _: usize,
                _: &TestResult,
                _: &crate::run::CaseFigures,
            ) -> Result<(), crate::evaluators::BoxError> {
                Err("no space left on device".into())
            }
        }
        let (client, models) = instant_demo();
        let tasks = [("arithmetic".to_string(), arithmetic())];
        let e = run_matrix_with(
            &client,
            &RunOptions::default(),
            &models[..1],
            &tasks,
            None,
            Some(&DiskFull),
            Finished::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e.root(), RunError::Record { .. }), "{e}");
        assert_eq!(chain(e.root()).last().map(String::as_str), Some("no space left on device"), "{e}");
    }

    #[tokio::test]
    async fn the_best_model_is_the_significantly_better_one() {
        let (client, models) = instant_demo();
        let r = run_matrix(&client, &RunOptions::default(), &models, &[("arithmetic".into(), arithmetic())], None)
            .await
            .unwrap();
        assert_eq!(r.cells.len(), 2);
        // The demo's small models answer wordily, so the exact check fails for every case.
        assert_eq!(r.cells[0].metrics.quality, 0.0);
        assert_eq!(r.cells[1].metrics.quality, 1.0);
        assert_eq!(r.summary.best_model.as_deref(), Some("openai/gpt-4.1"));
        assert_eq!(r.summary.best_model_significant, Some(true));
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "latency_p50_ms",
            "latency_p95_ms",
            "tokens_per_second",
            "quality",
            "quality_ci95",
            "cost_usd",
            "quality_per_dollar",
        ] {
            assert!(json["cells"][0]["metrics"].get(key).is_some(), "{key}");
        }
        assert!(json["summary"]["best_model_rule"].as_str().unwrap().contains("highest mean quality"));
    }

    /// A matrix of the same model under two names, every case's latency set by `latency(model, row)`.
    async fn timed(latency: impl Fn(usize, usize) -> f64) -> BenchReport {
        let (client, _) = instant_demo();
        let models = vec!["openai/gpt-4.1".to_string(), "OpenAI/GPT-4.1".to_string()];
        let r = run_matrix(&client, &RunOptions::default(), &models, &[("arithmetic".into(), arithmetic())], None)
            .await
            .unwrap();
        let cells = r
            .cells
            .into_iter()
            .enumerate()
            .map(|(m, mut c)| {
                for (i, f) in c.evaluation.gm.cases.iter_mut().enumerate() {
                    f.latency_ms = latency(m, i);
                }
                c
            })
            .collect();
        report(cells)
    }

    /// The demo, answering at once, that writes down each chat request's model and question as it is sent.
    #[derive(Debug, Default)]
    struct Recording(std::sync::Mutex<Vec<(String, String)>>);

    #[async_trait::async_trait]
    impl gm_http::Transport for Recording {
        async fn send(&self, request: gm_http::HttpRequest) -> Result<gm_http::HttpResponse, gm_http::TransportError> {
            if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) {
                let asked = body["messages"][0]["content"].as_str().unwrap_or_default().to_string();
                lock(&self.0).push((body["model"].as_str().unwrap_or_default().to_string(), asked));
            }
            gm_http::DemoTransport::instant().send(request).await
        }
    }

    #[tokio::test]
    async fn the_models_take_turns_going_first_by_their_names_not_their_place_in_the_list() {
        async fn sent(models: [&str; 2]) -> Vec<(String, String)> {
            let recording = std::sync::Arc::new(Recording::default());
            let client =
                gm_http::Client::builder().provider(ProviderKind::Demo).transport(recording.clone()).build().unwrap();
            let models: Vec<String> = models.iter().map(|m| m.to_string()).collect();
            let options = RunOptions { serial: true, ..RunOptions::default() };
            run_matrix(&client, &options, &models, &[("arithmetic".into(), arithmetic())], None).await.unwrap();
            let sent = lock(&recording.0).clone();
            sent
        }
        let one = sent(["openai/gpt-4.1-mini", "openai/gpt-4.1"]).await;
        assert_eq!(one, sent(["openai/gpt-4.1", "openai/gpt-4.1-mini"]).await, "the list's order changed the requests");
        // Item by item, each model asked first as often as the other: 15 of the 30 items each.
        assert_eq!(one.len(), 60);
        let firsts = one.chunks(2).filter(|pair| pair[0].0 == "openai/gpt-4.1").count();
        assert_eq!(firsts, 15, "{one:?}");
        assert!(one.chunks(2).all(|pair| pair[0].1 == pair[1].1 && pair[0].0 != pair[1].0), "{one:?}");
    }

    #[tokio::test]
    async fn a_tie_in_latency_is_not_faster() {
        // 405 ms against 405 ms: the same quality and the same speed.
        let r = timed(|_, _| 405.0).await;
        assert_eq!(r.summary.best_model_significant, Some(false));
        let reason = &r.summary.best_model_reason;
        assert!(reason.contains("no significant difference in latency (405 ms against 405 ms"), "{reason}");
        assert!(!reason.contains("faster"), "{reason}");
        // Noise around one speed is no difference either; a steady lead over every case is.
        let r = timed(|m, i| 400.0 + if (i + m) % 2 == 0 { 9.0 } else { -9.0 }).await;
        assert!(r.summary.best_model_reason.contains("no significant difference in latency"), "{r:?}");
        let r = timed(|m, i| if m == 1 { 300.0 + i as f64 } else { 400.0 + i as f64 }).await;
        assert_eq!(r.summary.best_model.as_deref(), Some("OpenAI/GPT-4.1"));
        assert!(r.summary.best_model_reason.contains("OpenAI/GPT-4.1 is faster"), "{}", r.summary.best_model_reason);
    }

    #[tokio::test]
    async fn answers_all_from_the_cache_leave_latency_uncompared_not_nan() {
        let r = timed(|_, _| 0.0).await;
        let cells = r
            .cells
            .into_iter()
            .map(|mut c| {
                c.evaluation.gm.cases.iter_mut().for_each(|f| f.cached = true);
                c
            })
            .collect();
        let r = report(cells);
        let reason = &r.summary.best_model_reason;
        assert!(reason.contains("latency was not compared"), "{reason}");
        assert!(!reason.contains("NaN") && !reason.contains("inf") && !reason.contains(" ms"), "{reason}");
        // The rule's remaining criteria decide: equal quality, so the first name.
        assert_eq!(r.summary.best_model.as_deref(), Some("OpenAI/GPT-4.1"), "{reason}");
        assert_eq!(r.summary.best_model_significant, Some(false));
    }

    #[tokio::test]
    async fn a_tie_in_quality_is_decided_by_latency_and_said_to_be_not_significant() {
        let client = gm_http::Client::builder()
            .provider(ProviderKind::Demo)
            .transport(std::sync::Arc::new(gm_http::DemoTransport::new()))
            .build()
            .unwrap();
        // Both large models answer alike; the demo's simulated latency differs by model.
        let models = vec!["openai/gpt-4.1".to_string(), "meta/llama-3.3-70b-instruct".to_string()];
        let r = run_matrix(&client, &RunOptions::default(), &models, &[("arithmetic".into(), arithmetic())], None)
            .await
            .unwrap();
        assert_eq!(r.summary.best_model_significant, Some(false), "{:?}", r.summary);
        assert!(r.summary.best_model_reason.contains("not significantly different"));
    }
}

/// Running generated code for the tasks that score that way: the sandbox, and each task's settings by name.
#[cfg(feature = "code-exec")]
#[derive(Debug)]
pub struct CodeScoring<'a> {
    /// The sandbox that runs the code.
    pub sandbox: &'a crate::sandbox::Sandbox,
    /// Execution settings by task name.
    pub tasks: BTreeMap<String, crate::tasks::CodeExecution>,
}

/// Running generated code for the tasks that score that way, which needs the feature `code-exec`.
///
/// Without it no value of this type can be made, so [`run_matrix`] is always given `None`; the parameter stays
/// so that enabling the feature adds to the API and changes no signature.
#[cfg(not(feature = "code-exec"))]
#[derive(Debug)]
pub struct CodeScoring<'a> {
    never: std::convert::Infallible,
    _lifetime: std::marker::PhantomData<&'a ()>,
}

/// Runs every answer's code against its item's tests (`execution.tests_key`, a string or a list of strings) and
/// adds the result as one more evaluator (`execution.name`), then recounts the summary.
///
/// With `execution.k` above 1, `more` holds each case's other samples (`k - 1` answers, in the cases' order):
/// the score is pass@k over the k samples (1 when any of them passes), as [`Sandbox::score_samples`] counts it.
///
/// [`Sandbox::score_samples`]: crate::sandbox::Sandbox::score_samples
#[cfg(feature = "code-exec")]
pub async fn score_code(
    sandbox: &crate::sandbox::Sandbox,
    execution: &crate::tasks::CodeExecution,
    e: &mut EvaluationSummary,
    more: &[Vec<String>],
) {
    for (i, t) in e.test_results.iter_mut().enumerate() {
        let tests = match t.test_case.get(&execution.tests_key) {
            Some(serde_json::Value::Array(a)) => {
                a.iter().filter_map(serde_json::Value::as_str).collect::<Vec<_>>().join("\n")
            }
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let result = match more.get(i).filter(|m| !m.is_empty()) {
            None => {
                let outcome = sandbox.run(&t.model_response, &tests).await;
                crate::evaluators::EvalResult {
                    evaluator_name: execution.name.clone(),
                    score: if outcome.passed { 1.0 } else { 0.0 },
                    passed: outcome.passed,
                    details: Some(format!("{:?} in {:.0} ms", outcome.status, outcome.duration.as_secs_f64() * 1000.0)),
                }
            }
            Some(others) => {
                let samples: Vec<String> =
                    std::iter::once(t.model_response.clone()).chain(others.iter().cloned()).collect();
                let k = u64::from(execution.k);
                let (c, n, scores) = sandbox.score_samples(&samples, &tests, &[k]).await;
                let score = scores.get(&k).copied().unwrap_or(0.0);
                crate::evaluators::EvalResult {
                    evaluator_name: execution.name.clone(),
                    score,
                    passed: score > 0.0,
                    details: Some(format!("{c} of {n} samples passed")),
                }
            }
        };
        t.evaluation_results.push(result);
    }
    let total = e.test_results.len();
    let passed = e.test_results.iter().filter(|t| t.passed()).count();
    e.summary.passed_tests = passed;
    e.summary.failed_tests = total - passed;
    e.summary.pass_rate = if total == 0 { 100.0 } else { passed as f64 / total as f64 * 100.0 };
}
