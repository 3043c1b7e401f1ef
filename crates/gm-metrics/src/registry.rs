//! The metric registry: every metric `gm score` knows, with its name, version and description.
//!
//! [`Metric`] names a metric; [`MetricConfig`] holds the few options that change how some
//! metrics score; [`Scorer`] is the object-safe interface for code that wants to hold metrics
//! as trait objects (`Box<dyn Scorer>`).

use std::fmt;

use crate::metrics::{self, NumericTolerance, RougeSelection};
use crate::Error;

/// The name, version and description of a metric, as `gm score --list` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// The name used in `--metrics` and as the key of the score in the output.
    pub name: &'static str,
    /// The reference implementation (and its version) the metric agrees with, or the version
    /// of our own definition where there is none.
    pub version: &'static str,
    /// One line on what the metric measures.
    pub description: &'static str,
}

/// A metric that scores one prediction against its references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Metric {
    /// Sentence BLEU (sacreBLEU 2.6.0, effective order).
    Bleu,
    /// Sentence chrF (sacreBLEU 2.6.0).
    Chrf,
    /// ROUGE-1 F-measure.
    Rouge1,
    /// ROUGE-2 F-measure.
    Rouge2,
    /// ROUGE-L F-measure.
    RougeL,
    /// ROUGE-Lsum F-measure.
    RougeLsum,
    /// SQuAD exact match.
    SquadEm,
    /// SQuAD token F1.
    SquadF1,
    /// Exact, case-sensitive equality.
    Equals,
    /// Case-insensitive substring.
    Contains,
    /// Case-insensitive prefix.
    StartsWith,
    /// Case-insensitive suffix.
    EndsWith,
    /// A regular expression (the reference) found in the prediction.
    RegexMatch,
    /// The prediction is valid JSON.
    JsonValid,
    /// The prediction is JSON accepted by a JSON schema (the reference).
    JsonSchema,
    /// The last number of the prediction equals the last number of the reference.
    NumericMatch,
}

impl Metric {
    /// Every metric, in the order `gm score --list` shows them.
    pub const ALL: [Metric; 16] = [
        Metric::Bleu,
        Metric::Chrf,
        Metric::Rouge1,
        Metric::Rouge2,
        Metric::RougeL,
        Metric::RougeLsum,
        Metric::SquadEm,
        Metric::SquadF1,
        Metric::Equals,
        Metric::Contains,
        Metric::StartsWith,
        Metric::EndsWith,
        Metric::RegexMatch,
        Metric::JsonValid,
        Metric::JsonSchema,
        Metric::NumericMatch,
    ];

    /// The metric's name, version and description.
    pub fn info(self) -> MetricInfo {
        const SACREBLEU: &str = "sacrebleu-2.6.0";
        const ROUGE: &str = "rouge-score-0.1.2";
        const SQUAD: &str = "squad-v2.0";
        const GH_MODELS: &str = "gh-models";
        let (name, version, description) = match self {
            Metric::Bleu => ("bleu", SACREBLEU, "sentence BLEU: 13a tokens, exp smoothing, effective order"),
            Metric::Chrf => ("chrf", SACREBLEU, "sentence chrF: character 6-grams, beta 2, whitespace removed"),
            Metric::Rouge1 => {
                ("rouge1", ROUGE, "ROUGE-1 F-measure, best reference (Porter stemming with --rouge-stemmer)")
            }
            Metric::Rouge2 => {
                ("rouge2", ROUGE, "ROUGE-2 F-measure, best reference (Porter stemming with --rouge-stemmer)")
            }
            Metric::RougeL => ("rougeL", ROUGE, "ROUGE-L (longest common subsequence) F-measure, best reference"),
            Metric::RougeLsum => {
                ("rougeLsum", ROUGE, "ROUGE-Lsum (summary-level LCS over lines) F-measure, best reference")
            }
            Metric::SquadEm => ("squad_em", SQUAD, "SQuAD exact match after answer normalization"),
            Metric::SquadF1 => ("squad_f1", SQUAD, "SQuAD token F1 (multiset overlap) after answer normalization"),
            Metric::Equals => {
                ("equals", GH_MODELS, "1 when the prediction equals a reference exactly (case-sensitive)")
            }
            Metric::Contains => ("contains", GH_MODELS, "1 when the prediction contains a reference, ignoring case"),
            Metric::StartsWith => {
                ("startsWith", GH_MODELS, "1 when the prediction starts with a reference, ignoring case")
            }
            Metric::EndsWith => ("endsWith", GH_MODELS, "1 when the prediction ends with a reference, ignoring case"),
            Metric::RegexMatch => (
                "regex_match",
                "gm-1",
                "1 when a reference regular expression (Rust regex syntax) matches in the prediction",
            ),
            Metric::JsonValid => {
                ("json_valid", "gm-1", "1 when the prediction is one valid JSON value; references are ignored")
            }
            Metric::JsonSchema => {
                ("json_schema", "gm-1", "1 when the prediction is JSON accepted by a reference JSON schema")
            }
            Metric::NumericMatch => (
                "numeric_match",
                "gm-1",
                "1 when the last number in the prediction equals the reference's within 1e-6 (absolute or relative)",
            ),
        };
        MetricInfo { name, version, description }
    }

