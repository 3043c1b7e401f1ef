//! The task catalog: built-in evaluation tasks, and user tasks read from a directory.
//!
//! A task is a prompt template, default model parameters, default scorers and a dataset. It is stored
//! as two files in a folder named after the task:
//!
//! - `task.yaml`: `name`, `description`, `version`, `modelParameters`, `messages` (with `{{var}}`
//!   placeholders) and `evaluators`, in the format of a `.prompt.yml` file's evaluators (see
//!   [`evaluators`](crate::evaluators)). An evaluator with an `execute:` key describes pass@k by running
//!   the generated code against each item's tests; it marks the task as needing code execution, which
//!   the runner does not do by itself (see [`CodeExecution`]).
//! - `data.jsonl`: one JSON object per line, holding every key the templates use plus `expected`.
//!
//! The five built-in tasks (`text_generation`, `question_answering`, `summarization`,
//! `code_generation`, `reasoning`) are compiled into the library, so they work anywhere. Their datasets
//! were written for this project. [`Task::load_dir`] reads user tasks from a `--tasks-dir`;
//! `docs/adding-a-task.md` shows how to write one. [`Task::to_prompt_file`] turns a task into a
//! [`PromptFile`] that [`EvalRunner`](crate::run::EvalRunner) runs unchanged.
//!
//! # Example
//! ```
//! use gm_eval::tasks::{builtin_tasks, Task};
//!
//! let names: Vec<String> = builtin_tasks().into_iter().map(|t| t.name).collect();
//! assert_eq!(names, ["text_generation", "question_answering", "summarization", "code_generation", "reasoning"]);
//!
//! let qa = Task::builtin("question_answering").unwrap();
//! assert!(qa.items.len() >= 25 && !qa.needs_code_execution);
//! let file = qa.to_prompt_file("openai/gpt-4o-mini", Some(3));
//! assert_eq!((file.test_data.len(), file.model.as_deref()), (3, Some("openai/gpt-4o-mini")));
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::evaluators::{EvaluatorError, EvaluatorKind, EvaluatorSpec, ReferenceSource, StringCheck};
use crate::prompt::{
    format_value, ModelParameters, PromptFile, PromptMessage, MAX_PROMPT_FILE_BYTES, MAX_PROMPT_FILE_DEPTH,
};

/// The file that defines a task, inside its folder.
pub const TASK_FILE: &str = "task.yaml";
/// The file that holds a task's items, inside its folder.
pub const DATA_FILE: &str = "data.jsonl";

/// The largest `data.jsonl` read, in bytes: parsing holds several times the text in memory, so a larger
/// file is refused before it is read whole.
pub const MAX_TASK_DATA_BYTES: u64 = 16 << 20;

/// A task file over `cap` bytes.
fn too_large(origin: &str, cap: u64) -> TaskError {
    TaskError::Invalid {
        path: origin.to_string(),
        message: format!("the file is larger than {} MiB, the most it may be; split the task", cap >> 20),
    }
}

/// The built-in tasks: name, `task.yaml`, `data.jsonl`.
const BUILTINS: [(&str, &str, &str); 5] = [
    (
        "text_generation",
        include_str!("../tasks/text_generation/task.yaml"),
        include_str!("../tasks/text_generation/data.jsonl"),
    ),
    (
        "question_answering",
        include_str!("../tasks/question_answering/task.yaml"),
        include_str!("../tasks/question_answering/data.jsonl"),
    ),
    (
        "summarization",
        include_str!("../tasks/summarization/task.yaml"),
        include_str!("../tasks/summarization/data.jsonl"),
    ),
    (
        "code_generation",
        include_str!("../tasks/code_generation/task.yaml"),
        include_str!("../tasks/code_generation/data.jsonl"),
    ),
    ("reasoning", include_str!("../tasks/reasoning/task.yaml"), include_str!("../tasks/reasoning/data.jsonl")),
];

