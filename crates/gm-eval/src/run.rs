//! Running a `.prompt.yml` suite: every test row through the model and its evaluators, with gh-models' output.
//!
//! The [`EvalRunner`] sends each test case through a [`gm_http::Client`], so the client's rate limiter and
//! cache apply to every model and judge call. Cases run concurrently (`concurrency` at a time) and their
//! results keep the file's order. As in `gh models eval`, a test passes when all its evaluators pass, and a
//! provider failure stops the run ("test case N failed: …"); a bad model answer is a score, never an error.
//!
//! The summary serializes with gh-models' exact keys (`name`, `description`, `model`, `testResults`,
//! `summary`), plus one extra key, `gm`, holding the run's figures.
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use gm_core::ProviderKind;
//! use gm_eval::prompt::PromptFile;
//! use gm_eval::run::{EvalRunner, RunOptions};
//!
//! let file = PromptFile::parse(r#"
//! name: arithmetic
//! model: openai/gpt-4.1
//! messages:
//!   - role: user
//!     content: "What is {{a}} * {{b}}?"
//! testData:
//!   - {a: 6, b: 7, expected: "42"}
//!   - {a: 3, b: 5, expected: "15"}
//! evaluators:
//!   - name: has the product
//!     string: {contains: "{{expected}}"}
//! "#, "arithmetic.prompt.yml").unwrap();
//! let client = gm_http::Client::builder().provider(ProviderKind::Demo).build().unwrap();
//! let summary = EvalRunner::new(client, RunOptions::default()).run(&file).await.unwrap();
//! assert_eq!(summary.summary.passed_tests, 2);
//! assert_eq!(summary.summary.pass_rate, 100.0);
//! # });
//! ```

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use gm_core::metrics::{tokens_per_second, LatencySummary};
use gm_http::Client;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::evaluators::{EvalOptions, EvalResult, EvaluatorError, EvaluatorSpec, Prepared};
use crate::prompt::PromptFile;

/// How a suite is run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Test cases in flight at once (at least 1).
    pub concurrency: usize,
    /// A model that replaces the file's `model`.
    pub model: Option<String>,
    /// How evaluators score (judge mode, judge model).
    pub eval: EvalOptions,
    /// Stop starting calls once this many requests were sent in this run (judges included).
    pub max_requests: Option<u64>,
    /// A token budget for the whole run (`gm eval --token-budget`), not a cap per answer: no call starts that
    /// would pass it, counting what the calls in flight reserved (their input and their `max_tokens`).
    pub max_tokens: Option<u64>,
    /// Samples per test case (at least 1). With more than one, each sample is scored and the run reports
    /// pass@k and pass^k; `testResults` shows the first sample, as gh-models would.
    pub repeat: u32,
    /// Prices for the cost figures (`None`: no cost is computed).
    pub prices: Option<crate::prices::PriceTable>,
    /// The client's request count from which `max_requests` is counted (`None`: the count when the run
    /// starts). Runs that share one budget, as the cells of a matrix do, start from the same count.
    pub requests_baseline: Option<u64>,
    /// For a matrix: one test case in flight at a time over every cell, for latencies measured without any
    /// queue (`concurrency` is then ignored).
    pub serial: bool,
    /// Once raised, the run starts no new test case: the cases in flight finish and are recorded, and the run
    /// ends with [`RunError::Stopped`] if cases were left (a gentle stop, for a first Ctrl-C).
    pub stop: StopSignal,
}

/// A flag that tells runs to start no new test case; clones share it. See [`RunOptions::stop`].
#[derive(Debug, Clone, Default)]
pub struct StopSignal(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl StopSignal {
    /// Raises the flag: every run holding it starts no new case.
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the flag was raised.
    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            model: None,
            eval: EvalOptions::default(),
            max_requests: None,
            max_tokens: None,
            repeat: 1,
            prices: Some(crate::prices::PriceTable::builtin()),
            requests_baseline: None,
            serial: false,
            stop: StopSignal::default(),
        }
    }
}

