//! Evaluation of language models.
//!
//! Use this crate to evaluate models through a client: run `.prompt.yml` suites and the task
//! catalog concurrently (with the client's limiter and cache), score the answers with string
//! checks, metrics and LLM judges, compare runs, benchmark models × tasks, store runs in the state
//! file and render reports. To score answers you already have, without a client or a runtime,
//! depend on `gm-metrics` alone: its scorers (BLEU, chrF, ROUGE, SQuAD EM/F1, pass@k, string,
//! regex, JSON and numeric checks, exact to their reference implementations within 1e-6), its
//! registry, its statistics and its `gm score` engine are re-exported here at the same paths.
//!
//! - [`metrics`], [`Metric`], [`Scorer`], [`stats`], [`score_file`]: re-exported from `gm-metrics`.
//! - [`prompt`]: `.prompt.yml` files (GitHub Models prompts and evaluation suites) and their templating.
//! - [`run`]: running a suite concurrently through a client, with gh-models' results and gm's figures.
//! - [`tasks`]: the built-in task catalog (text generation, question answering, summarization, code
//!   generation, reasoning) and user tasks as YAML plus JSONL files, runnable as prompt files.
//! - [`sandbox`] (feature `code-exec`): running generated Python against an item's tests for pass@k (off
//!   unless enabled; not a security boundary).
//! - [`report`]: gh-models' human output, JUnit XML, Markdown, JSON Lines and a self-contained HTML page.
//! - [`evaluators`]: the evaluators of a prompt file (gh-models string checks, LLM judges, built-in
//!   judges, and our regex, JSON-schema and metric-threshold extensions) and how they score a response.
//!
//! # Example
//! ```
//! // The scorers of gm-metrics, at the paths gm-eval has always had them.
//! use gm_eval::metrics::{sentence_bleu, squad_f1, rouge, RougeSelection};
//! use gm_eval::stats::{bootstrap_mean, BootstrapOptions};
//!
//! let prediction = "The cat sat on the mat.";
//! let references = ["The cat sat on the mat."];
//! assert!((sentence_bleu(prediction, &references) - 1.0).abs() < 1e-9);
//! assert_eq!(squad_f1(prediction, &references), 1.0);
//! assert_eq!(rouge(prediction, &references, false, RougeSelection::ALL).rouge_l, 1.0);
//!
//! let per_case = [0.5, 0.75, 1.0, 0.25];
//! let estimate = bootstrap_mean(&per_case, BootstrapOptions::default()).unwrap();
//! assert!(estimate.low <= estimate.mean && estimate.mean <= estimate.high);
//! ```
//!
//! # Crate features
//! - `sqlite`: [`store`], the run store in the SQLite state file (written as cases finish; resumable runs).
//! - `code-exec`: [`sandbox`], running generated code against an item's tests, and what needs it: code scoring
//!   in a bench ([`bench::CodeScoring`], [`bench::score_code`]) and
//!   [`Evaluator::with_code_execution`](api::Evaluator::with_code_execution). The sandbox is the only part of
//!   gm-eval that uses tokio directly (child processes, their output and their timeouts): without this
//!   feature gm-eval has no dependency of its own on tokio.

pub mod api;
pub mod bench;
pub mod compare;
mod error;
pub mod evaluators;
pub mod prices;
pub mod prompt;
pub mod report;
pub mod run;
#[cfg(feature = "code-exec")]
pub mod sandbox;
#[cfg(feature = "sqlite")]
pub mod store;
pub mod tasks;
#[doc(hidden)]
pub mod untrusted;

pub use error::Error;
pub use gm_metrics::{metrics, score_file, stats, Metric, MetricConfig, MetricInfo, Scorer};
