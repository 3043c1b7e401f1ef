//! ROUGE exactly as Google's `rouge-score` 0.1.2 `RougeScorer` computes it.
//!
//! Only the F-measure is returned. With several references the best F-measure per ROUGE type
//! is kept, as `RougeScorer.score_multi` does.

use std::cell::RefCell;

use super::ngram::{count_matches, SortedNgrams, Vocab, UNKNOWN};
use super::porter::stem_ascii_in_place;

/// The four ROUGE F-measures, each in [0, 1].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RougeScores {
    /// Unigram overlap.
    pub rouge1: f64,
    /// Bigram overlap.
    pub rouge2: f64,
    /// Longest common subsequence over the whole text.
    pub rouge_l: f64,
    /// Summary-level LCS over newline-separated sentences.
    pub rouge_lsum: f64,
}

/// Which ROUGE types to compute; the others are left at 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RougeSelection {
    /// Compute `rouge1`.
    pub rouge1: bool,
    /// Compute `rouge2`.
    pub rouge2: bool,
    /// Compute `rougeL`.
    pub rouge_l: bool,
    /// Compute `rougeLsum`.
    pub rouge_lsum: bool,
}

impl RougeSelection {
    /// All four types.
    pub const ALL: RougeSelection = RougeSelection { rouge1: true, rouge2: true, rouge_l: true, rouge_lsum: true };

    /// Whether no type is selected.
    pub fn is_empty(&self) -> bool {
        !(self.rouge1 || self.rouge2 || self.rouge_l || self.rouge_lsum)
    }
}

/// Tokens of one text, with the token index at which each newline-separated sentence ends.
#[derive(Default)]
struct Tokens {
    /// The tokens' bytes, all ASCII letters and digits.
    text: Vec<u8>,
    spans: Vec<(u32, u32)>,
    sentence_ends: Vec<u32>,
    word: Vec<u8>,
}

impl Tokens {
    /// `rouge_score.tokenize.tokenize`: lowercase, every run of characters outside `[a-z0-9]`
    /// becomes a separator, words longer than three letters are stemmed when asked.
    ///
    /// Sentence boundaries for `rougeLsum` are recorded at each `\n`; since a newline is also
    /// a separator, the tokens of the whole text are the tokens of its sentences in order.
    fn tokenize(&mut self, text: &str, stem: bool) {
        self.text.clear();
        self.spans.clear();
        self.sentence_ends.clear();
        self.word.clear();
        if text.is_ascii() {
            for &b in text.as_bytes() {
                let b = b.to_ascii_lowercase();
                if b.is_ascii_alphanumeric() {
                    self.word.push(b);
                } else {
                    self.flush(stem);
                    if b == b'\n' {
                        self.sentence_ends.push(self.spans.len() as u32);
                    }
                }
            }
            self.flush(stem);
            self.sentence_ends.push(self.spans.len() as u32);
            return;
        }
        for c in text.chars() {
            if c.is_ascii() {
                let b = (c as u8).to_ascii_lowercase();
                if b.is_ascii_alphanumeric() {
                    self.word.push(b);
                } else {
                    self.flush(stem);
                    if b == b'\n' {
                        self.sentence_ends.push(self.spans.len() as u32);
                    }
                }
            } else {
                // Python lowercases the whole text first: `İ` becomes `i` plus a combining dot
                // and the Kelvin sign becomes `k`, so a few non-ASCII letters yield ASCII ones.
                for lower in c.to_lowercase() {
                    if lower.is_ascii_alphanumeric() {
                        self.word.push(lower as u8);
                    } else {
                        self.flush(stem);
                    }
                }
            }
        }
        self.flush(stem);
        self.sentence_ends.push(self.spans.len() as u32);
    }

    fn flush(&mut self, stem: bool) {
        if self.word.is_empty() {
            return;
        }
        if stem && self.word.len() > 3 {
            stem_ascii_in_place(&mut self.word);
        }
        if !self.word.is_empty() {
            let start = self.text.len() as u32;
            self.text.extend_from_slice(&self.word);
            self.spans.push((start, self.text.len() as u32));
        }
        self.word.clear();
    }
}

#[derive(Default)]
struct RougeScratch {
    pred: Tokens,
    reference: Tokens,
    vocab: Vocab,
    pred_ids: Vec<u32>,
    ref_ids: Vec<u32>,
    pred_unigrams: Vec<u32>,
    ref_unigrams: Vec<u32>,
    pred_bigrams: SortedNgrams,
    ref_bigrams: SortedNgrams,
    lcs_row: Vec<u32>,
    lcs_table: Vec<u32>,
    marks: Vec<bool>,
    count_c: Vec<u32>,
    count_r: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<RougeScratch> = RefCell::new(RougeScratch::default());
}

/// `rouge_score.scoring.fmeasure`.
#[inline]
fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