/// Requests and tokens a run has used, checked against its budgets before every call, and what its own calls
/// cost the provider (other runs may share the client at the same time, as the cells of a matrix do).
#[derive(Debug, Default)]
struct Budget {
    requests_at_start: u64,
    /// Tokens used by answered calls, and reserved by calls in flight.
    tokens: std::sync::Mutex<(u64, u64)>,
    requests: std::sync::atomic::AtomicU64,
    retries: std::sync::atomic::AtomicU64,
    rate_limited: std::sync::atomic::AtomicU64,
}

impl Budget {
    /// Gives back a call's reservation once it is answered (or failed).
    fn release(&self, reserved: u64) {
        let mut tokens = self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.1 = tokens.1.saturating_sub(reserved);
    }

    /// Counts one answered call: its attempts reached the provider unless it came from the cache.
    fn count(&self, answer: &gm_http::ChatResponse) {
        use std::sync::atomic::Ordering::Relaxed;
        self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0 += answer.usage().total_tokens;
        if !answer.cached {
            let attempts = u64::from(answer.attempts.max(1));
            self.requests.fetch_add(attempts, Relaxed);
            self.retries.fetch_add(attempts - 1, Relaxed);
            self.rate_limited.fetch_add(u64::from(answer.rate_limited), Relaxed);
        }
    }
}

/// A recorded case read back from its stored form: the `result` and `figures` columns of the run store.
pub fn decode_case(result: &str, figures: &str) -> Result<(TestResult, CaseFigures), serde_json::Error> {
    Ok((serde_json::from_str(result)?, serde_json::from_str(figures)?))
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The file names no model and none was given.
    #[error("{file} names no model; add `model: publisher/name` to it or pass --model")]
    NoModel {
        /// The suite's name or file.
        file: String,
    },
    /// An evaluator definition is malformed.
    #[error(transparent)]
    Evaluator(#[from] EvaluatorError),
    /// A finished case could not be recorded (the run store or an output file failed).
    #[error("test case {index} could not be recorded: {error}; the cases recorded before it are kept")]
    Record {
        /// The 1-based test case.
        index: usize,
        /// The failure (its text is in the message too).
        #[source]
        error: crate::evaluators::BoxError,
    },
    /// A budget of `--max-requests` or `--token-budget` is used up; the run stopped before the next call.
    #[error("the run reached its budget of {limit} {what} after {index_done} finished test cases; raise the budget to go on")]
    Budget {
        /// `requests` or `tokens`.
        what: &'static str,
        /// The budget.
        limit: u64,
        /// Test cases finished before the stop.
        index_done: usize,
    },
    /// A model or judge call failed (after the client's retries).
    #[error("test case {index} failed: {error}")]
    Case {
        /// The 1-based test case.
        index: usize,
        /// The failure (its text is in the message too).
        #[source]
        error: gm_http::Error,
    },
    /// One cell of a models × tasks matrix stopped.
    #[error("{model} on {task}: {source}")]
    Cell {
        /// The cell's model.
        model: String,
        /// The cell's task.
        task: String,
        /// Why it stopped.
        #[source]
        source: Box<RunError>,
    },
    /// The run was stopped gently ([`RunOptions::stop`]): it started no new case, and those in flight
    /// finished and were recorded.
    #[error("the run was stopped after {index_done} finished test cases; resume it to run the rest")]
    Stopped {
        /// Test cases finished (recorded) when it stopped.
        index_done: usize,
    },
    /// A task of a matrix has more items than a recorded run can index.
    #[error("task {task} has more than {max} items; split it into smaller tasks")]
    TooManyItems {
        /// The task.
        task: String,
        /// The most items a task may have.
        max: usize,
    },
}

impl RunError {
    /// The client error behind a failed case, if that is what stopped the run.
    pub fn client_error(&self) -> Option<&gm_http::Error> {
        match self.root() {
            RunError::Case { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The error itself, or for a matrix cell the error that stopped the cell.
    pub fn root(&self) -> &RunError {
        match self {
            RunError::Cell { source, .. } => source.root(),
            other => other,
        }
    }
}

/// One test case's result, with gh-models' keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// The test row.
    pub test_case: Map<String, Value>,
    /// The model's answer, trimmed.
    pub model_response: String,
    /// Each evaluator's result, in the file's order.
    pub evaluation_results: Vec<EvalResult>,
}

impl TestResult {
    /// A test passes when all its evaluators pass.
    pub fn passed(&self) -> bool {
        self.evaluation_results.iter().all(|r| r.passed)
    }
}

/// Pass counts, with gh-models' keys; `passRate` is a percentage (100 for an empty suite).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Test cases run.
    pub total_tests: usize,
    /// Test cases whose evaluators all passed.
    pub passed_tests: usize,
    /// The others.
    pub failed_tests: usize,
    /// `passed / total * 100`.
    pub pass_rate: f64,
}

/// What one test case took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseFigures {
    /// The model call's latency (0 for a cached answer): the service time the server reported, when it
    /// reports one (`latency_from_server`), else from sending to the last byte, without the time the request
    /// waited in gm before it was sent (`queue_ms`).
    pub latency_ms: f64,
    /// Prompt tokens of the model call.
    pub tokens_in: u64,
    /// Completion tokens of the model call.
    pub tokens_out: u64,
    /// Whether the model's answer came from the cache.
    pub cached: bool,
    /// The time the model call waited in gm for the rate limits and the server's cap before it was sent.
    #[serde(default)]
    pub queue_ms: f64,
    /// Whether `latency_ms` is the service time the server reported (apart from its own queue).
    #[serde(default)]
    pub latency_from_server: bool,
    /// Whether the token counts are estimated with the tokenizer because the server sent no usage.
    #[serde(default)]
    pub tokens_estimated: bool,
    /// Judge calls made for this case.
    pub judge_calls: u32,
    /// With `repeat` above 1: how many samples passed, of how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<(u32, u32)>,
    /// With `repeat` above 1: the model calls of the samples after the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_samples: Vec<SampleFigures>,
}

/// One more sample's model call of a repeated test case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleFigures {
    /// The call's latency (0 for a cached answer), as [`CaseFigures::latency_ms`].
    pub latency_ms: f64,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// Whether the answer came from the cache.
    pub cached: bool,
    /// The time the call waited in gm before it was sent.
    #[serde(default)]
    pub queue_ms: f64,
    /// Whether `latency_ms` is the service time the server reported.
    #[serde(default)]
    pub latency_from_server: bool,
    /// Whether the token counts are estimated.
    #[serde(default)]
    pub tokens_estimated: bool,
}