/// Why a task could not be loaded. Every message names the file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A file or directory could not be read.
    #[error("could not read {path}: {source}")]
    Read {
        /// The file or directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `task.yaml` is malformed or has a field of the wrong type.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A line of `data.jsonl` is not a JSON object or lacks a key the task needs.
    #[error("{path}:{line}: {message}")]
    Item {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An evaluator of `task.yaml` cannot be parsed.
    #[error("{path}: {source}")]
    Evaluator {
        /// The file.
        path: String,
        /// The cause, naming the evaluator.
        #[source]
        source: EvaluatorError,
    },
    /// The files are well formed but a value is not allowed.
    #[error("{path}: {message}")]
    Invalid {
        /// The file or directory.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// How a code-generation task scores: pass@k by running each generated program against the item's tests.
///
/// Written in `task.yaml` as an evaluator with an `execute:` key:
/// `{name: pass@1, execute: {language: python, testsKey: tests, k: 1, timeoutSeconds: 10, memoryMb: 256}}`.
/// The loader only describes it; running the code is left to a sandbox that a caller opts into, with
/// `--allow-code-exec` or `allowCodeExec: true` in the `execute:` mapping. With `k` above 1 each item is
/// sampled k times and scored pass@k.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeExecution {
    /// The evaluator's name.
    pub name: String,
    /// The language of the generated code (`python`).
    pub language: String,
    /// The item key holding the tests (a list of statements, e.g. Python `assert`s).
    pub tests_key: String,
    /// The k of pass@k.
    pub k: u32,
    /// Wall-clock limit for one program, in seconds.
    pub timeout_seconds: u32,
    /// Memory limit for one program, in MiB.
    pub memory_mb: u32,
    /// `allowCodeExec: true`: the task's own config enables running the code, as `--allow-code-exec` does.
    pub allow_code_exec: bool,
}

/// A loaded task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The task's name (its folder name unless `task.yaml` says otherwise).
    pub name: String,
    /// What it measures.
    pub description: String,
    /// The task's version; a changed dataset or template changes it, so results are comparable only
    /// within one version.
    pub version: String,
    /// The prompt template.
    pub messages: Vec<PromptMessage>,
    /// Default model parameters.
    pub model_parameters: ModelParameters,
    /// The default scorers the runner applies, in the `.prompt.yml` evaluator format (the `execute:`
    /// scorer is in [`Task::execution`] instead).
    pub evaluators: Vec<Value>,
    /// Whether the task is scored by running generated code.
    pub needs_code_execution: bool,
    /// The code-execution scorer, when there is one.
    pub execution: Option<CodeExecution>,
    /// The dataset, one map per item.
    pub items: Vec<Map<String, Value>>,
}

/// A line of the catalog, as `gm bench --list-tasks` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task's name.
    pub name: String,
    /// What it measures.
    pub description: String,
    /// The task's version.
    pub version: String,
    /// Number of items.
    pub items: usize,
    /// The scorers' names, in order (the code-execution scorer last).
    pub scorers: Vec<String>,
    /// Whether the task is scored by running generated code.
    pub needs_code_execution: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawTask {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    model_parameters: Option<ModelParameters>,
    #[serde(default)]
    messages: Vec<PromptMessage>,
    #[serde(default)]
    evaluators: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawExecution {
    language: String,
    #[serde(default = "default_tests_key")]
    tests_key: String,
    #[serde(default = "one")]
    k: u32,
    #[serde(default = "default_timeout")]
    timeout_seconds: u32,
    #[serde(default = "default_memory")]
    memory_mb: u32,
    #[serde(default)]
    allow_code_exec: bool,
}

fn default_tests_key() -> String {
    "tests".into()
}
fn one() -> u32 {
    1
}
fn default_timeout() -> u32 {
    10
}
fn default_memory() -> u32 {
    256
}

/// The names of the `{{var}}` placeholders in `text`, as [`template`](crate::prompt::template) fills them.
///
/// ```
/// let names = gm_eval::tasks::placeholders("Passage: {{context}}\nQuestion: {{question}} {{context}}");
/// assert_eq!(names.into_iter().collect::<Vec<_>>(), ["context", "question"]);
/// ```
pub fn placeholders(text: &str) -> BTreeSet<String> {
    static PLACEHOLDER: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) = PLACEHOLDER.get_or_init(|| Regex::new(r"\{\{([^{}]+)\}\}").ok()) else {
        return BTreeSet::new();
    };
    re.captures_iter(text).filter_map(|c| c.get(1)).map(|m| m.as_str().to_string()).collect()
}

/// Every built-in task, in catalog order.
pub fn builtin_tasks() -> Vec<TaskInfo> {
    BUILTINS.iter().filter_map(|(name, _, _)| Task::builtin(name)).map(|t| t.info()).collect()
}

/// The whole catalog: the built-in tasks, then the tasks of `tasks_dir` (`--tasks-dir`) when given.
///
/// A user task may not take a built-in task's name, so that results labelled with a built-in name
/// always mean the built-in data.
pub fn catalog(tasks_dir: Option<&Path>) -> Result<Vec<Task>, TaskError> {
    let mut tasks =
        BUILTINS.iter().filter_map(|(name, _, _)| Task::try_builtin(name)).collect::<Result<Vec<_>, _>>()?;
    if let Some(dir) = tasks_dir {
        for task in Task::load_dir(dir)? {
            if builtin_names().any(|b| b == task.name) {
                return Err(TaskError::Invalid {
                    path: dir.display().to_string(),
                    message: format!(
                        "a task here is named `{}`, which is a built-in task; give the user task another name",
                        task.name
                    ),
                });
            }
            tasks.push(task);
        }
    }
    Ok(tasks)
}

/// The names of the built-in tasks, in catalog order.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, _, _)| *name)
}

