//! The engine of `gm score`: JSON Lines of cases in, JSON Lines of scores out.
//!
//! Each input line is an object with `id`, `prediction` and either `references` (an array of
//! strings) or `reference` (one string); other keys are ignored, and blank lines are skipped.
//! Each output line is `{"id": ..., "scores": {...}}` with exactly the requested metric names
//! as keys, in the order requested, and lines come out in input order.
//!
//! The engine streams: it holds one batch of lines at a time and corpus statistics as running
//! sums, so memory stays flat however long the input. It writes to its output as it goes and
//! stops at the first malformed line with an error that names the line; a caller that must not
//! leave partial output behind writes to a temporary file and renames it on success, as
//! `gm score` does.

use std::borrow::Cow;
use std::io::{BufRead, Write};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::metrics::{self, BleuStats, ChrfStats, CorpusBleu, CorpusChrf, JsonSchema, RougeScores, RougeSelection};
use crate::{Error, Metric, MetricConfig};

/// What to score and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreFileOptions {
    /// The metrics to compute, in output order.
    pub metrics: Vec<Metric>,
    /// Options of the metrics (ROUGE stemming, numeric tolerance).
    pub config: MetricConfig,
    /// Also compute corpus BLEU and chrF over all lines.
    pub corpus: bool,
    /// Worker threads; 0 and 1 both score on the calling thread.
    pub threads: usize,
}

impl ScoreFileOptions {
    /// Options for these metrics with defaults otherwise (no stemming, no corpus scores, one
    /// thread).
    pub fn new(metrics: Vec<Metric>) -> Self {
        ScoreFileOptions { metrics, config: MetricConfig::default(), corpus: false, threads: 1 }
    }
}

/// Corpus-level scores, as written by `gm score --corpus FILE`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorpusScores {
    /// Corpus BLEU in [0, 1] (`sacrebleu.corpus_bleu`).
    pub bleu: f64,
    /// Corpus chrF in [0, 1] (`sacrebleu.corpus_chrf`).
    pub chrf: f64,
    /// The sacreBLEU signature of the corpus BLEU.
    pub bleu_signature: String,
}

/// What a successful run produced besides its output lines.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreSummary {
    /// Number of cases scored (non-blank lines).
    pub cases: u64,
    /// Corpus scores, when asked for.
    pub corpus: Option<CorpusScores>,
}

/// One input line. Strings borrow from the line when they contain no escapes.
#[derive(Deserialize)]
struct Case<'a> {
    id: serde_json::Value,
    #[serde(borrow)]
    prediction: Cow<'a, str>,
    #[serde(borrow, default)]
    references: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    reference: Option<Cow<'a, str>>,
}

const EXPECTED: &str = "expected a JSON object with `id`, `prediction` (a string) and \
                        `references` (an array of strings) or `reference` (a string)";

/// Which shared computations a set of metrics needs.
#[derive(Debug, Clone)]
struct Plan {
    metrics: Vec<Metric>,
    config: MetricConfig,
    rouge: RougeSelection,
    bleu: bool,
    chrf: bool,
    squad: bool,
    corpus: bool,
}

impl Plan {
    fn new(options: &ScoreFileOptions) -> Plan {
        let has = |m: Metric| options.metrics.contains(&m);
        Plan {
            metrics: options.metrics.clone(),
            config: options.config,
            rouge: RougeSelection {
                rouge1: has(Metric::Rouge1),
                rouge2: has(Metric::Rouge2),
                rouge_l: has(Metric::RougeL),
                rouge_lsum: has(Metric::RougeLsum),
            },
            bleu: has(Metric::Bleu) || options.corpus,
            chrf: has(Metric::Chrf) || options.corpus,
            squad: has(Metric::SquadEm) || has(Metric::SquadF1),
            corpus: options.corpus,
        }
    }
}

/// Caches are bounded so that memory stays flat even when every line brings a new pattern.
const CACHE_LIMIT: usize = 256;

/// The state of one worker: partial corpus sums, compiled patterns and schemas, and its
/// output buffer.
#[derive(Default)]
struct Worker {
    bleu: CorpusBleu,
    chrf: CorpusChrf,
    patterns: FxHashMap<String, regex::Regex>,
    schemas: FxHashMap<String, JsonSchema>,
    values: Vec<f64>,
    out: Vec<u8>,
    cases: u64,
}

impl Worker {
    fn regex_score(&mut self, prediction: &str, references: &[&str]) -> Result<f64, Error> {
        let mut pass = false;
        for &pattern in references {
            if !self.patterns.contains_key(pattern) {
                if self.patterns.len() >= CACHE_LIMIT {
                    self.patterns.clear();
                }
                let compiled = metrics::compile_pattern(pattern)?;
                self.patterns.insert(pattern.to_owned(), compiled);
            }
            pass |= self.patterns[pattern].is_match(prediction);
        }
        Ok(if pass { 1.0 } else { 0.0 })
    }

