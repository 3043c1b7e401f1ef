//! BLEU exactly as sacreBLEU 2.6.0 computes it with its defaults.
//!
//! Tokenizer `13a`, case-sensitive, `exp` smoothing, n-grams up to order 4 with uniform weights,
//! counts clipped by the largest count in any one reference, and a brevity penalty against the
//! reference length closest to the hypothesis length (ties go to the shorter reference).
//! Sentence BLEU uses sacreBLEU's `use_effective_order=True`; corpus BLEU sums the statistics of
//! all segments and uses `False`, as `sacrebleu.corpus_bleu` does.

use std::cell::RefCell;

use rustc_hash::FxHashMap;

use super::ngram::{Vocab, UNKNOWN};
use crate::text::py_rstrip;

/// The sacreBLEU release whose BLEU and chrF these functions reproduce.
pub const SACREBLEU_VERSION: &str = "2.6.0";

/// The largest n-gram order BLEU counts.
pub const MAX_ORDER: usize = 4;

/// Sufficient statistics of BLEU for one segment, or summed over many.
///
/// Summing the statistics of segments and scoring the sum is how corpus BLEU is defined, so a
/// corpus score needs only this fixed-size value however many segments it covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BleuStats {
    /// Number of hypothesis tokens.
    pub hyp_len: u64,
    /// Length of the reference closest in length to the hypothesis.
    pub ref_len: u64,
    /// Clipped n-gram matches for orders 1 to 4.
    pub correct: [u64; MAX_ORDER],
    /// Hypothesis n-grams for orders 1 to 4.
    pub total: [u64; MAX_ORDER],
}

impl BleuStats {
    /// Adds the statistics of another segment.
    pub fn add(&mut self, other: &BleuStats) {
        self.hyp_len += other.hyp_len;
        self.ref_len += other.ref_len;
        for n in 0..MAX_ORDER {
            self.correct[n] += other.correct[n];
            self.total[n] += other.total[n];
        }
    }

    /// BLEU in [0, 1] from these statistics.
    ///
    /// `effective_order` leaves out the orders the hypothesis has no n-grams of (sacreBLEU's
    /// `use_effective_order`); it is meant for single sentences.
    pub fn score(&self, effective_order: bool) -> f64 {
        (compute_bleu(self, effective_order) / 100.0).clamp(0.0, 1.0)
    }
}

/// sacreBLEU's `BLEU.compute_bleu` with `exp` smoothing, on its 0–100 scale.
///
/// The operations are done in the same order as in Python so that the results agree to the
/// last few bits, not just to 1e-6.
fn compute_bleu(stats: &BleuStats, effective_order: bool) -> f64 {
    let sys_len = stats.hyp_len;
    let ref_len = stats.ref_len;
    let mut bp = 1.0;
    if sys_len < ref_len {
        bp = if sys_len > 0 { (1.0 - ref_len as f64 / sys_len as f64).exp() } else { 0.0 };
    }
    if stats.correct.iter().all(|&c| c == 0) {
        return 0.0;
    }
    let mut precisions = [0.0f64; MAX_ORDER];
    let mut smooth_mteval = 1.0f64;
    let mut eff_order = MAX_ORDER;
    for (n, precision) in precisions.iter_mut().enumerate() {
        let total = stats.total[n];
        if total == 0 {
            break;
        }
        if effective_order {
            eff_order = n + 1;
        }
        let correct = stats.correct[n];
        if correct == 0 {
            smooth_mteval *= 2.0;
            *precision = 100.0 / (smooth_mteval * total as f64);
        } else {
            *precision = 100.0 * correct as f64 / total as f64;
        }
    }
    let log_sum: f64 = precisions[..eff_order].iter().map(|&p| floored_log(p)).sum();
    bp * (log_sum / eff_order as f64).exp()
}

/// sacreBLEU's `my_log`: the natural logarithm, with log(0) floored to -9999999999.
fn floored_log(p: f64) -> f64 {
    if p == 0.0 {
        -9_999_999_999.0
    } else {
        p.ln()
    }
}

/// The reference count that goes into a BLEU signature (`nrefs:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefCount {
    /// Every segment had this many references.
    Fixed(usize),
    /// Segments had different numbers of references (`nrefs:var`).
    Variable,
}

