//! Comparing two runs of the same suite: which test cases changed, and whether the change is significant.
//!
//! Cases are matched by their test row (not their position), so a reordered suite still compares. Each case's
//! score is the mean of its evaluator scores; the two score lists over the shared cases go through a paired
//! bootstrap ([`crate::stats::paired_bootstrap`]). A change is flagged as a regression (or an improvement) only
//! when the 95% interval of the difference excludes zero, so noise between runs is not reported as a regression.
//!
//! ```
//! use gm_eval::compare::{compare, Verdict};
//! use gm_eval::run::{CaseFigures, Finished, TestResult};
//! use gm_eval::evaluators::EvalResult;
//!
//! fn run(scores: &[f64]) -> Finished {
//!     scores.iter().enumerate().map(|(i, s)| {
//!         let mut row = serde_json::Map::new();
//!         row.insert("i".into(), i.into());
//!         let r = EvalResult { evaluator_name: "check".into(), score: *s, passed: *s > 0.5, details: None };
//!         let t = TestResult { test_case: row, model_response: String::new(), evaluation_results: vec![r] };
//!         let f = CaseFigures { latency_ms: 1.0, tokens_in: 1, tokens_out: 1, cached: false, judge_calls: 0, samples: None, ..Default::default() };
//!         (i + 1, (t, f))
//!     }).collect()
//! }
//! let before = run(&[1.0; 30]);
//! let after = run(&[0.0; 30]);
//! let c = compare(&before, &after).unwrap();
//! assert_eq!(c.verdict, Verdict::Regression);
//! assert_eq!(c.newly_failing.len(), 30);
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

use crate::run::{Finished, TestResult};
use crate::stats::{paired_bootstrap, BootstrapOptions};

/// What a comparison concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The candidate scores significantly lower.
    Regression,
    /// The candidate scores significantly higher.
    Improvement,
    /// The difference is within what resampling explains.
    NoSignificantChange,
    /// No test case is in both runs.
    NothingShared,
}

/// One test case whose outcome changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseChange {
    /// The test row.
    pub test_case: serde_json::Map<String, serde_json::Value>,
    /// The case's score in the baseline.
    pub before: f64,
    /// The case's score in the candidate.
    pub after: f64,
    /// Evaluators that passed in the baseline and fail in the candidate.
    pub now_failing: Vec<String>,
}

/// The comparison of a baseline run with a candidate run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Test cases in both runs.
    pub shared_cases: usize,
    /// Cases only in the baseline.
    pub only_before: usize,
    /// Cases only in the candidate.
    pub only_after: usize,
    /// Pass rate of the baseline over the shared cases, in [0, 1].
    pub pass_rate_before: f64,
    /// Pass rate of the candidate over the shared cases.
    pub pass_rate_after: f64,
    /// Mean case score of the baseline.
    pub mean_before: f64,
    /// Mean case score of the candidate.
    pub mean_after: f64,
    /// `mean_after - mean_before`.
    pub difference: f64,
    /// The 95% bootstrap interval of the difference.
    pub interval: (f64, f64),
    /// Two-sided bootstrap p-value of the difference.
    pub p_value: f64,
    /// The conclusion.
    pub verdict: Verdict,
    /// Cases that passed before and fail now.
    pub newly_failing: Vec<CaseChange>,
    /// Cases that failed before and pass now.
    pub newly_passing: Vec<CaseChange>,
}

fn case_score(t: &TestResult) -> f64 {
    if t.evaluation_results.is_empty() {
        return if t.passed() { 1.0 } else { 0.0 };
    }
    let sum: f64 = t.evaluation_results.iter().map(|r| r.score.clamp(0.0, 1.0)).sum();
    sum / t.evaluation_results.len() as f64
}

fn by_row(run: &Finished) -> BTreeMap<String, &TestResult> {
    run.values().map(|(t, _)| (serde_json::Value::Object(t.test_case.clone()).to_string(), t)).collect()
}

