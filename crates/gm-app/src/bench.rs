//! Running a models × tasks bench to the run store, and the task catalog it draws on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gm_eval::bench::{BenchReport, CodeScoring};
use gm_eval::evaluators::EvaluatorSpec;
use gm_eval::prompt::PromptFile;
use gm_eval::run::{RunError, RunOptions};
use gm_eval::store::RunIdentity;
use gm_eval::tasks::{CodeExecution, MetricChoice, TaskInfo};
use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::eval::{begin_or_resume, check_evaluators, recorded, Position, Recorder};
use crate::notice::Notice;
use crate::progress::{Cancel, CellStarted, Interrupted, Observer, Outcome, Resume, RunKind, RunStarted};
use crate::runs::{bench_comparisons, load_bench, CellComparison, StoredBench};
use crate::session::Session;

/// What to bench: every model on every task, and how.
#[derive(Debug, Clone)]
pub struct BenchRun {
    /// The models.
    pub models: Vec<String>,
    /// The tasks: names of the catalog (built in, or from `tasks_dir`) or `.prompt.yml` files.
    pub tasks: Vec<String>,
    /// A folder of user tasks, one subfolder each with `task.yaml` and `data.jsonl`.
    pub tasks_dir: Option<PathBuf>,
    /// The scorers that grade every task: a task's own scorers by name, or metrics scored against each item's
    /// `expected`, with an optional pass threshold (`rougeL:0.4`). Empty: each task's own scorers.
    pub metrics: Vec<String>,
    /// Allow tasks that score by running generated code (not a security boundary).
    pub allow_code_exec: bool,
    /// Run only the first N items of each task.
    pub limit_items: Option<usize>,
    /// Test cases in flight at once in each cell; the cells' cases are interleaved, within the rate limits and
    /// the server's cap ([`crate::LimitsSettings::server_concurrency`]).
    pub concurrency: usize,
    /// One test case in flight at a time over the whole bench, for latencies measured with no queue at all.
    pub serial: bool,
    /// Continue the last unfinished bench of the same models and tasks, without repeating a recorded case.
    pub resume: bool,
    /// Stop cleanly (resumable) once this many requests were sent, judges included.
    pub max_requests: Option<u64>,
    /// Samples of each test case (1: one); a case's score is over its samples, as `gm eval --repeat` scores.
    pub repeat: u32,
    /// A TOML price table of USD per million tokens, added to the built-in one.
    pub prices: Option<PathBuf>,
    /// An earlier bench run to compare each cell with, once this one finished.
    pub baseline: Option<i64>,
}

impl BenchRun {
    /// Every model on every task, with each task's own scorers, 4 cases in flight per cell.
    pub fn new(models: Vec<String>, tasks: Vec<String>) -> Self {
        Self {
            models,
            tasks,
            tasks_dir: None,
            metrics: Vec::new(),
            allow_code_exec: false,
            limit_items: None,
            concurrency: 4,
            serial: false,
            resume: false,
            max_requests: None,
            repeat: 1,
            prices: None,
            baseline: None,
        }
    }
}

/// A bench that ran to its end.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// The report, as `gm bench --json` prints it (its `run_id` set).
    pub report: BenchReport,
    /// With a baseline: each cell compared with the baseline's same cell.
    pub baseline: Vec<CellComparison>,
}

/// The tasks of a bench as the cells run them, and what runs code.
struct Prepared {
    tasks: Vec<(String, PromptFile)>,
    code: BTreeMap<String, CodeExecution>,
}

/// Refuses a bench whose options leave nothing to measure, before anything is opened or recorded.
fn check_bench(run: &BenchRun) -> Result<(), Error> {
    let invalid = |option, message: &str| Err(Error::InvalidOption { option, message: message.to_string() });
    if run.models.is_empty() || run.models.iter().any(|m| m.trim().is_empty()) {
        return invalid("--models", "give one or more model ids, comma-separated, none of them empty");
    }
    if run.tasks.is_empty() || run.tasks.iter().any(|t| t.trim().is_empty()) {
        return invalid("--tasks", "give one or more tasks, comma-separated, none of them empty");
    }
    if run.concurrency == 0 {
        return invalid("--concurrency", "give at least 1 test case in flight at once");
    }
    if run.limit_items == Some(0) {
        return invalid("--limit-items", "give at least 1 item per task, or leave the option out for all of them");
    }
    Ok(())
}

