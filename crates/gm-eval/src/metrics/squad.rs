//! Exact match and token F1 as the official SQuAD v1.1 / v2.0 evaluation scripts compute them.
//!
//! F1 counts tokens as a multiset (`collections.Counter`), as SQuAD does; some frameworks use
//! sets instead and score repeated words differently.

use std::cell::RefCell;

use crate::text::{is_py_word, py_split};

/// Python's `string.punctuation`.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// SQuAD's `normalize_answer`: lowercase, drop ASCII punctuation, replace the words `a`, `an`
/// and `the` with a space, and collapse whitespace.
///
/// ```
/// use gm_eval::metrics::squad_normalize;
/// assert_eq!(squad_normalize("The  Cat's hat!"), "cats hat");
/// assert_eq!(squad_normalize("an apple a day, then"), "apple day then");
/// ```
pub fn squad_normalize(text: &str) -> String {
    let mut out = String::new();
    normalize_into(text, &mut Scratch::default(), &mut out);
    out
}

/// Working space of [`normalize_into`].
#[derive(Default)]
struct Scratch {
    chars: Vec<char>,
    a: Vec<u8>,
    b: Vec<u8>,
}

/// [`squad_normalize`] into `out`.
fn normalize_into(text: &str, scratch: &mut Scratch, out: &mut String) {
    out.clear();
    if text.is_ascii() {
        normalize_ascii(text.as_bytes(), scratch, out);
        return;
    }
    let lower = text.to_lowercase();
    scratch.chars.clear();
    scratch.chars.extend(lower.chars().filter(|&c| !is_punctuation(c)));
    let without_articles = remove_articles(&scratch.chars);
    for (i, word) in py_split(&without_articles).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// The same steps on ASCII bytes, where the word characters are letters, digits and `_`.
fn normalize_ascii(text: &[u8], scratch: &mut Scratch, out: &mut String) {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let a = &mut scratch.a;
    a.clear();
    a.extend(text.iter().filter(|b| !b.is_ascii_punctuation()).map(|b| b.to_ascii_lowercase()));
    let b = &mut scratch.b;
    b.clear();
    let mut i = 0;
    while i < a.len() {
        if i == 0 || !is_word(a[i - 1]) {
            let article = [&b"a"[..], b"an", b"the"]
                .into_iter()
                .find(|w| a[i..].starts_with(w) && a.get(i + w.len()).is_none_or(|&c| !is_word(c)));
            if let Some(w) = article {
                b.push(b' ');
                i += w.len();
                continue;
            }
        }
        b.push(a[i]);
        i += 1;
    }
    let is_space = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f);
    for piece in b.split(is_space).filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(piece.iter().map(|&c| c as char));
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
    normalize: Scratch,
    pred: String,
    gold: String,
    pred_tokens: Vec<(u32, u32)>,
    gold_tokens: Vec<(u32, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<PairScratch> = RefCell::new(PairScratch::default());
}

/// SQuAD exact match: 1.0 when the normalized prediction equals a normalized reference.
///
/// ```
/// use gm_eval::metrics::squad_em;
/// assert_eq!(squad_em("The Eiffel Tower.", &["eiffel tower"]), 1.0);
/// assert_eq!(squad_em("Tower", &["eiffel tower"]), 0.0);
/// ```
pub fn squad_em<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    squad_em_f1(prediction, references).0
}

/// Byte spans of the space-separated tokens of a normalized text, sorted by token.
fn sorted_tokens(text: &str, spans: &mut Vec<(u32, u32)>) {
    spans.clear();
    let mut start = 0;
    for piece in text.split(' ') {
        if !piece.is_empty() {
            spans.push((start as u32, (start + piece.len()) as u32));
        }
        start += piece.len() + 1;
    }
    let bytes = text.as_bytes();
    spans.sort_unstable_by(|&(a, b), &(c, d)| bytes[a as usize..b as usize].cmp(&bytes[c as usize..d as usize]));
}

/// Token F1 of two normalized texts with their sorted token spans, as SQuAD's `compute_f1`.
fn f1_sorted(pred: &str, p: &[(u32, u32)], gold: &str, g: &[(u32, u32)]) -> f64 {
    if p.is_empty() || g.is_empty() {
        return if p.is_empty() && g.is_empty() { 1.0 } else { 0.0 };
    }
    fn token(text: &str, (a, b): (u32, u32)) -> &[u8] {
        &text.as_bytes()[a as usize..b as usize]
    }
    let (mut i, mut j, mut same) = (0, 0, 0usize);
    while i < p.len() && j < g.len() {
        match token(pred, p[i]).cmp(token(gold, g[j])) {
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
/// use gm_eval::metrics::squad_f1;
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
        let PairScratch { normalize: scratch, pred, gold, pred_tokens: p, gold_tokens: g } = &mut *guard;
        normalize_into(prediction, scratch, pred);
        sorted_tokens(pred, p);
        let mut em = 0.0f64;
        let mut f1 = 0.0f64;
        for r in references {
            normalize_into(r.as_ref(), scratch, gold);
            if gold == pred {
                em = 1.0;
            }
            sorted_tokens(gold, g);
            f1 = f1.max(f1_sorted(pred, p, gold, g));
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
