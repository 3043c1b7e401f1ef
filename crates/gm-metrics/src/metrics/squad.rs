//! Exact match and token F1 as the official SQuAD v1.1 / v2.0 evaluation scripts compute them.
//!
//! F1 counts tokens as a multiset (`collections.Counter`), as SQuAD does; some frameworks use
//! sets instead and score repeated words differently.

use std::cell::RefCell;

use crate::text::{is_py_word, py_split};

/// SQuAD's `normalize_answer`: lowercase, drop ASCII punctuation, replace the words `a`, `an`
/// and `the` with a space, and collapse whitespace.
///
/// ```
/// use gm_metrics::metrics::squad_normalize;
/// assert_eq!(squad_normalize("The  Cat's hat!"), "cats hat");
/// assert_eq!(squad_normalize("an apple a day, then"), "apple day then");
/// ```
pub fn squad_normalize(text: &str) -> String {
    let mut normalized = Normalized::default();
    normalized.set(text, &mut Vec::new());
    String::from_utf8(normalized.bytes).unwrap_or_default()
}

/// A normalized answer: its bytes (tokens joined by single spaces) and the byte span of each
/// token.
#[derive(Default)]
struct Normalized {
    bytes: Vec<u8>,
    tokens: Vec<(u32, u32)>,
}

/// Lowercased ASCII bytes, with 0xff for the punctuation that is deleted.
const fn ascii_map() -> [u8; 128] {
    let mut t = [0u8; 128];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        t[c] = if b.is_ascii_punctuation() { 0xff } else { b.to_ascii_lowercase() };
        c += 1;
    }
    t
}
static ASCII_MAP: [u8; 128] = ascii_map();

#[inline]
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f)
}

impl Normalized {
    /// Normalizes `text`; `clean` is working space.
    fn set(&mut self, text: &str, clean: &mut Vec<u8>) {
        self.bytes.clear();
        self.tokens.clear();
        if text.is_ascii() {
            clean.clear();
            clean.extend(text.bytes().map(|b| ASCII_MAP[b as usize]).filter(|&b| b != 0xff));
            self.split_ascii(clean);
        } else {
            let lower = text.to_lowercase();
            let chars: Vec<char> = lower.chars().filter(|c| !c.is_ascii_punctuation()).collect();
            for word in py_split(&remove_articles(&chars)) {
                self.push_token(word.as_bytes());
            }
        }
    }

    fn push_token(&mut self, token: &[u8]) {
        if !self.bytes.is_empty() {
            self.bytes.push(b' ');
        }
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(token);
        self.tokens.push((start, self.bytes.len() as u32));
    }

    /// Article removal and whitespace splitting of lowercased ASCII without punctuation, in
    /// one pass. An article is a whole word (`\b(a|an|the)\b`, where the word characters are
    /// letters and digits once `_` is gone) and ends the piece it interrupts, as the space
    /// that replaces it would.
    fn split_ascii(&mut self, a: &[u8]) {
        let is_word = |b: u8| b.is_ascii_alphanumeric();
        let mut piece: Option<usize> = None;
        let mut i = 0;
        while i < a.len() {
            let b = a[i];
            if (b == b'a' || b == b't') && (i == 0 || !is_word(a[i - 1])) {
                let article = [&b"a"[..], b"an", b"the"]
                    .into_iter()
                    .find(|w| a[i..].starts_with(w) && a.get(i + w.len()).is_none_or(|&c| !is_word(c)));
                if let Some(w) = article {
                    self.close(&mut piece);
                    i += w.len();
                    continue;
                }
            }
            if is_ascii_space(b) {
                self.close(&mut piece);
            } else {
                if piece.is_none() {
                    if !self.bytes.is_empty() {
                        self.bytes.push(b' ');
                    }
                    piece = Some(self.bytes.len());
                }
                self.bytes.push(b);
            }
            i += 1;
        }
        self.close(&mut piece);
    }

    fn close(&mut self, piece: &mut Option<usize>) {
        if let Some(start) = piece.take() {
            self.tokens.push((start as u32, self.bytes.len() as u32));
        }
    }

