//! Durations as people write them on the command line: `500ms`, `2s`, `1m`, `1h`, `1d`.

use std::time::Duration;

use crate::LimitError;

/// Parses a duration written as a number and a unit: `ms`, `s`, `m`, `h` or `d` (`sec`, `min`, `hour`, `day`
/// and their plurals are accepted too); the number may have a decimal fraction (`0.5s`, `1.5m`). Several parts may follow each
/// other (`1h30m`); a bare `0` is zero.
///
/// ```
/// use std::time::Duration;
/// use gm_limits::parse_duration;
/// assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
/// assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
/// assert!(parse_duration("5 parsecs").unwrap_err().to_string().contains("500ms"));
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, LimitError> {
    const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);
    let bad = |why: &str| LimitError::InvalidDuration { input: s.to_string(), why: why.to_string() };
    let text = s.trim();
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_ns: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("a number must come before each unit"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        // A decimal fraction (`0.5s`, `1.25m`), exact to the nanosecond.
        let mut fraction = (0u64, 1u64);
        if let Some(after) = rest.strip_prefix('.') {
            let k = after.chars().take_while(char::is_ascii_digit).count();
            if k == 0 || k > 9 {
                return Err(bad("write a fraction with 1 to 9 digits after the point, e.g. 0.5s"));
            }
            fraction = (after[..k].parse().map_err(|_| bad("the number is too large"))?, 10u64.pow(k as u32));
            rest = &after[k..];
        }
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        if unit_len == 0 {
            return Err(bad("a unit is missing after the number"));
        }
        let unit = rest[..unit_len].to_ascii_lowercase();
        rest = &rest[unit_len..];
        let per_unit = match unit.as_str() {
            "ms" | "msec" | "msecs" | "millis" => Duration::from_millis(1),
            "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(1),
            "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(60),
            "h" | "hr" | "hrs" | "hour" | "hours" => Duration::from_secs(3600),
            "d" | "day" | "days" => Duration::from_secs(86_400),
            _ => return Err(bad(&format!("`{unit}` is not a unit"))),
        };
        let unit_ns = per_unit.as_nanos();
        let part = unit_ns * u128::from(n) + unit_ns * u128::from(fraction.0) / u128::from(fraction.1);
        total_ns = total_ns.checked_add(part).ok_or_else(|| bad("the number is too large"))?;
    }
    // Past a century nothing is meant, and the printed form would no longer read back.
    if total_ns > LONGEST.as_nanos() {
        return Err(bad("it is longer than 100 years"));
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| bad("the number is too large"))?;
    let total = Duration::new(secs, (total_ns % 1_000_000_000) as u32);
    // Durations are kept and shown to the millisecond, so a finer one could not be written back as given.
    if !total.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(bad("it is finer than a millisecond; round it to whole milliseconds"));
    }
    Ok(total)
}

/// Formats a duration in the shortest exact form [`parse_duration`] reads back (`1d`, `90s`, `1500ms`).
///
/// Sub-millisecond remainders are rounded up to the next millisecond.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if !d.as_nanos().is_multiple_of(1_000_000) {
        ms += 1;
    }
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Formats a wait for people: `46s`, `1h 33m 51s`, `250ms`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        let ms = d.as_millis() + u128::from(!d.as_nanos().is_multiple_of(1_000_000));
        return format!("{ms}ms");
    }
    let secs = secs + u64::from(d.subsec_nanos() != 0);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("2s", Duration::from_secs(2)),
            ("1m", Duration::from_secs(60)),
            ("1h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86_400)),
        ];
        for (s, d) in cases {
            assert_eq!(parse_duration(s).unwrap(), d, "{s}");
        }
        assert!(parse_duration("2 min").is_err());
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90Seconds").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse_duration("").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = parse_duration("10").unwrap_err().to_string();
        assert!(e.contains("unit is missing") && e.contains("500ms"), "{e}");
        let e = parse_duration("m").unwrap_err().to_string();
        assert!(e.contains("number must come before"), "{e}");
        let e = parse_duration("3w").unwrap_err().to_string();
        assert!(e.contains("`w` is not a unit"), "{e}");
        let e = parse_duration("99999999999999999999s").unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn format_round_trips() {
        for s in ["1d", "2h", "1m", "90s", "1500ms", "0s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::from_micros(1)), "1ms");
    }

    #[test]
    fn human_waits() {
        assert_eq!(human(Duration::from_secs(46)), "46s");
        assert_eq!(human(Duration::from_secs(5631)), "1h 33m 51s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(120)), "2m");
    }
}
