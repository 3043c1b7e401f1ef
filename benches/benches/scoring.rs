//! Scoring throughput: each metric over the same deterministic set of prediction/reference
//! pairs, and the `gm score` engine over the same pairs as JSON Lines.
//!
//! Run with `cargo bench -p gm-benches --bench scoring`. The comparison with the Python
//! reference packages is described in `benches/reference/score_reference.py`.

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use gm_eval::metrics::{self, RougeSelection};
use gm_eval::score_file::{score_jsonl, ScoreFileOptions};
use gm_eval::{Metric, MetricConfig};

const WORDS: &[&str] = &[
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "was",
    "model",
    "answer",
    "question",
    "cat",
    "sat",
    "mat",
    "running",
    "generously",
    "photosynthesis",
    "converts",
    "sunlight",
    "water",
    "glucose",
    "algorithm",
    "memory",
    "safety",
    "collector",
    "relational",
    "conditional",
    "hopeful",
    "Paris",
    "London",
    "2024",
    "3.14",
    "1,000",
    ",",
    ".",
    "!",
    "?",
    "(",
    ")",
    "'s",
];

/// A small linear congruential generator, so the pairs are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

/// Pairs of a prediction and one or two references, about 20 words each; the predictions are
/// edited copies of the first reference, as model answers tend to be.
fn pairs(count: usize) -> Vec<(String, Vec<String>)> {
    let mut rng = Lcg(42);
    (0..count)
        .map(|_| {
            let len = 8 + rng.next(24);
            let reference: Vec<&str> = (0..len).map(|_| WORDS[rng.next(WORDS.len())]).collect();
            let prediction: Vec<&str> = reference
                .iter()
                .filter_map(|&w| match rng.next(10) {
                    0 => None,
                    1 => Some(WORDS[rng.next(WORDS.len())]),
                    _ => Some(w),
                })
                .collect();
            let mut references = vec![reference.join(" ")];
            if rng.next(3) == 0 {
                let other: Vec<&str> = (0..len).map(|_| WORDS[rng.next(WORDS.len())]).collect();
                references.push(other.join(" "));
            }
            (prediction.join(" "), references)
        })
        .collect()
}

fn per_metric(c: &mut Criterion) {
    let pairs = pairs(1000);
    let mut group = c.benchmark_group("metric");
    group.throughput(Throughput::Elements(pairs.len() as u64));
    let plain = MetricConfig::default();
    let stemmed = MetricConfig { rouge_stemmer: true, ..Default::default() };
    for metric in Metric::ALL {
        if matches!(metric, Metric::RegexMatch | Metric::JsonSchema) {
            continue;
        }
        group.bench_with_input(BenchmarkId::from_parameter(metric.name()), &pairs, |b, pairs| {
            b.iter(|| {
                let mut sum = 0.0;
                for (p, r) in pairs {
                    sum += metric.score(p, r, &plain);
                }
                black_box(sum)
            })
        });
    }
    group.bench_with_input(BenchmarkId::from_parameter("rouge_all_stemmed"), &pairs, |b, pairs| {
        b.iter(|| {
            let mut sum = 0.0;
            for (p, r) in pairs {
                sum += metrics::rouge(p, r, stemmed.rouge_stemmer, RougeSelection::ALL).rouge_l;
            }
            black_box(sum)
        })
    });
    group.finish();
}

fn engine(c: &mut Criterion) {
    let pairs = pairs(1000);
    let mut input = Vec::new();
    for (i, (p, r)) in pairs.iter().enumerate() {
        let line = serde_json::json!({"id": i, "prediction": p, "references": r});
        serde_json::to_writer(&mut input, &line).unwrap();
        input.push(b'\n');
    }
    let names = "bleu,chrf,rouge1,rouge2,rougeL,squad_f1";
    let mut group = c.benchmark_group("score_jsonl");
    group.throughput(Throughput::Elements(pairs.len() as u64));
    for threads in [1, 2] {
        let mut options = ScoreFileOptions::new(Metric::parse_list(names).unwrap());
        options.corpus = true;
        options.threads = threads;
        group.bench_with_input(BenchmarkId::new("six_metrics", threads), &input, |b, input| {
            let mut out = Vec::with_capacity(input.len());
            b.iter(|| {
                out.clear();
                black_box(score_jsonl(&input[..], &mut out, &options).unwrap())
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    per_metric(&mut c);
    engine(&mut c);
    c.final_summary();
}
