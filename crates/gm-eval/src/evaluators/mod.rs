//! The evaluators of a `.prompt.yml` file: parsing each one, and scoring a model response with it.
//!
//! [`EvaluatorSpec::parse_all`] turns the raw `evaluators` of a [`PromptFile`](crate::prompt::PromptFile)
//! into typed specs, with an error naming the evaluator, what is wrong and how to fix it.
//! [`EvaluatorSpec::prepare`] scores a response directly, or returns the [`JudgeCall`] to make for the
//! judges; [`EvaluatorSpec::evaluate`] does both through a [`JudgeClient`]. Nothing here touches the
//! network: the runner plugs its client in.
//!
//! # The gh-models evaluators
//! Scored exactly as `gh models eval` scores them, with the same [`EvalResult`] keys and details:
//!
//! - `string: {equals | contains | startsWith | endsWith: "..."}`: only the first non-empty of
//!   equals > contains > startsWith > endsWith is used; `equals` is case-sensitive on the trimmed
//!   response, the others ignore case; the value is templated with the test row; score 1 or 0.
//! - `llm: {modelId, prompt, systemPrompt, choices: [{choice, score}]}`: a judge. The prompt is
//!   templated with the test row plus `completion` (the response); the system prompt is sent as written.
//!   The reply selects a choice (see the modes below); `passed` is `score > 0`.
//! - `uses: github/similarity | coherence | fluency | relevance | groundedness`: the built-in judges
//!   of [`builtins`], with rubric prompts written for this project, choices `"1"`–`"5"` scored 0, 0.25,
//!   0.5, 0.75 and 1, and `openai/gpt-4o` as the judge unless [`EvalOptions::judge_model`] says
//!   otherwise. Any other `uses:` value is not an error: it scores a failed result with details
//!   `Plugin evaluator '<uses>' not found`, as in gh-models.
//!
//! # Extensions
//! These are ours, in the same file format. gh-models does not know them (it stops with "no
//! evaluation method specified"), so a file that uses them runs only with `gm eval`.
//!
//! - `regex: {pattern, ignoreCase, multiline, dotAll, negate}` (or just `regex: "<pattern>"`): the
//!   pattern (Rust `regex` syntax) must be found in the response; with `negate: true` it must not.
//!   `{{var}}` placeholders are filled with the row's values escaped, so they match literally.
//! - `jsonSchema: <schema>`: the response must be JSON accepted by the schema, given as a YAML/JSON
//!   object or as a JSON string (a `{name, schema}` wrapper as in the file's own `jsonSchema` is
//!   accepted too).
//! - `<metric>: {min, reference, referenceKey, stemmer}` (or `<metric>: <min>`), for every metric of
//!   the [registry](crate::Metric) (`rougeL`, `bleu`, `chrf`, `squad_f1`, `numeric_match`, …): the
//!   score is the metric's and the evaluator passes when it is at least `min`. The reference is the
//!   row's `expected` (a string, or a list of strings for several references), another row key with
//!   `referenceKey`, or a templated `reference`. `min` defaults to 1 for the pass/fail metrics and is
//!   required for the graded ones (BLEU, chrF, ROUGE, SQuAD F1).
//!
//! # Stricter loading
//! A definition gh-models would reject only when it runs (no check at all, a `string` with every value
//! empty) or would half-ignore (two checks in one evaluator, misspelt keys such as `starts_with`) is
//! an error as soon as the file is loaded, naming the evaluator and the fix. An unknown `uses:` is not
//! an error, as in gh-models.
//!
//! # Judge modes: compat and strict
//! gh-models lowercases the judge's reply and takes the first choice, in declared order, that
//! occurs *anywhere* in it as a substring ([`JudgeMode::Compat`]). With the 1–5 choices of the
//! built-ins, whose prompts ask for reasoning before the score, that misreads ordinary replies:
//!
//! - "Let's think step by step: 1. … 4" scores 0.0, because `"1"` is declared first and occurs in
//!   the reasoning; the verdict 4 (0.75) is never read.
//! - With generated `poor … excellent` judges, reasoning that merely mentions "poor" scores 0, and an
//!   "excellent" verdict whose reasoning says "good" scores 0.75 (the earlier choice wins).
//! - "2/5" matches `"2"`, scores 0.25 and *passes*, since `passed` is `score > 0`.
//!
//! [`JudgeMode::Strict`], our default, reads the final verdict instead: the last line when it is a
//! choice (possibly labelled `Score:` and decorated with markdown), else the choice right after the
//! last such label, else the last choice standing alone as a word, never part of a scale (`/5`,
//! `out of 5`, `1-5`, `1 to 5`). The first reply above then scores 0.75; "2/5" still scores 0.25
//! (and still passes, as the pass rule is gh-models'). The built-in prompts ask for the score alone
//! on the last line, which both modes read the same way when the reasoning holds no other choice.
//! Use compat to reproduce gh-models' numbers exactly.
//!
//! # Example
//! ```
//! use gm_eval::evaluators::{
//!     BoxError, EvalOptions, EvaluatorSpec, JudgeClient, JudgeMode, Prepared,
//! };
//! use gm_core::ChatRequest;
//! use serde_json::json;
//!
//! let raw = vec![
//!     json!({"name": "mentions the city", "string": {"contains": "{{city}}"}}),
//!     json!({"name": "close to the reference", "rougeL": {"min": 0.4}}),
//!     json!({"name": "similar", "uses": "github/similarity"}),
//! ];
//! let specs = EvaluatorSpec::parse_all(&raw).unwrap();
//! let row = json!({"input": "Capital of France?", "city": "paris", "expected": "Paris is the capital"});
//! let row = row.as_object().unwrap();
//! let response = "The capital is Paris.";
//!
//! // String and metric evaluators score without a judge.
//! let options = EvalOptions::default();
//! let Prepared::Done(result) = specs[0].prepare(row, response, &options).unwrap() else { panic!() };
//! assert!(result.passed);
//! assert_eq!(result.details.as_deref(), Some("Expected to contain: 'paris'"));
//! let Prepared::Done(result) = specs[1].prepare(row, response, &options).unwrap() else { panic!() };
//! assert_eq!((result.score, result.passed), (0.5, true)); // ROUGE-L against the row's `expected`
//!
//! // Judges go through a JudgeClient; here a fake that always answers 4.
//! struct Four;
//! #[async_trait::async_trait]
//! impl JudgeClient for Four {
//!     async fn judge(&self, _request: &ChatRequest) -> Result<String, BoxError> {
//!         Ok("Same meaning, shorter.\n4".into())
//!     }
//! }
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let result = rt.block_on(specs[2].evaluate(row, response, &options, &Four)).unwrap();
//! assert_eq!((result.score, result.passed), (0.75, true));
//! assert_eq!(serde_json::to_value(&result).unwrap()["evaluatorName"], "similar");
//! assert_eq!(options.judge_mode, JudgeMode::Strict);
//! ```

