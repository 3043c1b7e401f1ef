//! The error type of gm-app: one enum, its variants grouped by the phase in which they arise, with predicates
//! a front end maps to its own codes (`gm` exits 3 for [`Error::is_provider`], 2 for everything else: the
//! caller's input and the local state alike).

use std::path::PathBuf;

use gm_core::ProviderKind;
use gm_eval::evaluators::EvaluatorError;
use gm_eval::prompt::PromptError;
use gm_eval::run::RunError;
use gm_eval::store::StoreError;
use gm_eval::tasks::TaskError;
use gm_limits::LimitError;

/// Where a failure arose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Reading what the caller gave: a file, a name, a choice. Nothing was opened or sent.
    Input,
    /// Opening or using the state: the state folder and file, the run store, the Redis server.
    State,
    /// Talking to the provider: a request that failed, or a run that stopped part-way.
    Provider,
}

/// Everything a use case of the [`Session`](crate::Session) can fail with.
///
/// Messages are lowercase and say what to do next. A poor model answer is never an error: it is a score.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // Input: what the caller gave.
    /// A `.prompt.yml` file could not be read or is malformed.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// A model id is malformed.
    #[error(transparent)]
    ModelId(#[from] gm_core::ModelIdError),
    /// An evaluator of a prompt file is malformed; `at` is its line and column in the file.
    #[error("{file}{}: {source}", at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Evaluator {
        /// The file, as given.
        file: String,
        /// The evaluator's line and column, when found.
        at: Option<(usize, usize)>,
        /// What is wrong with it.
        #[source]
        source: EvaluatorError,
    },
    /// An evaluator of a task of the catalog is malformed.
    #[error("task {task}: an evaluator is malformed")]
    TaskEvaluator {
        /// The task.
        task: String,
        /// What is wrong with it.
        #[source]
        source: EvaluatorError,
    },
    /// A task folder could not be loaded.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A bench task is neither a task of the catalog nor a prompt file.
    #[error("task `{task}` is neither a task ({}) nor a .prompt.yml file", known.join(", "))]
    UnknownTask {
        /// The name given.
        task: String,
        /// The tasks of the catalog.
        known: Vec<String>,
    },
    /// A scorer choice (`--metrics`) cannot be applied.
    #[error("{message}")]
    Scorers {
        /// What is wrong, naming the choice and the task.
        message: String,
    },
    /// A scorer choice matches no scorer of any task and no metric.
    #[error("`{metric}` is neither a scorer of the tasks ({}) nor a metric of `gm score --list`", tasks.join(", "))]
    UnknownScorer {
        /// The choice.
        metric: String,
        /// The tasks of the bench.
        tasks: Vec<String>,
    },
    /// A task scores by running generated code, which was not allowed.
    #[error(
        "task `{task}` scores by running the generated code; pass --allow-code-exec to run it (not a security \
         boundary), or leave the task out"
    )]
    CodeExecutionNotAllowed {
        /// The task.
        task: String,
    },
    /// The code tasks need Python, which is not installed.
    #[error("the code tasks need python3 on the PATH to run the generated code")]
    NoPython,
    /// Comparing runs or preparing the sandbox failed.
    #[error(transparent)]
    Eval(#[from] gm_eval::Error),
    /// A scorer, the metric registry or the scoring engine refused its input, or could not read or write.
    #[error(transparent)]
    Metrics(#[from] gm_metrics::Error),
    /// The limits file is malformed.
    #[error("{}: {source}", path.display())]
    LimitsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: LimitError,
    },
    /// The price table is malformed.
    #[error("{}: {message}", path.display())]
    PriceTable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read.
    #[error("could not read {what}{}{}", if what.is_empty() { "" } else { " " }, path.display())]
    Read {
        /// What the file is (`the limits file`, `the price table`), or empty.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A settings file (the project file `gm.toml`, the user file) is not valid TOML or holds a bad value.
    #[error("{}:{line}:{column}: {message}", path.display())]
    SettingsFile {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A settings file (the project file named with `--config`, the user file) could not be read.
    #[error("could not read the settings file {}", path.display())]
    ReadSettings {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A settings file holds a key gm does not know.
    #[error(
        "{}:{line}:{column}: unknown key `{key}`{}; docs/config.md lists every key",
        path.display(),
        suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    )]
    UnknownSetting {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// The key, dotted (`cache.tll`).
        key: String,
        /// The known key closest to it, when one is close.
        suggestion: Option<String>,
    },
    /// A setting's value is not valid.
    #[error("{origin}: {message}")]
    BadSetting {
        /// Where it came from (`GM_PROVIDER`, `gm.toml:3`).
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A recorded answers file or a cache export could not be read, or written.
    #[error(transparent)]
    RecordedAnswers(gm_cache::Error),
    /// A suite run names no file and no suites folder is configured (or it holds no suite).
    #[error(
        "no suite to run; name .prompt.yml files, or set suites_dir in gm.toml to a folder of them (gm init writes \
         one)"
    )]
    NoSuites,
    /// A file could not be written.
    #[error("could not write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The project file exists already.
    #[error("{} exists; pass --force to overwrite it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A model is not in the provider's catalog.
    #[error(
        "model `{model}` is not in the {provider} catalog{}; run `gm models list`",
        if suggestions.is_empty() { String::new() } else { format!(" (did you mean {}?)", suggestions.join(", ")) }
    )]
    UnknownModel {
        /// The id asked for.
        model: String,
        /// The provider.
        provider: ProviderKind,
        /// Catalog ids that contain the name asked for.
        suggestions: Vec<String>,
    },
    /// No run has this id.
    #[error("there is no run {id}; `gm runs list` shows the runs")]
    NoSuchRun {
        /// The id.
        id: i64,
    },
    /// A bench run was asked for and this run is not one.
    #[error("run {id} is not a bench run; `gm runs list` shows the kinds")]
    NotABenchRun {
        /// The id.
        id: i64,
    },
    /// A finished bench run was asked for and this one did not finish.
    #[error("bench run {id} did not finish")]
    UnfinishedBench {
        /// The id.
        id: i64,
    },
    /// Two runs of different kinds (`eval`, `bench`) cannot be compared.
    #[error(
        "run {a} is {} and run {b} is {}; compare two runs of one kind (`gm runs list` shows the kinds)",
        a_run(kind_a),
        a_run(kind_b)
    )]
    MixedKinds {
        /// The baseline.
        a: i64,
        /// Its kind.
        kind_a: String,
        /// The candidate.
        b: i64,
        /// Its kind.
        kind_b: String,
    },
    /// No rate-limit key matches what was asked to reset.
    #[error("no rate-limit key matches `{key}`; `gm limits status` lists them")]
    NoLimitKey {
        /// What was asked for.
        key: String,
    },
    /// An option of a run is out of its range (a concurrency of 0, an empty model list, …); nothing was
    /// started or recorded.
    #[error("{option}: {message}")]
    InvalidOption {
        /// The option, as a front end names it (`--concurrency`).
        option: &'static str,
        /// What is wrong and what to give instead.
        message: String,
    },
    /// A use case reads the state file, and the session has none.
    #[error("{what} needs a state file; give the session a data folder (--data-dir)")]
    NoStateFile {
        /// What needs it.
        what: &'static str,
    },

    // State: the state folder and file, the run store, Redis.
    /// The state folder could not be made.
    #[error("could not create the state folder {}; pass --data-dir DIR", path.display())]
    StateFolder {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The cache in the state file could not be opened.
    #[error("could not open the cache in {}", path.display())]
    OpenCache {
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: gm_cache::Error,
    },
    /// The rate-limit windows in the state file could not be opened.
    #[error("could not open the rate-limit state in {}", path.display())]
    OpenWindows {
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: LimitError,
    },
    /// The Redis server did not answer for the cache (its address is never shown: it may hold a password).
    #[error("could not reach the Redis server given by --redis (GM_REDIS_URL) for the cache")]
    RedisCache {
        /// The cause.
        #[source]
        source: gm_cache::Error,
    },
    /// The Redis server did not answer for the rate limits.
    #[error("could not reach the Redis server given by --redis (GM_REDIS_URL) for the rate limits")]
    RedisWindows {
        /// The cause.
        #[source]
        source: LimitError,
    },
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] gm_cache::Error),
    /// The rate-limit state failed.
    #[error(transparent)]
    Limits(#[from] LimitError),
    /// A stored run could not be read back.
    #[error("a stored run could not be read: {0}")]
    Decode(#[from] serde_json::Error),

    // Provider: requests and runs.
    /// A request failed (after the client's retries).
    #[error(transparent)]
    Client(#[from] gm_http::Error),
    /// A suite's run stopped before its end; the cases recorded are kept and `resume` continues it.
    #[error("{file} did not finish")]
    SuiteStopped {
        /// The suite's file, as given.
        file: String,
        /// The run in the store.
        run_id: i64,
        /// Test cases recorded so far.
        recorded: usize,
        /// Why it stopped.
        #[source]
        source: Box<RunError>,
    },
    /// A bench stopped before its end; the cases recorded are kept and `resume` continues it.
    #[error("gm bench did not finish")]
    BenchStopped {
        /// The run in the store.
        run_id: i64,
        /// Test cases recorded so far.
        recorded: usize,
        /// Test cases in the whole bench.
        total: usize,
        /// Why it stopped.
        #[source]
        source: Box<RunError>,
    },
}

/// `an eval run`, `a bench run`.
fn a_run(kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {kind} run")
}

impl Error {
    /// Where the failure arose.
    pub fn phase(&self) -> Phase {
        match self {
            Error::StateFolder { .. }
            | Error::OpenCache { .. }
            | Error::OpenWindows { .. }
            | Error::RedisCache { .. }
            | Error::RedisWindows { .. }
            | Error::Store(_)
            | Error::Cache(_)
            | Error::Limits(_)
            | Error::Decode(_) => Phase::State,
            Error::Client(_) | Error::SuiteStopped { .. } | Error::BenchStopped { .. } => Phase::Provider,
            _ => Phase::Input,
        }
    }

    /// Whether the caller's input or configuration is at fault (a bad file, name or flag, missing
    /// credentials), rather than the provider, the network or the state.
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Prompt(_)
            | Error::ModelId(_)
            | Error::Evaluator { .. }
            | Error::TaskEvaluator { .. }
            | Error::UnknownTask { .. }
            | Error::Scorers { .. }
            | Error::UnknownScorer { .. }
            | Error::CodeExecutionNotAllowed { .. }
            | Error::NoPython
            | Error::LimitsFile { .. }
            | Error::PriceTable { .. }
            | Error::UnknownModel { .. }
            | Error::NoSuchRun { .. }
            | Error::NotABenchRun { .. }
            | Error::UnfinishedBench { .. }
            | Error::MixedKinds { .. }
            | Error::NoLimitKey { .. }
            | Error::InvalidOption { .. }
            | Error::NoStateFile { .. }
            | Error::SettingsFile { .. }
            | Error::ReadSettings { .. }
            | Error::UnknownSetting { .. }
            | Error::BadSetting { .. }
            | Error::NoSuites
            | Error::Exists { .. } => true,
            // A recorded answers file that is missing or malformed is the caller's; one that cannot be
            // written is not.
            Error::RecordedAnswers(e) => !matches!(e, gm_cache::Error::File { action: "write", .. }),
            // A task folder is the caller's input: missing, unreadable or malformed, the caller fixes it.
            Error::Task(_) => true,
            // Another worker runs the run: refused, for the caller to wait or stop it.
            Error::Store(s) => matches!(s, StoreError::Busy { .. }),
            Error::Eval(e) => eval_is_usage(e),
            Error::Metrics(e) => metrics_is_usage(e),
            Error::Client(e) => e.is_usage(),
            Error::SuiteStopped { source, .. } | Error::BenchStopped { source, .. } => run_is_usage(source),
            _ => false,
        }
    }

    /// Whether the provider or the network failed (a request, the Redis server), or a run stopped before its
    /// end because of one or of a spent budget: what waiting, another provider or resuming may fix. Neither
    /// this nor [`Error::is_usage`] holds for a failure of the local state (the state folder or file).
    pub fn is_provider(&self) -> bool {
        match self {
            Error::Client(e) => http_is_provider(e),
            Error::RedisCache { .. } | Error::RedisWindows { .. } => true,
            Error::SuiteStopped { source, .. } | Error::BenchStopped { source, .. } => run_is_provider(source),
            _ => false,
        }
    }

    /// Whether a request or token budget stopped a run (it can be resumed with a larger one).
    pub fn is_budget(&self) -> bool {
        self.run_error().is_some_and(|r| matches!(r.root(), RunError::Budget { .. }))
    }

    /// Whether the provider is retired (GitHub Models answers 410 since 2026-07-30).
    pub fn is_retired(&self) -> bool {
        self.client_error().is_some_and(gm_http::Error::is_retired)
    }

    /// The client error behind this one, if a request failed.
    pub fn client_error(&self) -> Option<&gm_http::Error> {
        match self {
            Error::Client(e) => Some(e),
            _ => self.run_error().and_then(RunError::client_error),
        }
    }

    /// The run's own error, when a run stopped.
    pub fn run_error(&self) -> Option<&RunError> {
        match self {
            Error::SuiteStopped { source, .. } | Error::BenchStopped { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Whether an error that gm's crates make, found anywhere in a chain of causes, is the caller's to fix (see
/// [`Error::is_usage`]); `None` for an error none of them makes (a front end's own failure to write, say).
///
/// A front end that calls gm's lower crates directly as well as this one (to stream a chat, to score a file)
/// chooses its exit codes from this alone, without knowing their error types.
pub fn is_usage_error(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    if let Some(e) = e.downcast_ref::<Error>() {
        return Some(e.is_usage());
    }
    if let Some(r) = e.downcast_ref::<RunError>() {
        return Some(run_is_usage(r));
    }
    if let Some(h) = e.downcast_ref::<gm_http::Error>() {
        return Some(h.is_usage());
    }
    if e.is::<EvaluatorError>() || e.is::<PromptError>() || e.is::<gm_core::ModelIdError>() {
        return Some(true);
    }
    if let Some(e) = e.downcast_ref::<gm_eval::Error>() {
        return Some(eval_is_usage(e));
    }
    e.downcast_ref::<gm_metrics::Error>().map(metrics_is_usage)
}

/// Whether an error that gm's crates make, found anywhere in a chain of causes, is a failure of the provider or
/// the network, or a run that stopped part-way (see [`Error::is_provider`]); `None` for an error none of them
/// makes. A front end tells the provider's failures (worth retrying later) from local ones (the caller's input,
/// a file, the state) with this alone.
pub fn is_provider_error(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    if let Some(e) = e.downcast_ref::<Error>() {
        return Some(e.is_provider());
    }
    if let Some(r) = e.downcast_ref::<RunError>() {
        return Some(run_is_provider(r));
    }
    if let Some(h) = e.downcast_ref::<gm_http::Error>() {
        return Some(http_is_provider(h));
    }
    let local = e.is::<EvaluatorError>()
        || e.is::<PromptError>()
        || e.is::<gm_core::ModelIdError>()
        || e.is::<gm_eval::Error>()
        || e.is::<gm_metrics::Error>()
        || e.is::<TaskError>()
        || e.is::<StoreError>()
        || e.is::<gm_cache::Error>()
        || e.is::<LimitError>();
    local.then_some(false)
}

/// A request that failed for the provider or the network; a usage error, and the local store of the rate-limit
/// windows failing, are not.
fn http_is_provider(h: &gm_http::Error) -> bool {
    match h {
        gm_http::Error::Shared(e) => http_is_provider(e),
        gm_http::Error::Limit(LimitError::Store(_)) => false,
        h => !h.is_usage(),
    }
}

/// A run stopped by a spent budget, or by a request that failed for the provider or the network.
fn run_is_provider(r: &RunError) -> bool {
    match (r.root(), r.client_error()) {
        (RunError::Budget { .. }, _) => true,
        (_, Some(h)) => http_is_provider(h),
        _ => false,
    }
}

/// Bad input to a scorer (an unknown metric, a malformed line) is the caller's to fix; a failed read or write
/// is not.
fn metrics_is_usage(e: &gm_metrics::Error) -> bool {
    !matches!(e, gm_metrics::Error::Io(_))
}

/// gm-eval's errors outside a run are about the caller's input (code execution not allowed, a scorer's input),
/// but a scorer's failed read or write.
fn eval_is_usage(e: &gm_eval::Error) -> bool {
    match e {
        gm_eval::Error::Metrics(m) => metrics_is_usage(m),
        _ => true,
    }
}

/// A spent budget is not the caller's mistake; a provider failure is the provider's; the rest of what stops a
/// run (no model, a malformed evaluator, an output that cannot be written, a rejected request) is the caller's.
fn run_is_usage(r: &RunError) -> bool {
    match (r.root(), r.client_error()) {
        (RunError::Budget { .. } | RunError::Stopped { .. }, _) => false,
        (_, Some(h)) => h.is_usage(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_provider_failures_are_told_apart() {
        assert!(Error::NoSuchRun { id: 3 }.is_usage());
        assert_eq!(Error::NoSuchRun { id: 3 }.phase(), Phase::Input);
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let folder = Error::StateFolder { path: "/x".into(), source: io };
        assert!(!folder.is_usage());
        assert_eq!(folder.phase(), Phase::State);
        let budget = RunError::Budget { what: "requests", limit: 5, index_done: 5 };
        let stopped =
            Error::SuiteStopped { file: "a.prompt.yml".into(), run_id: 1, recorded: 5, source: Box::new(budget) };
        assert!(!stopped.is_usage() && stopped.is_budget());
        assert_eq!(stopped.to_string(), "a.prompt.yml did not finish");
        let no_model = RunError::NoModel { file: "a".into() };
        let stopped =
            Error::SuiteStopped { file: "a.prompt.yml".into(), run_id: 1, recorded: 0, source: Box::new(no_model) };
        assert!(stopped.is_usage() && !stopped.is_budget());
        let missing =
            gm_http::Error::MissingCredentials { provider: ProviderKind::OpenAi, hint: "set OPENAI_API_KEY".into() };
        assert!(Error::Client(missing).is_usage());
        let metrics_io = gm_metrics::Error::Io(std::io::Error::other("disk full"));
        assert!(!Error::Eval(gm_eval::Error::Metrics(metrics_io)).is_usage());
        assert!(Error::Metrics(gm_metrics::Error::NoMetrics).is_usage());
        assert!(Error::Eval(gm_eval::Error::CodeExecutionDisabled).is_usage());
    }

    #[test]
    fn errors_of_the_lower_crates_are_told_apart_in_a_chain() {
        let bad_file = gm_eval::prompt::PromptFile::parse("messages: [", "x.prompt.yml").unwrap_err();
        assert_eq!(is_usage_error(&bad_file), Some(true));
        let timeout = gm_http::Error::Timeout { url: "http://x/v1".into(), message: "no answer in 60s".into() };
        assert_eq!(is_usage_error(&timeout), Some(false));
        let budget = RunError::Budget { what: "tokens", limit: 10, index_done: 2 };
        assert_eq!(is_usage_error(&budget), Some(false));
        assert_eq!(is_usage_error(&gm_metrics::Error::Io(std::io::Error::other("disk full"))), Some(false));
        assert_eq!(is_usage_error(&Error::NoSuchRun { id: 1 }), Some(true));
        assert_eq!(is_usage_error(&std::io::Error::other("stdout closed")), None);
    }

    #[test]
    fn only_the_provider_the_network_and_stopped_runs_are_provider_failures() {
        let timeout = gm_http::Error::Timeout { url: "http://x/v1".into(), message: "no answer in 60s".into() };
        assert!(Error::Client(timeout).is_provider());
        let missing =
            gm_http::Error::MissingCredentials { provider: ProviderKind::OpenAi, hint: "set OPENAI_API_KEY".into() };
        assert!(!Error::Client(missing).is_provider());
        let store = gm_http::Error::Limit(LimitError::Store("database is locked".into()));
        assert!(!Error::Client(store).is_provider(), "the local window store is not the provider");
        let budget = RunError::Budget { what: "requests", limit: 5, index_done: 5 };
        let stopped = Error::BenchStopped { run_id: 1, recorded: 5, total: 9, source: Box::new(budget) };
        assert!(stopped.is_provider());
        // Local files and state: never the provider's.
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        assert!(!Error::StateFolder { path: "/x".into(), source: io }.is_provider());
        let unreadable = TaskError::Read { path: "tasks/x".into(), source: std::io::ErrorKind::NotFound.into() };
        assert!(Error::Task(unreadable).is_usage());
        let metrics_io = gm_metrics::Error::Io(std::io::Error::other("disk full"));
        assert_eq!(is_provider_error(&metrics_io), Some(false));
        assert_eq!(is_provider_error(&gm_http::Error::Timeout { url: "u".into(), message: "m".into() }), Some(true));
        assert_eq!(is_provider_error(&std::io::Error::other("stdout closed")), None);
    }

    #[test]
    fn messages_name_the_place_and_the_fix() {
        let e = Error::UnknownModel {
            model: "gpt-5".into(),
            provider: ProviderKind::Demo,
            suggestions: vec!["openai/gpt-5".into()],
        };
        assert_eq!(
            e.to_string(),
            "model `gpt-5` is not in the demo catalog (did you mean openai/gpt-5?); run `gm models list`"
        );
        let e = Error::Read {
            what: "the price table",
            path: "p.toml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(e.to_string(), "could not read the price table p.toml");
        let e =
            Error::Read { what: "", path: "a.yml".into(), source: std::io::Error::from(std::io::ErrorKind::NotFound) };
        assert_eq!(e.to_string(), "could not read a.yml");
        let e = Error::MixedKinds { a: 1, kind_a: "eval".into(), b: 2, kind_b: "bench".into() };
        assert_eq!(
            e.to_string(),
            "run 1 is an eval run and run 2 is a bench run; compare two runs of one kind (`gm runs list` shows the kinds)"
        );
    }
}
