//! Entry points that take arbitrary bytes where gm-limits reads what a user or a file gave (limits specs and
//! durations), for the fuzz targets (`fuzz/`) and the property tests that run the same functions on stable.
//! Each returns normally for any input and panics only when an invariant breaks.

use crate::{format_duration, parse_duration, LimitSpec};

/// A limits spec: no panic, and a spec that parses prints as text that parses back to it.
pub fn limits_spec(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(spec) = LimitSpec::parse(&text) {
        let shown = spec.to_string();
        let again = LimitSpec::parse(&shown).unwrap_or_else(|e| panic!("{shown:?} does not parse back: {e}"));
        assert_eq!(again, spec, "{text:?} printed as {shown:?}");
    }
    if let Ok(d) = parse_duration(&text) {
        let shown = format_duration(d);
        let back = parse_duration(&shown).unwrap_or_else(|e| panic!("{shown:?} does not parse back: {e}"));
        assert_eq!(back, d, "{text:?} printed as {shown:?}");
    }
}
