//! The entry point that takes arbitrary bytes where gm-metrics reads what a user gave (`gm score` input), for
//! the fuzz targets (`fuzz/`) and the property tests that run the same function on stable. It returns
//! normally for any input and panics only when an invariant breaks.

use crate::score_file::{score_jsonl, ScoreFileOptions};
use crate::Metric;

/// `gm score` input: no panic; on success, one output line per non-blank input line, each with every
/// requested score in [0, 1].
pub fn score_input(data: &[u8]) {
    let metrics = Metric::parse_list("equals,contains,bleu,chrf,rougeL,squad_f1,numeric_match").unwrap_or_default();
    let mut options = ScoreFileOptions::new(metrics);
    options.corpus = true;
    let mut out = Vec::new();
    if score_jsonl(data, &mut out, &options).is_ok() {
        // Blank as the engine reads it: nothing but Unicode white space (a vertical tab included).
        let lines = data.split(|&b| b == b'\n').filter(|l| !String::from_utf8_lossy(l).trim().is_empty()).count();
        let text = String::from_utf8(out).expect("the output is UTF-8");
        assert_eq!(text.lines().count(), lines, "one output line per case");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("each output line is JSON");
            for (name, score) in v["scores"].as_object().expect("scores").iter() {
                let s = score.as_f64().unwrap_or_else(|| panic!("{name}: {score}"));
                assert!((0.0..=1.0).contains(&s), "{name} = {s}");
            }
        }
    }
}