pub mod builtins;
mod judge;
mod parse;

use std::fmt;
use std::sync::Arc;

use gm_core::{ChatMessage, ChatRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use builtins::{Builtin, DEFAULT_JUDGE_MODEL};
pub use judge::{select_choice, BoxError, JudgeClient, JudgeMode};

use crate::prompt::{format_value, template};
use crate::{metrics, Metric, MetricConfig};

/// Why an evaluator cannot be parsed or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvaluatorError {
    /// The definition in the file is malformed.
    #[error("evaluator {evaluator}: {message}")]
    Invalid {
        /// The evaluator: its name and position, e.g. `` `has-title` (evaluators[1]) ``.
        evaluator: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A test row lacks the value an evaluator compares with.
    #[error("evaluator `{evaluator}`: the test row has no `{key}` to compare with; add `{key}` to every testData row or set `reference` or `referenceKey`")]
    MissingReference {
        /// The evaluator's name.
        evaluator: String,
        /// The row key that is missing.
        key: String,
    },
    /// A regex pattern that no longer compiles once the row's values are filled in.
    #[error("evaluator `{evaluator}`: the pattern `{pattern}` does not compile: {reason}; fix the pattern")]
    Pattern {
        /// The evaluator's name.
        evaluator: String,
        /// The pattern, templated.
        pattern: String,
        /// Why it does not compile.
        reason: String,
    },
    /// The judge model could not be asked.
    #[error(
        "evaluator `{evaluator}`: the judge call to `{model}` failed: {source}; check the judge model and the provider"
    )]
    Judge {
        /// The evaluator's name.
        evaluator: String,
        /// The judge model.
        model: String,
        /// The client's error.
        #[source]
        source: BoxError,
    },
}

