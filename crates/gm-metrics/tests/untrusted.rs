//! The fuzz target's entry point (`gm_metrics::untrusted::score_input`) on stable: arbitrary bytes and JSON
//! Lines shaped like `gm score` input, a bounded number of cases each.

use gm_metrics::untrusted::score_input;
use proptest::prelude::*;

fn line_like() -> impl Strategy<Value = String> {
    let text = "[ a-zA-Z0-9.,\\\\\"\u{e9}\u{1F600}-]{0,30}";
    prop_oneof![
        (any::<i32>(), text, prop::collection::vec(text, 0..3))
            .prop_map(|(id, p, r)| { serde_json::json!({"id": id, "prediction": p, "references": r}).to_string() }),
        (text, text).prop_map(|(p, r)| serde_json::json!({"id": "x", "prediction": p, "reference": r}).to_string()),
        Just(String::new()),
        Just("{}".to_string()),
        Just("[1,2]".to_string()),
        text.prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_score_input(data in prop::collection::vec(any::<u8>(), 0..1000)) {
        score_input(&data);
    }

    #[test]
    fn score_shaped_lines(lines in prop::collection::vec(line_like(), 0..20)) {
        score_input(lines.join("\n").as_bytes());
    }
}

#[test]
fn regression_cases() {
    score_input(b"{\"id\":1,\"prediction\":\"\",\"references\":[]}\n");
    score_input(b"\n\n{\"id\":1,\"prediction\":\"a\",\"reference\":\"a\"}\r\n");
    // Found by `cargo fuzz run score_input`: a line of a vertical tab is blank to the engine (the check's own
    // idea of blank was ASCII white space only).
    score_input(b"\x0b\n\n");
}
