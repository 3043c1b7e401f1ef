//! The Porter stemmer as NLTK 3.x's `PorterStemmer()` runs it in its default
//! `NLTK_EXTENSIONS` mode, which is what `rouge-score` uses with `use_stemmer=True`.
//!
//! NLTK departs from Martin Porter's published algorithm in a few places (a pool of irregular
//! forms, `-ies`/`-ied` on four-letter words, `y -> i` only after a consonant, `-alli`, `-fulli`
//! and `-logi` in step 2, and a two-letter `*o` condition); every one of them is kept here
//! because stems that differ from NLTK's change ROUGE scores.

/// A letter of a word being stemmed: bytes for ASCII words, `char`s otherwise.
trait Letter: Copy + Eq {
    fn ascii(self) -> Option<u8>;
    fn from_ascii(b: u8) -> Self;
}

impl Letter for u8 {
    #[inline]
    fn ascii(self) -> Option<u8> {
        Some(self)
    }
    #[inline]
    fn from_ascii(b: u8) -> Self {
        b
    }
}

impl Letter for char {
    #[inline]
    fn ascii(self) -> Option<u8> {
        if self.is_ascii() {
            Some(self as u8)
        } else {
            None
        }
    }
    #[inline]
    fn from_ascii(b: u8) -> Self {
        b as char
    }
}

#[inline]
fn is_letter<L: Letter>(l: L, b: u8) -> bool {
    l.ascii() == Some(b)
}

#[inline]
fn is_vowel<L: Letter>(l: L) -> bool {
    matches!(l.ascii(), Some(b'a' | b'e' | b'i' | b'o' | b'u'))
}

/// `_is_consonant`: a letter other than a vowel, and other than a `y` after a consonant.
fn is_consonant<L: Letter>(word: &[L], i: usize) -> bool {
    if is_vowel(word[i]) {
        return false;
    }
    if is_letter(word[i], b'y') {
        let mut negate = false;
        let mut i = i;
        while i > 0 && is_letter(word[i], b'y') {
            negate = !negate;
            i -= 1;
        }
        // Python: `(word[i] not in self.vowels) != negate`.
        return is_vowel(word[i]) == negate;
    }
    true
}

/// `_measure`: the number of vowel-to-consonant transitions, `m` in `[C](VC){m}[V]`.
fn measure<L: Letter>(stem: &[L]) -> usize {
    let mut m = 0;
    let mut previous_vowel = false;
    for i in 0..stem.len() {
        let consonant = is_consonant(stem, i);
        if consonant && previous_vowel {
            m += 1;
        }
        previous_vowel = !consonant;
    }
    m
}

fn contains_vowel<L: Letter>(stem: &[L]) -> bool {
    (0..stem.len()).any(|i| !is_consonant(stem, i))
}

fn ends_double_consonant<L: Letter>(word: &[L]) -> bool {
    let n = word.len();
    n >= 2 && word[n - 1] == word[n - 2] && is_consonant(word, n - 1)
}

/// Condition `*o`, with NLTK's extension to two-letter words.
fn ends_cvc<L: Letter>(word: &[L]) -> bool {
    let n = word.len();
    (n >= 3
        && is_consonant(word, n - 3)
        && !is_consonant(word, n - 2)
        && is_consonant(word, n - 1)
        && !matches!(word[n - 1].ascii(), Some(b'w' | b'x' | b'y')))
        || (n == 2 && !is_consonant(word, 0) && is_consonant(word, 1))
}

fn ends_with<L: Letter>(word: &[L], suffix: &str) -> bool {
    let s = suffix.as_bytes();
    word.len() >= s.len() && word[word.len() - s.len()..].iter().zip(s).all(|(&l, &b)| is_letter(l, b))
}

fn replace_suffix<L: Letter>(word: &mut Vec<L>, suffix_len: usize, replacement: &str) {
    word.truncate(word.len() - suffix_len);
    word.extend(replacement.bytes().map(L::from_ascii));
}

/// The condition of a suffix rule, given the stem (the word without the suffix) and the word.
type Condition<L> = fn(&[L], &[L]) -> bool;