/// The result of one evaluator on one response, with gh-models' JSON keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvalResult {
    /// The evaluator's `name`.
    pub evaluator_name: String,
    /// The score, in [0, 1] for every built-in evaluator (an `llm` choice may declare any score).
    pub score: f64,
    /// Whether the evaluator passed.
    pub passed: bool,
    /// What was expected or matched; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl EvalResult {
    fn new(name: &str, score: f64, passed: bool, details: impl Into<String>) -> Self {
        EvalResult { evaluator_name: name.to_string(), score, passed, details: Some(details.into()) }
    }

    fn check(name: &str, passed: bool, details: impl Into<String>) -> Self {
        Self::new(name, if passed { 1.0 } else { 0.0 }, passed, details)
    }
}

/// One evaluator of a prompt file.
#[derive(Debug, Clone)]
pub struct EvaluatorSpec {
    /// The evaluator's `name` (empty when the file gives none).
    pub name: String,
    /// What it checks.
    pub kind: EvaluatorKind,
}

/// What an evaluator checks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EvaluatorKind {
    /// `string`: a gh-models string check.
    String(StringCheck),
    /// `llm`: a custom judge.
    Llm(LlmJudge),
    /// `uses: github/<name>`: a built-in judge.
    Builtin(Builtin),
    /// `uses:` naming no built-in; scores a failed result, as in gh-models.
    UnknownPlugin {
        /// The `uses:` value.
        uses: String,
    },
    /// Extension `regex`.
    Regex(RegexCheck),
    /// Extension `jsonSchema`.
    JsonSchema(SchemaCheck),
    /// Extension `<metric>: {min}`.
    Metric(MetricCheck),
}

/// A gh-models string check; the value may hold `{{var}}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringCheck {
    /// The trimmed response equals the value, case-sensitively.
    Equals(String),
    /// The response contains the value, ignoring case.
    Contains(String),
    /// The response starts with the value, ignoring case.
    StartsWith(String),
    /// The response ends with the value, ignoring case.
    EndsWith(String),
}

/// One choice of a judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeChoice {
    /// The text the judge answers with.
    pub choice: String,
    /// The score it gives.
    pub score: f64,
}

/// An LLM judge: the `llm` evaluator, and what the built-ins expand to.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmJudge {
    /// The judge model.
    pub model_id: String,
    /// The user prompt, templated with the row and `completion`.
    pub prompt: String,
    /// The system prompt, sent as written.
    pub system_prompt: Option<String>,
    /// The choices, in declared order.
    pub choices: Vec<JudgeChoice>,
}

impl LlmJudge {
    /// The judge request for a response to a test row: the system prompt (if any) as written and the
    /// prompt templated with the row plus `completion`; no sampling parameters, as in gh-models.
    pub fn request(&self, row: &Map<String, Value>, response: &str) -> ChatRequest {
        let mut vars = row.clone();
        vars.insert("completion".into(), Value::String(response.to_string()));
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = self.system_prompt.as_deref().filter(|s| !s.is_empty()) {
            messages.push(ChatMessage::system(system));
        }
        messages.push(ChatMessage::user(template(&self.prompt, &vars)));
        ChatRequest::new(self.model_id.clone(), messages)
    }