impl Task {
    /// The built-in task called `name`, or `None` when there is none.
    pub fn builtin(name: &str) -> Option<Task> {
        Self::try_builtin(name).and_then(Result::ok)
    }

    /// The built-in task called `name`, with the error should its embedded files not load (they are
    /// tested, so this is for tests and diagnostics).
    pub fn try_builtin(name: &str) -> Option<Result<Task, TaskError>> {
        let (name, yaml, data) = BUILTINS.iter().find(|(n, _, _)| *n == name)?;
        Some(Self::parse(name, yaml, &format!("tasks/{name}/{TASK_FILE}"), data, &format!("tasks/{name}/{DATA_FILE}")))
    }

    /// Reads every task in `dir`: each subfolder holding a `task.yaml` (and a `data.jsonl`), in name order.
    pub fn load_dir(dir: &Path) -> Result<Vec<Task>, TaskError> {
        let read_err = |source| TaskError::Read { path: dir.display().to_string(), source };
        let mut folders = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if path.is_dir() && path.join(TASK_FILE).is_file() {
                folders.push(path);
            }
        }
        folders.sort();
        if folders.is_empty() {
            return Err(TaskError::Invalid {
                path: dir.display().to_string(),
                message: format!("holds no task; add a folder per task with {TASK_FILE} and {DATA_FILE}"),
            });
        }
        let tasks = folders.iter().map(|f| Self::load(f)).collect::<Result<Vec<_>, _>>()?;
        let mut seen = BTreeSet::new();
        for (task, folder) in tasks.iter().zip(&folders) {
            if !seen.insert(task.name.as_str()) {
                return Err(TaskError::Invalid {
                    path: folder.join(TASK_FILE).display().to_string(),
                    message: format!(
                        "another folder already defines task `{}`; give each task its own name",
                        task.name
                    ),
                });
            }
        }
        Ok(tasks)
    }

    /// Reads one task folder (`task.yaml` and `data.jsonl`).
    ///
    /// A file over its limit ([`MAX_PROMPT_FILE_BYTES`] for `task.yaml`, [`MAX_TASK_DATA_BYTES`] for
    /// `data.jsonl`) is refused without being read whole.
    pub fn load(folder: &Path) -> Result<Task, TaskError> {
        let read = |path: &Path, cap: u64| {
            use std::io::{Error, ErrorKind, Read};
            let origin = path.display().to_string();
            let read_err = |source| TaskError::Read { path: origin.clone(), source };
            let mut bytes = Vec::new();
            std::fs::File::open(path).and_then(|f| f.take(cap + 1).read_to_end(&mut bytes)).map_err(read_err)?;
            if bytes.len() as u64 > cap {
                return Err(too_large(&origin, cap));
            }
            String::from_utf8(bytes).map_err(|e| read_err(Error::new(ErrorKind::InvalidData, e.utf8_error())))
        };
        let (yaml_path, data_path) = (folder.join(TASK_FILE), folder.join(DATA_FILE));
        let yaml = read(&yaml_path, MAX_PROMPT_FILE_BYTES)?;
        let data = read(&data_path, MAX_TASK_DATA_BYTES)?;
        let default_name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Self::parse(&default_name, &yaml, &yaml_path.display().to_string(), &data, &data_path.display().to_string())
    }

    /// Parses a task from the text of its two files; `default_name` is used when `task.yaml` names none,
    /// and the origins name the files in errors.
    ///
    /// `task.yaml` has a prompt file's limits (size and nesting, checked before the YAML parser sees it);
    /// `data.jsonl` may hold up to [`MAX_TASK_DATA_BYTES`].
    pub fn parse(
        default_name: &str,
        yaml: &str,
        yaml_origin: &str,
        data: &str,
        data_origin: &str,
    ) -> Result<Task, TaskError> {
        if yaml.len() as u64 > MAX_PROMPT_FILE_BYTES {
            return Err(too_large(yaml_origin, MAX_PROMPT_FILE_BYTES));
        }
        if data.len() as u64 > MAX_TASK_DATA_BYTES {
            return Err(too_large(data_origin, MAX_TASK_DATA_BYTES));
        }
        let depth = crate::prompt::nesting_depth(yaml);
        if depth > MAX_PROMPT_FILE_DEPTH {
            return Err(TaskError::Invalid {
                path: yaml_origin.to_string(),
                message: format!(
                    "the file nests {depth} levels deep, more than the {MAX_PROMPT_FILE_DEPTH} a task file may; \
                     flatten it"
                ),
            });
        }
        let raw: RawTask = serde_yaml_ng::from_str(yaml).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
            TaskError::Syntax {
                path: yaml_origin.to_string(),
                line,
                column,
                message: format!("{e}; see docs/adding-a-task.md for the format"),
            }
        })?;
        let invalid = |message: String| TaskError::Invalid { path: yaml_origin.to_string(), message };
        let name = raw.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| default_name.to_string());
        // Names are listed comma-separated on command lines (`--tasks a,b`), so keep them to a safe alphabet.
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(invalid(format!(
                "the task name `{name}` is not allowed; use letters, digits, `_`, `-` and `.` (e.g. `my_task`)"
            )));
        }
        if raw.messages.is_empty() {
            return Err(invalid(
                "the task has no `messages`; add at least a user message with `{{var}}` placeholders".into(),
            ));
        }
        for (i, m) in raw.messages.iter().enumerate() {
            if matches!(gm_core::Role::from_name(&m.role), gm_core::Role::Other(_) | gm_core::Role::Tool) {
                return Err(invalid(format!("messages[{i}] has role `{}`; use system, user or assistant", m.role)));
            }
        }
        let mut evaluators = Vec::new();
        let mut execution = None;
        for (index, raw_eval) in raw.evaluators.into_iter().enumerate() {
            match raw_eval.get("execute") {
                Some(exec) => {
                    if execution.is_some() {
                        return Err(invalid(format!("evaluators[{index}]: a task has at most one `execute` scorer")));
                    }
                    execution = Some(parse_execution(index, &raw_eval, exec).map_err(invalid)?);
                }
                None => evaluators.push(raw_eval),
            }
        }
        if evaluators.is_empty() && execution.is_none() {
            return Err(invalid("the task has no `evaluators`; add at least one scorer".into()));
        }
        let specs = EvaluatorSpec::parse_all(&evaluators)
            .map_err(|source| TaskError::Evaluator { path: yaml_origin.to_string(), source })?;

        // The keys every item must have: the placeholders of the templates and of the scorers, the
        // references of the metric scorers, the variables of the built-in judges and the tests of the
        // code-execution scorer. A missing key would otherwise surface only as a puzzling score.
        let mut required: BTreeSet<String> = raw.messages.iter().flat_map(|m| placeholders(&m.content)).collect();
        for spec in &specs {
            match &spec.kind {
                EvaluatorKind::Metric(check) => match &check.reference {
                    ReferenceSource::Key(k) => {
                        required.insert(k.clone());
                    }
                    ReferenceSource::Template(t) => required.extend(placeholders(t)),
                    _ => {}
                },
                EvaluatorKind::Builtin(b) => required.extend(b.variables().iter().map(|v| v.to_string())),
                EvaluatorKind::String(
                    StringCheck::Equals(v)
                    | StringCheck::Contains(v)
                    | StringCheck::StartsWith(v)
                    | StringCheck::EndsWith(v),
                ) => required.extend(placeholders(v)),
                EvaluatorKind::Regex(check) => required.extend(placeholders(&check.pattern)),
                EvaluatorKind::Llm(judge) => required.extend(placeholders(&judge.prompt)),
                _ => {}
            }
        }
        required.remove("completion");
        let items = parse_items(data, data_origin, &required, execution.as_ref())?;
        if items.is_empty() {
            return Err(TaskError::Invalid {
                path: data_origin.to_string(),
                message: "the dataset is empty; add one JSON object per line".into(),
            });
        }
        Ok(Task {
            name,
            description: raw.description.unwrap_or_default(),
            version: raw.version.as_ref().map(format_value).unwrap_or_else(|| "1".into()),
            messages: raw.messages,
            model_parameters: raw.model_parameters.unwrap_or_default(),
            evaluators,
            needs_code_execution: execution.is_some(),
            execution,
            items,
        })
    }

    /// The catalog line of this task.
    pub fn info(&self) -> TaskInfo {
        let mut scorers: Vec<String> = self.evaluators.iter().enumerate().map(|(i, e)| scorer_name(i, e)).collect();
        scorers.extend(self.execution.as_ref().map(|e| e.name.clone()));
        TaskInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            version: self.version.clone(),
            items: self.items.len(),
            scorers,
            needs_code_execution: self.needs_code_execution,
        }
    }

    /// The task graded by `choices` alone (see [`select_scorers`]); the code-execution scorer stays only when
    /// chosen. Also returns, for each choice, whether it applied to this task.
    ///
    /// ```
    /// use gm_eval::tasks::{MetricChoice, Task};
    ///
    /// let qa = Task::builtin("question_answering").unwrap();
    /// let choices = [MetricChoice::parse("squad_f1").unwrap(), MetricChoice::parse("bleu:0.3").unwrap()];
    /// let (graded, applied) = qa.with_metrics(&choices).unwrap();
    /// assert_eq!(graded.info().scorers, ["token F1", "bleu"]);
    /// assert_eq!(applied, [true, true]);
    /// ```
    ///
    /// # Errors
    /// A message when no choice applies to the task, or a threshold is given for a scorer that is not a metric.
    pub fn with_metrics(&self, choices: &[MetricChoice]) -> Result<(Task, Vec<bool>), String> {
        let selected =
            select_scorers(&self.name, &self.evaluators, self.execution.as_ref().map(|e| e.name.as_str()), choices)?;
        let mut task = self.clone();
        task.evaluators = selected.evaluators;
        if !selected.execution {
            task.execution = None;
            task.needs_code_execution = false;
        }
        Ok((task, selected.applied))
    }

    /// The task as a prompt file for `model`, with the first `limit_items` items (all when `None`), so
    /// [`EvalRunner`](crate::run::EvalRunner) runs it unchanged. The code-execution scorer is not
    /// included: the runner applies the other scorers, and a sandbox the caller enabled runs the code.
    pub fn to_prompt_file(&self, model: &str, limit_items: Option<usize>) -> PromptFile {
        let n = limit_items.unwrap_or(self.items.len()).min(self.items.len());
        PromptFile {
            name: self.name.clone(),
            description: self.description.clone(),
            model: Some(model.to_string()),
            model_parameters: self.model_parameters.clone(),
            response_format: None,
            messages: self.messages.clone(),
            test_data: self.items[..n].to_vec(),
            evaluators: self.evaluators.clone(),
            warnings: Vec::new(),
        }
    }
}