    fn schema_score(&mut self, prediction: &str, references: &[&str]) -> Result<f64, Error> {
        let mut pass = false;
        for &schema in references {
            if !self.schemas.contains_key(schema) {
                if self.schemas.len() >= CACHE_LIMIT {
                    self.schemas.clear();
                }
                let compiled = JsonSchema::compile(schema)?;
                self.schemas.insert(schema.to_owned(), compiled);
            }
            pass |= self.schemas[schema].score(prediction) == 1.0;
        }
        Ok(if pass { 1.0 } else { 0.0 })
    }

    /// Scores one line and appends its output line to `self.out`.
    fn score_line(&mut self, plan: &Plan, line_no: u64, raw: &[u8]) -> Result<(), Error> {
        let malformed = |reason: String| Error::MalformedLine { line: line_no, reason };
        let line = std::str::from_utf8(raw).map_err(|e| malformed(format!("not valid UTF-8 ({e})")))?;
        if line.trim().is_empty() {
            return Ok(());
        }
        // serde would also read a struct from a JSON array of its fields in order; the contract is an object.
        if !line.trim_start().starts_with('{') {
            return Err(malformed(format!("not a JSON object; {EXPECTED}")));
        }
        let case: Case<'_> = serde_json::from_str(line).map_err(|e| malformed(describe_json_error(&e)))?;
        let references: Vec<&str> = match (&case.references, &case.reference) {
            (Some(list), None) => list.iter().map(|r| r.as_ref()).collect(),
            (None, Some(one)) => vec![one.as_ref()],
            (Some(_), Some(_)) => {
                return Err(malformed("has both `references` and `reference`; give one of them".to_owned()))
            }
            (None, None) => return Err(malformed(format!("missing `references` or `reference`; {EXPECTED}"))),
        };
        let prediction = case.prediction.as_ref();

        let bleu: Option<BleuStats> = plan.bleu.then(|| metrics::bleu_stats(prediction, &references));
        let chrf: Option<ChrfStats> = plan.chrf.then(|| metrics::chrf_stats(prediction, &references));
        let rouge: RougeScores = if plan.rouge.is_empty() {
            RougeScores::default()
        } else {
            metrics::rouge(prediction, &references, plan.config.rouge_stemmer, plan.rouge)
        };
        let squad = if plan.squad { metrics::squad_em_f1(prediction, &references) } else { (0.0, 0.0) };
        if plan.corpus {
            if let (Some(b), Some(c)) = (&bleu, &chrf) {
                self.bleu.add_stats(b, references.len());
                self.chrf.add_stats(c);
            }
        }

        self.values.clear();
        for &metric in &plan.metrics {
            let value = match metric {
                Metric::Bleu => bleu.map_or(0.0, |s| s.score(true)),
                Metric::Chrf => chrf.map_or(0.0, |s| s.score()),
                Metric::Rouge1 => rouge.rouge1,
                Metric::Rouge2 => rouge.rouge2,
                Metric::RougeL => rouge.rouge_l,
                Metric::RougeLsum => rouge.rouge_lsum,
                Metric::SquadEm => squad.0,
                Metric::SquadF1 => squad.1,
                Metric::RegexMatch => {
                    self.regex_score(prediction, &references).map_err(|e| malformed(e.to_string()))?
                }
                Metric::JsonSchema => {
                    self.schema_score(prediction, &references).map_err(|e| malformed(e.to_string()))?
                }
                other => other.score(prediction, &references, &plan.config),
            };
            self.values.push(value);
        }

        let out = &mut self.out;
        out.extend_from_slice(b"{\"id\":");
        serde_json::to_writer(&mut *out, &case.id).map_err(std::io::Error::from)?;
        out.extend_from_slice(b",\"scores\":{");
        for (i, (&metric, &value)) in plan.metrics.iter().zip(&self.values).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(metric.name().as_bytes());
            out.extend_from_slice(b"\":");
            serde_json::to_writer(&mut *out, &value).map_err(std::io::Error::from)?;
        }
        out.extend_from_slice(b"}}\n");
        self.cases += 1;
        Ok(())
    }
}

/// A JSON error without serde_json's "at line 1 column N" (the line is named by the caller),
/// followed by what a line must hold.
fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&position) {
        Some(message) => format!("column {}: {message}; {EXPECTED}", e.column()),
        None => format!("{text}; {EXPECTED}"),
    }
}

/// Lines per batch; with a few threads each gets a share of a batch.
const BATCH_LINES: usize = 2048;
/// Bytes per batch, so that very long lines do not make a batch large.
const BATCH_BYTES: usize = 8 << 20;

