//! chrF exactly as sacreBLEU 2.6.0's `CHRF` computes it with its defaults.
//!
//! Character n-grams of orders 1 to 6, no word n-grams, `beta = 2`, whitespace removed before
//! the n-grams are taken, and no epsilon smoothing: orders where the hypothesis or the reference
//! has no n-grams are left out of the averages of precision and recall.

use std::cell::RefCell;

use rustc_hash::FxHashMap;

use crate::text::is_py_space;

/// Character n-gram orders used by chrF.
pub const CHAR_ORDER: usize = 6;

/// Weight of recall relative to precision.
pub const BETA: u32 = 2;

/// Sufficient statistics of chrF: per order, the hypothesis n-gram count, the reference
/// n-gram count and the clipped matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChrfStats {
    /// `[hyp, ref, match]` for character n-gram orders 1 to 6.
    pub orders: [[u64; 3]; CHAR_ORDER],
}

impl ChrfStats {
    /// Adds the statistics of another segment.
    pub fn add(&mut self, other: &ChrfStats) {
        for (a, b) in self.orders.iter_mut().zip(&other.orders) {
            for k in 0..3 {
                a[k] += b[k];
            }
        }
    }

    /// chrF in [0, 1] from these statistics.
    pub fn score(&self) -> f64 {
        (f_score(self) / 100.0).clamp(0.0, 1.0)
    }
}

/// sacreBLEU's `CHRF._compute_f_score` without epsilon smoothing, on its 0–100 scale.
fn f_score(stats: &ChrfStats) -> f64 {
    const EPS: f64 = 1e-16;
    let factor = (BETA * BETA) as f64;
    let mut avg_prec = 0.0f64;
    let mut avg_rec = 0.0f64;
    let mut effective_order = 0u32;
    for &[n_hyp, n_ref, n_match] in &stats.orders {
        let prec = if n_hyp > 0 { n_match as f64 / n_hyp as f64 } else { EPS };
        let rec = if n_ref > 0 { n_match as f64 / n_ref as f64 } else { EPS };
        if n_hyp > 0 && n_ref > 0 {
            avg_prec += prec;
            avg_rec += rec;
            effective_order += 1;
        }
    }
    if effective_order == 0 {
        avg_prec = 0.0;
        avg_rec = 0.0;
    } else {
        avg_prec /= effective_order as f64;
        avg_rec /= effective_order as f64;
    }
    if avg_prec + avg_rec != 0.0 {
        let mut score = (1.0 + factor) * avg_prec * avg_rec;
        score /= (factor * avg_prec) + avg_rec;
        100.0 * score
    } else {
        0.0
    }
}

#[derive(Default)]
struct ChrfScratch {
    chars: Vec<u32>,
    /// Slot of each distinct hypothesis n-gram, keyed by the slot of its prefix and its
    /// last character (a trie of the hypothesis n-grams).
    slots: FxHashMap<u64, u32>,
    hyp_count: Vec<u32>,
    slot_order: Vec<u8>,
    hyp_total: [u64; CHAR_ORDER],
    ref_count: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<ChrfScratch> = RefCell::new(ChrfScratch::default());
}

/// The characters of `text` without Python whitespace (`''.join(text.split())`).
fn chars_without_space(text: &str, out: &mut Vec<u32>) {
    out.clear();
    if text.is_ascii() {
        out.extend(
            text.bytes()
                .filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f))
                .map(u32::from),
        );
    } else {
        out.extend(text.chars().filter(|&c| !is_py_space(c)).map(u32::from));
    }
}

impl ChrfScratch {
    /// Counts the hypothesis n-grams of every order.
    ///
    /// The n-grams form a trie: an n-gram is keyed by the slot of its first n - 1 characters
    /// (plus one, 0 for the empty prefix) and its last code point (21 bits), which makes the
    /// keys of all orders distinct and keeps them in 64 bits.
    fn count_hypothesis(&mut self) {
        self.slots.clear();
        self.hyp_count.clear();
        self.slot_order.clear();
        self.hyp_total = [0; CHAR_ORDER];
        let len = self.chars.len();
        for i in 0..len {
            let mut parent: u64 = 0;
            for n in 0..CHAR_ORDER.min(len - i) {
                let key = (parent << 21) | self.chars[i + n] as u64;
                let next = self.hyp_count.len() as u32;
                let slot = *self.slots.entry(key).or_insert(next);
                if slot == next {
                    self.hyp_count.push(0);
                    self.slot_order.push(n as u8);
                }
                self.hyp_count[slot as usize] += 1;
                self.hyp_total[n] += 1;
                parent = slot as u64 + 1;
            }
        }
    }