    fn token(&self, (a, b): (u32, u32)) -> &[u8] {
        &self.bytes[a as usize..b as usize]
    }

    fn sort_tokens(&mut self) {
        let bytes = &self.bytes;
        self.tokens
            .sort_unstable_by(|&(a, b), &(c, d)| bytes[a as usize..b as usize].cmp(&bytes[c as usize..d as usize]));
    }
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)` with Python's Unicode word characters.
fn remove_articles(chars: &[char]) -> String {
    let mut out = String::with_capacity(chars.len());
    let word_at = |i: usize| i < chars.len() && is_py_word(chars[i]);
    let mut i = 0;
    while i < chars.len() {
        let at_boundary = i == 0 || !is_py_word(chars[i - 1]);
        if at_boundary {
            let article_len = [&['a'][..], &['a', 'n'][..], &['t', 'h', 'e'][..]]
                .iter()
                .find(|article| chars[i..].starts_with(article) && !word_at(i + article.len()))
                .map(|article| article.len());
            if let Some(len) = article_len {
                out.push(' ');
                i += len;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Buffers reused across calls on one thread.
#[derive(Default)]
struct PairScratch {
    clean: Vec<u8>,
    pred: Normalized,
    gold: Normalized,
}

thread_local! {
    static SCRATCH: RefCell<PairScratch> = RefCell::new(PairScratch::default());
}

/// SQuAD exact match: 1.0 when the normalized prediction equals a normalized reference.
///
/// ```
/// use gm_metrics::metrics::squad_em;
/// assert_eq!(squad_em("The Eiffel Tower.", &["eiffel tower"]), 1.0);
/// assert_eq!(squad_em("Tower", &["eiffel tower"]), 0.0);
/// ```
pub fn squad_em<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    squad_em_f1(prediction, references).0
}

/// Token F1 of two normalized answers with sorted tokens, as SQuAD's `compute_f1`.
fn f1_sorted(pred: &Normalized, gold: &Normalized) -> f64 {
    let (p, g) = (&pred.tokens, &gold.tokens);
    if p.is_empty() || g.is_empty() {
        return if p.is_empty() && g.is_empty() { 1.0 } else { 0.0 };
    }
    let (mut i, mut j, mut same) = (0, 0, 0usize);
    while i < p.len() && j < g.len() {
        match pred.token(p[i]).cmp(gold.token(g[j])) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                same += 1;
                i += 1;
                j += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// SQuAD token F1, the maximum over the references.
///
/// ```
/// use gm_metrics::metrics::squad_f1;
/// let f1 = squad_f1("the big red dog", &["a red dog"]);
/// assert!((f1 - 0.8).abs() < 1e-12);
/// ```
pub fn squad_f1<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    squad_em_f1(prediction, references).1
}

/// SQuAD exact match and F1 together, normalizing each text once.
pub fn squad_em_f1<S: AsRef<str>>(prediction: &str, references: &[S]) -> (f64, f64) {
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let PairScratch { clean, pred, gold } = &mut *guard;
        pred.set(prediction, clean);
        pred.sort_tokens();
        let mut em = 0.0f64;
        let mut f1 = 0.0f64;
        for r in references {
            gold.set(r.as_ref(), clean);
            if gold.bytes == pred.bytes {
                em = 1.0;
            }
            gold.sort_tokens();
            f1 = f1.max(f1_sorted(pred, gold));
        }
        (em, f1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_are_whole_words_only() {
        assert_eq!(squad_normalize("Anna ate the theory"), "anna ate theory");
        assert_eq!(squad_normalize("a-an"), "aan");
        assert_eq!(squad_normalize("café a"), "café");
        assert_eq!(squad_normalize("éa a"), "éa");
    }

    #[test]
    fn f1_counts_a_multiset() {
        // Sets would give 1.0 here.
        let f1 = squad_f1("dog dog dog", &["dog"]);
        assert!((f1 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn empty_answers() {
        assert_eq!(squad_f1("", &["the"]), 1.0);
        assert_eq!(squad_f1("", &["cat"]), 0.0);
        assert_eq!(squad_em("", &["a"]), 1.0);
    }
}
