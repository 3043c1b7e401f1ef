//! The run history: list, show and compare stored runs, eval and bench alike.

use gm_eval::bench::{BenchReport, Cell};
use gm_eval::compare::Comparison;
use gm_eval::run::{CaseFigures, EvaluationSummary, Finished, RunFigures, Summary, TestResult};
use gm_eval::store::{RunRow, RunStore};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::progress::RunKind;
use crate::session::Session;

/// A bench run as the run store keeps it: the report as `gm bench --json` printed it, and each cell's
/// evaluation (for comparisons).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredBench {
    pub(crate) report: serde_json::Value,
    pub(crate) evaluations: Vec<EvaluationSummary>,
}

impl StoredBench {
    /// The report again, its cells' figures computed anew from the stored evaluations.
    fn report(&self, id: i64) -> BenchReport {
        let cells = self
            .evaluations
            .iter()
            .map(|e| Cell {
                model: e.model.clone(),
                task: e.name.clone(),
                metrics: gm_eval::bench::cell_metrics(e),
                evaluation: e.clone(),
            })
            .collect();
        let mut report = gm_eval::bench::report(cells);
        report.run_id = Some(id);
        report
    }
}

/// One stored run. Exhaustive on purpose: a front end that shows runs must learn of a new kind when it
/// compiles.
#[derive(Debug, Clone)]
pub enum StoredRun {
    /// A suite's run: its summary as `gm eval --json` printed it, or for an unfinished run the cases recorded
    /// so far.
    Eval(EvaluationSummary),
    /// A finished bench run.
    Bench(StoredBenchRun),
    /// A bench run that did not finish: a report of the cells it recorded cases of, from those cases (a cell
    /// is named by its model and its task as given; latencies and costs, which only a whole run has, are
    /// missing).
    UnfinishedBench(BenchReport),
}

/// A finished bench run.
#[derive(Debug, Clone)]
pub struct StoredBenchRun {
    /// The report as `gm bench --json` printed it when the run finished.
    pub printed: serde_json::Value,
    /// The report again, each cell's figures computed from its stored evaluation (for tables and pages).
    pub report: BenchReport,
}

/// Each (task, model) cell of a candidate bench compared with the same cell of a baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellComparison {
    /// The task.
    pub task: String,
    /// The model.
    pub model: String,
    /// The cell's comparison.
    pub comparison: Comparison,
}

/// A baseline run compared with a candidate run of the same kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RunComparison {
    /// Two runs of a suite, case by case.
    Eval {
        /// The baseline run.
        baseline: i64,
        /// The candidate run.
        candidate: i64,
        /// Their comparison.
        comparison: Comparison,
    },
    /// Two bench runs, cell by cell (cells of one only are left out).
    Bench {
        /// The baseline run.
        baseline: i64,
        /// The candidate run.
        candidate: i64,
        /// Each shared cell's comparison.
        cells: Vec<CellComparison>,
    },
}

fn finished_of(e: &EvaluationSummary) -> Finished {
    e.test_results.iter().cloned().zip(e.gm.cases.iter().cloned()).enumerate().map(|(i, tf)| (i + 1, tf)).collect()
}

impl Session {
    /// Every run, newest first, finished or not.
    pub fn list_runs(&self) -> Result<Vec<RunRow>, Error> {
        Ok(self.read_store()?.list()?)
    }

    /// One run: a suite's summary or a bench's report; for a run that did not finish, what it recorded so far.
    pub fn show_run(&self, id: i64) -> Result<StoredRun, Error> {
        let store = self.read_store()?;
        let row = store.get(id)?.ok_or(Error::NoSuchRun { id })?;
        if row.kind == RunKind::Bench.as_str() {
            if row.finished_at.is_none() {
                return Ok(StoredRun::UnfinishedBench(partial_bench(&row, store.cases(id)?)));
            }
            let bench = load_bench(&store, id)?;
            let report = bench.report(id);
            return Ok(StoredRun::Bench(StoredBenchRun { printed: bench.report, report }));
        }
        if let Some(summary) = store.summary(id)? {
            return Ok(StoredRun::Eval(summary));
        }
        let cases = store.cases(id)?;
        let description = format!("unfinished run {id}: {} test cases recorded", cases.len());
        Ok(StoredRun::Eval(recorded_summary(row.name, description, row.model, row.provider, cases)))
    }

    /// Compares a baseline run with a candidate of the same kind: suites case by case, benches cell by cell.
    /// A change is a regression or an improvement only when it is significant (paired bootstrap, 95%).
    pub fn compare_runs(&self, baseline: i64, candidate: i64) -> Result<RunComparison, Error> {
        let store = self.read_store()?;
        let kind = |id: i64| -> Result<String, Error> { Ok(store.get(id)?.ok_or(Error::NoSuchRun { id })?.kind) };
        let (kind_a, kind_b) = (kind(baseline)?, kind(candidate)?);
        if kind_a == RunKind::Bench.as_str() && kind_b == kind_a {
            let cells = bench_comparisons(&load_bench(&store, baseline)?, &load_bench(&store, candidate)?)?;
            return Ok(RunComparison::Bench { baseline, candidate, cells });
        }
        if kind_a != kind_b {
            return Err(Error::MixedKinds { a: baseline, kind_a, b: candidate, kind_b });
        }
        let comparison = gm_eval::compare::compare(&store.cases(baseline)?, &store.cases(candidate)?)?;
        Ok(RunComparison::Eval { baseline, candidate, comparison })
    }

