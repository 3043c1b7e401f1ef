//! The library API of the original integration: [`Evaluator`], [`EvaluationRequest`], [`EvaluationConfig`].
//!
//! | original | here |
//! | --- | --- |
//! | `evaluate_model(EvaluationRequest)` → output, latency | [`Evaluator::evaluate`] |
//! | `batch_evaluate(requests)` | [`Evaluator::batch_evaluate`], concurrent within the rate limits |
//! | `ModelEvaluator.evaluate_models(EvaluationConfig)` → report | [`Evaluator::evaluate_models`] → [`BenchReport`] |
//! | `get_available_models()` | [`Evaluator::available_models`] |
//! | `get_available_tasks()`, `get_evaluation_metrics()` | [`available_tasks`], [`evaluation_metrics`] |
//! | `get_rate_limit_status()` | [`Evaluator::rate_limit_status`] |
//!
//! # Example
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use gm_eval::api::{Evaluator, EvaluationConfig, EvaluationRequest};
//!
//! let evaluator = Evaluator::demo().unwrap();
//! let answer = evaluator
//!     .evaluate(&EvaluationRequest::new("openai/gpt-4.1", "reasoning").input("question", "What is 12 * 12?"))
//!     .await
//!     .unwrap();
//! assert!(answer.output.contains("144"));
//!
//! let config = EvaluationConfig::new(["openai/gpt-4.1", "openai/gpt-4.1-mini"], ["question_answering"]).limit_items(5);
//! let report = evaluator.evaluate_models(&config).await.unwrap();
//! assert!(report.summary.best_model.is_some());
//! # });
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use gm_core::{CatalogEntry, ProviderKind};
use gm_http::Client;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::bench::{run_matrix, BenchReport, CodeScoring};
use crate::prompt::ModelParameters;
use crate::run::{RunError, RunOptions};
use crate::tasks::{builtin_tasks, CodeExecution, Task, TaskInfo};
use crate::{Metric, MetricInfo};

/// Why an evaluation could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The task type is not a built-in task.
    #[error("unknown task type `{0}`; use one of: {names}", names = crate::tasks::builtin_names().collect::<Vec<_>>().join(", "))]
    UnknownTask(String),
    /// The request lacks a value the task's template uses.
    #[error("task `{task}` needs the input `{missing}`; give every one of: {all}")]
    MissingInput {
        /// The task.
        task: String,
        /// The first missing key.
        missing: String,
        /// Every key the template uses.
        all: String,
    },
    /// The task scores by running generated code, which this API does not do.
    #[error("task `{0}` scores by running generated code; give the evaluator a sandbox (`Evaluator::with_code_execution`, feature `code-exec`), run it with `gm bench --allow-code-exec`, or grade it by other metrics")]
    CodeExecution(String),
    /// A chosen metric is not a scorer of a task nor a metric of the registry, or no chosen metric applies to a task.
    #[error("{0}")]
    Metrics(String),
    /// The model call failed.
    #[error(transparent)]
    Client(#[from] gm_http::Error),
    /// A run of the matrix stopped.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// One model on one input of a task: what the original `evaluate_model` took.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationRequest {
    /// The model.
    pub model_id: String,
    /// A built-in task (`text_generation`, `question_answering`, `summarization`, `code_generation`, `reasoning`).
    pub task_type: String,
    /// The values of the task's template placeholders.
    pub input_data: Map<String, Value>,
    /// Generation parameters that override the task's.
    pub parameters: Option<ModelParameters>,
}

impl EvaluationRequest {
    /// A request with no input yet.
    pub fn new(model_id: impl Into<String>, task_type: impl Into<String>) -> Self {
        Self { model_id: model_id.into(), task_type: task_type.into(), input_data: Map::new(), parameters: None }
    }

    /// Sets one template value.
    pub fn input(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.input_data.insert(key.into(), value.into());
        self
    }
}

/// What one evaluation gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationResult {
    /// The model.
    pub model_id: String,
    /// The task.
    pub task_type: String,
    /// The model's answer.
    pub output: String,
    /// How long the answer took (0 from the cache).
    pub latency_ms: f64,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// What it cost, when the price table knows the model (never for the demo provider, which asks no model).
    pub cost_usd: Option<f64>,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// Several models across several tasks: what the original `evaluate_models` took.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationConfig {
    /// The models.
    pub models: Vec<String>,
    /// Built-in task names.
    pub tasks: Vec<String>,
    /// Items per task (all when `None`).
    pub limit_items: Option<usize>,
    /// The scorers that grade every task, as `gm bench --metrics` takes them (a task's scorer by name, or a
    /// registry metric against each item's `expected`, optionally `name:min`); empty: each task's own.
    pub metrics: Vec<String>,
    /// Generation parameters that override every task's (`max_tokens`, `temperature`, `top_p`).
    pub parameters: Option<ModelParameters>,
}