/// Scores every line of `input` and writes one output line per case to `output`.
///
/// ```
/// use gm_metrics::score_file::{score_jsonl, ScoreFileOptions};
/// use gm_metrics::Metric;
///
/// let input = br#"{"id": 1, "prediction": "the cat sat", "references": ["the cat sat"]}
/// {"id": "b", "prediction": "a dog", "reference": "the cat"}
/// "#;
/// let mut out = Vec::new();
/// let options = ScoreFileOptions::new(vec![Metric::SquadEm, Metric::Rouge1]);
/// let summary = score_jsonl(&input[..], &mut out, &options).unwrap();
/// assert_eq!(summary.cases, 2);
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "{\"id\":1,\"scores\":{\"squad_em\":1.0,\"rouge1\":1.0}}\n\
///      {\"id\":\"b\",\"scores\":{\"squad_em\":0.0,\"rouge1\":0.0}}\n"
/// );
/// ```
///
/// # Errors
/// [`Error::NoMetrics`] when no metric is requested, [`Error::MalformedLine`] for the first
/// line that cannot be scored, and [`Error::Io`] when reading or writing fails. Output lines
/// before the failing one may already have been written.
pub fn score_jsonl<R: BufRead, W: Write>(
    mut input: R,
    mut output: W,
    options: &ScoreFileOptions,
) -> Result<ScoreSummary, Error> {
    if options.metrics.is_empty() {
        return Err(Error::NoMetrics);
    }
    let plan = Plan::new(options);
    let threads = options.threads.max(1);
    let mut workers: Vec<Worker> = (0..threads).map(|_| Worker::default()).collect();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut first_line: u64 = 1;
    loop {
        let filled = read_batch(&mut input, &mut batch, first_line)?;
        if filled == 0 {
            break;
        }
        let lines = &batch[..filled];
        if threads == 1 || filled < 64 {
            let worker = &mut workers[0];
            worker.out.clear();
            for (i, raw) in lines.iter().enumerate() {
                worker.score_line(&plan, first_line + i as u64, raw)?;
            }
            output.write_all(&worker.out)?;
        } else {
            let chunk = filled.div_ceil(threads);
            let results: Vec<Result<(), Error>> = std::thread::scope(|scope| {
                let handles: Vec<_> = workers
                    .iter_mut()
                    .zip(lines.chunks(chunk))
                    .enumerate()
                    .map(|(t, (worker, part))| {
                        let plan = &plan;
                        let start = first_line + (t * chunk) as u64;
                        scope.spawn(move || {
                            worker.out.clear();
                            for (i, raw) in part.iter().enumerate() {
                                worker.score_line(plan, start + i as u64, raw)?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| Err(Error::Io(std::io::Error::other("a scoring thread panicked"))))
                    })
                    .collect()
            });
            for (worker, result) in workers.iter_mut().zip(results) {
                result?;
                output.write_all(&worker.out)?;
                worker.out.clear();
            }
        }
        first_line += filled as u64;
    }
    output.flush()?;

    let mut bleu = CorpusBleu::new();
    let mut chrf = CorpusChrf::new();
    let mut cases = 0;
    for w in &workers {
        bleu.merge(&w.bleu);
        chrf.merge(&w.chrf);
        cases += w.cases;
    }
    let corpus = options.corpus.then(|| CorpusScores {
        bleu: bleu.score(),
        chrf: chrf.score(),
        bleu_signature: bleu.signature(),
    });
    Ok(ScoreSummary { cases, corpus })
}

/// The longest input line scored, in bytes: scoring a line takes memory in proportion to its
/// length (several times it for the tokenizers), so a longer one is refused rather than read.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Reads up to one batch of lines (without their line endings) into `batch`, reusing its
/// buffers, and returns how many were read. `first_line` numbers the first for errors.
fn read_batch<R: BufRead>(input: &mut R, batch: &mut Vec<Vec<u8>>, first_line: u64) -> Result<usize, Error> {
    let mut filled = 0;
    let mut bytes = 0;
    while filled < BATCH_LINES && bytes < BATCH_BYTES {
        if batch.len() == filled {
            batch.push(Vec::new());
        }
        let buf = &mut batch[filled];
        buf.clear();
        // Never more than the cap (and its line ending) of one line in memory.
        let n = std::io::Read::take(&mut *input, MAX_LINE_BYTES as u64 + 2).read_until(b'\n', buf)?;
        if n == 0 {
            break;
        }
        let content = buf.len() - usize::from(buf.ends_with(b"\n")) - usize::from(buf.ends_with(b"\r\n"));
        if content > MAX_LINE_BYTES {
            return Err(Error::MalformedLine {
                line: first_line + filled as u64,
                reason: format!(
                    "the line is longer than {} MiB, the most one case may take; shorten its prediction or references",
                    MAX_LINE_BYTES >> 20
                ),
            });
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        bytes += n;
        filled += 1;
    }
    Ok(filled)
}