    /// Each cell of bench run `candidate` compared with the same cell of bench run `baseline` (both finished).
    pub fn compare_benches(&self, baseline: i64, candidate: i64) -> Result<Vec<CellComparison>, Error> {
        let store = self.read_store()?;
        bench_comparisons(&load_bench(&store, baseline)?, &load_bench(&store, candidate)?)
    }
}

pub(crate) fn load_bench(store: &RunStore, id: i64) -> Result<StoredBench, Error> {
    match store.get(id)? {
        Some(r) if r.kind == RunKind::Bench.as_str() => {}
        Some(_) => return Err(Error::NotABenchRun { id }),
        None => return Err(Error::NoSuchRun { id }),
    }
    let json = store.summary_json(id)?.ok_or(Error::UnfinishedBench { id })?;
    Ok(serde_json::from_value(json)?)
}

/// Each (task, model) cell of `after` compared with the same cell of `before`.
pub(crate) fn bench_comparisons(before: &StoredBench, after: &StoredBench) -> Result<Vec<CellComparison>, Error> {
    let mut out = Vec::new();
    for a in &after.evaluations {
        if let Some(b) = before.evaluations.iter().find(|b| b.name == a.name && b.model == a.model) {
            let comparison = gm_eval::compare::compare(&finished_of(b), &finished_of(a))?;
            out.push(CellComparison { task: a.name.clone(), model: a.model.clone(), comparison });
        }
    }
    Ok(out)
}

/// The report of an unfinished bench: each cell it recorded cases of, found from the cases' indices (see
/// [`gm_eval::bench::CELL_STRIDE`]) and named by the models and tasks the run was started with.
fn partial_bench(row: &RunRow, cases: Finished) -> BenchReport {
    let stride = gm_eval::bench::CELL_STRIDE;
    let models: Vec<&str> = row.model.split(',').collect();
    let tasks: Vec<&str> = row.file.split(',').collect();
    let mut by_cell: std::collections::BTreeMap<usize, Finished> = std::collections::BTreeMap::new();
    for (index, case) in cases {
        by_cell.entry(index / stride).or_default().insert(index % stride, case);
    }
    let cells = by_cell
        .into_iter()
        .filter_map(|(c, cases)| {
            let (model, task) = (*models.get(c / tasks.len())?, *tasks.get(c % tasks.len())?);
            let description = format!("unfinished bench run {}: {} test cases recorded", row.id, cases.len());
            let e = recorded_summary(task.into(), description, model.into(), row.provider.clone(), cases);
            Some(Cell {
                model: model.into(),
                task: task.into(),
                metrics: gm_eval::bench::cell_metrics(&e),
                evaluation: e,
            })
        })
        .collect();
    let mut report = gm_eval::bench::report(cells);
    report.run_id = Some(row.id);
    report
}

/// The summary of recorded cases, without the figures only a whole run has.
fn recorded_summary(
    name: String,
    description: String,
    model: String,
    provider: String,
    cases: Finished,
) -> EvaluationSummary {
    let (results, figures): (Vec<TestResult>, Vec<CaseFigures>) = cases.into_values().unzip();
    let passed = results.iter().filter(|t| t.passed()).count();
    let total = results.len();
    EvaluationSummary {
        name,
        description,
        model,
        test_results: results,
        summary: Summary {
            total_tests: total,
            passed_tests: passed,
            failed_tests: total - passed,
            pass_rate: if total == 0 { 100.0 } else { passed as f64 / total as f64 * 100.0 },
        },
        gm: RunFigures {
            provider,
            latency_p50_ms: None,
            latency_p95_ms: None,
            latency_p99_ms: None,
            tokens_in: figures.iter().map(|f| f.tokens_in).sum(),
            tokens_out: figures.iter().map(|f| f.tokens_out).sum(),
            tokens_estimated: figures.iter().filter(|f| f.tokens_estimated).count() as u64,
            latency_from_server: figures.iter().filter(|f| f.latency_from_server && !f.cached).count() as u64,
            queue_p50_ms: None,
            tokens_per_second: None,
            tokens_per_second_wall: None,
            cost_usd: None,
            cache_hits: figures.iter().filter(|f| f.cached).count() as u64,
            retries: 0,
            rate_limited: 0,
            requests: 0,
            wall_ms: 0.0,
            cases: figures,
            repeat: None,
            timing: None,
        },
    }
}

/// The UTC date and minute of Unix seconds, as run lists show when a run started: `2026-12-04 17:46`.
pub fn utc_minutes(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm), for a date without a time-zone library.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rest / 3600, rest % 3600 / 60)
}

/// Unix seconds at the start of a `YYYY-MM-DD` day (UTC), as a filter of runs by date is written.
pub fn parse_day(text: &str) -> Option<i64> {
    let mut it = text.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d) * 86_400)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_go_both_ways() {
        assert_eq!(utc_minutes(0), "1970-01-01 00:00");
        assert_eq!(utc_minutes(1_796_406_360), "2026-12-04 17:46");
        assert_eq!(parse_day("2026-12-04"), Some(1_796_342_400));
        assert_eq!(parse_day("2024-02-29").map(utc_minutes).as_deref(), Some("2024-02-29 00:00"));
        assert_eq!(parse_day("2026-13-01"), None);
        assert_eq!(parse_day("yesterday"), None);
    }
}