impl EvaluationConfig {
    /// Models × tasks.
    pub fn new<M: Into<String>, T: Into<String>>(
        models: impl IntoIterator<Item = M>,
        tasks: impl IntoIterator<Item = T>,
    ) -> Self {
        Self {
            models: models.into_iter().map(Into::into).collect(),
            tasks: tasks.into_iter().map(Into::into).collect(),
            limit_items: None,
            metrics: Vec::new(),
            parameters: None,
        }
    }

    /// Generation parameters for every task, over the task's own (what the original's `parameters` were).
    pub fn parameters(mut self, parameters: ModelParameters) -> Self {
        self.parameters = Some(parameters);
        self
    }

    /// Grades every task by these scorers or metrics only (see [`crate::tasks::MetricChoice`]).
    pub fn metrics<S: Into<String>>(mut self, metrics: impl IntoIterator<Item = S>) -> Self {
        self.metrics = metrics.into_iter().map(Into::into).collect();
        self
    }

    /// Runs only the first `n` items of each task.
    pub fn limit_items(mut self, n: usize) -> Self {
        self.limit_items = Some(n);
        self
    }
}

/// The built-in tasks.
pub fn available_tasks() -> Vec<TaskInfo> {
    builtin_tasks()
}

/// The metrics of the registry.
pub fn evaluation_metrics() -> Vec<MetricInfo> {
    Metric::ALL.iter().map(|m| m.info()).collect()
}

/// Evaluates models through a client (its rate limiter and cache apply).
#[derive(Debug, Clone)]
pub struct Evaluator {
    client: Client,
    options: RunOptions,
    #[cfg(feature = "code-exec")]
    sandbox: Option<Arc<crate::sandbox::Sandbox>>,
}