    /// Scores a judge reply for the evaluator `name`, with gh-models' details.
    pub fn score_reply(&self, name: &str, reply: &str, mode: JudgeMode) -> EvalResult {
        match select_choice(reply, &self.choices, mode) {
            Some(c) => {
                EvalResult::new(name, c.score, c.score > 0.0, format!("LLM evaluation matched choice: '{}'", c.choice))
            }
            None => EvalResult::new(
                name,
                0.0,
                false,
                format!(
                    "LLM evaluation response '{}' did not match any defined choices",
                    judge::normalized_reply(reply)
                ),
            ),
        }
    }
}

/// Extension `regex`.
#[derive(Debug, Clone)]
pub struct RegexCheck {
    /// The pattern, with `{{var}}` placeholders filled with escaped values.
    pub pattern: String,
    /// `ignoreCase`.
    pub ignore_case: bool,
    /// `multiline`: `^` and `$` match at line ends.
    pub multi_line: bool,
    /// `dotAll`: `.` matches newlines.
    pub dot_all: bool,
    /// `negate`: pass when the pattern is *not* found.
    pub negate: bool,
    /// The pattern compiled once, when it has no placeholders: a pattern such as `(?:\S+\s+){39,149}`
    /// takes far longer to compile than to match, so it must not be compiled for every case.
    compiled: Option<regex::Regex>,
}

impl PartialEq for RegexCheck {
    fn eq(&self, other: &Self) -> bool {
        (&self.pattern, self.ignore_case, self.multi_line, self.dot_all, self.negate)
            == (&other.pattern, other.ignore_case, other.multi_line, other.dot_all, other.negate)
    }
}

impl Eq for RegexCheck {}

impl RegexCheck {
    /// A check of `pattern` with the given flags, all off by default.
    pub(crate) fn new(pattern: String, ignore_case: bool, multi_line: bool, dot_all: bool, negate: bool) -> Self {
        Self { pattern, ignore_case, multi_line, dot_all, negate, compiled: None }
    }

    fn compile(&self, pattern: &str) -> Result<regex::Regex, regex::Error> {
        regex::RegexBuilder::new(pattern)
            .case_insensitive(self.ignore_case)
            .multi_line(self.multi_line)
            .dot_matches_new_line(self.dot_all)
            .build()
    }

    fn templated(&self, row: &Map<String, Value>) -> String {
        let escaped: Map<String, Value> =
            row.iter().map(|(k, v)| (k.clone(), Value::String(regex::escape(&format_value(v))))).collect();
        template(&self.pattern, &escaped)
    }
}

/// Extension `jsonSchema`: a compiled schema.
#[derive(Clone)]
pub struct SchemaCheck {
    schema: Value,
    validator: Arc<jsonschema::Validator>,
}

impl SchemaCheck {
    /// The schema, as given.
    pub fn schema(&self) -> &Value {
        &self.schema
    }
}

impl fmt::Debug for SchemaCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaCheck").field("schema", &self.schema).finish_non_exhaustive()
    }
}

/// Where a metric evaluator takes its reference from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReferenceSource {
    /// A row key (`expected` unless `referenceKey` says otherwise); a list gives several references.
    Key(String),
    /// A `reference` template filled with the row.
    Template(String),
    /// The metric needs no reference (`json_valid`).
    None,
}

/// Extension `<metric>: {min}`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricCheck {
    /// The metric.
    pub metric: Metric,
    /// The lowest passing score.
    pub min: f64,
    /// The reference.
    pub reference: ReferenceSource,
    /// Metric options (`stemmer` for ROUGE).
    pub config: MetricConfig,
}

/// Options of the evaluation that are not in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvalOptions {
    /// How judge replies are read.
    pub judge_mode: JudgeMode,
    /// The judge of the built-ins, instead of [`DEFAULT_JUDGE_MODEL`]. `llm` evaluators keep their `modelId`.
    pub judge_model: Option<String>,
}

impl EvalOptions {
    /// Options with this judge mode.
    pub fn with_judge_mode(mut self, mode: JudgeMode) -> Self {
        self.judge_mode = mode;
        self
    }

    /// Options with this judge model for the built-ins.
    pub fn with_judge_model(mut self, model: impl Into<String>) -> Self {
        self.judge_model = Some(model.into());
        self
    }
}