/// sacreBLEU's signature for BLEU with its defaults, e.g.
/// `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0`.
///
/// `effective_order` is `true` for sentence BLEU (`eff:yes`) and `false` for corpus BLEU.
pub fn bleu_signature(nrefs: RefCount, effective_order: bool) -> String {
    let nrefs = match nrefs {
        RefCount::Fixed(n) => n.to_string(),
        RefCount::Variable => "var".to_owned(),
    };
    let eff = if effective_order { "yes" } else { "no" };
    format!("nrefs:{nrefs}|case:mixed|eff:{eff}|tok:13a|smooth:exp|version:{SACREBLEU_VERSION}")
}

/// Tokenizes one segment as sacreBLEU's `13a` tokenizer does (after its `rstrip`), returning
/// the tokens joined by single spaces.
///
/// ```
/// use gm_metrics::metrics::tokenize_13a;
/// assert_eq!(tokenize_13a("Hello, world! It costs $3.50."), "Hello , world ! It costs $ 3.50 .");
/// ```
pub fn tokenize_13a(line: &str) -> String {
    let mut scratch = Tokenizer13a::default();
    let mut spans = Vec::new();
    scratch.tokenize(line, &mut spans);
    let text = scratch.bytes();
    let mut out = Vec::with_capacity(text.len());
    for (i, &(start, end)) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&text[start as usize..end as usize]);
    }
    // The tokenizer inserts ASCII bytes between whole characters only.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Reusable buffers for the `13a` tokenizer.
#[derive(Default)]
pub(crate) struct Tokenizer13a {
    pre: String,
    a: Vec<u8>,
    b: Vec<u8>,
}

/// Bytes that the first `13a` rule surrounds with spaces:
/// `[\{-\~\[-\` -\&\(-\+\:-\@\/]`.
const fn rule1_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        t[c] = matches!(b, b'{'..=b'~' | b'['..=b'`' | b' '..=b'&' | b'('..=b'+' | b':'..=b'@' | b'/');
        c += 1;
    }
    t
}
static RULE1: [bool; 256] = rule1_table();

#[inline]
fn is_dot_or_comma(b: u8) -> bool {
    b == b'.' || b == b','
}

/// `([^0-9])([\.,])` -> `\1 \2 `, applied left to right without overlaps as `re.sub` does.
///
/// A match can only end at a `.` or `,`, so the scan jumps from one to the next and copies
/// the bytes in between unchanged.
fn rule2(a: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let (mut copied, mut next_allowed) = (0, 0);
    for j in 1..a.len() {
        if !is_dot_or_comma(a[j]) {
            continue;
        }
        let i = j - 1;
        if i >= next_allowed && !a[i].is_ascii_digit() {
            out.extend_from_slice(&a[copied..i]);
            out.extend_from_slice(&[a[i], b' ', a[j], b' ']);
            copied = j + 1;
            next_allowed = j + 1;
        }
    }
    out.extend_from_slice(&a[copied..]);
}

/// `([\.,])([^0-9])` -> ` \1 \2`, applied left to right without overlaps.
fn rule3(a: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let (mut copied, mut next_allowed) = (0, 0);
    for i in 0..a.len().saturating_sub(1) {
        if i >= next_allowed && is_dot_or_comma(a[i]) && !a[i + 1].is_ascii_digit() {
            out.extend_from_slice(&a[copied..i]);
            out.extend_from_slice(&[b' ', a[i], b' ', a[i + 1]]);
            copied = i + 2;
            next_allowed = i + 2;
        }
    }
    out.extend_from_slice(&a[copied..]);
}

/// `([0-9])(-)` -> `\1 \2 `, applied left to right without overlaps.
fn rule4(a: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let (mut copied, mut next_allowed) = (0, 0);
    for j in 1..a.len() {
        if a[j] != b'-' {
            continue;
        }
        let i = j - 1;
        if i >= next_allowed && a[i].is_ascii_digit() {
            out.extend_from_slice(&a[copied..i]);
            out.extend_from_slice(&[a[i], b' ', b'-', b' ']);
            copied = j + 1;
            next_allowed = j + 1;
        }
    }
    out.extend_from_slice(&a[copied..]);
}

