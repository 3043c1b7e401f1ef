//! Running `.prompt.yml` suites to the run store.

use std::path::{Path, PathBuf};

use gm_eval::evaluators::{BoxError, EvalOptions, EvaluatorSpec, JudgeMode};
use gm_eval::prices::PriceTable;
use gm_eval::prompt::PromptFile;
use gm_eval::run::{CaseFigures, CaseSink, EvalRunner, EvaluationSummary, Finished, RunError, RunOptions, TestResult};
use gm_eval::store::{RunIdentity, RunSink, RunStore};
use serde::Serialize;

use crate::config::Prices;
use crate::error::Error;
use crate::notice::Notice;
use crate::progress::{
    Cancel, CaseFinished, CellRef, Interrupted, Observer, Outcome, Resume, RunKind, RunStarted, SuiteFinished,
};
use crate::session::Session;

/// What to run: suites, and how.
#[derive(Debug, Clone)]
pub struct SuiteRun {
    /// The `.prompt.yml` files, each its own run in the store, in order.
    pub files: Vec<PathBuf>,
    /// A model that replaces each file's `model`.
    pub model: Option<String>,
    /// Test cases in flight at once; `None`: the concurrency cap the limits give the first suite's model,
    /// else 4.
    pub concurrency: Option<usize>,
    /// How LLM judges' replies are read.
    pub judge_mode: JudgeMode,
    /// The judge model of the built-in evaluators, instead of gm-eval's default.
    pub judge_model: Option<String>,
    /// Continue the last unfinished run of each suite (same content, model, options and provider) instead of
    /// starting anew.
    pub resume: bool,
    /// A TOML price table of USD per million tokens, added to the built-in one.
    pub prices: Option<PathBuf>,
    /// Samples per test case (at least 1); more give pass@k and pass^k.
    pub repeat: u32,
    /// Stop cleanly (resumable) once this many requests were sent, judges included.
    pub max_requests: Option<u64>,
    /// A token budget for the whole run (not a cap per answer): stop cleanly (resumable) before a call would
    /// pass it, each call reserving its input and its `max_tokens` before it is sent.
    pub max_tokens: Option<u64>,
}

impl SuiteRun {
    /// The suites in `files`, each file's own model, strict judges, one sample per case, no budget.
    pub fn new(files: Vec<PathBuf>) -> Self {
        Self {
            files,
            model: None,
            concurrency: None,
            judge_mode: JudgeMode::default(),
            judge_model: None,
            resume: false,
            prices: None,
            repeat: 1,
            max_requests: None,
            max_tokens: None,
        }
    }
}

/// A suite that ran to its end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteResult {
    /// Its run in the run store.
    pub run_id: i64,
    /// The file, as given.
    pub file: String,
    /// The summary, as `gm eval --json` prints it.
    pub summary: EvaluationSummary,
}

/// Hands each recorded case to the run store, then to the observer.
pub(crate) struct Recorder<'a> {
    pub(crate) store: RunSink<'a>,
    pub(crate) observer: &'a dyn Observer,
    pub(crate) run_id: i64,
    /// Where its cases belong.
    pub(crate) at: Position<'a>,
}

/// Where a recorded case belongs.
pub(crate) enum Position<'a> {
    /// Every case is of the suite at this position.
    Suite(usize),
    /// Each case is of the bench cell its index's offset names (models outer, tasks inner).
    Cells(&'a [(String, String)]),
}

impl CaseSink for Recorder<'_> {
    fn record(&self, index: usize, result: &TestResult, figures: &CaseFigures) -> Result<(), BoxError> {
        self.store.record(index, result, figures)?;
        let (suite, cell, index) = match &self.at {
            Position::Suite(s) => (*s, None, index),
            Position::Cells(cells) => {
                let stride = gm_eval::bench::CELL_STRIDE;
                let c = index / stride;
                let cell = cells.get(c).map(|(model, task)| CellRef { model, task });
                (c, cell, index % stride)
            }
        };
        self.observer.case_finished(&CaseFinished { run_id: self.run_id, suite, cell, index, result, figures })
    }
}

/// Every evaluator of a prompt file is well formed; a malformed one names the file, its line and column.
pub(crate) fn check_evaluators(path: &Path, f: &PromptFile) -> Result<(), Error> {
    for (i, raw) in f.evaluators.iter().enumerate() {
        if let Err(source) = EvaluatorSpec::parse(i, raw) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let at = gm_eval::prompt::locate_item(&text, "evaluators", i);
            return Err(Error::Evaluator { file: path.display().to_string(), at, source });
        }
    }
    Ok(())
}