/// A judge request to make, and how to score its reply.
#[derive(Debug, Clone)]
pub struct JudgeCall {
    /// The evaluator's name.
    pub evaluator_name: String,
    /// The request to send to the judge model.
    pub request: ChatRequest,
    judge: LlmJudge,
    mode: JudgeMode,
}

impl JudgeCall {
    /// Scores the judge's reply.
    pub fn score(&self, reply: &str) -> EvalResult {
        self.judge.score_reply(&self.evaluator_name, reply, self.mode)
    }
}

/// What [`EvaluatorSpec::prepare`] gives.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// The evaluator scored the response.
    Done(EvalResult),
    /// The evaluator needs a judge.
    Judge(Box<JudgeCall>),
}

impl EvaluatorSpec {
    /// Parses one raw evaluator; `index` is its position in the file, used in errors.
    ///
    /// # Errors
    /// [`EvaluatorError::Invalid`], naming the evaluator, what is wrong and how to fix it.
    pub fn parse(index: usize, raw: &Value) -> Result<EvaluatorSpec, EvaluatorError> {
        parse::parse(index, raw)
    }

    /// Parses every evaluator of a file, stopping at the first malformed one.
    ///
    /// # Errors
    /// As [`EvaluatorSpec::parse`].
    pub fn parse_all(raw: &[Value]) -> Result<Vec<EvaluatorSpec>, EvaluatorError> {
        raw.iter().enumerate().map(|(i, v)| EvaluatorSpec::parse(i, v)).collect()
    }

    /// The judge this evaluator asks, if it is one.
    pub fn judge(&self, options: &EvalOptions) -> Option<LlmJudge> {
        match &self.kind {
            EvaluatorKind::Llm(j) => Some(j.clone()),
            EvaluatorKind::Builtin(b) => Some(b.judge(options.judge_model.as_deref().unwrap_or(DEFAULT_JUDGE_MODEL))),
            _ => None,
        }
    }

    /// Scores a response to a test row, or returns the judge call to make.
    ///
    /// `response` is trimmed first, as gh-models trims every model response.
    ///
    /// # Errors
    /// [`EvaluatorError::MissingReference`] when a metric's reference is not in the row;
    /// [`EvaluatorError::Pattern`] when a templated pattern does not compile.
    pub fn prepare(
        &self,
        row: &Map<String, Value>,
        response: &str,
        options: &EvalOptions,
    ) -> Result<Prepared, EvaluatorError> {
        let response = response.trim();
        let name = self.name.as_str();
        let judge = |judge: LlmJudge| {
            let request = judge.request(row, response);
            Ok(Prepared::Judge(Box::new(JudgeCall {
                evaluator_name: self.name.clone(),
                request,
                judge,
                mode: options.judge_mode,
            })))
        };
        let result = match &self.kind {
            EvaluatorKind::Llm(j) => return judge(j.clone()),
            EvaluatorKind::Builtin(b) => {
                return judge(b.judge(options.judge_model.as_deref().unwrap_or(DEFAULT_JUDGE_MODEL)))
            }
            EvaluatorKind::String(check) => string_check(name, check, row, response),
            EvaluatorKind::UnknownPlugin { uses } => {
                EvalResult::new(name, 0.0, false, format!("Plugin evaluator '{uses}' not found"))
            }
            EvaluatorKind::Regex(check) => regex_check(name, check, row, response)?,
            EvaluatorKind::JsonSchema(check) => schema_check(name, check, response),
            EvaluatorKind::Metric(check) => metric_check(name, check, row, response)?,
        };
        Ok(Prepared::Done(result))
    }

    /// Scores a response to a test row, asking `client` when the evaluator is a judge.
    ///
    /// # Errors
    /// As [`EvaluatorSpec::prepare`], and [`EvaluatorError::Judge`] when the client fails. A judge
    /// reply that matches no choice is a failed result, not an error.
    pub async fn evaluate(
        &self,
        row: &Map<String, Value>,
        response: &str,
        options: &EvalOptions,
        client: &dyn JudgeClient,
    ) -> Result<EvalResult, EvaluatorError> {
        match self.prepare(row, response, options)? {
            Prepared::Done(result) => Ok(result),
            Prepared::Judge(call) => {
                let reply = client.judge(&call.request).await.map_err(|source| EvaluatorError::Judge {
                    evaluator: self.name.clone(),
                    model: call.request.model.clone(),
                    source,
                })?;
                Ok(call.score(&reply))
            }
        }
    }
}