impl CaseFigures {
    /// Every model call of the case: the first sample's, then the others'.
    pub fn calls(&self) -> impl Iterator<Item = SampleFigures> + '_ {
        let first = SampleFigures {
            latency_ms: self.latency_ms,
            tokens_in: self.tokens_in,
            tokens_out: self.tokens_out,
            cached: self.cached,
            queue_ms: self.queue_ms,
            latency_from_server: self.latency_from_server,
            tokens_estimated: self.tokens_estimated,
        };
        std::iter::once(first).chain(self.more_samples.iter().copied())
    }
}

/// pass@k and pass^k over the test cases of a repeated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatFigures {
    /// Samples per test case.
    pub n: u32,
    /// For each k in 1..=n: the chance that at least one of k samples passes, averaged over cases.
    pub pass_at_k: std::collections::BTreeMap<u32, f64>,
    /// For each k in 1..=n: the chance that all of k samples pass, averaged over cases.
    pub pass_hat_k: std::collections::BTreeMap<u32, f64>,
}

/// The run's figures: gm's additions to gh-models' output, under the `gm` key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    /// The provider that answered.
    pub provider: String,
    /// Median model-call latency of the cases that were sent (cached answers excluded), each the server's
    /// service time where it reports one, else the time on the wire without gm's own queue.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile.
    pub latency_p99_ms: Option<f64>,
    /// Prompt tokens of all model calls.
    pub tokens_in: u64,
    /// Completion tokens of all model calls.
    pub tokens_out: u64,
    /// Model calls whose token counts are estimated with the tokenizer (the server sent no usage).
    #[serde(default)]
    pub tokens_estimated: u64,
    /// Model calls whose latency is the service time the server reported.
    #[serde(default)]
    pub latency_from_server: u64,
    /// Median time a model call waited in gm (rate limits, the server's cap) before it was sent.
    #[serde(default)]
    pub queue_p50_ms: Option<f64>,
    /// Tokens per second per request: the mean over the model calls that were sent of each call's completion
    /// tokens over its latency.
    pub tokens_per_second: Option<f64>,
    /// Tokens per second over wall time: the completion tokens of the calls that were sent over the run's wall
    /// time (what the server delivered to this run, however many calls were in flight).
    #[serde(default)]
    pub tokens_per_second_wall: Option<f64>,
    /// What the model calls of this run cost in US dollars (cached answers cost nothing; judge calls are not
    /// included), when the price table knows the model; never for the demo provider, which asks no model.
    pub cost_usd: Option<f64>,
    /// Model answers served from the cache (each sample of a repeated case counts).
    pub cache_hits: u64,
    /// Retries the client made (whole run, judges included).
    pub retries: u64,
    /// 429 answers the client received.
    pub rate_limited: u64,
    /// Requests sent (judges included; cached answers send none).
    pub requests: u64,
    /// Wall time of the run.
    pub wall_ms: f64,
    /// Per test case, in the file's order.
    pub cases: Vec<CaseFigures>,
    /// pass@k and pass^k, for a repeated run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<RepeatFigures>,
    /// `recorded` when the answers went through a recorded answers file (`--record`, `--replay`): every
    /// latency (and what is computed from one), attempt and 429 is the one recorded with its answer, and
    /// `wall_ms` is 0, since a replay has no wall time of its own; a recorded run and its replay print the
    /// same JSON. Absent when the run was measured as it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// How a run's time figures were obtained, when not measured as it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// From a recorded answers file: each answer's figures are those recorded with it.
    Recorded,
}