/// The pass threshold of a graded registry metric chosen with [`MetricChoice`] without one.
pub const DEFAULT_METRIC_MIN: f64 = 0.5;

/// One choice of the scorers that grade a task (`gm bench --metrics`): a scorer of the task by its name
/// (as `gm bench --list-tasks` shows it, e.g. `coherence` or `pass@1`), or a metric of the registry scored
/// against each item's `expected` (e.g. `bleu`), with an optional pass threshold (`rougeL:0.4`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricChoice {
    /// The scorer's or the metric's name.
    pub name: String,
    /// The pass threshold in [0, 1], for a metric.
    pub min: Option<f64>,
}

impl MetricChoice {
    /// Reads `NAME` or `NAME:MIN`.
    ///
    /// ```
    /// use gm_eval::tasks::MetricChoice;
    /// assert_eq!(MetricChoice::parse("rougeL:0.4").unwrap().min, Some(0.4));
    /// assert_eq!(MetricChoice::parse("coherence").unwrap().min, None);
    /// assert!(MetricChoice::parse("bleu:2").is_err());
    /// ```
    ///
    /// # Errors
    /// A message for an empty name or a threshold that is not a number in [0, 1].
    pub fn parse(spec: &str) -> Result<MetricChoice, String> {
        let (name, min) = match spec.rsplit_once(':') {
            Some((name, min)) => {
                let m = min.trim().parse::<f64>().ok().filter(|m| (0.0..=1.0).contains(m)).ok_or_else(|| {
                    format!("`{spec}`: the threshold after `:` must be a number in [0, 1], e.g. `rougeL:0.4`")
                })?;
                (name.trim(), Some(m))
            }
            None => (spec.trim(), None),
        };
        if name.is_empty() {
            return Err(format!("`{spec}` names no metric; give a scorer of the task or a metric such as `bleu`"));
        }
        Ok(MetricChoice { name: name.to_string(), min })
    }
}

