use serde_json::json;

use super::*;

fn row(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn spec(v: Value) -> EvaluatorSpec {
    EvaluatorSpec::parse(0, &v).unwrap_or_else(|e| panic!("{e}"))
}

fn done(s: &EvaluatorSpec, r: &Map<String, Value>, response: &str) -> EvalResult {
    match s.prepare(r, response, &EvalOptions::default()).unwrap_or_else(|e| panic!("{e}")) {
        Prepared::Done(result) => result,
        Prepared::Judge(_) => panic!("unexpected judge"),
    }
}

fn error(v: Value) -> String {
    EvaluatorSpec::parse(3, &v).unwrap_err().to_string()
}

#[test]
fn string_precedence_uses_only_the_first_non_empty_value() {
    let s = spec(json!({"name": "p", "string": {"endsWith": "z", "contains": "", "startsWith": "A", "equals": ""}}));
    assert!(matches!(&s.kind, EvaluatorKind::String(StringCheck::StartsWith(v)) if v == "A"));
    let r = done(&s, &Map::new(), "abc");
    assert_eq!(r, EvalResult::new("p", 1.0, true, "Expected to start with: 'A'"));
}

#[test]
fn equals_is_case_sensitive_on_the_trimmed_response() {
    let s = spec(json!({"name": "e", "string": {"equals": "Paris"}}));
    assert!(done(&s, &Map::new(), "  Paris\n").passed);
    let r = done(&s, &Map::new(), "paris");
    assert_eq!((r.score, r.passed), (0.0, false));
    assert_eq!(r.details.as_deref(), Some("Expected exact match: 'Paris'"));
}

#[test]
fn metric_threshold_uses_expected_or_the_configured_reference() {
    let s = spec(json!({"name": "r", "rougeL": {"min": 0.5}}));
    let r = done(&s, &row(json!({"expected": "the cat sat on the mat"})), "the cat sat on a mat");
    assert!(r.passed && r.score > 0.5 && r.score < 1.0, "{r:?}");
    let r = done(&s, &row(json!({"expected": ["dogs bark", "the cat sat"]})), "the cat sat");
    assert_eq!(r.score, 1.0);
    let r = done(&s, &row(json!({"expected": "completely different words"})), "the cat sat");
    assert!(!r.passed);
    assert!(r.details.as_deref().is_some_and(|d| d.starts_with("rougeL 0.0000 < min 0.5")), "{r:?}");

    let s = spec(json!({"name": "n", "numeric_match": {"referenceKey": "answer"}}));
    assert!(done(&s, &row(json!({"answer": 42})), "So it is 42.").passed);
    let e = s.prepare(&row(json!({"expected": "42"})), "42", &EvalOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no `answer`"), "{e}");

    let s = spec(json!({"name": "t", "squad_em": {"reference": "{{city}}"}}));
    assert!(done(&s, &row(json!({"city": "Paris"})), "paris").passed);
    let s = spec(json!({"name": "j", "json_valid": null}));
    assert!(done(&s, &Map::new(), "{\"a\": 1}").passed);
    let s = spec(json!({"name": "b", "bleu": 0.2}));
    assert!(matches!(&s.kind, EvaluatorKind::Metric(m) if m.min == 0.2));
}

#[test]
fn regex_flags_negation_and_escaped_placeholders() {
    let s = spec(json!({"name": "x", "regex": {"pattern": "^answer: {{n}}$", "ignoreCase": true, "multiline": true}}));
    let r = done(&s, &row(json!({"n": "4.5"})), "Reasoning...\nANSWER: 4.5");
    assert!(r.passed, "{r:?}");
    assert!(!done(&s, &row(json!({"n": "4.5"})), "answer: 415").passed, "the dot is escaped");
    let s = spec(json!({"name": "no", "regex": {"pattern": "(?i)sorry", "negate": true}}));
    assert!(done(&s, &Map::new(), "Here you are").passed);
    let r = done(&s, &Map::new(), "Sorry, I can't");
    assert_eq!((r.score, r.details.as_deref()), (0.0, Some("Expected not to match: /(?i)sorry/")));
    assert!(done(&spec(json!({"name": "s", "regex": "\\d+"})), &Map::new(), "a1").passed);
}

#[test]
fn json_schema_as_object_string_or_wrapper() {
    let schema = json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}});
    for form in [schema.clone(), Value::String(schema.to_string()), json!({"name": "animal", "schema": schema})] {
        let s = spec(json!({"name": "js", "jsonSchema": form}));
        assert!(done(&s, &Map::new(), " {\"name\": \"lion\"} ").passed);
        let r = done(&s, &Map::new(), "{\"name\": 3}");
        assert!(!r.passed);
        assert!(r.details.as_deref().is_some_and(|d| d.contains("/name")), "{r:?}");
        assert!(!done(&s, &Map::new(), "name: lion").passed);
    }
}

#[test]
fn unknown_plugin_is_a_failed_result() {
    for uses in ["github/nope", "acme/similarity", "github/Similarity"] {
        let s = spec(json!({"name": "plug", "uses": uses}));
        let r = done(&s, &Map::new(), "x");
        assert_eq!(r, EvalResult::new("plug", 0.0, false, format!("Plugin evaluator '{uses}' not found")));
    }
}