    /// The metric's name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Information on every metric.
    pub fn list() -> impl Iterator<Item = MetricInfo> {
        Metric::ALL.iter().map(|m| m.info())
    }

    /// The metric with this name.
    ///
    /// # Errors
    /// [`Error::UnknownMetric`], listing the valid names.
    pub fn from_name(name: &str) -> Result<Metric, Error> {
        Metric::ALL.iter().copied().find(|m| m.name() == name).ok_or_else(|| Error::UnknownMetric {
            name: name.to_owned(),
            valid: Metric::ALL.map(Metric::name).join(", "),
        })
    }

    /// Parses a comma-separated list such as `bleu,chrf,rougeL`, dropping repeats.
    ///
    /// ```
    /// use gm_metrics::Metric;
    /// let metrics = Metric::parse_list("bleu, rougeL,bleu").unwrap();
    /// assert_eq!(metrics, [Metric::Bleu, Metric::RougeL]);
    /// assert!(Metric::parse_list("bleu,blue").is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownMetric`] for the first unknown name, [`Error::NoMetrics`] for an
    /// empty list.
    pub fn parse_list(list: &str) -> Result<Vec<Metric>, Error> {
        let mut metrics = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let metric = Metric::from_name(name)?;
            if !metrics.contains(&metric) {
                metrics.push(metric);
            }
        }
        if metrics.is_empty() {
            return Err(Error::NoMetrics);
        }
        Ok(metrics)
    }

    /// Whether this metric is one of the ROUGE family.
    pub fn is_rouge(self) -> bool {
        matches!(self, Metric::Rouge1 | Metric::Rouge2 | Metric::RougeL | Metric::RougeLsum)
    }

    /// Whether the metric grades in [0, 1] (BLEU, chrF, ROUGE, SQuAD F1) rather than checking 0 or 1, so a
    /// pass needs a threshold.
    pub fn is_graded(self) -> bool {
        self.is_rouge() || matches!(self, Metric::Bleu | Metric::Chrf | Metric::SquadF1)
    }

    /// Checks the references of one case for this metric: regular expressions must compile
    /// and JSON schemas must be valid. Other metrics accept any references.
    ///
    /// # Errors
    /// [`Error::InvalidPattern`] or [`Error::InvalidSchema`].
    pub fn check_references<S: AsRef<str>>(self, references: &[S]) -> Result<(), Error> {
        match self {
            Metric::RegexMatch => {
                for r in references {
                    metrics::compile_pattern(r.as_ref())?;
                }
            }
            Metric::JsonSchema => {
                for r in references {
                    metrics::JsonSchema::compile(r.as_ref())?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Scores one prediction against its references, in [0, 1].
    ///
    /// A reference that is an invalid pattern or schema scores 0 here; use
    /// [`Metric::check_references`] first to report it instead.
    ///
    /// ```
    /// use gm_metrics::{Metric, MetricConfig};
    /// let config = MetricConfig::default();
    /// assert_eq!(Metric::SquadEm.score("The Louvre", &["louvre"], &config), 1.0);
    /// assert_eq!(Metric::NumericMatch.score("It costs $1,200.", &["1200"], &config), 1.0);
    /// ```
    pub fn score<S: AsRef<str>>(self, prediction: &str, references: &[S], config: &MetricConfig) -> f64 {
        let stem = config.rouge_stemmer;
        let only = |selection: RougeSelection| metrics::rouge(prediction, references, stem, selection);
        match self {
            Metric::Bleu => metrics::sentence_bleu(prediction, references),
            Metric::Chrf => metrics::sentence_chrf(prediction, references),
            Metric::Rouge1 => only(RougeSelection { rouge1: true, ..Default::default() }).rouge1,
            Metric::Rouge2 => only(RougeSelection { rouge2: true, ..Default::default() }).rouge2,
            Metric::RougeL => only(RougeSelection { rouge_l: true, ..Default::default() }).rouge_l,
            Metric::RougeLsum => only(RougeSelection { rouge_lsum: true, ..Default::default() }).rouge_lsum,
            Metric::SquadEm => metrics::squad_em(prediction, references),
            Metric::SquadF1 => metrics::squad_f1(prediction, references),
            Metric::Equals => metrics::equals(prediction, references),
            Metric::Contains => metrics::contains(prediction, references),
            Metric::StartsWith => metrics::starts_with(prediction, references),
            Metric::EndsWith => metrics::ends_with(prediction, references),
            Metric::RegexMatch => metrics::regex_match(prediction, references).unwrap_or(0.0),
            Metric::JsonValid => metrics::json_valid(prediction),
            Metric::JsonSchema => metrics::json_schema_valid(prediction, references).unwrap_or(0.0),
            Metric::NumericMatch => metrics::numeric_match(prediction, references, config.numeric_tolerance),
        }
    }

    /// This metric with `config`, as a [`Scorer`] trait object.
    pub fn scorer(self, config: MetricConfig) -> Box<dyn Scorer> {
        Box::new(ConfiguredMetric { metric: self, config })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::from_name(s)
    }
}

/// Options that change how some metrics score.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricConfig {
    /// Stem words with the Porter stemmer before ROUGE (`use_stemmer=True`).
    pub rouge_stemmer: bool,
    /// Tolerance of `numeric_match`.
    pub numeric_tolerance: NumericTolerance,
}

/// Something that scores a prediction against references, in [0, 1].
///
/// Object-safe, so metrics can be held as `Box<dyn Scorer>`; [`Metric::scorer`] makes one
/// for each built-in metric.
///
/// ```
/// use gm_metrics::{Metric, MetricConfig, Scorer};
/// let scorers: Vec<Box<dyn Scorer>> = ["bleu", "rougeL"]
///     .iter()
///     .map(|n| Metric::from_name(n).unwrap().scorer(MetricConfig::default()))
///     .collect();
/// for s in &scorers {
///     assert!((s.score("a b c d", &["a b c d"]) - 1.0).abs() < 1e-9, "{}", s.info().name);
/// }
/// ```
pub trait Scorer: Send + Sync {
    /// The metric's name, version and description.
    fn info(&self) -> MetricInfo;
    /// Scores one prediction against its references.
    fn score(&self, prediction: &str, references: &[&str]) -> f64;
}

#[derive(Debug, Clone, Copy)]
struct ConfiguredMetric {
    metric: Metric,
    config: MetricConfig,
}

impl Scorer for ConfiguredMetric {
    fn info(&self) -> MetricInfo {
        self.metric.info()
    }

    fn score(&self, prediction: &str, references: &[&str]) -> f64 {
        self.metric.score(prediction, references, &self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()).unwrap(), m);
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
    }

    #[test]
    fn unknown_metric_lists_valid_names() {
        let err = Metric::from_name("blue").unwrap_err().to_string();
        assert!(err.contains("unknown metric `blue`"), "{err}");
        assert!(err.contains("bleu, chrf"), "{err}");
    }
}
