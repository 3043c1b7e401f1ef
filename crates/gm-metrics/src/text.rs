//! Text primitives that behave like their Python counterparts.
//!
//! The reference implementations are written in Python, so "whitespace", "word character" and
//! "split" mean what `str.isspace`, the `re` module's `\w` and `str.split()` mean there. Rust's
//! definitions differ in small ways (Python counts U+001C..U+001F as whitespace, for one), and
//! those small ways are exactly where scores would otherwise drift apart.

use std::sync::OnceLock;

use regex::Regex;

/// Whether `c` is whitespace for Python's `str.isspace()` and `str.split()`.
#[inline]
pub(crate) fn is_py_space(c: char) -> bool {
    match c {
        ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' => true,
        '\u{1c}'..='\u{1f}' => true,
        c if c.is_ascii() => false,
        c => c.is_whitespace(),
    }
}

/// Python's `s.split()`: pieces between runs of whitespace, without empty pieces.
#[inline]
pub(crate) fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|piece| !piece.is_empty())
}

/// Python's `s.rstrip()`.
#[inline]
pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// Whether `c` is a word character for Python's `re` module on `str` patterns (`\w`).
///
/// Python counts letters (`L*`), characters with a numeric value and `_`; Rust's
/// `char::is_alphanumeric` also counts some combining marks, so non-ASCII characters are checked
/// against the Unicode general categories instead.
pub(crate) fn is_py_word(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    static WORD: OnceLock<Option<Regex>> = OnceLock::new();
    let word = WORD.get_or_init(|| Regex::new(r"^[\p{L}\p{N}]$").ok());
    match word {
        Some(re) => {
            let mut buf = [0u8; 4];
            re.is_match(c.encode_utf8(&mut buf))
        }
        None => c.is_alphanumeric(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_includes_information_separators() {
        assert!(is_py_space('\u{1f}'));
        assert!(is_py_space('\u{a0}'));
        assert!(is_py_space('\u{3000}'));
        assert!(!is_py_space('\u{200b}'));
        assert_eq!(py_split(" a\u{1c}b  c ").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(py_rstrip("ab \u{85}\n"), "ab");
    }

    #[test]
    fn python_word_characters() {
        assert!(is_py_word('é'));
        assert!(is_py_word('٣'));
        assert!(is_py_word('_'));
        assert!(!is_py_word('-'));
        // A combining acute accent is a mark, not a letter, for Python.
        assert!(!is_py_word('\u{301}'));
    }
}