/// The most a configuration file (gm.toml, limits, prices) may hold: they are a few hundred lines at most.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads a configuration file of at most [`MAX_CONFIG_BYTES`], without reading a larger one whole.
pub(crate) fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("it is larger than {} MiB, more than a configuration file may be", MAX_CONFIG_BYTES >> 20),
        ));
    }
    String::from_utf8(bytes).map_err(|e| Error::new(ErrorKind::InvalidData, e.utf8_error()))
}

impl Session {
    /// The built-in price table, with the entries of `file` (else of the configured prices) added or
    /// replaced.
    pub(crate) fn price_table(&self, file: Option<&Path>) -> Result<PriceTable, Error> {
        let mut prices = PriceTable::builtin();
        let configured = match file {
            Some(path) => Some(Prices::File(path.to_path_buf())),
            None => self.config().prices.clone(),
        };
        match configured {
            Some(Prices::File(path)) => {
                let text = read_small(&path).map_err(|source| Error::Read {
                    what: "the price table",
                    path: path.clone(),
                    source,
                })?;
                prices.extend_from_toml(&text).map_err(|message| Error::PriceTable { path, message })?;
            }
            Some(Prices::Inline(table)) => {
                for (id, p) in &table.models {
                    prices
                        .set(id, p.input, p.output)
                        .map_err(|message| Error::BadSetting { origin: "prices".into(), message })?;
                }
            }
            None => {}
        }
        Ok(prices)
    }

    /// The suites a run names, else every `.prompt.yml` (or `.prompt.yaml`) file of the configured suites
    /// folder, by name; an empty list when there is neither.
    pub fn suite_files(&self, files: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
        if !files.is_empty() {
            return Ok(files.to_vec());
        }
        let Some(dir) = &self.config().suites_dir else { return Ok(Vec::new()) };
        let read = std::fs::read_dir(dir).map_err(|source| Error::Read {
            what: "the suites folder",
            path: dir.clone(),
            source,
        })?;
        let mut found: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
                p.is_file() && (name.ends_with(".prompt.yml") || name.ends_with(".prompt.yaml"))
            })
            .collect();
        found.sort();
        Ok(found)
    }
}

/// A new run of `who` in the store, or with `resume` the latest unfinished one and the cases it recorded.
pub(crate) fn begin_or_resume(
    store: &RunStore,
    who: &RunIdentity,
    resume: bool,
) -> Result<(Resume, i64, Finished), Error> {
    let earlier = if resume { store.unfinished(who)? } else { None };
    Ok(match earlier {
        Some((run_id, finished)) => (Resume::Resumed, run_id, finished),
        None if resume => (Resume::NothingToResume, store.begin(who)?, Finished::new()),
        None => (Resume::New, store.begin(who)?, Finished::new()),
    })
}

/// The recorded cases of a run, or 0 when even that cannot be read.
pub(crate) fn recorded(store: &RunStore, run_id: i64) -> usize {
    store.cases(run_id).map(|c| c.len()).unwrap_or(0)
}

impl Session {
    /// Runs suites, each to its own run in the run store as its cases finish, one after the other.
    ///
    /// Every file is read and checked before the first request is sent. `observer` hears of each start,
    /// finished case and finished suite; `cancel` stops the run (the outcome is then
    /// [`Outcome::Interrupted`], the suites finished before it are in the store). A suite that stops (a failed
    /// request, a spent budget) is an [`Error::SuiteStopped`] that says what it recorded.
    pub async fn run_suites(
        &self,
        run: &SuiteRun,
        observer: &dyn Observer,
        cancel: &Cancel,
    ) -> Result<Outcome<Vec<SuiteResult>>, Error> {
        if run.concurrency == Some(0) {
            let message = "give at least 1 test case in flight at once".into();
            return Err(Error::InvalidOption { option: "--concurrency", message });
        }
        let run = &SuiteRun {
            files: self.suite_files(&run.files)?,
            model: run.model.as_deref().map(|m| self.config().model_for(m).to_string()),
            ..run.clone()
        };
        if run.files.is_empty() {
            return Err(Error::NoSuites);
        }
        let result = self.run_suites_to_store(run, observer, cancel).await;
        self.saving_recording(result)
    }