/// Compares a baseline run with a candidate run of the same suite.
pub fn compare(before: &Finished, after: &Finished) -> Result<Comparison, crate::Error> {
    let a = by_row(before);
    let b = by_row(after);
    let shared: Vec<(&TestResult, &TestResult)> = a.iter().filter_map(|(k, t)| b.get(k).map(|u| (*t, *u))).collect();
    let n = shared.len();
    let only_before = a.len() - n;
    let only_after = b.len() - n;
    let mut newly_failing = Vec::new();
    let mut newly_passing = Vec::new();
    for (t, u) in &shared {
        if t.passed() != u.passed() {
            let now_failing: Vec<String> = t
                .evaluation_results
                .iter()
                .filter(|r| r.passed)
                .filter(|r| u.evaluation_results.iter().any(|s| s.evaluator_name == r.evaluator_name && !s.passed))
                .map(|r| r.evaluator_name.clone())
                .collect();
            let change =
                CaseChange { test_case: t.test_case.clone(), before: case_score(t), after: case_score(u), now_failing };
            if t.passed() {
                newly_failing.push(change);
            } else {
                newly_passing.push(change);
            }
        }
    }
    if n == 0 {
        return Ok(Comparison {
            shared_cases: 0,
            only_before,
            only_after,
            pass_rate_before: 0.0,
            pass_rate_after: 0.0,
            mean_before: 0.0,
            mean_after: 0.0,
            difference: 0.0,
            interval: (0.0, 0.0),
            p_value: 1.0,
            verdict: Verdict::NothingShared,
            newly_failing,
            newly_passing,
        });
    }
    let after_scores: Vec<f64> = shared.iter().map(|(_, u)| case_score(u)).collect();
    let before_scores: Vec<f64> = shared.iter().map(|(t, _)| case_score(t)).collect();
    let p = paired_bootstrap(&after_scores, &before_scores, BootstrapOptions { resamples: 2000, seed: 7 })?;
    let verdict = if p.low > 0.0 {
        Verdict::Improvement
    } else if p.high < 0.0 {
        Verdict::Regression
    } else {
        Verdict::NoSignificantChange
    };
    let rate = |pass: &dyn Fn(&(&TestResult, &TestResult)) -> bool| {
        shared.iter().filter(|x| pass(x)).count() as f64 / n as f64
    };
    Ok(Comparison {
        shared_cases: n,
        only_before,
        only_after,
        pass_rate_before: rate(&|(t, _)| t.passed()),
        pass_rate_after: rate(&|(_, u)| u.passed()),
        mean_before: p.mean_b,
        mean_after: p.mean_a,
        difference: p.difference,
        interval: (p.low, p.high),
        p_value: p.p_value,
        verdict,
        newly_failing,
        newly_passing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluators::EvalResult;
    use crate::run::CaseFigures;

    fn run(scores: &[f64]) -> Finished {
        scores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut row = serde_json::Map::new();
                row.insert("i".into(), i.into());
                let r = EvalResult { evaluator_name: "check".into(), score: *s, passed: *s >= 0.5, details: None };
                let t = TestResult { test_case: row, model_response: String::new(), evaluation_results: vec![r] };
                let f = CaseFigures {
                    latency_ms: 1.0,
                    tokens_in: 1,
                    tokens_out: 1,
                    cached: false,
                    judge_calls: 0,
                    samples: None,
                    ..Default::default()
                };
                (i + 1, (t, f))
            })
            .collect()
    }

    #[test]
    fn a_planted_regression_is_flagged() {
        let before: Vec<f64> = (0..40).map(|i| if i % 10 == 0 { 0.0 } else { 1.0 }).collect();
        let mut after = before.clone();
        for s in after.iter_mut().take(20) {
            *s = 0.0;
        }
        let c = compare(&run(&before), &run(&after)).unwrap();
        assert_eq!(c.verdict, Verdict::Regression, "{c:?}");
        assert_eq!(c.newly_failing.len(), 18);
        assert_eq!(c.newly_failing[0].now_failing, vec!["check".to_string()]);
    }

    #[test]
    fn noise_is_not_a_regression() {
        // Two cases swap outcomes: the same pass rate, no significant change.
        let before: Vec<f64> = (0..40).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
        let mut after = before.clone();
        after.swap(0, 1);
        after.swap(3, 4);
        let c = compare(&run(&before), &run(&after)).unwrap();
        assert_eq!(c.verdict, Verdict::NoSignificantChange, "{c:?}");
        assert_eq!((c.newly_failing.len(), c.newly_passing.len()), (2, 2));
        // One case worse out of 40 is noise too.
        let mut slightly = before.clone();
        slightly[1] = 0.0;
        assert_eq!(compare(&run(&before), &run(&slightly)).unwrap().verdict, Verdict::NoSignificantChange);
    }

    #[test]
    fn cases_match_by_row_not_position() {
        let before = run(&[1.0, 0.0, 1.0]);
        let mut after: Finished = before.clone().into_iter().rev().enumerate().map(|(i, (_, v))| (i + 1, v)).collect();
        after.insert(99, run(&[1.0, 1.0, 1.0, 1.0]).remove(&4).unwrap());
        let c = compare(&before, &after).unwrap();
        assert_eq!((c.shared_cases, c.only_before, c.only_after), (3, 0, 1));
        assert!(c.newly_failing.is_empty() && c.newly_passing.is_empty());
        assert_eq!(compare(&Finished::new(), &after).unwrap().verdict, Verdict::NothingShared);
    }
}