/// A suite's result, as `gh models eval --json` prints it, with gm's figures under `gm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationSummary {
    /// The file's `name`.
    pub name: String,
    /// The file's `description`.
    pub description: String,
    /// The model evaluated.
    pub model: String,
    /// Each test case, in the file's order.
    pub test_results: Vec<TestResult>,
    /// Pass counts.
    pub summary: Summary,
    /// gm's figures.
    pub gm: RunFigures,
}

impl EvaluationSummary {
    /// Whether every test passed.
    pub fn all_passed(&self) -> bool {
        self.summary.failed_tests == 0
    }
}

/// Receives each test case as soon as it finishes (before the run ends), so nothing is lost when a run stops.
pub trait CaseSink: Send + Sync {
    /// Records case `index` (1-based). An error stops the run.
    fn record(
        &self,
        index: usize,
        result: &TestResult,
        figures: &CaseFigures,
    ) -> Result<(), crate::evaluators::BoxError>;
}

/// Cases already finished by an earlier, interrupted run, by 1-based index: they are not run again.
pub type Finished = std::collections::BTreeMap<usize, (TestResult, CaseFigures)>;

/// A run under way: what [`EvalRunner::begin`] prepared, for its cases and its summary.
#[derive(Debug)]
pub(crate) struct CellRun {
    model: String,
    specs: Vec<EvaluatorSpec>,
    budget: Budget,
    started: Instant,
}

/// Runs suites through a client.
#[derive(Debug, Clone)]
pub struct EvalRunner {
    client: Client,
    options: RunOptions,
}

impl EvalRunner {
    /// A runner that sends through `client` (its limiter and cache apply).
    pub fn new(client: Client, options: RunOptions) -> Self {
        Self { client, options }
    }

    /// Runs every test row of `file` and scores it.
    pub async fn run(&self, file: &PromptFile) -> Result<EvaluationSummary, RunError> {
        self.run_with(file, None, Finished::new()).await
    }