/// A task's scorers narrowed to `choices`: what [`Task::with_metrics`] and [`select_scorers`] return.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The evaluators that stay, in the task's order, then the added registry metrics in the choices' order.
    pub evaluators: Vec<Value>,
    /// Whether the code-execution scorer stays.
    pub execution: bool,
    /// For each choice, whether it applied to this task.
    pub applied: Vec<bool>,
}

/// Narrows `evaluators` (and the code-execution scorer named `execution`, if any) to `choices`. A choice
/// matches a scorer by name (ignoring case), or a metric evaluator of the same metric; a choice that names
/// no scorer of the task but a registry metric adds that metric, scored against `expected`. A choice that
/// is neither does not apply to this task.
///
/// # Errors
/// A message when a threshold is given for a scorer that is not a metric, or when no choice applies.
pub fn select_scorers(
    task: &str,
    evaluators: &[Value],
    execution: Option<&str>,
    choices: &[MetricChoice],
) -> Result<Selected, String> {
    let names: Vec<String> = evaluators.iter().enumerate().map(|(i, e)| scorer_name(i, e)).collect();
    let metric_of = |e: &Value| e.as_object().and_then(|m| m.keys().find_map(|k| crate::Metric::from_name(k).ok()));
    let mut keep = vec![false; evaluators.len()];
    let mut thresholds: Vec<Option<f64>> = vec![None; evaluators.len()];
    let mut added = Vec::new();
    let mut keep_execution = false;
    let mut applied = Vec::with_capacity(choices.len());
    for c in choices {
        let wanted = c.name.to_lowercase();
        let by_name = names.iter().position(|n| n.to_lowercase() == wanted);
        let metric = crate::Metric::from_name(&c.name).ok();
        let by_metric = metric.and_then(|m| evaluators.iter().position(|e| metric_of(e) == Some(m)));
        if let Some(i) = by_name.or(by_metric) {
            if c.min.is_some() && metric_of(&evaluators[i]).is_none() {
                return Err(format!(
                    "`{}:{}`: scorer `{}` of task `{task}` is not a metric and takes no threshold",
                    c.name,
                    c.min.unwrap_or_default(),
                    names[i]
                ));
            }
            keep[i] = true;
            thresholds[i] = c.min.or(thresholds[i]);
            applied.push(true);
        } else if execution.is_some_and(|x| x.to_lowercase() == wanted) {
            keep_execution = true;
            applied.push(true);
        } else if let Some(m) = metric.filter(|m| !matches!(m, crate::Metric::RegexMatch | crate::Metric::JsonSchema)) {
            let mut spec = Map::new();
            spec.insert("referenceKey".into(), Value::String("expected".into()));
            if let Some(min) = c.min.or(m.is_graded().then_some(DEFAULT_METRIC_MIN)) {
                spec.insert("min".into(), Value::from(min));
            }
            let mut e = Map::new();
            e.insert("name".into(), Value::String(m.name().into()));
            e.insert(m.name().into(), Value::Object(spec));
            added.push(Value::Object(e));
            applied.push(true);
        } else {
            applied.push(false);
        }
    }
    let mut out: Vec<Value> = Vec::new();
    for (i, e) in evaluators.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        let mut e = e.clone();
        if let (Some(min), Some(m)) = (thresholds[i], metric_of(&e)) {
            if let Some(spec) = e.get_mut(m.name()) {
                match spec {
                    Value::Object(map) => {
                        map.insert("min".into(), Value::from(min));
                    }
                    other => *other = Value::from(min),
                }
            }
        }
        out.push(e);
    }
    out.extend(added);
    if out.is_empty() && !keep_execution {
        let mut scorers = names;
        scorers.extend(execution.map(str::to_string));
        return Err(format!(
            "task `{task}` has none of the metrics {}: its own scorers are {}, and any metric of `gm score --list` \
             (bleu, chrf, rougeL, squad_f1, ...) is scored against each item's `expected`",
            choices.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
            scorers.join(", ")
        ));
    }
    Ok(Selected { evaluators: out, execution: keep_execution, applied })
}