/// `_score_ngrams`: precision and recall divide by at least one n-gram.
#[inline]
fn ngram_f(overlap: u64, pred_count: u64, ref_count: u64) -> f64 {
    let precision = overlap as f64 / pred_count.max(1) as f64;
    let recall = overlap as f64 / ref_count.max(1) as f64;
    fmeasure(precision, recall)
}

fn bigrams(ids: &[u32], out: &mut SortedNgrams) {
    out.clear();
    for w in ids.windows(2) {
        if w[0] != UNKNOWN && w[1] != UNKNOWN {
            out.push(((w[0] as u128) << 32) | w[1] as u128);
        }
    }
    out.sort();
}

/// Length of the longest common subsequence, with one row of the table.
fn lcs_length(a: &[u32], b: &[u32], row: &mut Vec<u32>) -> u32 {
    row.clear();
    row.resize(b.len() + 1, 0);
    for &x in a {
        let mut diagonal = 0;
        for j in 0..b.len() {
            let above = row[j + 1];
            row[j + 1] = if x == b[j] { diagonal + 1 } else { above.max(row[j]) };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `lcs_ind`: marks in `marks` the positions of `reference` on the LCS that `_backtrack_norec`
/// reads out of the full table (ties resolved the same way, since the union depends on it).
fn mark_lcs(reference: &[u32], candidate: &[u32], table: &mut Vec<u32>, marks: &mut [bool]) {
    let rows = reference.len();
    let cols = candidate.len();
    let width = cols + 1;
    table.clear();
    table.resize((rows + 1) * width, 0);
    for i in 1..=rows {
        for j in 1..=cols {
            table[i * width + j] = if reference[i - 1] == candidate[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let (mut i, mut j) = (rows, cols);
    while i > 0 && j > 0 {
        if reference[i - 1] == candidate[j - 1] {
            marks[i - 1] = true;
            i -= 1;
            j -= 1;
        } else if table[i * width + j - 1] > table[(i - 1) * width + j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
}

fn sentences<'a>(ids: &'a [u32], ends: &'a [u32]) -> impl Iterator<Item = &'a [u32]> + 'a {
    let mut start = 0usize;
    ends.iter().map(move |&end| {
        let s = &ids[start..end as usize];
        start = end as usize;
        s
    })
}

/// `_summary_level_lcs`: union LCS of each reference sentence against all candidate
/// sentences, with token counts that stop a token from being counted twice.
fn summary_lcs_f(s: &mut RougeScratch) -> f64 {
    let m = s.ref_ids.len();
    let n = s.pred_ids.len();
    if m == 0 || n == 0 {
        return 0.0;
    }
    let vocab = s.vocab.len();
    s.count_c.clear();
    s.count_c.resize(vocab, 0);
    s.count_r.clear();
    s.count_r.resize(vocab, 0);
    for &id in &s.pred_ids {
        s.count_c[id as usize] += 1;
    }
    for &id in &s.ref_ids {
        if id != UNKNOWN {
            s.count_r[id as usize] += 1;
        }
    }
    let mut hits = 0u64;
    for r in sentences(&s.ref_ids, &s.reference.sentence_ends) {
        if r.iter().all(|&id| id == UNKNOWN) {
            continue;
        }
        s.marks.clear();
        s.marks.resize(r.len(), false);
        for c in sentences(&s.pred_ids, &s.pred.sentence_ends) {
            if !c.is_empty() {
                mark_lcs(r, c, &mut s.lcs_table, &mut s.marks);
            }
        }
        for (i, &marked) in s.marks.iter().enumerate() {
            if marked {
                let t = r[i] as usize;
                if s.count_c[t] > 0 && s.count_r[t] > 0 {
                    hits += 1;
                    s.count_c[t] -= 1;
                    s.count_r[t] -= 1;
                }
            }
        }
    }
    let recall = hits as f64 / m as f64;
    let precision = hits as f64 / n as f64;
    fmeasure(precision, recall)
}

/// The selected ROUGE F-measures of `prediction` against the best-scoring reference for each
/// type (`RougeScorer(types, use_stemmer=stem).score_multi(references, prediction)`).
///
/// With no references every score is 0.
///
/// ```
/// use gm_metrics::metrics::{rouge, RougeSelection};
/// let s = rouge("The cats sat.", &["the cat sat"], false, RougeSelection::ALL);
/// assert!((s.rouge1 - 2.0 / 3.0).abs() < 1e-12);
/// let stemmed = rouge("The cats sat.", &["the cat sat"], true, RougeSelection::ALL);
/// assert_eq!(stemmed.rouge_l, 1.0);
/// ```
pub fn rouge<S: AsRef<str>>(prediction: &str, references: &[S], stem: bool, selection: RougeSelection) -> RougeScores {
    let mut best = RougeScores::default();
    if references.is_empty() || selection.is_empty() {
        return best;
    }
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let s = &mut *guard;
        s.pred.tokenize(prediction, stem);
        s.vocab.build(&s.pred.text, &s.pred.spans, &mut s.pred_ids);
        let vocab = s.vocab.len();
        let pred_len = s.pred_ids.len() as u64;
        if selection.rouge1 {
            s.pred_unigrams.clear();
            s.pred_unigrams.resize(vocab, 0);
            for &id in &s.pred_ids {
                s.pred_unigrams[id as usize] += 1;
            }
        }
        if selection.rouge2 {
            bigrams(&s.pred_ids, &mut s.pred_bigrams);
        }
        for reference in references {
            s.reference.tokenize(reference.as_ref(), stem);
            let text = &s.reference.text;
            s.ref_ids.clear();
            s.ref_ids.extend(s.reference.spans.iter().map(|&(a, b)| s.vocab.id(&text[a as usize..b as usize])));
            let ref_len = s.ref_ids.len() as u64;
            if selection.rouge1 {
                s.ref_unigrams.clear();
                s.ref_unigrams.resize(vocab, 0);
                for &id in &s.ref_ids {
                    if id != UNKNOWN {
                        s.ref_unigrams[id as usize] += 1;
                    }
                }
                let overlap: u64 = s.pred_unigrams.iter().zip(&s.ref_unigrams).map(|(&p, &r)| p.min(r) as u64).sum();
                best.rouge1 = best.rouge1.max(ngram_f(overlap, pred_len, ref_len));
            }
            if selection.rouge2 {
                bigrams(&s.ref_ids, &mut s.ref_bigrams);
                let overlap = count_matches(&s.pred_bigrams, &s.ref_bigrams);
                let f = ngram_f(overlap, pred_len.saturating_sub(1), ref_len.saturating_sub(1));
                best.rouge2 = best.rouge2.max(f);
            }
            if selection.rouge_l && pred_len > 0 && ref_len > 0 {
                let lcs = lcs_length(&s.ref_ids, &s.pred_ids, &mut s.lcs_row) as f64;
                let f = fmeasure(lcs / pred_len as f64, lcs / ref_len as f64);
                best.rouge_l = best.rouge_l.max(f);
            }
            if selection.rouge_lsum {
                best.rouge_lsum = best.rouge_lsum.max(summary_lcs_f(s));
            }
        }
    });
    best
}

/// ROUGE-1 F-measure in [0, 1].
pub fn rouge1<S: AsRef<str>>(prediction: &str, references: &[S], stem: bool) -> f64 {
    let only = RougeSelection { rouge1: true, ..Default::default() };
    rouge(prediction, references, stem, only).rouge1
}

/// ROUGE-2 F-measure in [0, 1].
pub fn rouge2<S: AsRef<str>>(prediction: &str, references: &[S], stem: bool) -> f64 {
    let only = RougeSelection { rouge2: true, ..Default::default() };
    rouge(prediction, references, stem, only).rouge2
}

/// ROUGE-L F-measure in [0, 1].
pub fn rouge_l<S: AsRef<str>>(prediction: &str, references: &[S], stem: bool) -> f64 {
    let only = RougeSelection { rouge_l: true, ..Default::default() };
    rouge(prediction, references, stem, only).rouge_l
}

/// ROUGE-Lsum F-measure in [0, 1] (sentences are the lines of the texts).
pub fn rouge_lsum<S: AsRef<str>>(prediction: &str, references: &[S], stem: bool) -> f64 {
    let only = RougeSelection { rouge_lsum: true, ..Default::default() };
    rouge(prediction, references, stem, only).rouge_lsum
}

/// The tokens `rouge-score` compares, for inspection and tests.
///
/// ```
/// use gm_metrics::metrics::rouge_tokens;
/// assert_eq!(rouge_tokens("Café au-lait, 2x!", false), ["caf", "au", "lait", "2x"]);
/// assert_eq!(rouge_tokens("running dogs", true), ["run", "dog"]);
/// ```
pub fn rouge_tokens(text: &str, stem: bool) -> Vec<String> {
    let mut tokens = Tokens::default();
    tokens.tokenize(text, stem);
    tokens
        .spans
        .iter()
        .map(|&(a, b)| String::from_utf8_lossy(&tokens.text[a as usize..b as usize]).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_of_known_sequences() {
        let mut row = Vec::new();
        assert_eq!(lcs_length(&[1, 2, 3, 4], &[2, 4, 3], &mut row), 2);
        assert_eq!(lcs_length(&[], &[1], &mut row), 0);
    }

    #[test]
    fn summary_level_lcs_counts_each_token_once() {
        let s = rouge_lsum("a b\na b", &["a b"], false);
        // Two hits out of four candidate tokens and two reference tokens.
        let expected = fmeasure(2.0 / 4.0, 2.0 / 2.0);
        assert!((s - expected).abs() < 1e-15);
    }

    #[test]
    fn empty_texts_score_zero() {
        let all = rouge("", &["a b"], false, RougeSelection::ALL);
        assert_eq!(all, RougeScores::default());
    }
}
