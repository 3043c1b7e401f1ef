//! One JSON object per test case.

use serde_json::{Map, Number, Value};

use crate::run::{CaseFigures, TestResult};

/// One line of a `--jsonl` file: a test case as soon as it finishes, without the trailing newline.
///
/// The keys, in order: `file` (the suite's file or name, as the caller gives it), `index` (1-based, as in
/// `Running test case i/N`), then gh-models' `testCase`, `modelResponse` and `evaluationResults`, then
/// `passed` (whether every evaluator passed) and `gm`, the case's figures (`latency_ms`, `tokens_in`,
/// `tokens_out`, `cached`, `judge_calls`). A score that is not a finite number is written as `null`.
pub fn jsonl_line(result: &TestResult, figures: &CaseFigures, file_name: &str, index: usize) -> String {
    let evaluations = result
        .evaluation_results
        .iter()
        .map(|r| {
            let mut o = Map::new();
            o.insert("evaluatorName".into(), Value::String(r.evaluator_name.clone()));
            o.insert("score".into(), number(r.score));
            o.insert("passed".into(), Value::Bool(r.passed));
            if let Some(d) = &r.details {
                o.insert("details".into(), Value::String(d.clone()));
            }
            Value::Object(o)
        })
        .collect();
    let mut gm = Map::new();
    gm.insert("latency_ms".into(), number(figures.latency_ms));
    gm.insert("tokens_in".into(), Value::from(figures.tokens_in));
    gm.insert("tokens_out".into(), Value::from(figures.tokens_out));
    gm.insert("cached".into(), Value::Bool(figures.cached));
    gm.insert("judge_calls".into(), Value::from(figures.judge_calls));
    let mut line = Map::new();
    line.insert("file".into(), Value::String(file_name.to_string()));
    line.insert("index".into(), Value::from(index));
    line.insert("testCase".into(), Value::Object(result.test_case.clone()));
    line.insert("modelResponse".into(), Value::String(result.model_response.clone()));
    line.insert("evaluationResults".into(), Value::Array(evaluations));
    line.insert("passed".into(), Value::Bool(result.passed()));
    line.insert("gm".into(), Value::Object(gm));
    Value::Object(line).to_string()
}

fn number(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}