fn scorer_name(index: usize, raw: &Value) -> String {
    if let Some(name) = raw.get("name").map(format_value).filter(|n| !n.is_empty()) {
        return name;
    }
    let kind = raw.as_object().and_then(|m| m.iter().find(|(k, _)| k.as_str() != "description"));
    match kind {
        Some((k, v)) if k == "uses" => format_value(v),
        Some((k, _)) => k.clone(),
        None => format!("evaluators[{index}]"),
    }
}

fn parse_execution(index: usize, raw: &Value, exec: &Value) -> Result<CodeExecution, String> {
    let at = format!("evaluators[{index}]");
    if let Some(other) =
        raw.as_object().and_then(|m| m.keys().find(|k| !["name", "description", "execute"].contains(&k.as_str())))
    {
        return Err(format!("{at}: unknown key `{other}` beside `execute`; give each check its own evaluator"));
    }
    let spec: RawExecution = serde_json::from_value(exec.clone()).map_err(|e| {
        format!("{at}: `execute` {e}; e.g. `execute: {{language: python, testsKey: tests, k: 1, timeoutSeconds: 10}}`")
    })?;
    if spec.language != "python" {
        return Err(format!("{at}: `execute.language` is `{}`; only python is supported", spec.language));
    }
    if spec.k == 0 || spec.timeout_seconds == 0 || spec.memory_mb == 0 {
        return Err(format!("{at}: `execute.k`, `timeoutSeconds` and `memoryMb` must be at least 1"));
    }
    let name =
        raw.get("name").map(format_value).filter(|n| !n.is_empty()).unwrap_or_else(|| format!("pass@{}", spec.k));
    Ok(CodeExecution {
        name,
        language: spec.language,
        tests_key: spec.tests_key,
        k: spec.k,
        timeout_seconds: spec.timeout_seconds,
        memory_mb: spec.memory_mb,
        allow_code_exec: spec.allow_code_exec,
    })
}

fn parse_items(
    data: &str,
    origin: &str,
    required: &BTreeSet<String>,
    execution: Option<&CodeExecution>,
) -> Result<Vec<Map<String, Value>>, TaskError> {
    let mut items = Vec::new();
    for (i, line) in data.lines().enumerate() {
        let at = |message: String| TaskError::Item { path: origin.to_string(), line: i + 1, message };
        if line.trim().is_empty() {
            continue;
        }
        let item = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(at(
                    "each line must be a JSON object, e.g. {\"input\": \"...\", \"expected\": \"...\"}".into()
                ))
            }
            Err(e) => return Err(at(format!("not valid JSON: {e}"))),
        };
        if let Some(missing) = required.iter().find(|k| !item.contains_key(k.as_str())) {
            return Err(at(format!("the item has no `{missing}`, which the task's template or scorers use; add it")));
        }
        if let Some(exec) = execution {
            let ok = item
                .get(&exec.tests_key)
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty() && t.iter().all(Value::is_string));
            if !ok {
                return Err(at(format!(
                    "`{}` must be a non-empty list of test statements (strings), for the `execute` scorer",
                    exec.tests_key
                )));
            }
        }
        items.push(item);
    }
    Ok(items)
}