    /// Statistics of the hypothesis against the reference whose characters are in `chars`.
    fn against_reference(&mut self) -> ChrfStats {
        self.ref_count.clear();
        self.ref_count.resize(self.hyp_count.len(), 0);
        let len = self.chars.len();
        for i in 0..len {
            let mut parent: u64 = 0;
            for n in 0..CHAR_ORDER.min(len - i) {
                let key = (parent << 21) | self.chars[i + n] as u64;
                match self.slots.get(&key) {
                    Some(&slot) => {
                        self.ref_count[slot as usize] += 1;
                        parent = slot as u64 + 1;
                    }
                    // Every longer n-gram from here extends this one, so none can match.
                    None => break,
                }
            }
        }
        let mut stats = ChrfStats::default();
        for ((&h, &r), &order) in self.hyp_count.iter().zip(&self.ref_count).zip(&self.slot_order) {
            stats.orders[order as usize][2] += h.min(r) as u64;
        }
        for n in 0..CHAR_ORDER {
            let n_ref = (len + 1).saturating_sub(n + 1) as u64;
            stats.orders[n][1] = n_ref;
            stats.orders[n][0] = if n_ref > 0 { self.hyp_total[n] } else { 0 };
        }
        stats
    }
}

/// The chrF statistics of one segment against the reference that scores best, as sacreBLEU's
/// `CHRF._compute_segment_statistics` picks it (the first of equally good references).
///
/// With no references the statistics are all zero.
pub fn chrf_stats<S: AsRef<str>>(prediction: &str, references: &[S]) -> ChrfStats {
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let s = &mut *guard;
        chars_without_space(prediction, &mut s.chars);
        s.count_hypothesis();
        let mut best = ChrfStats::default();
        let mut best_f = -1.0f64;
        for reference in references {
            chars_without_space(reference.as_ref(), &mut s.chars);
            let stats = s.against_reference();
            let f = f_score(&stats);
            if f > best_f {
                best_f = f;
                best = stats;
            }
        }
        best
    })
}

/// Sentence chrF in [0, 1]: `sacrebleu.sentence_chrf(prediction, references).score / 100`.
///
/// ```
/// use gm_metrics::metrics::sentence_chrf;
/// assert_eq!(sentence_chrf("a cat", &["a cat"]), 1.0);
/// assert_eq!(sentence_chrf("xyz", &["abc"]), 0.0);
/// ```
pub fn sentence_chrf<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    chrf_stats(prediction, references).score()
}

/// Corpus chrF accumulated one segment at a time, in constant memory.
#[derive(Debug, Clone, Default)]
pub struct CorpusChrf {
    stats: ChrfStats,
}

impl CorpusChrf {
    /// An empty corpus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one segment.
    pub fn add<S: AsRef<str>>(&mut self, prediction: &str, references: &[S]) {
        self.stats.add(&chrf_stats(prediction, references));
    }

    /// Adds the statistics of one segment.
    pub fn add_stats(&mut self, stats: &ChrfStats) {
        self.stats.add(stats);
    }

    /// Merges another partial corpus into this one.
    pub fn merge(&mut self, other: &CorpusChrf) {
        self.stats.add(&other.stats);
    }

    /// The summed statistics.
    pub fn stats(&self) -> &ChrfStats {
        &self.stats
    }

    /// Corpus chrF in [0, 1]: `sacrebleu.corpus_chrf(...).score / 100`.
    pub fn score(&self) -> f64 {
        self.stats.score()
    }
}

/// Corpus chrF in [0, 1] of parallel lists of predictions and reference sets.
pub fn corpus_chrf<P, R, S>(predictions: &[P], references: &[R]) -> f64
where
    P: AsRef<str>,
    R: AsRef<[S]>,
    S: AsRef<str>,
{
    let mut corpus = CorpusChrf::new();
    for (p, r) in predictions.iter().zip(references) {
        corpus.add(p.as_ref(), r.as_ref());
    }
    corpus.score()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_ignored() {
        assert_eq!(sentence_chrf("a b c", &["abc"]), 1.0);
    }

    #[test]
    fn best_reference_is_kept() {
        let one = sentence_chrf("the cat", &["a dog"]);
        let two = sentence_chrf("the cat", &["a dog", "the cat"]);
        assert!(one < two);
        assert_eq!(two, 1.0);
    }

    #[test]
    fn short_segments_use_effective_order() {
        // Only orders 1 and 2 exist; the score is still a perfect match.
        assert_eq!(sentence_chrf("ab", &["ab"]), 1.0);
    }
}
