//! Golden tests: every value in `shared/reference/scoring/`, produced by the reference
//! implementations, is reproduced within 1e-6.

use std::path::PathBuf;

use gm_metrics::metrics::{self, CorpusBleu, CorpusChrf, RougeSelection};
use gm_metrics::score_file::{score_jsonl, ScoreFileOptions};
use gm_metrics::{Metric, MetricConfig};
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/scoring")
}

fn read_jsonl(name: &str) -> Vec<Value> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

struct Case {
    id: String,
    prediction: String,
    references: Vec<String>,
    expected: serde_json::Map<String, Value>,
}

fn cases(input: &str, expected: &str) -> Vec<Case> {
    let inputs = read_jsonl(input);
    let expected = read_jsonl(expected);
    assert_eq!(inputs.len(), expected.len());
    inputs
        .into_iter()
        .zip(expected)
        .map(|(i, e)| {
            assert_eq!(i["id"], e["id"]);
            Case {
                id: i["id"].as_str().unwrap().to_owned(),
                prediction: i["prediction"].as_str().unwrap().to_owned(),
                references: i["references"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect(),
                expected: e["scores"].as_object().unwrap().clone(),
            }
        })
        .collect()
}

fn ours(case: &Case, key: &str) -> f64 {
    let p = case.prediction.as_str();
    let r = &case.references;
    let (name, stem) = match key.strip_suffix("_stemmed") {
        Some(name) => (name, true),
        None => (key, false),
    };
    let all = metrics::rouge(p, r, stem, RougeSelection::ALL);
    match name {
        "bleu" => metrics::sentence_bleu(p, r),
        "chrf" => metrics::sentence_chrf(p, r),
        "squad_em" => metrics::squad_em(p, r),
        "squad_f1" => metrics::squad_f1(p, r),
        "rouge1" => all.rouge1,
        "rouge2" => all.rouge2,
        "rougeL" => all.rouge_l,
        "rougeLsum" => all.rouge_lsum,
        other => panic!("unexpected metric {other} in the vectors"),
    }
}

fn check_file(input: &str, expected: &str) {
    let cases = cases(input, expected);
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in &cases {
        for (key, value) in &case.expected {
            let want = value.as_f64().unwrap();
            let got = ours(case, key);
            checked += 1;
            if (got - want).abs() > TOLERANCE {
                failures.push(format!("{} {key}: got {got}, want {want}", case.id));
            }
            // Each metric on its own gives the same value as the combined computation.
            let single = match key.strip_suffix("_stemmed") {
                Some(name) => Metric::from_name(name).unwrap().score(
                    &case.prediction,
                    &case.references,
                    &MetricConfig { rouge_stemmer: true, ..Default::default() },
                ),
                None => {
                    Metric::from_name(key).unwrap().score(&case.prediction, &case.references, &MetricConfig::default())
                }
            };
            assert_eq!(single, got, "{} {key}", case.id);
        }
    }
    assert!(failures.is_empty(), "{} of {checked} values disagree:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn single_reference_vectors_agree() {
    check_file("single.jsonl", "expected.single.jsonl");
}

#[test]
fn multi_reference_vectors_agree() {
    check_file("multi.jsonl", "expected.multi.jsonl");
}

fn corpus_expected(which: &str) -> (f64, f64, String) {
    let path = vectors_dir().join("expected.corpus.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let c = &v[which];
    (c["bleu"].as_f64().unwrap(), c["chrf"].as_f64().unwrap(), c["bleu_signature"].as_str().unwrap().to_owned())
}

#[test]
fn corpus_vectors_agree() {
    for (which, file) in [("single", "single.jsonl"), ("multi", "multi.jsonl")] {
        let (bleu, chrf, signature) = corpus_expected(which);
        let mut corpus_bleu = CorpusBleu::new();
        let mut corpus_chrf = CorpusChrf::new();
        for line in read_jsonl(file) {
            let p = line["prediction"].as_str().unwrap();
            let r: Vec<&str> = line["references"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
            corpus_bleu.add(p, &r);
            corpus_chrf.add(p, &r);
        }
        assert!((corpus_bleu.score() - bleu).abs() <= TOLERANCE, "{which} bleu");
        assert!((corpus_chrf.score() - chrf).abs() <= TOLERANCE, "{which} chrf");
        assert_eq!(corpus_bleu.signature(), signature);
    }
}

#[test]
fn pass_at_k_vectors_agree() {
    let lines = read_jsonl("passk.jsonl");
    assert!(!lines.is_empty());
    for line in lines {
        let n = line["n"].as_u64().unwrap();
        let c = line["c"].as_u64().unwrap();
        let k = line["k"].as_u64().unwrap();
        let want = line["pass_at_k"].as_f64().unwrap();
        let got = metrics::pass_at_k(n, c, k).unwrap();
        assert!((got - want).abs() <= TOLERANCE, "n={n} c={c} k={k}: {got} vs {want}");
    }
}

/// The vectors through the engine, as `gm score` reads them, with and without the stemmer
/// and with the corpus scores.
#[test]
fn engine_reproduces_the_vectors() {
    let names = ["bleu", "chrf", "squad_em", "squad_f1", "rouge1", "rouge2", "rougeL", "rougeLsum"];
    let metrics: Vec<Metric> = names.iter().map(|n| Metric::from_name(n).unwrap()).collect();
    for (which, input, expected) in
        [("single", "single.jsonl", "expected.single.jsonl"), ("multi", "multi.jsonl", "expected.multi.jsonl")]
    {
        for stem in [false, true] {
            for threads in [1, 2] {
                let mut options = ScoreFileOptions::new(metrics.clone());
                options.config.rouge_stemmer = stem;
                options.corpus = true;
                options.threads = threads;
                let text = std::fs::read(vectors_dir().join(input)).unwrap();
                let mut out = Vec::new();
                let summary = score_jsonl(&text[..], &mut out, &options).unwrap();
                let expected = read_jsonl(expected);
                let produced: Vec<Value> =
                    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
                assert_eq!(produced.len(), expected.len());
                assert_eq!(summary.cases, expected.len() as u64);
                for (got, want) in produced.iter().zip(&expected) {
                    assert_eq!(got["id"], want["id"]);
                    let scores = got["scores"].as_object().unwrap();
                    let keys: Vec<&str> = scores.keys().map(String::as_str).collect();
                    assert_eq!(keys, names);
                    for name in names {
                        let key =
                            if stem && name.starts_with("rouge") { format!("{name}_stemmed") } else { name.to_owned() };
                        let w = want["scores"][&key].as_f64().unwrap();
                        let g = scores[name].as_f64().unwrap();
                        assert!((g - w).abs() <= TOLERANCE, "{} {key}: {g} vs {w}", want["id"]);
                    }
                }
                let corpus = summary.corpus.unwrap();
                let (bleu, chrf, signature) = corpus_expected(which);
                assert!((corpus.bleu - bleu).abs() <= TOLERANCE);
                assert!((corpus.chrf - chrf).abs() <= TOLERANCE);
                assert_eq!(corpus.bleu_signature, signature);
            }
        }
    }
}