    /// Runs the test rows of `file` that `finished` does not hold, hands each to `sink` as it finishes, and
    /// returns the summary of all of them (the finished ones included, in the file's order).
    pub async fn run_with(
        &self,
        file: &PromptFile,
        sink: Option<&dyn CaseSink>,
        mut finished: Finished,
    ) -> Result<EvaluationSummary, RunError> {
        let cell = self.begin(file)?;
        let cell = &cell;
        let todo: Vec<usize> = (1..=file.test_data.len()).filter(|i| !finished.contains_key(i)).collect();
        // The closure takes the index alone: a closure taking a borrowed row would make the run's future Send
        // only for one lifetime, and a server could not spawn it.
        let left = todo.len();
        let stop = &self.options.stop;
        let started_cases = std::sync::atomic::AtomicUsize::new(0);
        let started_ref = &started_cases;
        // A case is taken only when a slot frees, so a stop raised meanwhile keeps it (and all after it) unsent.
        let cases = todo.into_iter().take_while(move |_| !stop.is_stopped()).map(move |index| async move {
            started_ref.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (result, figures) = self.run_case(cell, file, index).await?;
            if let Some(sink) = sink {
                sink.record(index, &result, &figures).map_err(|error| RunError::Record { index, error })?;
            }
            Ok::<_, RunError>((index, result, figures))
        });
        let mut ordered = stream::iter(cases).buffered(self.options.concurrency.max(1));
        let mut over_budget = None;
        while let Some(outcome) = ordered.next().await {
            // As gh-models, a failed call stops the run; cases still in flight are dropped. A budget stops
            // only new calls: the cases in flight finish and are kept, and the rest fail before sending.
            let (index, result, figures) = match outcome {
                Ok(o) => o,
                Err(RunError::Budget { what, limit, .. }) => {
                    over_budget = Some((what, limit));
                    continue;
                }
                Err(e) => return Err(e),
            };
            finished.insert(index, (result, figures));
        }
        drop(ordered);
        if let Some((what, limit)) = over_budget {
            return Err(RunError::Budget { what, limit, index_done: finished.len() });
        }
        if started_cases.load(std::sync::atomic::Ordering::SeqCst) < left {
            return Err(RunError::Stopped { index_done: finished.len() });
        }
        Ok(self.summarize(cell, file, finished))
    }

    /// Starts a run of `file`: its model, its evaluators parsed, a budget, and the clock of its wall time.
    pub(crate) fn begin(&self, file: &PromptFile) -> Result<CellRun, RunError> {
        let model = self
            .options
            .model
            .clone()
            .or_else(|| file.model.clone())
            .ok_or_else(|| RunError::NoModel { file: file.name.clone() })?;
        let specs = EvaluatorSpec::parse_all(&file.evaluators)?;
        let requests_at_start = self.options.requests_baseline.unwrap_or_else(|| self.client.stats().requests);
        Ok(CellRun { model, specs, budget: Budget { requests_at_start, ..Budget::default() }, started: Instant::now() })
    }

    /// Runs test row `index` (1-based) of a run begun with [`EvalRunner::begin`].
    pub(crate) async fn run_case(
        &self,
        cell: &CellRun,
        file: &PromptFile,
        index: usize,
    ) -> Result<(TestResult, CaseFigures), RunError> {
        let row = &file.test_data[index - 1];
        self.case(index, file, &cell.model, row, &cell.specs, &cell.budget).await
    }

