//! Exact match and token F1 as the official SQuAD v1.1 / v2.0 evaluation scripts compute them.
//!
//! F1 counts tokens as a multiset (`collections.Counter`), as SQuAD does; some frameworks use
//! sets instead and score repeated words differently.

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
    let lower = text.to_lowercase();
    let no_punct: Vec<char> = lower.chars().filter(|&c| !is_punctuation(c)).collect();
    let without_articles = remove_articles(&no_punct);
    let mut out = String::with_capacity(without_articles.len());
    for (i, word) in py_split(&without_articles).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
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

/// SQuAD exact match: 1.0 when the normalized prediction equals a normalized reference.
///
/// ```
/// use gm_eval::metrics::squad_em;
/// assert_eq!(squad_em("The Eiffel Tower.", &["eiffel tower"]), 1.0);
/// assert_eq!(squad_em("Tower", &["eiffel tower"]), 0.0);
/// ```
pub fn squad_em<S: AsRef<str>>(prediction: &str, references: &[S]) -> f64 {
    let pred = squad_normalize(prediction);
    let hit = references.iter().any(|r| squad_normalize(r.as_ref()) == pred);
    if hit {
        1.0
    } else {
        0.0
    }
}

/// Token F1 of two normalized texts, as SQuAD's `compute_f1`.
fn f1_normalized(pred: &str, gold: &str) -> f64 {
    let mut p: Vec<&str> = pred.split(' ').filter(|t| !t.is_empty()).collect();
    let mut g: Vec<&str> = gold.split(' ').filter(|t| !t.is_empty()).collect();
    if p.is_empty() || g.is_empty() {
        return if p.is_empty() && g.is_empty() { 1.0 } else { 0.0 };
    }
    p.sort_unstable();
    g.sort_unstable();
    let (mut i, mut j, mut same) = (0, 0, 0usize);
    while i < p.len() && j < g.len() {
        match p[i].cmp(g[j]) {
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
    let pred = squad_normalize(prediction);
    references.iter().map(|r| f1_normalized(&pred, &squad_normalize(r.as_ref()))).fold(0.0, f64::max)
}

/// SQuAD exact match and F1 together, normalizing each text once.
pub fn squad_em_f1<S: AsRef<str>>(prediction: &str, references: &[S]) -> (f64, f64) {
    let pred = squad_normalize(prediction);
    let mut em = 0.0f64;
    let mut f1 = 0.0f64;
    for r in references {
        let gold = squad_normalize(r.as_ref());
        if gold == pred {
            em = 1.0;
        }
        f1 = f1.max(f1_normalized(&pred, &gold));
    }
    (em, f1)
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