    async fn run_suites_to_store(
        &self,
        run: &SuiteRun,
        observer: &dyn Observer,
        cancel: &Cancel,
    ) -> Result<Outcome<Vec<SuiteResult>>, Error> {
        let mut files = Vec::with_capacity(run.files.len());
        for path in &run.files {
            let mut f = PromptFile::load(path)?;
            // The file's model is named as the aliases say, in the report and in every request.
            f.model = f.model.map(|m| self.config().model_for(&m).to_string());
            for w in &f.warnings {
                self.notice(Notice::PromptFile { file: path.display().to_string(), message: w.clone() });
            }
            check_evaluators(path, &f)?;
            files.push(f);
        }
        let prices = self.price_table(run.prices.as_deref())?;
        let client = self.client()?;
        let asked = files.iter().filter_map(|f| run.model.as_deref().or(f.model.as_deref()));
        self.check_demo_models(&client, asked.chain(run.judge_model.as_deref()))?;
        let mut eval = EvalOptions::default().with_judge_mode(run.judge_mode);
        if let Some(m) = &run.judge_model {
            eval = eval.with_judge_model(m.clone());
        }
        // More cases in flight than the quota lets run at once would only queue in the limiter.
        let concurrency = run
            .concurrency
            .or_else(|| {
                // The cap of the first file's model, from the limits.
                let model = run.model.clone().or_else(|| files.first().and_then(|f| f.model.clone()))?;
                let config = self.limits_config().ok()?;
                let provider = client.provider().to_string();
                config.spec_for(&provider, &model.to_lowercase()).concurrency.map(|c| c as usize)
            })
            .unwrap_or(4);
        let runner = EvalRunner::new(
            client.clone(),
            RunOptions {
                concurrency,
                model: run.model.clone(),
                eval,
                max_requests: run.max_requests,
                max_tokens: run.max_tokens,
                repeat: run.repeat,
                prices: Some(prices),
                requests_baseline: None,
                serial: false,
                stop: cancel.drain_signal(),
            },
        );
        let store = self.run_store()?;
        let mut results = Vec::with_capacity(files.len());
        for (suite, (path, file)) in run.files.iter().zip(&files).enumerate() {
            let shown = path.display().to_string();
            let text = std::fs::read(path).map_err(|source| Error::Read { what: "", path: path.clone(), source })?;
            let who = RunIdentity {
                kind: RunKind::Eval.as_str().into(),
                name: file.name.clone(),
                file: shown.clone(),
                // The file and what changes its scores: a resumed run must not mix cases scored two ways.
                digest: gm_cache::RequestKey::for_body(
                    "prompt-file",
                    &format!(
                        "judge-mode={};judge-model={:?};repeat={}",
                        run.judge_mode.name(),
                        run.judge_model,
                        run.repeat
                    ),
                    "",
                    &text,
                    0,
                    &[],
                )
                .map(|k| k.to_string())
                .unwrap_or_default(),
                model: run.model.clone().or_else(|| file.model.clone()).unwrap_or_default(),
                provider: client.provider().to_string(),
                base_url: client.base_url().to_string(),
            };
            let (resume, run_id, finished) = begin_or_resume(&store, &who, run.resume)?;
            // One worker per run: a second `--resume` of it at the same time is refused, not run twice.
            let _claim = store.claim(run_id)?;
            let finished = if resume == Resume::Resumed { store.cases(run_id)? } else { finished };
            let total = file.test_data.len();
            observer.run_started(&RunStarted {
                run_id,
                kind: RunKind::Eval,
                suite,
                name: file.name.clone(),
                file: shown.clone(),
                total,
                done: finished.len(),
                resume,
                cells: Vec::new(),
            });
            let sink = Recorder { store: store.sink(run_id), observer, run_id, at: Position::Suite(suite) };
            let outcome = tokio::select! {
                r = runner.run_with(file, Some(&sink), finished) => r,
                () = cancel.cancelled() => {
                    let recorded = recorded(&store, run_id);
                    return Ok(Outcome::Interrupted(Interrupted { run_id, file: shown, recorded, total }));
                }
            };
            if let Err(RunError::Stopped { .. }) = outcome {
                let recorded = recorded(&store, run_id);
                return Ok(Outcome::Interrupted(Interrupted { run_id, file: shown, recorded, total }));
            }
            let summary = outcome.map_err(|e| Error::SuiteStopped {
                file: shown.clone(),
                run_id,
                recorded: recorded(&store, run_id),
                source: Box::new(e),
            })?;
            store.finish(run_id, &summary)?;
            observer.suite_finished(&SuiteFinished { run_id, suite, file: &shown, summary: &summary });
            results.push(SuiteResult { run_id, file: shown, summary });
        }
        Ok(Outcome::Finished(results))
    }
}