impl Tokenizer13a {
    /// The UTF-8 text that the spans of the last [`Tokenizer13a::tokenize`] call point into.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.b
    }

    /// Tokenizes `line`, writing the byte span of every token in [`Tokenizer13a::bytes`] to
    /// `spans` (which is cleared first).
    ///
    /// The regular expressions of `tokenizer_13a` match ASCII bytes only, and each rule is
    /// applied to the whole line before the next one, as `re.sub` does; working on UTF-8
    /// bytes gives the same result as working on characters because no rule can match inside
    /// a multi-byte character.
    pub(crate) fn tokenize(&mut self, line: &str, spans: &mut Vec<(u32, u32)>) {
        spans.clear();
        let line = py_rstrip(line);
        let line: &str = if line.contains(['<', '\n', '&']) {
            let mut s = line.replace("<skipped>", "");
            s = s.replace("-\n", "");
            s = s.replace('\n', " ");
            if s.contains('&') {
                s = s.replace("&quot;", "\"");
                s = s.replace("&amp;", "&");
                s = s.replace("&lt;", "<");
                s = s.replace("&gt;", ">");
            }
            self.pre = s;
            &self.pre
        } else {
            line
        };
        let bytes = line.as_bytes();

        // Rule 1 on ` {line} `: surround punctuation and symbols with spaces.
        let a = &mut self.a;
        a.clear();
        a.reserve(bytes.len() + bytes.len() / 2 + 2);
        a.push(b' ');
        let mut copied = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            if RULE1[byte as usize] {
                a.extend_from_slice(&bytes[copied..i]);
                a.extend_from_slice(&[b' ', byte, b' ']);
                copied = i + 1;
            }
        }
        a.extend_from_slice(&bytes[copied..]);
        a.push(b' ');

        let b = &mut self.b;
        if a.iter().any(|&c| is_dot_or_comma(c)) {
            rule2(a, b);
            rule3(b, a);
        }
        rule4(a, b);
        split_py_whitespace(b, spans);
    }
}

/// Length of the Python whitespace character starting at `bytes[i]`, or 0.
#[inline]
fn py_space_len(bytes: &[u8], i: usize) -> usize {
    let at = |k: usize| bytes.get(i + k).copied().unwrap_or(0);
    match bytes[i] {
        b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f => 1,
        0xc2 if matches!(at(1), 0x85 | 0xa0) => 2,
        0xe1 if at(1) == 0x9a && at(2) == 0x80 => 3,
        0xe2 if at(1) == 0x80 && matches!(at(2), 0x80..=0x8a | 0xa8 | 0xa9 | 0xaf) => 3,
        0xe2 if at(1) == 0x81 && at(2) == 0x9f => 3,
        0xe3 if at(1) == 0x80 && at(2) == 0x80 => 3,
        _ => 0,
    }
}

/// Byte spans of the pieces of Python's `text.split()` on UTF-8 bytes.
fn split_py_whitespace(bytes: &[u8], spans: &mut Vec<(u32, u32)>) {
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let space = py_space_len(bytes, i);
        if space > 0 {
            if let Some(s) = start.take() {
                spans.push((s as u32, i as u32));
            }
            i += space;
        } else {
            if start.is_none() {
                start = Some(i);
            }
            i += 1;
        }
    }
    if let Some(s) = start {
        spans.push((s as u32, bytes.len() as u32));
    }
}

#[derive(Default)]
struct BleuScratch {
    tokenizer: Tokenizer13a,
    spans: Vec<(u32, u32)>,
    vocab: Vocab,
    hyp_ids: Vec<u32>,
    ref_ids: Vec<u32>,
    /// Slot of each distinct hypothesis n-gram, keyed by its packed token ids.
    slots: FxHashMap<u128, u32>,
    hyp_count: Vec<u32>,
    slot_order: Vec<u8>,
    ref_max: Vec<u32>,
    ref_count: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<BleuScratch> = RefCell::new(BleuScratch::default());
}

/// Bits per token id in an n-gram key: four ids below a leading 1 bit fit in 125 bits, and
/// a segment would need 2^31 distinct tokens (gigabytes of text) to exhaust them.
const ID_BITS: u32 = 31;

/// The BLEU statistics of one segment against its references, as sacreBLEU's
/// `_compute_segment_statistics` counts them.
///
/// With no references at all the statistics are all zero.
pub fn bleu_stats<S: AsRef<str>>(prediction: &str, references: &[S]) -> BleuStats {
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let s = &mut *guard;
        bleu_stats_with(s, prediction, references)
    })
}