fn positive_measure<L: Letter>(stem: &[L], _word: &[L]) -> bool {
    measure(stem) > 0
}

fn measure_above_one<L: Letter>(stem: &[L], _word: &[L]) -> bool {
    measure(stem) > 1
}

/// `_apply_rule_list`: the first rule whose suffix matches decides, whether or not its
/// condition holds.
fn apply_rules<L: Letter>(word: &mut Vec<L>, rules: &[(&str, &str, Condition<L>)]) {
    for &(suffix, replacement, condition) in rules {
        if ends_with(word, suffix) {
            let stem_len = word.len() - suffix.len();
            if condition(&word[..stem_len], word) {
                replace_suffix(word, suffix.len(), replacement);
            }
            return;
        }
    }
}

fn step1a<L: Letter>(word: &mut Vec<L>) {
    if ends_with(word, "ies") && word.len() == 4 {
        replace_suffix(word, 3, "ie");
        return;
    }
    fn always<L>(_: &[L], _: &[L]) -> bool {
        true
    }
    apply_rules(word, &[("sses", "ss", always), ("ies", "i", always), ("ss", "ss", always), ("s", "", always)]);
}

fn step1b<L: Letter>(word: &mut Vec<L>) {
    if ends_with(word, "ied") {
        let replacement = if word.len() == 4 { "ie" } else { "i" };
        replace_suffix(word, 3, replacement);
        return;
    }
    if ends_with(word, "eed") {
        if measure(&word[..word.len() - 3]) > 0 {
            replace_suffix(word, 3, "ee");
        }
        return;
    }
    let mut succeeded = false;
    for suffix in ["ed", "ing"] {
        if ends_with(word, suffix) && contains_vowel(&word[..word.len() - suffix.len()]) {
            word.truncate(word.len() - suffix.len());
            succeeded = true;
            break;
        }
    }
    if !succeeded {
        return;
    }
    // `word` is now the intermediate stem.
    for (suffix, replacement) in [("at", "ate"), ("bl", "ble"), ("iz", "ize")] {
        if ends_with(word, suffix) {
            replace_suffix(word, suffix.len(), replacement);
            return;
        }
    }
    if ends_double_consonant(word) {
        let last = word[word.len() - 1];
        if !matches!(last.ascii(), Some(b'l' | b's' | b'z')) {
            word.pop();
        }
        return;
    }
    if measure(word) == 1 && ends_cvc(word) {
        word.push(L::from_ascii(b'e'));
    }
}

fn step1c<L: Letter>(word: &mut Vec<L>) {
    if ends_with(word, "y") {
        let stem = &word[..word.len() - 1];
        if stem.len() > 1 && is_consonant(stem, stem.len() - 1) {
            replace_suffix(word, 1, "i");
        }
    }
}

fn step2<L: Letter>(word: &mut Vec<L>) {
    if ends_with(word, "alli") && measure(&word[..word.len() - 4]) > 0 {
        replace_suffix(word, 4, "al");
        step2(word);
        return;
    }
    fn logi<L: Letter>(_stem: &[L], word: &[L]) -> bool {
        measure(&word[..word.len() - 3]) > 0
    }
    let p: Condition<L> = positive_measure;
    apply_rules(
        word,
        &[
            ("ational", "ate", p),
            ("tional", "tion", p),
            ("enci", "ence", p),
            ("anci", "ance", p),
            ("izer", "ize", p),
            ("bli", "ble", p),
            ("alli", "al", p),
            ("entli", "ent", p),
            ("eli", "e", p),
            ("ousli", "ous", p),
            ("ization", "ize", p),
            ("ation", "ate", p),
            ("ator", "ate", p),
            ("alism", "al", p),
            ("iveness", "ive", p),
            ("fulness", "ful", p),
            ("ousness", "ous", p),
            ("aliti", "al", p),
            ("iviti", "ive", p),
            ("biliti", "ble", p),
            ("fulli", "ful", p),
            ("logi", "log", logi),
        ],
    );
}

fn step3<L: Letter>(word: &mut Vec<L>) {
    let p: Condition<L> = positive_measure;
    apply_rules(
        word,
        &[
            ("icate", "ic", p),
            ("ative", "", p),
            ("alize", "al", p),
            ("iciti", "ic", p),
            ("ical", "ic", p),
            ("ful", "", p),
            ("ness", "", p),
        ],
    );
}