fn string_check(name: &str, check: &StringCheck, row: &Map<String, Value>, response: &str) -> EvalResult {
    match check {
        StringCheck::Equals(v) => {
            let v = template(v, row);
            EvalResult::check(name, response == v, format!("Expected exact match: '{v}'"))
        }
        StringCheck::Contains(v) => {
            let v = template(v, row);
            EvalResult::check(name, metrics::contains(response, &[&v]) == 1.0, format!("Expected to contain: '{v}'"))
        }
        StringCheck::StartsWith(v) => {
            let v = template(v, row);
            EvalResult::check(
                name,
                metrics::starts_with(response, &[&v]) == 1.0,
                format!("Expected to start with: '{v}'"),
            )
        }
        StringCheck::EndsWith(v) => {
            let v = template(v, row);
            EvalResult::check(name, metrics::ends_with(response, &[&v]) == 1.0, format!("Expected to end with: '{v}'"))
        }
    }
}

fn regex_check(
    name: &str,
    check: &RegexCheck,
    row: &Map<String, Value>,
    response: &str,
) -> Result<EvalResult, EvaluatorError> {
    let (pattern, found) = if let Some(re) = &check.compiled {
        (check.pattern.clone(), re.is_match(response))
    } else {
        let pattern = check.templated(row);
        let re = check.compile(&pattern).map_err(|e| EvaluatorError::Pattern {
            evaluator: name.to_string(),
            pattern: pattern.clone(),
            reason: e.to_string(),
        })?;
        let found = re.is_match(response);
        (pattern, found)
    };
    Ok(if check.negate {
        EvalResult::check(name, !found, format!("Expected not to match: /{pattern}/"))
    } else {
        EvalResult::check(name, found, format!("Expected to match: /{pattern}/"))
    })
}

fn schema_check(name: &str, check: &SchemaCheck, response: &str) -> EvalResult {
    let value = match serde_json::from_str::<Value>(response) {
        Ok(value) => value,
        Err(e) => return EvalResult::check(name, false, format!("Expected JSON matching the schema; not JSON: {e}")),
    };
    let first_error = check.validator.iter_errors(&value).next().map(|err| {
        let at = err.instance_path().to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        format!("at {at}: {err}")
    });
    match first_error {
        None => EvalResult::check(name, true, "Expected JSON matching the schema"),
        Some(why) => EvalResult::check(name, false, format!("Expected JSON matching the schema; {why}")),
    }
}

fn metric_check(
    name: &str,
    check: &MetricCheck,
    row: &Map<String, Value>,
    response: &str,
) -> Result<EvalResult, EvaluatorError> {
    let references: Vec<String> = match &check.reference {
        ReferenceSource::None => Vec::new(),
        ReferenceSource::Template(t) => vec![template(t, row)],
        ReferenceSource::Key(key) => match row.get(key) {
            None | Some(Value::Null) => {
                return Err(EvaluatorError::MissingReference { evaluator: name.to_string(), key: key.clone() })
            }
            Some(Value::Array(items)) => items.iter().map(format_value).collect(),
            Some(v) => vec![format_value(v)],
        },
    };
    let metric = check.metric;
    if let Err(e) = metric.check_references(&references) {
        return Ok(EvalResult::new(name, 0.0, false, format!("Reference rejected by {metric}: {e}")));
    }
    let score = metric.score(response, &references, &check.config);
    let passed = score >= check.min;
    let relation = if passed { ">=" } else { "<" };
    Ok(EvalResult::new(name, score, passed, format!("{metric} {score:.4} {relation} min {}", check.min)))
}

#[cfg(test)]
mod tests;