#[test]
fn judge_request_templates_the_prompt_but_not_the_system_prompt() {
    let s = spec(json!({"name": "j", "llm": {
        "modelId": "openai/gpt-4o-mini",
        "systemPrompt": "Judge {{input}} strictly",
        "prompt": "Q: {{input}}\nA: {{completion}}\n{{unknown}}",
        "choices": [{"choice": "yes", "score": 1}, {"choice": "no", "score": 0}]
    }}));
    let Prepared::Judge(call) = s.prepare(&row(json!({"input": "2+2?"})), " 4 ", &EvalOptions::default()).unwrap()
    else {
        panic!("expected a judge call")
    };
    assert_eq!(call.request.model, "openai/gpt-4o-mini");
    assert_eq!(call.request.messages.len(), 2);
    assert_eq!(call.request.messages[0].text(), "Judge {{input}} strictly");
    assert_eq!(call.request.messages[1].text(), "Q: 2+2?\nA: 4\n{{unknown}}");
    assert_eq!(call.request.temperature, None);
    assert_eq!(call.score("Yes."), EvalResult::new("j", 1.0, true, "LLM evaluation matched choice: 'yes'"));
    assert_eq!(
        call.score(" Maybe "),
        EvalResult::new("j", 0.0, false, "LLM evaluation response 'maybe' did not match any defined choices")
    );
}

#[test]
fn builtin_judge_model_is_overridable() {
    let s = spec(json!({"name": "f", "uses": "github/fluency"}));
    let options = EvalOptions::default().with_judge_model("mistral-ai/mistral-small");
    let Prepared::Judge(call) = s.prepare(&Map::new(), "Fine text.", &options).unwrap() else { panic!() };
    assert_eq!(call.request.model, "mistral-ai/mistral-small");
    let Prepared::Judge(call) = s.prepare(&Map::new(), "Fine text.", &EvalOptions::default()).unwrap() else {
        panic!()
    };
    assert_eq!(call.request.model, DEFAULT_JUDGE_MODEL);
    assert!(call.request.messages[1].text().contains("RESPONSE: Fine text."));
}

#[test]
fn result_serialises_with_gh_models_keys() {
    let r = EvalResult { evaluator_name: "a".into(), score: 1.0, passed: true, details: None };
    assert_eq!(serde_json::to_value(&r).unwrap(), json!({"evaluatorName": "a", "score": 1.0, "passed": true}));
    let r = EvalResult::new("a", 0.0, false, "d");
    assert_eq!(serde_json::to_value(&r).unwrap()["details"], "d");
}

#[test]
fn malformed_definitions_name_the_evaluator_and_the_fix() {
    let cases = [
        (json!({"name": "e", "string": {}}), "non-empty `equals`"),
        (json!({"name": "e", "string": {"starts_with": "a"}}), "unknown key `starts_with` in `string`"),
        (json!({"name": "e", "string": "a"}), "must be a mapping"),
        (json!({"name": "e", "llm": {"prompt": "p", "choices": [{"choice": "a", "score": 1}]}}), "needs a `modelId`"),
        (json!({"name": "e", "llm": {"modelId": "m", "prompt": "p", "choices": []}}), "non-empty list"),
        (json!({"name": "e", "llm": {"modelId": "m", "prompt": "p", "choices": [{"choice": "a"}]}}), "choices[0]"),
        (json!({"name": "e", "uses": ""}), "`uses` must name"),
        (json!({"name": "e", "regex": {"pattern": "("}}), "does not compile"),
        (json!({"name": "e", "jsonSchema": "{"}), "not valid JSON"),
        (json!({"name": "e", "jsonSchema": {"type": 12}}), "not a valid JSON schema"),
        (json!({"name": "e", "rougeL": {}}), "needs a passing threshold `min`"),
        (json!({"name": "e", "rougeL": {"min": 2}}), "in [0, 1]"),
        (json!({"name": "e", "bleu": {"min": 0.1, "stemmer": true}}), "ROUGE metrics only"),
        (json!({"name": "e", "rouge": {"min": 0.1}}), "unknown key `rouge`"),
        (json!({"name": "e"}), "has nothing to check"),
        (json!({"name": "e", "string": {"equals": "a"}, "uses": "github/fluency"}), "several checks (string, uses)"),
    ];
    for (raw, needle) in cases {
        let e = error(raw.clone());
        assert!(e.starts_with("evaluator `e` (evaluators[3]): "), "{e}");
        assert!(e.contains(needle), "{raw}: {e}");
        assert!(!e.ends_with('.'), "{e}");
    }
    assert_eq!(
        error(json!("github/similarity")),
        format!("evaluator evaluators[3]: must be a mapping with a `name` and one of {}", parse_kinds())
    );
}

fn parse_kinds() -> &'static str {
    "`string`, `llm` or `uses` (or the extensions `regex`, `jsonSchema`, or a metric of `gm score --list` with a threshold, e.g. `rougeL: {min: 0.4}`)"
}

#[test]
fn every_registry_metric_is_an_evaluator_with_scores_in_range() {
    let case = row(json!({"expected": "the answer is 42"}));
    for metric in Metric::ALL {
        let s = spec(json!({"name": metric.name(), metric.name(): {"min": 0.5}}));
        assert!(matches!(&s.kind, EvaluatorKind::Metric(m) if m.metric == metric));
        for response in ["the answer is 42", "", "{\"a\": 1}", "nothing alike"] {
            let r = done(&s, &case, response);
            assert!((0.0..=1.0).contains(&r.score), "{metric}: {r:?}");
            assert_eq!(r.passed, r.score >= 0.5, "{metric}: {r:?}");
        }
    }
}