fn step4<L: Letter>(word: &mut Vec<L>) {
    fn ion<L: Letter>(stem: &[L], _word: &[L]) -> bool {
        measure(stem) > 1 && matches!(stem[stem.len() - 1].ascii(), Some(b's' | b't'))
    }
    let m: Condition<L> = measure_above_one;
    apply_rules(
        word,
        &[
            ("al", "", m),
            ("ance", "", m),
            ("ence", "", m),
            ("er", "", m),
            ("ic", "", m),
            ("able", "", m),
            ("ible", "", m),
            ("ant", "", m),
            ("ement", "", m),
            ("ment", "", m),
            ("ent", "", m),
            ("ion", "", ion),
            ("ou", "", m),
            ("ism", "", m),
            ("ate", "", m),
            ("iti", "", m),
            ("ous", "", m),
            ("ive", "", m),
            ("ize", "", m),
        ],
    );
}

fn step5a<L: Letter>(word: &mut Vec<L>) {
    if ends_with(word, "e") {
        let stem = &word[..word.len() - 1];
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            word.pop();
        }
    }
}

fn step5b<L: Letter>(word: &mut Vec<L>) {
    if ends_with(word, "ll") && measure(&word[..word.len() - 1]) > 1 {
        word.pop();
    }
}

/// NLTK's pool of irregular forms, looked up before any rule runs.
fn irregular(word: &[u8]) -> Option<&'static str> {
    Some(match word {
        b"sky" | b"skies" => "sky",
        b"dying" => "die",
        b"lying" => "lie",
        b"tying" => "tie",
        b"news" => "news",
        b"innings" | b"inning" => "inning",
        b"outings" | b"outing" => "outing",
        b"cannings" | b"canning" => "canning",
        b"howe" => "howe",
        b"proceed" => "proceed",
        b"exceed" => "exceed",
        b"succeed" => "succeed",
        _ => return None,
    })
}

fn run_steps<L: Letter>(word: &mut Vec<L>) {
    step1a(word);
    step1b(word);
    step1c(word);
    step2(word);
    step3(word);
    step4(word);
    step5a(word);
    step5b(word);
}

/// Stems a lowercase ASCII word in place.
pub(crate) fn stem_ascii_in_place(word: &mut Vec<u8>) {
    if let Some(stem) = irregular(word) {
        word.clear();
        word.extend_from_slice(stem.as_bytes());
        return;
    }
    if word.len() <= 2 {
        return;
    }
    run_steps(word);
}

/// Stems one word as `nltk.stem.PorterStemmer().stem(word)` does (the word is lowercased
/// first, as NLTK does by default).
///
/// ```
/// use gm_metrics::metrics::porter_stem;
/// assert_eq!(porter_stem("running"), "run");
/// assert_eq!(porter_stem("generously"), "gener");
/// assert_eq!(porter_stem("skies"), "sky");
/// assert_eq!(porter_stem("ties"), "tie");
/// ```
pub fn porter_stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if lower.is_ascii() {
        let mut bytes = lower.into_bytes();
        if word.chars().count() <= 2 && irregular(&bytes).is_none() {
            return String::from_utf8(bytes).unwrap_or_default();
        }
        stem_ascii_in_place(&mut bytes);
        return String::from_utf8(bytes).unwrap_or_default();
    }
    if word.chars().count() <= 2 {
        return lower;
    }
    let mut chars: Vec<char> = lower.chars().collect();
    run_steps(&mut chars);
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_from_the_paper_and_nltk() {
        let cases = [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("conflated", "conflat"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("enjoy", "enjoy"),
            ("relational", "relat"),
            ("conditional", "condit"),
            ("generalization", "gener"),
            ("effective", "effect"),
            ("controll", "control"),
            ("dying", "die"),
            ("died", "die"),
            ("cried", "cri"),
            ("analogi", "analog"),
            ("radically", "radic"),
        ];
        for (word, stem) in cases {
            assert_eq!(porter_stem(word), stem, "{word}");
        }
    }
}
