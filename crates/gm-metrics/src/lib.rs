//! Exact scorers for language-model outputs, with no IO and no async runtime.
//!
//! Use this crate if you want sacreBLEU-, rouge-score- and SQuAD-exact scores in Rust without a
//! client, a runner or a runtime: sentence and corpus BLEU and chrF, ROUGE-1/2/L/Lsum with NLTK's
//! Porter stemmer, SQuAD EM and F1, pass@k and pass^k, `gh models eval`'s string checks, regex,
//! JSON and JSON-Schema checks and the numeric answer match ([`metrics`]); the registry of named,
//! versioned metrics behind `gm score --list` ([`Metric`], [`Scorer`]); means with bootstrap or
//! Wilson intervals and paired bootstrap comparisons ([`stats`]); and the streaming JSON Lines
//! engine of `gm score` ([`score_file`]). The text metrics agree with their reference
//! implementations to within 1e-6 on every golden vector, and every score lies in [0, 1].
//! `gm-eval` re-exports all of it at the same paths, so `gm_eval::metrics` and
//! `gm_metrics::metrics` are one module.
//!
//! # Example
//! ```
//! use gm_metrics::metrics::{rouge, sentence_bleu, squad_f1, RougeSelection};
//! use gm_metrics::stats::{bootstrap_mean, BootstrapOptions};
//! use gm_metrics::{Metric, MetricConfig};
//!
//! let prediction = "The cat sat on the mat.";
//! let references = ["The cat sat on the mat."];
//! assert!((sentence_bleu(prediction, &references) - 1.0).abs() < 1e-9);
//! assert_eq!(squad_f1(prediction, &references), 1.0);
//! assert_eq!(rouge(prediction, &references, false, RougeSelection::ALL).rouge_l, 1.0);
//!
//! // The same metrics by name, as `gm score --metrics` takes them.
//! let config = MetricConfig::default();
//! for metric in Metric::parse_list("squad_em,rougeL")? {
//!     assert_eq!(metric.score(prediction, &references, &config), 1.0);
//! }
//!
//! let per_case = [0.5, 0.75, 1.0, 0.25];
//! let estimate = bootstrap_mean(&per_case, BootstrapOptions::default())?;
//! assert!(estimate.low <= estimate.mean && estimate.mean <= estimate.high);
//! # Ok::<(), gm_metrics::Error>(())
//! ```
//!
//! # Crate features
//! None: every scorer is always built. The crate depends on no other gm crate and on no async
//! runtime (`cargo xtask tidy` checks that its dependency graph holds no tokio, hyper, rusqlite
//! or gm-http).

mod error;
pub mod metrics;
mod registry;
pub mod score_file;
pub mod stats;
mod text;
#[doc(hidden)]
pub mod untrusted;

pub use error::Error;
pub use registry::{Metric, MetricConfig, MetricInfo, Scorer};