impl Session {
    /// The task catalog: the built-in tasks and those of `tasks_dir` (else of the configured tasks folder),
    /// each validated.
    pub fn task_catalog(&self, tasks_dir: Option<&Path>) -> Result<Vec<TaskInfo>, Error> {
        let tasks_dir = tasks_dir.or(self.config().tasks_dir.as_deref());
        Ok(gm_eval::tasks::catalog(tasks_dir)?.iter().map(|t| t.info()).collect())
    }

    /// Runs every model on every task, each case recorded in one run of the store as it finishes, and returns
    /// the report with the best model by its stated rule.
    ///
    /// Every task is loaded and checked before the first request. `observer` hears of the start and of each
    /// recorded case (with its cell); `cancel` stops the bench ([`Outcome::Interrupted`]). A bench that stops
    /// (a failed request, a spent budget) is an [`Error::BenchStopped`] that says what it recorded; resuming
    /// continues it without asking a recorded case again.
    pub async fn run_bench(
        &self,
        run: &BenchRun,
        observer: &dyn Observer,
        cancel: &Cancel,
    ) -> Result<Outcome<BenchResult>, Error> {
        check_bench(run)?;
        // Models are named as the aliases say, in the report and in every request.
        let models: Vec<String> = run.models.iter().map(|m| self.config().model_for(m).to_string()).collect();
        let run = &BenchRun { models, ..run.clone() };
        let result = self.run_bench_to_store(run, observer, cancel).await;
        self.saving_recording(result)
    }

    async fn run_bench_to_store(
        &self,
        run: &BenchRun,
        observer: &dyn Observer,
        cancel: &Cancel,
    ) -> Result<Outcome<BenchResult>, Error> {
        let Prepared { tasks, code: code_tasks } = self.prepare_bench(run)?;
        let client = self.client()?;
        self.check_demo_models(&client, run.models.iter().map(String::as_str))?;
        let store = self.run_store()?;
        let who = RunIdentity {
            kind: RunKind::Bench.as_str().into(),
            name: format!("{} models x {} tasks", run.models.len(), tasks.len()),
            file: run.tasks.join(","),
            // Samples change the scores: a resumed run must not mix cases sampled two ways. One sample keeps
            // the definition's digest as it always was.
            digest: match run.repeat {
                0 | 1 => bench_digest(&tasks),
                n => format!("{};repeat={n}", bench_digest(&tasks)),
            },
            model: run.models.join(","),
            provider: client.provider().to_string(),
            base_url: client.base_url().to_string(),
        };
        let options = RunOptions {
            concurrency: run.concurrency,
            serial: run.serial,
            max_requests: run.max_requests,
            repeat: run.repeat.max(1),
            prices: Some(self.price_table(run.prices.as_deref())?),
            stop: cancel.drain_signal(),
            ..RunOptions::default()
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
            // Reaching here, every code task was allowed: by `allow_code_exec` or by its own config.
            let sandbox = gm_eval::sandbox::SandboxPolicy { enabled: true }.sandbox(config)?;
            if sandbox.support().python.is_none() {
                return Err(Error::NoPython);
            }
            Some(sandbox)
        };
        let code = sandbox.as_ref().map(|s| CodeScoring { sandbox: s, tasks: code_tasks.clone() });
        let total: usize = run.models.len() * tasks.iter().map(|(_, f)| f.test_data.len()).sum::<usize>();
        let (resume, run_id, finished) = begin_or_resume(&store, &who, run.resume)?;
        // One worker per run: a second `--resume` of it at the same time is refused, not run twice.
        let _claim = store.claim(run_id)?;
        let finished = if resume == Resume::Resumed { store.cases(run_id)? } else { finished };
        let cells: Vec<(String, String)> =
            run.models.iter().flat_map(|m| tasks.iter().map(move |(t, _)| (m.clone(), t.clone()))).collect();
        let stride = gm_eval::bench::CELL_STRIDE;
        let cells_started = cells
            .iter()
            .enumerate()
            .map(|(c, (model, task))| CellStarted {
                model: model.clone(),
                task: task.clone(),
                total: tasks[c % tasks.len()].1.test_data.len(),
                done: finished.range(c * stride..(c + 1) * stride).count(),
            })
            .collect();
        observer.run_started(&RunStarted {
            run_id,
            kind: RunKind::Bench,
            suite: 0,
            name: who.name.clone(),
            file: who.file.clone(),
            total,
            done: finished.len(),
            resume,
            cells: cells_started,
        });
        let sink = Recorder { store: store.sink(run_id), observer, run_id, at: Position::Cells(&cells) };
        let matrix = gm_eval::bench::run_matrix_with(
            &client,
            &options,
            &run.models,
            &tasks,
            code.as_ref(),
            Some(&sink),
            finished,
        );
        let outcome = tokio::select! {
            r = matrix => r,
            () = cancel.cancelled() => {
                let recorded = recorded(&store, run_id);
                return Ok(Outcome::Interrupted(Interrupted { run_id, file: who.file, recorded, total }));
            }
        };
        if let Err(e) = &outcome {
            if matches!(e.root(), RunError::Stopped { .. }) {
                let recorded = recorded(&store, run_id);
                return Ok(Outcome::Interrupted(Interrupted { run_id, file: who.file, recorded, total }));
            }
        }
        let mut report = outcome.map_err(|e| Error::BenchStopped {
            run_id,
            recorded: recorded(&store, run_id),
            total,
            source: Box::new(e),
        })?;
        report.run_id = Some(run_id);
        let stored = StoredBench {
            report: serde_json::to_value(&report)?,
            evaluations: report.cells.iter().map(|c| c.evaluation.clone()).collect(),
        };
        store.finish_with(run_id, &stored)?;
        let baseline = match run.baseline {
            Some(b) => bench_comparisons(&load_bench(&store, b)?, &stored)?,
            None => Vec::new(),
        };
        Ok(Outcome::Finished(BenchResult { report, baseline }))
    }