impl Evaluator {
    /// An evaluator over `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            options: RunOptions::default(),
            #[cfg(feature = "code-exec")]
            sandbox: None,
        }
    }

    /// Lets [`Evaluator::evaluate_models`] score code tasks by running the generated code in `sandbox` (made
    /// with [`SandboxPolicy`](crate::sandbox::SandboxPolicy), which is not a security boundary).
    #[cfg(feature = "code-exec")]
    pub fn with_code_execution(mut self, sandbox: crate::sandbox::Sandbox) -> Self {
        self.sandbox = Some(Arc::new(sandbox));
        self
    }

    /// Whether code tasks can be scored: a sandbox was given.
    fn runs_code(&self) -> bool {
        #[cfg(feature = "code-exec")]
        return self.sandbox.is_some();
        #[cfg(not(feature = "code-exec"))]
        false
    }

    /// Code scoring for `tasks` in this evaluator's sandbox, when it has one and some task needs it.
    fn code_scoring(&self, tasks: BTreeMap<String, CodeExecution>) -> Option<CodeScoring<'_>> {
        #[cfg(feature = "code-exec")]
        return self.sandbox.as_deref().filter(|_| !tasks.is_empty()).map(|sandbox| CodeScoring { sandbox, tasks });
        // Without a sandbox no task that needs one gets this far (see `runs_code`).
        #[cfg(not(feature = "code-exec"))]
        {
            drop(tasks);
            None
        }
    }

    /// An evaluator on the offline demo provider.
    pub fn demo() -> Result<Self, gm_http::Error> {
        let client = Client::builder().provider(ProviderKind::Demo).build()?;
        Ok(Self::new(client))
    }

    /// The options of the runs it makes (concurrency, judge mode, prices …).
    pub fn with_options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The provider's models.
    pub async fn available_models(&self) -> Result<Arc<Vec<CatalogEntry>>, ApiError> {
        Ok(self.client.models().await?)
    }

    /// Where every rate-limit key stands.
    pub fn rate_limit_status(&self) -> Vec<gm_limits::KeyStatus> {
        self.client.limiter().map(|l| l.status()).unwrap_or_default()
    }

    /// One model on one input of a task.
    pub async fn evaluate(&self, request: &EvaluationRequest) -> Result<EvaluationResult, ApiError> {
        let task = Task::builtin(&request.task_type).ok_or_else(|| ApiError::UnknownTask(request.task_type.clone()))?;
        let needed: std::collections::BTreeSet<String> =
            task.messages.iter().flat_map(|m| crate::tasks::placeholders(&m.content)).collect();
        if let Some(missing) = needed.iter().find(|k| !request.input_data.contains_key(*k)) {
            return Err(ApiError::MissingInput {
                task: task.name.clone(),
                missing: missing.clone(),
                all: needed.iter().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        let file = task.to_prompt_file(&request.model_id, Some(0));
        let mut chat = file.to_request(&request.model_id, &request.input_data);
        if let Some(p) = &request.parameters {
            chat.max_tokens = p.max_tokens.or(chat.max_tokens);
            chat.temperature = p.temperature.or(chat.temperature);
            chat.top_p = p.top_p.or(chat.top_p);
        }
        let answer = self.client.chat(&chat).await?;
        let usage = answer.usage();
        let cost = self.options.prices.as_ref().and_then(|t| t.price_from(self.client.provider(), &request.model_id));
        Ok(EvaluationResult {
            model_id: request.model_id.clone(),
            task_type: request.task_type.clone(),
            output: answer.text().trim().to_string(),
            latency_ms: if answer.cached { 0.0 } else { answer.latency.as_secs_f64() * 1000.0 },
            tokens_in: usage.prompt_tokens,
            tokens_out: usage.completion_tokens,
            cost_usd: if answer.cached {
                Some(0.0).filter(|_| cost.is_some())
            } else {
                cost.map(|p| p.cost_usd(usage.prompt_tokens, usage.completion_tokens))
            },
            cached: answer.cached,
        })
    }

    /// Several evaluations at once, concurrently within the rate limits; results in the requests' order.
    pub async fn batch_evaluate(&self, requests: &[EvaluationRequest]) -> Vec<Result<EvaluationResult, ApiError>> {
        stream::iter(requests.iter().map(|r| self.evaluate(r)))
            .buffered(self.options.concurrency.max(1))
            .collect()
            .await
    }

    /// Every model on every task: per-cell latency, throughput, quality and cost, and the best model.
    ///
    /// With [`EvaluationConfig::metrics`], those scorers alone grade every task:
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use gm_eval::api::{EvaluationConfig, Evaluator};
    ///
    /// let evaluator = Evaluator::demo().unwrap();
    /// // code_generation graded by chrF against the reference solution runs no generated code.
    /// let config = EvaluationConfig::new(["openai/gpt-4.1"], ["code_generation", "summarization"])
    ///     .limit_items(2)
    ///     .metrics(["chrf:0.3"]);
    /// let report = evaluator.evaluate_models(&config).await.unwrap();
    /// for cell in &report.cells {
    ///     assert_eq!(cell.metrics.scores.keys().collect::<Vec<_>>(), ["chrf"]);
    /// }
    /// assert!(evaluator.evaluate_models(&config.clone().metrics(["no_such_metric"])).await.is_err());
    /// # });
    /// ```
    pub async fn evaluate_models(&self, config: &EvaluationConfig) -> Result<BenchReport, ApiError> {
        let choices = config
            .metrics
            .iter()
            .map(|m| crate::tasks::MetricChoice::parse(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::Metrics)?;
        let mut applied = vec![false; choices.len()];
        let mut code_tasks = BTreeMap::new();
        let mut tasks = Vec::with_capacity(config.tasks.len());
        for name in &config.tasks {
            let mut task = Task::builtin(name).ok_or_else(|| ApiError::UnknownTask(name.clone()))?;
            if !choices.is_empty() {
                let (graded, a) = task.with_metrics(&choices).map_err(ApiError::Metrics)?;
                applied.iter_mut().zip(a).for_each(|(x, y)| *x |= y);
                task = graded;
            }
            if task.needs_code_execution && !self.runs_code() {
                return Err(ApiError::CodeExecution(name.clone()));
            }
            if let Some(exec) = &task.execution {
                code_tasks.insert(name.clone(), exec.clone());
            }
            let first_model = config.models.first().map(String::as_str).unwrap_or("");
            let mut file = task.to_prompt_file(first_model, config.limit_items);
            if let Some(p) = &config.parameters {
                let own = &mut file.model_parameters;
                own.max_tokens = p.max_tokens.or(own.max_tokens);
                own.temperature = p.temperature.or(own.temperature);
                own.top_p = p.top_p.or(own.top_p);
            }
            tasks.push((name.clone(), file));
        }
        if let Some(c) = choices.iter().zip(&applied).find_map(|(c, a)| (!a).then_some(c)) {
            return Err(ApiError::Metrics(format!(
                "`{}` is neither a scorer of the tasks ({}) nor a metric of the registry",
                c.name,
                config.tasks.join(", ")
            )));
        }
        let code = self.code_scoring(code_tasks);
        Ok(run_matrix(&self.client, &self.options, &config.models, &tasks, code.as_ref()).await?)
    }
}
