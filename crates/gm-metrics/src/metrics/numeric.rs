//! Numeric answer matching for reasoning tasks: the last number in the answer, compared with
//! the last number in the reference within a tolerance.

/// How close two numbers must be to match: `|a - b| <= max(absolute, relative * max(|a|, |b|))`,
/// the rule of Python's `math.isclose`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericTolerance {
    /// Absolute tolerance.
    pub absolute: f64,
    /// Relative tolerance.
    pub relative: f64,
}

impl Default for NumericTolerance {
    /// `absolute = 1e-6`, `relative = 1e-6`.
    fn default() -> Self {
        NumericTolerance { absolute: 1e-6, relative: 1e-6 }
    }
}

impl NumericTolerance {
    /// Whether `a` and `b` are within this tolerance of each other.
    pub fn is_close(&self, a: f64, b: f64) -> bool {
        if a == b {
            return true;
        }
        let diff = (a - b).abs();
        diff <= self.absolute.max(self.relative * a.abs().max(b.abs()))
    }
}

fn digits_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// Parses a number starting at `i` (a digit, or a `.` followed by a digit), returning its
/// value and the index after it.
fn number_at(chars: &[char], start: usize) -> Option<(f64, usize)> {
    let mut text = String::new();
    let mut i = start;
    if chars[i].is_ascii_digit() {
        let first = digits_end(chars, i);
        text.extend(&chars[i..first]);
        i = first;
        // Thousands separators: `1,234,567`, only after one to three leading digits and only
        // before groups of exactly three.
        if first - start <= 3 {
            while i + 3 < chars.len() && chars[i] == ',' && digits_end(chars, i + 1) == i + 4 {
                text.extend(&chars[i + 1..i + 4]);
                i += 4;
            }
        }
    }
    if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
        let end = digits_end(chars, i + 1);
        text.push('.');
        text.extend(&chars[i + 1..end]);
        i = end;
    }
    if text.is_empty() || text == "." {
        return None;
    }
    // Scientific notation such as `1.5e3` or `2E-4`, when the exponent ends the word.
    if i + 1 < chars.len() && matches!(chars[i], 'e' | 'E') {
        let mut j = i + 1;
        if matches!(chars[j], '+' | '-') {
            j += 1;
        }
        let end = digits_end(chars, j);
        if end > j && chars.get(end).is_none_or(|c| !c.is_alphanumeric()) {
            text.push('e');
            text.extend(&chars[i + 1..end]);
            i = end;
        }
    }
    let mut value: f64 = text.parse().ok()?;
    // A fraction such as `3/4`.
    if i + 1 < chars.len() && chars[i] == '/' && chars[i + 1].is_ascii_digit() {
        let end = digits_end(chars, i + 1);
        let denominator: String = chars[i + 1..end].iter().collect();
        if let Ok(d) = denominator.parse::<f64>() {
            if d != 0.0 {
                value /= d;
                i = end;
            }
        }
    }
    Some((value, i))
}

/// The last number in `text`, or `None` when it has none.
///
/// Understands thousands separators (`1,234`), signs (`-5`, `−5`), currency (`$12.50`,
/// `-$3`), decimals (`0.25`, `.25`), fractions (`3/4`), scientific notation (`1.5e3`) and a
/// trailing sentence period (`is 42.`). A hyphen right after a letter or digit is read as a dash, not a sign, so
/// `pages 10-12` ends in 12.
///
/// ```
/// use gm_metrics::metrics::final_number;
/// assert_eq!(final_number("So she pays $1,234.50 in total."), Some(1234.5));
/// assert_eq!(final_number("The answer is -3/4."), Some(-0.75));
/// assert_eq!(final_number("#### 72"), Some(72.0));
/// assert_eq!(final_number("no digits"), None);
/// ```
pub fn final_number(text: &str) -> Option<f64> {
    let chars: Vec<char> = text.chars().collect();
    let mut last = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_number = c.is_ascii_digit() || (c == '.' && i + 1 < chars.len() && chars[i + 1].is_ascii_digit());
        if !starts_number {
            i += 1;
            continue;
        }
        let Some((value, end)) = number_at(&chars, i) else {
            i += 1;
            continue;
        };
        // Look back over an optional `$` for a sign that is not a dash between words.
        let mut j = i;
        if j > 0 && chars[j - 1] == '$' {
            j -= 1;
        }
        let negative = j > 0 && matches!(chars[j - 1], '-' | '\u{2212}') && (j == 1 || !chars[j - 2].is_alphanumeric());
        last = Some(if negative { -value } else { value });
        i = end;
    }
    last
}

/// 1.0 when the last number in the prediction matches the last number in a reference within
/// `tolerance`, else 0.0 (also when either has no number).
///
/// ```
/// use gm_metrics::metrics::{numeric_match, NumericTolerance};
/// let tol = NumericTolerance::default();
/// assert_eq!(numeric_match("... so 1,000 apples.", &["1000"], tol), 1.0);
/// assert_eq!(numeric_match("about 0.3333334", &["1/3"], tol), 1.0);
/// assert_eq!(numeric_match("it is 12", &["13"], tol), 0.0);
/// ```
pub fn numeric_match<S: AsRef<str>>(prediction: &str, references: &[S], tolerance: NumericTolerance) -> f64 {
    let Some(p) = final_number(prediction) else {
        return 0.0;
    };
    let pass = references.iter().filter_map(|r| final_number(r.as_ref())).any(|r| tolerance.is_close(p, r));
    if pass {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_forms() {
        assert_eq!(final_number("-5"), Some(-5.0));
        assert_eq!(final_number("−5"), Some(-5.0));
        assert_eq!(final_number("-$5"), Some(-5.0));
        assert_eq!(final_number("$-5"), Some(-5.0));
        assert_eq!(final_number("pages 10-12"), Some(12.0));
        assert_eq!(final_number("x-1"), Some(1.0));
        assert_eq!(final_number("1,234,567"), Some(1_234_567.0));
        assert_eq!(final_number("1,2345"), Some(2345.0));
        assert_eq!(final_number("12,34"), Some(34.0));
        assert_eq!(final_number("is .5"), Some(0.5));
        assert_eq!(final_number("is 5."), Some(5.0));
        assert_eq!(final_number("3/0"), Some(0.0));
        assert_eq!(final_number("50%"), Some(50.0));
        assert_eq!(final_number("about 1.5e3 m"), Some(1500.0));
        assert_eq!(final_number("2E-4."), Some(0.0002));
        assert_eq!(final_number("3rd place, 2e5x"), Some(5.0));
    }

    #[test]
    fn tolerance() {
        let t = NumericTolerance::default();
        assert!(t.is_close(1e9, 1e9 + 1.0));
        assert!(!t.is_close(1.0, 1.001));
        assert!(t.is_close(0.0, 1e-7));
    }
}