    /// Each task as its cells run it: from the catalog or a prompt file, with the chosen scorers and at most
    /// `limit_items` items, checked; and the tasks that score by running code, each allowed.
    fn prepare_bench(&self, run: &BenchRun) -> Result<Prepared, Error> {
        let catalog = gm_eval::tasks::catalog(run.tasks_dir.as_deref().or(self.config().tasks_dir.as_deref()))?;
        let choices = run
            .metrics
            .iter()
            .map(|m| MetricChoice::parse(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| Error::Scorers { message })?;
        let mut applied = vec![false; choices.len()];
        let mut mark = |a: &[bool]| applied.iter_mut().zip(a).for_each(|(x, y)| *x |= *y);
        let mut tasks = Vec::with_capacity(run.tasks.len());
        let mut code = BTreeMap::new();
        for t in &run.tasks {
            let path = Path::new(t);
            let mut file = if let Some(task) = catalog.iter().find(|c| c.name == *t) {
                let task = if choices.is_empty() {
                    task.clone()
                } else {
                    let (task, a) = task.with_metrics(&choices).map_err(|message| Error::Scorers { message })?;
                    mark(&a);
                    task
                };
                let task_allows = task.execution.as_ref().is_some_and(|e| e.allow_code_exec);
                if task_allows && !run.allow_code_exec {
                    self.notice(Notice::TaskRunsCode { task: t.clone() });
                }
                if task.needs_code_execution && !run.allow_code_exec && !task_allows {
                    return Err(Error::CodeExecutionNotAllowed { task: t.clone() });
                }
                if let Some(exec) = &task.execution {
                    code.insert(t.clone(), exec.clone());
                }
                task.to_prompt_file(run.models.first().map(String::as_str).unwrap_or(""), None)
            } else if path.is_file() {
                let mut file = PromptFile::load(path)?;
                if !choices.is_empty() {
                    let s = gm_eval::tasks::select_scorers(t, &file.evaluators, None, &choices)
                        .map_err(|message| Error::Scorers { message })?;
                    mark(&s.applied);
                    file.evaluators = s.evaluators;
                }
                file
            } else {
                let known = catalog.iter().map(|c| c.name.clone()).collect();
                return Err(Error::UnknownTask { task: t.clone(), known });
            };
            if path.is_file() {
                check_evaluators(path, &file)?;
            } else {
                EvaluatorSpec::parse_all(&file.evaluators)
                    .map_err(|source| Error::TaskEvaluator { task: t.clone(), source })?;
            }
            if let Some(n) = run.limit_items {
                file.test_data.truncate(n);
            }
            let name = if catalog.iter().any(|c| c.name == *t) || file.name.is_empty() {
                t.clone()
            } else {
                file.name.clone()
            };
            tasks.push((name, file));
        }
        if let Some(c) = choices.iter().zip(&applied).find_map(|(c, a)| (!a).then_some(c)) {
            return Err(Error::UnknownScorer { metric: c.name.clone(), tasks: run.tasks.clone() });
        }
        Ok(Prepared { tasks, code })
    }
}

/// The identity of what a bench's cells run, for resuming: the SHA-256 of a canonical JSON document of the
/// tasks as prepared (after the scorer choice and the item limit), each as its prompt file would be written,
/// object keys sorted at every level. The document names its format, so the digest depends on nothing but the
/// bench's definition: not on how this program prints its types, nor on the order of keys in a file.
pub(crate) fn bench_digest(tasks: &[(String, PromptFile)]) -> String {
    let tasks: Vec<Value> = tasks
        .iter()
        .map(|(name, f)| {
            let p = &f.model_parameters;
            json!({
                "name": name,
                "file": {
                    "name": f.name,
                    "description": f.description,
                    "model": f.model,
                    "modelParameters": {"maxTokens": p.max_tokens, "temperature": p.temperature, "topP": p.top_p},
                    "responseFormat": f.response_format,
                    "messages": f.messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
                    "testData": f.test_data,
                    "evaluators": f.evaluators,
                },
            })
        })
        .collect();
    let document = json!({"format": "gm bench definition 1", "tasks": tasks});
    let canonical = sorted(&document).to_string();
    use sha2::Digest;
    sha2::Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `v` with the keys of every object in sorted order.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect::<Map<String, Value>>())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(rows: &str) -> Vec<(String, PromptFile)> {
        let yaml = format!(
            "name: arith\nmodel: openai/gpt-4.1\nmodelParameters: {{maxTokens: 50, temperature: 0.5}}\nmessages:\n  \
             - role: user\n    content: \"What is {{{{a}}}} + {{{{b}}}}?\"\ntestData:\n{rows}evaluators:\n  - name: sum\n    \
             string: {{contains: \"{{{{want}}}}\"}}\n"
        );
        vec![("arith".to_string(), PromptFile::parse(&yaml, "arith.prompt.yml").unwrap())]
    }

    #[test]
    fn the_digest_of_a_known_bench_definition_is_pinned() {
        // An interrupted bench is found again by this digest: if it changes, every run interrupted before the
        // change can no longer be resumed. Change it only with the format name in the document.
        let tasks = definition("  - {a: 40, b: 2, want: \"42\"}\n  - {a: 1.5, b: 2, want: \"3.5\"}\n");
        assert_eq!(bench_digest(&tasks), "441533a90f43fbdfd63f13c08504fb8dd1fe89cded311af61f46878844e589d1");
    }

    #[test]
    fn the_digest_follows_the_definition_not_the_spelling() {
        let a = definition("  - {a: 40, b: 2, want: \"42\"}\n");
        let reordered = definition("  - {want: \"42\", b: 2, a: 40}\n");
        let other = definition("  - {a: 41, b: 2, want: \"43\"}\n");
        assert_eq!(bench_digest(&a), bench_digest(&reordered));
        assert_ne!(bench_digest(&a), bench_digest(&other));
        let mut renamed = a.clone();
        renamed[0].0 = "sums".into();
        assert_ne!(bench_digest(&a), bench_digest(&renamed));
    }
}