fn bleu_stats_with<S: AsRef<str>>(s: &mut BleuScratch, prediction: &str, references: &[S]) -> BleuStats {
    let mut stats = BleuStats::default();
    if references.is_empty() {
        return stats;
    }
    s.tokenizer.tokenize(prediction, &mut s.spans);
    s.vocab.build(s.tokenizer.bytes(), &s.spans, &mut s.hyp_ids);
    let hyp_len = s.hyp_ids.len();
    stats.hyp_len = hyp_len as u64;

    // Count the hypothesis n-grams of every order; the key of an n-gram extends the key of
    // its prefix, with a leading 1 bit that keeps orders apart.
    s.slots.clear();
    s.hyp_count.clear();
    s.slot_order.clear();
    for i in 0..hyp_len {
        let mut key: u128 = 1;
        for n in 0..MAX_ORDER.min(hyp_len - i) {
            key = (key << ID_BITS) | s.hyp_ids[i + n] as u128;
            let next = s.hyp_count.len() as u32;
            let slot = *s.slots.entry(key).or_insert(next);
            if slot == next {
                s.hyp_count.push(0);
                s.slot_order.push(n as u8);
            }
            s.hyp_count[slot as usize] += 1;
        }
    }
    for n in 0..MAX_ORDER {
        stats.total[n] = hyp_len.saturating_sub(n) as u64;
    }
    s.ref_max.clear();
    s.ref_max.resize(s.hyp_count.len(), 0);

    let mut closest: Option<(u64, u64)> = None;
    for reference in references {
        s.tokenizer.tokenize(reference.as_ref(), &mut s.spans);
        let text = s.tokenizer.bytes();
        s.ref_ids.clear();
        s.ref_ids.extend(s.spans.iter().map(|&(a, b)| s.vocab.id(&text[a as usize..b as usize])));
        let ref_len = s.ref_ids.len() as u64;
        let diff = ref_len.abs_diff(stats.hyp_len);
        closest = match closest {
            None => Some((diff, ref_len)),
            Some((d, l)) if diff < d || (diff == d && ref_len < l) => Some((diff, ref_len)),
            keep => keep,
        };
        s.ref_count.clear();
        s.ref_count.resize(s.hyp_count.len(), 0);
        let len = s.ref_ids.len();
        for i in 0..len {
            let mut key: u128 = 1;
            for n in 0..MAX_ORDER.min(len - i) {
                let id = s.ref_ids[i + n];
                if id == UNKNOWN {
                    break;
                }
                key = (key << ID_BITS) | id as u128;
                match s.slots.get(&key) {
                    Some(&slot) => s.ref_count[slot as usize] += 1,
                    // Longer n-grams from here extend this one, so none of them match.
                    None => break,
                }
            }
        }
        for (max, &count) in s.ref_max.iter_mut().zip(&s.ref_count) {
            *max = (*max).max(count);
        }
    }
    stats.ref_len = closest.map_or(0, |(_, len)| len);
    for ((&h, &r), &order) in s.hyp_count.iter().zip(&s.ref_max).zip(&s.slot_order) {
        stats.correct[order as usize] += h.min(r) as u64;
    }
    stats
}

/// Sentence BLEU in [0, 1]: `sacrebleu.sentence_bleu(prediction, references).score / 100`.
///
/// ```
/// use gm_metrics::metrics::sentence_bleu;
/// let s = sentence_bleu("The cat sat on the mat.", &["The cat sat on the mat."]);
/// assert!((s - 1.0).abs() < 1e-12);
/// assert_eq!(sentence_bleu("", &["The cat sat on the mat."]), 0.0);
/// ```
pub fn sentence_bleu<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    bleu_stats(prediction, references).score(true)
}

/// Corpus BLEU accumulated one segment at a time, in constant memory.
///
/// ```
/// use gm_metrics::metrics::CorpusBleu;
/// let mut corpus = CorpusBleu::new();
/// corpus.add("The cat sat on the mat.", &["The cat sat on the mat."]);
/// corpus.add("A dog barked.", &["The dog barked loudly."]);
/// assert!(corpus.score() > 0.0 && corpus.score() < 1.0);
/// assert_eq!(corpus.signature(), "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
/// ```
#[derive(Debug, Clone, Default)]
pub struct CorpusBleu {
    stats: BleuStats,
    nrefs: Option<RefCount>,
}

