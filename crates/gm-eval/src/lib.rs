//! Evaluation of language models.
//!
//! Use this crate to score model answers against references (BLEU, chrF, ROUGE, SQuAD EM/F1,
//! pass@k, string, regex, JSON and numeric checks), aggregate scores with confidence
//! intervals, and score JSON Lines files the way `gm score` does.
//!
//! The text metrics agree with their reference implementations (sacreBLEU 2.6.0,
//! rouge-score 0.1.2, the SQuAD evaluation script) to within 1e-6 on every golden vector, and
//! every score lies in [0, 1].
//!
//! - [`metrics`]: the scorers, pure functions with no IO.
//! - [`Metric`], [`Scorer`]: the registry of named, versioned metrics behind `gm score --list`.
//! - [`stats`]: means with bootstrap or Wilson intervals, and paired bootstrap comparisons.
//! - [`score_file`]: the streaming JSON Lines engine of `gm score`.
//! - [`prompt`]: `.prompt.yml` files (GitHub Models prompts and evaluation suites) and their templating.
//! - [`evaluators`]: gh-models' string checks and LLM judges, the built-in judges, and gm's extensions.
//! - [`run`]: running a suite concurrently through a client, with gh-models' results and gm's figures.
//! - [`tasks`]: the built-in task catalog (text generation, question answering, summarization, code
//!   generation, reasoning) and user tasks as YAML plus JSONL files, runnable as prompt files.
//! - [`sandbox`]: running generated Python against an item's tests for pass@k (off unless enabled;
//!   not a security boundary).
//! - [`report`]: gh-models' human output, JUnit XML, Markdown, JSON Lines and a self-contained HTML page.
//! - [`evaluators`]: the evaluators of a prompt file (gh-models string checks, LLM judges, built-in
//!   judges, and our regex, JSON-schema and metric-threshold extensions) and how they score a response.
//!
//! # Example
//! ```
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

pub mod api;
pub mod bench;
pub mod compare;
mod error;
pub mod evaluators;
pub mod metrics;
pub mod prices;
pub mod prompt;
mod registry;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod score_file;
pub mod stats;
#[cfg(feature = "sqlite")]
pub mod store;
pub mod tasks;
mod text;

pub use error::Error;
pub use registry::{Metric, MetricConfig, MetricInfo, Scorer};