    /// The summary of a run begun with [`EvalRunner::begin`] whose cases are all in `finished`.
    pub(crate) fn summarize(&self, cell: &CellRun, file: &PromptFile, finished: Finished) -> EvaluationSummary {
        let (budget, model) = (&cell.budget, &cell.model);
        let outcomes: Vec<(TestResult, CaseFigures)> = finished.into_values().collect();
        let recorded = self.client.recording().is_some();
        let wall = if recorded { Duration::ZERO } else { cell.started.elapsed() };
        let (test_results, cases): (Vec<TestResult>, Vec<CaseFigures>) = outcomes.into_iter().unzip();
        let total = test_results.len();
        let passed = test_results.iter().filter(|t| t.passed()).count();
        // Every model call counts, each sample of a repeated case included.
        let calls: Vec<SampleFigures> = cases.iter().flat_map(CaseFigures::calls).collect();
        let sent: Vec<&SampleFigures> = calls.iter().filter(|c| !c.cached).collect();
        let latencies: Vec<f64> = sent.iter().map(|c| c.latency_ms).collect();
        let latency = LatencySummary::from_millis(&latencies);
        let queued: Vec<f64> = sent.iter().map(|c| c.queue_ms).collect();
        let tokens_out: u64 = calls.iter().map(|c| c.tokens_out).sum();
        let sent_out: u64 = sent.iter().map(|c| c.tokens_out).sum();
        let per_request: Vec<f64> = sent.iter().filter_map(|c| tokens_per_second(c.tokens_out, c.latency_ms)).collect();
        let figures = RunFigures {
            provider: self.client.provider().to_string(),
            latency_p50_ms: latency.map(|l| l.p50_ms),
            latency_p95_ms: latency.map(|l| l.p95_ms),
            latency_p99_ms: latency.map(|l| l.p99_ms),
            tokens_in: calls.iter().map(|c| c.tokens_in).sum(),
            tokens_out,
            tokens_estimated: calls.iter().filter(|c| c.tokens_estimated).count() as u64,
            latency_from_server: sent.iter().filter(|c| c.latency_from_server).count() as u64,
            queue_p50_ms: LatencySummary::from_millis(&queued).map(|l| l.p50_ms),
            tokens_per_second: (!per_request.is_empty())
                .then(|| per_request.iter().sum::<f64>() / per_request.len() as f64),
            tokens_per_second_wall: if sent.is_empty() { None } else { tokens_per_second(sent_out, duration_ms(wall)) },
            cost_usd: self
                .options
                .prices
                .as_ref()
                .and_then(|t| t.price_from(self.client.provider(), model))
                // `+ 0.0` turns the -0.0 of an empty float sum into 0.0.
                .map(|p| {
                    calls.iter().filter(|c| !c.cached).map(|c| p.cost_usd(c.tokens_in, c.tokens_out)).sum::<f64>() + 0.0
                }),
            cache_hits: calls.iter().filter(|c| c.cached).count() as u64,
            retries: budget.retries.load(std::sync::atomic::Ordering::Relaxed),
            rate_limited: budget.rate_limited.load(std::sync::atomic::Ordering::Relaxed),
            requests: budget.requests.load(std::sync::atomic::Ordering::Relaxed),
            wall_ms: duration_ms(wall),
            repeat: repeat_figures(&cases),
            cases,
            timing: recorded.then_some(Timing::Recorded),
        };
        EvaluationSummary {
            name: file.name.clone(),
            description: file.description.clone(),
            model: model.clone(),
            test_results,
            summary: Summary {
                total_tests: total,
                passed_tests: passed,
                failed_tests: total - passed,
                pass_rate: if total == 0 { 100.0 } else { passed as f64 / total as f64 * 100.0 },
            },
            gm: figures,
        }
    }

    async fn case(
        &self,
        index: usize,
        file: &PromptFile,
        model: &str,
        row: &Map<String, Value>,
        specs: &[EvaluatorSpec],
        budget: &Budget,
    ) -> Result<(TestResult, CaseFigures), RunError> {
        let request = file.to_request(model, row);
        let n = self.options.repeat.max(1);
        let (result, mut figures) = self.sample(index, &request, 0, row, specs, budget).await?;
        if n > 1 {
            let mut passes = u32::from(result.passed());
            for sample in 1..n {
                let (other, f) = self.sample(index, &request, sample, row, specs, budget).await?;
                passes += u32::from(other.passed());
                figures.judge_calls += f.judge_calls;
                figures.more_samples.extend(f.calls());
            }
            figures.samples = Some((passes, n));
        }
        Ok((result, figures))
    }