impl CorpusBleu {
    /// An empty corpus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one segment.
    pub fn add<S: AsRef<str>>(&mut self, prediction: &str, references: &[S]) {
        let stats = bleu_stats(prediction, references);
        self.add_stats(&stats, references.len());
    }

    /// Adds the statistics of one segment that had `nrefs` references.
    pub fn add_stats(&mut self, stats: &BleuStats, nrefs: usize) {
        self.stats.add(stats);
        self.nrefs = match self.nrefs {
            None => Some(RefCount::Fixed(nrefs)),
            Some(RefCount::Fixed(n)) if n == nrefs => Some(RefCount::Fixed(n)),
            Some(_) => Some(RefCount::Variable),
        };
    }

    /// Merges another partial corpus into this one.
    pub fn merge(&mut self, other: &CorpusBleu) {
        self.stats.add(&other.stats);
        self.nrefs = match (self.nrefs, other.nrefs) {
            (None, x) | (x, None) => x,
            (Some(a), Some(b)) if a == b => Some(a),
            _ => Some(RefCount::Variable),
        };
    }

    /// The summed statistics.
    pub fn stats(&self) -> &BleuStats {
        &self.stats
    }

    /// Corpus BLEU in [0, 1]: `sacrebleu.corpus_bleu(...).score / 100`.
    pub fn score(&self) -> f64 {
        self.stats.score(false)
    }

    /// The sacreBLEU signature of this corpus score.
    pub fn signature(&self) -> String {
        bleu_signature(self.nrefs.unwrap_or(RefCount::Fixed(0)), false)
    }
}

/// Corpus BLEU in [0, 1] of parallel lists of predictions and reference sets.
pub fn corpus_bleu<P, R, S>(predictions: &[P], references: &[R]) -> f64
where
    P: AsRef<str>,
    R: AsRef<[S]>,
    S: AsRef<str>,
{
    let mut corpus = CorpusBleu::new();
    for (p, r) in predictions.iter().zip(references) {
        corpus.add(p.as_ref(), r.as_ref());
    }
    corpus.score()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_follows_13a_rules() {
        assert_eq!(tokenize_13a("Hello, world."), "Hello , world .");
        assert_eq!(tokenize_13a("3.14 and 1,000 and 5-6"), "3.14 and 1,000 and 5 - 6");
        assert_eq!(tokenize_13a("a.b,c"), "a . b , c");
        assert_eq!(tokenize_13a("it's e-mail"), "it's e-mail");
        assert_eq!(tokenize_13a("x &amp; y &lt;z&gt; &quot;q&quot;"), "x & y < z > \" q \"");
        assert_eq!(tokenize_13a("end-\nline<skipped> here\n"), "endline here");
        assert_eq!(tokenize_13a("café. naïve,"), "café . naïve ,");
        assert_eq!(tokenize_13a("   "), "");
    }

    #[test]
    fn signature_strings() {
        assert_eq!(
            bleu_signature(RefCount::Fixed(2), false),
            "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
        );
        assert_eq!(
            bleu_signature(RefCount::Variable, true),
            "nrefs:var|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.6.0"
        );
    }

    #[test]
    fn brevity_penalty_is_never_above_one() {
        let short = sentence_bleu("the cat", &["the cat sat on the mat today"]);
        assert!(short < 0.5, "{short}");
    }

    #[test]
    fn closest_reference_length_prefers_shorter_on_ties() {
        let stats = bleu_stats("a b c d", &["a b c", "a b c d e"]);
        assert_eq!(stats.ref_len, 3);
    }

    #[test]
    fn no_references_scores_zero() {
        assert_eq!(sentence_bleu::<&str>("a b c", &[]), 0.0);
    }

    #[test]
    fn byte_level_split_matches_python_whitespace() {
        for cp in 0..0x3100u32 {
            let Some(c) = char::from_u32(cp) else { continue };
            let text = format!("a{c}b");
            let mut spans = Vec::new();
            split_py_whitespace(text.as_bytes(), &mut spans);
            let expected = if crate::text::is_py_space(c) { 2 } else { 1 };
            assert_eq!(spans.len(), expected, "U+{cp:04X}");
        }
    }
}
