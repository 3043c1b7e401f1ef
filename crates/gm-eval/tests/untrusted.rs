//! The fuzz targets' entry points (`gm_eval::untrusted`) on stable: arbitrary bytes and text shaped like
//! prompt files and stored rows, a bounded number of cases each.

use gm_eval::untrusted::{prompt_file, stored_case};
use proptest::prelude::*;

fn yaml_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("name: x".to_string()),
        Just("model: openai/gpt-4.1".to_string()),
        Just("messages:".to_string()),
        Just("  - role: user".to_string()),
        Just("    content: \"{{q}} [\"".to_string()),
        Just("testData:".to_string()),
        Just("  - q: [1, {a: [2]}]".to_string()),
        Just("evaluators:".to_string()),
        Just("  - name: e\n    string: {contains: \"{{q}}\"}".to_string()),
        Just("modelParameters: {temperature: .nan, maxTokens: -1}".to_string()),
        Just("responseFormat: json_schema".to_string()),
        Just("jsonSchema: '{\"name\": 1}'".to_string()),
        Just("- &a [*a, *a]".to_string()),
        "[ \\-\\[\\]{}:,'\"#&*!|>a-z0-9]{0,40}",
    ];
    prop::collection::vec(line, 0..25).prop_map(|l| l.join("\n"))
}

fn row_like() -> impl Strategy<Value = String> {
    let json = prop_oneof![
        Just(r#"{"testCase":{},"modelResponse":"","evaluationResults":[]}"#.to_string()),
        Just(r#"{"latency_ms":1.5,"tokens_in":3,"tokens_out":2,"cached":false}"#.to_string()),
        Just("null".to_string()),
        Just("{".to_string()),
        "[{}\\[\\]\":,a-z0-9.-]{0,60}",
    ];
    (json.clone(), json).prop_map(|(a, b)| format!("{a}\0{b}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_a_prompt_file(data in prop::collection::vec(any::<u8>(), 0..1500)) {
        prompt_file(&data);
    }

    #[test]
    fn yaml_shaped_prompt_files(text in yaml_like()) {
        prompt_file(text.as_bytes());
    }

    #[test]
    fn any_bytes_as_a_stored_case(data in prop::collection::vec(any::<u8>(), 0..500)) {
        stored_case(&data);
    }

    #[test]
    fn row_shaped_stored_cases(text in row_like()) {
        stored_case(text.as_bytes());
    }
}

#[test]
fn regression_cases() {
    prompt_file(b"messages: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
    prompt_file(b"- &a [*a, *a, *a, *a]\n");
    prompt_file(b"");
    stored_case(b"\0");
}