    /// One sample of a test case: the model's answer and every evaluator on it.
    async fn sample(
        &self,
        index: usize,
        request: &gm_core::ChatRequest,
        sample: u32,
        row: &Map<String, Value>,
        specs: &[EvaluatorSpec],
        budget: &Budget,
    ) -> Result<(TestResult, CaseFigures), RunError> {
        let reserved = self.reserve(budget, request)?;
        let answer = self.client.chat_sample(request, sample).await;
        // Counted before the reservation is given back, so no other call sees the budget freer than it is.
        if let Ok(a) = &answer {
            budget.count(a);
        }
        budget.release(reserved);
        let answer = answer.map_err(|error| RunError::Case { index, error })?;
        let response = answer.text().trim().to_string();
        let usage = answer.usage();
        let mut results = Vec::with_capacity(specs.len());
        let mut judge_calls = 0;
        for spec in specs {
            match spec.prepare(row, &response, &self.options.eval)? {
                Prepared::Done(r) => results.push(r),
                Prepared::Judge(call) => {
                    judge_calls += 1;
                    let reserved = self.reserve(budget, &call.request)?;
                    let reply = self.client.chat(&call.request).await;
                    if let Ok(r) = &reply {
                        budget.count(r);
                    }
                    budget.release(reserved);
                    let reply = reply.map_err(|error| RunError::Case { index, error })?;
                    results.push(call.score(reply.text()));
                }
            }
        }
        let latency_from_server = !answer.cached && answer.service.is_some();
        let figures = CaseFigures {
            latency_ms: if answer.cached { 0.0 } else { duration_ms(answer.service.unwrap_or(answer.latency)) },
            tokens_in: usage.prompt_tokens,
            tokens_out: usage.completion_tokens,
            cached: answer.cached,
            // A run under --record or --replay reports the figures its recording holds, which hold no queue
            // wait: recorded and replayed, it prints the same JSON.
            queue_ms: if answer.cached || self.client.recording().is_some() { 0.0 } else { duration_ms(answer.queued) },
            latency_from_server,
            tokens_estimated: answer.usage_estimated,
            judge_calls,
            samples: None,
            more_samples: Vec::new(),
        };
        Ok((TestResult { test_case: row.clone(), model_response: response, evaluation_results: results }, figures))
    }
}

impl EvalRunner {
    /// Checks the budgets before a call and reserves its tokens: what the request carries and the most it may
    /// be answered with (its `max_tokens`), so calls in flight together cannot pass the budget unseen. An
    /// answer can pass its reservation only where the request sets no cap on its output: the budget is then
    /// overshot by at most the answers in flight.
    fn reserve(&self, budget: &Budget, request: &gm_core::ChatRequest) -> Result<u64, RunError> {
        if let Some(limit) = self.options.max_requests {
            if self.client.stats().requests - budget.requests_at_start >= limit {
                return Err(RunError::Budget { what: "requests", limit, index_done: 0 });
            }
        }
        let Some(limit) = self.options.max_tokens else { return Ok(0) };
        let count = gm_limits::count_tokens(request);
        let need = count.input + count.output;
        let mut tokens = budget.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (used, reserved) = *tokens;
        // A call is always allowed when nothing else is in flight and the budget is not spent, so a budget
        // smaller than one request still lets the run make progress rather than stop before its first call.
        if used >= limit || (reserved > 0 && used + reserved + need > limit) {
            return Err(RunError::Budget { what: "tokens", limit, index_done: 0 });
        }
        *tokens = (used, reserved + need);
        Ok(need)
    }
}

/// pass@k and pass^k for every k up to the number of samples, when cases were sampled more than once.
fn repeat_figures(cases: &[CaseFigures]) -> Option<RepeatFigures> {
    let problems: Vec<(u64, u64)> =
        cases.iter().filter_map(|c| c.samples).map(|(passed, n)| (u64::from(n), u64::from(passed))).collect();
    let n = problems.first()?.0 as u32;
    let mut pass_at_k = std::collections::BTreeMap::new();
    let mut pass_hat_k = std::collections::BTreeMap::new();
    for k in 1..=n {
        pass_at_k.insert(k, crate::metrics::mean_pass_at_k(&problems, u64::from(k)).ok()?);
        pass_hat_k.insert(k, crate::metrics::mean_pass_hat_k(&problems, u64::from(k)).ok()?);
    }
    Some(RepeatFigures { n, pass_at_k, pass_hat_k })
}

fn duration_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
