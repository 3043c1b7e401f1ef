//! Invariants of the scorers and the statistics, checked with proptest.

use gm_metrics::metrics::{self, RougeSelection};
use gm_metrics::stats::{self, BootstrapOptions};
use gm_metrics::{Metric, MetricConfig};
use proptest::prelude::*;

/// Text that exercises the tokenizers: words, digits, punctuation, entities, newlines, odd
/// whitespace and non-ASCII letters, as well as arbitrary characters.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::sample::select(vec![
            "the", "a", "an", "cat", "cats", "sat", "running", "generously", "mat", "The", "Cat",
            "42", "3.14", "1,000", "-7", "5-6", "&amp;", "<skipped>", "e-mail", "U.S.", "café",
            "İstanbul", "Straße", "東京", "ΣΊΣΥΦΟΣ",
        ])
        .prop_map(str::to_owned),
        2 => prop::sample::select(vec![
            " ", " ", " ", ".", ",", "!", "?", "'", "\"", "(", ")", "-", "\n", "\t", "\u{a0}", "\u{1c}",
            "-\n", "$", "%",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{1,4}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

fn references() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 1..4)
}

fn config(stem: bool) -> MetricConfig {
    MetricConfig { rouge_stemmer: stem, ..Default::default() }
}

proptest! {
    #[test]
    fn every_score_lies_in_the_unit_interval(
        prediction in text(),
        refs in references(),
        stem in any::<bool>(),
    ) {
        for metric in Metric::ALL {
            let s = metric.score(&prediction, &refs, &config(stem));
            prop_assert!((0.0..=1.0).contains(&s), "{metric}: {s}");
        }
        let corpus = metrics::corpus_bleu(&[prediction.as_str()], std::slice::from_ref(&refs));
        prop_assert!((0.0..=1.0).contains(&corpus));
        let corpus = metrics::corpus_chrf(&[prediction.as_str()], std::slice::from_ref(&refs));
        prop_assert!((0.0..=1.0).contains(&corpus));
    }

    #[test]
    fn a_prediction_equal_to_its_reference_scores_one(reference in text(), stem in any::<bool>()) {
        let refs = [reference.as_str()];
        let cfg = config(stem);
        let one = |m: Metric| m.score(&reference, &refs, &cfg);
        for m in [Metric::SquadEm, Metric::SquadF1, Metric::Equals, Metric::Contains,
                  Metric::StartsWith, Metric::EndsWith] {
            prop_assert_eq!(one(m), 1.0, "{}", m);
        }
        if !metrics::tokenize_13a(&reference).is_empty() {
            prop_assert_eq!(one(Metric::Bleu), 1.0);
        }
        if reference.chars().any(|c| !c.is_whitespace() && !('\u{1c}'..='\u{1f}').contains(&c)) {
            prop_assert_eq!(one(Metric::Chrf), 1.0);
        }
        let tokens = metrics::rouge_tokens(&reference, stem).len();
        if tokens >= 1 {
            prop_assert_eq!(one(Metric::Rouge1), 1.0);
            prop_assert_eq!(one(Metric::RougeL), 1.0);
            prop_assert_eq!(one(Metric::RougeLsum), 1.0);
        }
        if tokens >= 2 {
            prop_assert_eq!(one(Metric::Rouge2), 1.0);
        }
        if metrics::final_number(&reference).is_some() {
            prop_assert_eq!(one(Metric::NumericMatch), 1.0);
        }
    }

    #[test]
    fn scores_do_not_depend_on_reference_order(
        prediction in text(),
        refs in references(),
        rotate in 0usize..4,
        stem in any::<bool>(),
    ) {
        let mut reordered = refs.clone();
        reordered.reverse();
        let k = rotate % reordered.len();
        reordered.rotate_left(k);
        for metric in Metric::ALL {
            let a = metric.score(&prediction, &refs, &config(stem));
            let b = metric.score(&prediction, &reordered, &config(stem));
            prop_assert_eq!(a, b, "{}", metric);
        }
        let a = metrics::rouge(&prediction, &refs, stem, RougeSelection::ALL);
        let b = metrics::rouge(&prediction, &reordered, stem, RougeSelection::ALL);
        prop_assert_eq!(a, b);
        prop_assert_eq!(metrics::bleu_stats(&prediction, &refs), metrics::bleu_stats(&prediction, &reordered));
    }

    #[test]
    fn adding_a_reference_never_lowers_a_best_reference_score(
        prediction in text(),
        refs in references(),
        extra in text(),
    ) {
        let mut more = refs.clone();
        more.push(extra);
        for metric in [Metric::Chrf, Metric::Rouge1, Metric::Rouge2, Metric::RougeL, Metric::RougeLsum,
                       Metric::SquadEm, Metric::SquadF1] {
            let before = metric.score(&prediction, &refs, &MetricConfig::default());
            let after = metric.score(&prediction, &more, &MetricConfig::default());
            prop_assert!(after >= before, "{metric}: {before} -> {after}");
        }
    }

    #[test]
    fn pass_at_k_is_a_probability_and_grows_with_k(n in 1u64..200, c_frac in 0.0f64..=1.0, k_frac in 0.0f64..=1.0) {
        let c = ((n as f64) * c_frac).floor() as u64;
        let k = 1 + ((n - 1) as f64 * k_frac).floor() as u64;
        let at = metrics::pass_at_k(n, c, k).unwrap();
        let hat = metrics::pass_hat_k(n, c, k).unwrap();
        prop_assert!((0.0..=1.0).contains(&at));
        prop_assert!((0.0..=1.0).contains(&hat));
        prop_assert!(hat <= at + 1e-12);
        if k < n {
            prop_assert!(metrics::pass_at_k(n, c, k + 1).unwrap() >= at - 1e-12);
            prop_assert!(metrics::pass_hat_k(n, c, k + 1).unwrap() <= hat + 1e-12);
        }
    }

    #[test]
    fn intervals_contain_their_mean(values in prop::collection::vec(0.0f64..=1.0, 1..60), seed in any::<u64>()) {
        let options = BootstrapOptions { resamples: 200, seed };
        let e = stats::bootstrap_mean(&values, options).unwrap();
        prop_assert!(e.low <= e.mean + 1e-12 && e.mean <= e.high + 1e-12, "{e:?}");
        prop_assert!(e.low >= -1e-12 && e.high <= 1.0 + 1e-12);
        let w = stats::wilson_of_scores(&values).unwrap();
        prop_assert!(0.0 <= w.low && w.low <= w.mean && w.mean <= w.high && w.high <= 1.0, "{w:?}");
        let shifted: Vec<f64> = values.iter().map(|v| v * 0.5).collect();
        let c = stats::paired_bootstrap(&values, &shifted, options).unwrap();
        prop_assert!(c.difference >= 0.0);
        prop_assert!((0.0..=1.0).contains(&c.p_value));
        prop_assert!(c.low <= c.difference + 1e-12 && c.difference <= c.high + 1e-12);
    }
}
