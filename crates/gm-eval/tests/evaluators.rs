//! The evaluators of `.prompt.yml` files against the semantics of `gh models eval`
//! (`shared/docs/github-models-api.md` §3.3), the gh-models example files, and our extensions.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use gm_core::ChatRequest;
use gm_eval::evaluators::{
    BoxError, EvalOptions, EvalResult, EvaluatorError, EvaluatorKind, EvaluatorSpec, JudgeClient, JudgeMode, Prepared,
};
use gm_eval::prompt::PromptFile;
use serde_json::{json, Map, Value};

fn examples() -> PathBuf {
    gm_testkit::shared("fixtures/github-models/gh-models-examples")
}

fn row(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
}

/// A judge that answers with a fixed reply and records the requests it gets.
struct Fixed {
    reply: String,
    seen: Mutex<Vec<ChatRequest>>,
}

impl Fixed {
    fn new(reply: &str) -> Self {
        Fixed { reply: reply.into(), seen: Mutex::new(Vec::new()) }
    }
}

#[async_trait]
impl JudgeClient for Fixed {
    async fn judge(&self, request: &ChatRequest) -> Result<String, BoxError> {
        self.seen.lock().expect("lock").push(request.clone());
        Ok(self.reply.clone())
    }
}

/// The offline demo provider of gm-http, as a judge.
struct Demo;

#[async_trait]
impl JudgeClient for Demo {
    async fn judge(&self, request: &ChatRequest) -> Result<String, BoxError> {
        Ok(gm_http::demo::answer(request))
    }
}

struct Failing;

#[async_trait]
impl JudgeClient for Failing {
    async fn judge(&self, _request: &ChatRequest) -> Result<String, BoxError> {
        Err("connection refused".into())
    }
}

fn evaluate(
    spec: &EvaluatorSpec,
    row: &Map<String, Value>,
    response: &str,
    mode: JudgeMode,
    judge: &dyn JudgeClient,
) -> EvalResult {
    let options = EvalOptions::default().with_judge_mode(mode);
    block_on(spec.evaluate(row, response, &options, judge)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_evaluator_of_the_gh_models_examples_parses() {
    let mut files = 0;
    let mut evaluators = 0;
    for entry in std::fs::read_dir(examples()).expect("the gh-models examples are in shared/fixtures") {
        let path = entry.expect("dir entry").path();
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if !file_name.ends_with(".yml") || file_name == "evals_action.yml" {
            continue;
        }
        let file = PromptFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let specs = EvaluatorSpec::parse_all(&file.evaluators).unwrap_or_else(|e| panic!("{file_name}: {e}"));
        assert_eq!(specs.len(), file.evaluators.len());
        for s in &specs {
            assert!(!s.name.is_empty(), "{file_name}");
            assert!(!matches!(s.kind, EvaluatorKind::UnknownPlugin { .. }), "{file_name}: {}", s.name);
        }
        files += 1;
        evaluators += specs.len();
    }
    assert_eq!(files, 9);
    assert_eq!(evaluators, 14);
}

#[test]
fn sample_prompt_string_evaluator_is_templated_with_the_row() {
    let file = PromptFile::load(&examples().join("sample_prompt.yml")).expect("sample_prompt.yml");
    let specs = EvaluatorSpec::parse_all(&file.evaluators).expect("evaluators");
    let case = &file.test_data[0];
    let needle = case["string"].as_str().expect("a string column").to_string();
    let judge = Fixed::new("4");
    let hit = evaluate(&specs[0], case, &format!("... {} ...", needle.to_uppercase()), JudgeMode::Compat, &judge);
    assert!(hit.passed);
    assert_eq!(hit.details, Some(format!("Expected to contain: '{needle}'")));
    let miss = evaluate(&specs[0], case, "nothing here", JudgeMode::Compat, &judge);
    assert_eq!((miss.score, miss.passed), (0.0, false));
}

/// The string-evaluator table of gh-models' `eval_test.go`, plus the precedence and templating rules.
#[test]
fn string_evaluators_follow_gh_models() {
    let judge = Fixed::new("");
    let cases: [(Value, &str, bool, &str); 12] = [
        (json!({"equals": "hello world"}), "hello world", true, "Expected exact match: 'hello world'"),
        (json!({"equals": "hello world"}), "Hello World", false, "Expected exact match: 'hello world'"),
        (json!({"contains": "WORLD"}), "hello world", true, "Expected to contain: 'WORLD'"),
        (json!({"contains": "mars"}), "hello world", false, "Expected to contain: 'mars'"),
        (json!({"startsWith": "HELLO"}), "hello world", true, "Expected to start with: 'HELLO'"),
        (json!({"startsWith": "world"}), "hello world", false, "Expected to start with: 'world'"),
        (json!({"endsWith": "World"}), "hello world", true, "Expected to end with: 'World'"),
        (json!({"endsWith": "hello"}), "hello world", false, "Expected to end with: 'hello'"),
        // Only the first non-empty value counts: equals > contains > startsWith > endsWith.
        (json!({"equals": "nope", "contains": "hello"}), "hello world", false, "Expected exact match: 'nope'"),
        (json!({"contains": "nope", "endsWith": "world"}), "hello world", false, "Expected to contain: 'nope'"),
        (
            json!({"equals": "", "startsWith": "hello", "endsWith": "x"}),
            "hello world",
            true,
            "Expected to start with: 'hello'",
        ),
        // Values are templated with the row; unknown placeholders stay as written.
        (
            json!({"contains": "{{city}} {{country}}"}),
            "I love paris {{country}}",
            true,
            "Expected to contain: 'Paris {{country}}'",
        ),
    ];
    let case = row(json!({"city": "Paris"}));
    for (check, response, passed, details) in cases {
        let spec = EvaluatorSpec::parse(0, &json!({"name": "s", "string": check})).expect("valid");
        let r = evaluate(&spec, &case, response, JudgeMode::Compat, &judge);
        assert_eq!(
            r,
            EvalResult {
                evaluator_name: "s".into(),
                score: if passed { 1.0 } else { 0.0 },
                passed,
                details: Some(details.into())
            },
            "{check}"
        );
    }
    assert!(judge.seen.lock().expect("lock").is_empty(), "string evaluators never call the judge");
}

#[test]
fn non_string_row_values_are_formatted_when_templated() {
    let spec = EvaluatorSpec::parse(0, &json!({"name": "n", "string": {"equals": "{{n}} {{ok}}"}})).expect("valid");
    let r = evaluate(&spec, &row(json!({"n": 42, "ok": true})), "42 true", JudgeMode::Strict, &Fixed::new(""));
    assert!(r.passed, "{r:?}");
    // Go's %v on what gh-models' YAML decoder gives: floats in shortest %g, lists and maps in Go's form.
    let spec = EvaluatorSpec::parse(0, &json!({"name": "n", "string": {"equals": "f={{f}} g={{g}} l={{l}} m={{m}}"}}))
        .expect("valid");
    let values = row(json!({"f": 1.0, "g": 0.00001, "l": ["a", "b"], "m": {"k": "v"}}));
    let r = evaluate(&spec, &values, "f=1 g=1e-05 l=[a b] m=map[k:v]", JudgeMode::Strict, &Fixed::new(""));
    assert!(r.passed, "{r:?}");
}

#[test]
fn judge_scoring_quirks_of_compat_mode_and_the_strict_verdict() {
    let spec = EvaluatorSpec::parse(0, &json!({"name": "coherence", "uses": "github/coherence"})).expect("valid");
    let case = row(json!({"input": "Why is the sky blue?"}));
    let reasoning =
        "Let's think step by step: 1. The answer explains scattering in order.\nExplanation: clear and connected.\n4";
    let compat = evaluate(&spec, &case, "Rayleigh scattering.", JudgeMode::Compat, &Fixed::new(reasoning));
    assert_eq!((compat.score, compat.passed), (0.0, false));
    assert_eq!(compat.details.as_deref(), Some("LLM evaluation matched choice: '1'"));
    let strict = evaluate(&spec, &case, "Rayleigh scattering.", JudgeMode::Strict, &Fixed::new(reasoning));
    assert_eq!((strict.score, strict.passed), (0.75, true));
    assert_eq!(strict.details.as_deref(), Some("LLM evaluation matched choice: '4'"));

    // "2/5" is a poor grade that passes, since passed is score > 0.
    for mode in [JudgeMode::Compat, JudgeMode::Strict] {
        let r = evaluate(&spec, &case, "x", mode, &Fixed::new("2/5"));
        assert_eq!((r.score, r.passed), (0.25, true), "{mode:?}");
    }

    // gh-models' own test: similarity with the reply "4" scores 0.75 and passes.
    let similarity =
        EvaluatorSpec::parse(0, &json!({"name": "similarity", "uses": "github/similarity"})).expect("valid");
    for mode in [JudgeMode::Compat, JudgeMode::Strict] {
        let r = evaluate(&similarity, &row(json!({"input": "q", "expected": "a"})), "a", mode, &Fixed::new("4"));
        assert_eq!(
            r,
            EvalResult {
                evaluator_name: "similarity".into(),
                score: 0.75,
                passed: true,
                details: Some("LLM evaluation matched choice: '4'".into())
            }
        );
    }

    // Word choices: the earlier declared choice wins in compat, the verdict in strict.
    let generated = EvaluatorSpec::parse(0, &json!({"name": "rules", "llm": {
        "modelId": "openai/gpt-4o",
        "prompt": "Rate {{completion}}",
        "choices": [
            {"choice": "poor", "score": 0.0}, {"choice": "below_average", "score": 0.25},
            {"choice": "average", "score": 0.5}, {"choice": "good", "score": 0.75}, {"choice": "excellent", "score": 1.0}
        ]
    }}))
    .expect("valid");
    let reply = "The structure is good and nothing is poor.\nExcellent";
    assert_eq!(evaluate(&generated, &Map::new(), "x", JudgeMode::Compat, &Fixed::new(reply)).score, 0.0);
    assert_eq!(evaluate(&generated, &Map::new(), "x", JudgeMode::Strict, &Fixed::new(reply)).score, 1.0);
    let none = evaluate(&generated, &Map::new(), "x", JudgeMode::Compat, &Fixed::new("  I Cannot Say "));
    assert_eq!(
        none.details.as_deref(),
        Some("LLM evaluation response 'i cannot say' did not match any defined choices")
    );
    assert_eq!((none.score, none.passed), (0.0, false));
}

#[test]
fn builtin_judge_requests_use_the_row_and_the_trimmed_completion() {
    let file = PromptFile::load(&examples().join("test_builtins.yml")).expect("test_builtins.yml");
    let specs = EvaluatorSpec::parse_all(&file.evaluators).expect("evaluators");
    let case = &file.test_data[0];
    let input = case["input"].as_str().expect("input");
    let expected = case["expected"].as_str().expect("expected");
    let judge = Fixed::new("Score: 5");
    for spec in &specs {
        let r = evaluate(spec, case, "  Plants make sugar from light.\n", JudgeMode::Strict, &judge);
        assert_eq!((r.score, r.passed), (1.0, true), "{}", spec.name);
    }
    let seen = judge.seen.lock().expect("lock");
    assert_eq!(seen.len(), 5);
    for req in seen.iter() {
        assert_eq!(req.model, "openai/gpt-4o");
        assert_eq!(req.messages.len(), 2);
        let user = req.messages[1].text();
        assert!(
            user.contains("Plants make sugar from light.\n") || user.ends_with("Plants make sugar from light."),
            "{user}"
        );
        assert!(!user.contains("{{"), "every placeholder filled: {user}");
    }
    let [similarity, coherence, fluency, relevance, groundedness] = [0, 1, 2, 3, 4].map(|i| seen[i].messages[1].text());
    assert!(similarity.contains(&format!("question: {input}\ncorrect answer: {expected}\npredicted answer: Plants")));
    assert!(coherence.contains(&format!("QUERY: {input}")));
    assert!(!fluency.contains(input));
    assert!(relevance.contains(&format!("QUERY: {input}")));
    assert!(groundedness.contains(&format!("CONTEXT: {expected}")));
}

#[test]
fn the_demo_provider_scores_the_builtin_prompts() {
    let file = PromptFile::load(&examples().join("test_builtins.yml")).expect("test_builtins.yml");
    let specs = EvaluatorSpec::parse_all(&file.evaluators).expect("evaluators");
    let case = &file.test_data[0];
    let expected = case["expected"].as_str().expect("expected");
    for spec in &specs {
        let r = evaluate(spec, case, expected, JudgeMode::Strict, &Demo);
        assert!(
            r.details.as_deref().is_some_and(|d| d.starts_with("LLM evaluation matched choice")),
            "{}: {r:?}",
            spec.name
        );
    }
    let [similarity, _, _, _, groundedness] = [0, 1, 2, 3, 4].map(|i| &specs[i]);
    for spec in [similarity, groundedness] {
        let good = evaluate(spec, case, expected, JudgeMode::Strict, &Demo);
        let bad = evaluate(spec, case, "Bananas are yellow.", JudgeMode::Strict, &Demo);
        assert_eq!(good.score, 1.0, "{}", spec.name);
        assert_eq!(bad.score, 0.0, "{}", spec.name);
    }
}

#[test]
fn unknown_uses_is_a_failed_result_not_an_error() {
    let spec =
        EvaluatorSpec::parse(0, &json!({"name": "custom", "uses": "github/toxicity"})).expect("not a parse error");
    let judge = Fixed::new("5");
    let r = evaluate(&spec, &Map::new(), "anything", JudgeMode::Strict, &judge);
    assert_eq!(
        r,
        EvalResult {
            evaluator_name: "custom".into(),
            score: 0.0,
            passed: false,
            details: Some("Plugin evaluator 'github/toxicity' not found".into())
        }
    );
    assert!(judge.seen.lock().expect("lock").is_empty());
    assert_eq!(
        serde_json::to_value(&r).expect("json"),
        json!({"evaluatorName": "custom", "score": 0.0, "passed": false, "details": "Plugin evaluator 'github/toxicity' not found"})
    );
}

#[test]
fn a_failing_judge_client_is_an_error_naming_the_evaluator() {
    let spec = EvaluatorSpec::parse(0, &json!({"name": "sim", "uses": "github/similarity"})).expect("valid");
    let options = EvalOptions::default();
    let err = block_on(spec.evaluate(&Map::new(), "x", &options, &Failing)).unwrap_err();
    assert!(matches!(err, EvaluatorError::Judge { .. }));
    let msg = err.to_string();
    assert!(msg.contains("`sim`") && msg.contains("openai/gpt-4o") && msg.contains("connection refused"), "{msg}");
}

#[test]
fn extension_evaluators_with_thresholds_in_a_prompt_file() {
    let text = r#"
name: extensions
model: openai/gpt-4o-mini
messages:
  - role: user
    content: '{{input}}'
testData:
  - input: Give the animal as JSON
    expected: The lion is a large cat of the savanna
    answer: 42
evaluators:
  - name: close to the reference
    rougeL: {min: 0.5, stemmer: true}
  - name: unigram overlap
    rouge1: 0.3
  - name: the number
    numeric_match: {referenceKey: answer}
  - name: no apology
    regex: {pattern: '\bsorry\b', ignoreCase: true, negate: true}
  - name: valid animal
    jsonSchema: '{"type": "object", "required": ["name"]}'
"#;
    let file = PromptFile::parse(text, "extensions.prompt.yml").expect("valid file");
    let specs = EvaluatorSpec::parse_all(&file.evaluators).expect("valid evaluators");
    let case = &file.test_data[0];
    let options = EvalOptions::default();
    let run = |i: usize, response: &str| match specs[i].prepare(case, response, &options).expect("evaluates") {
        Prepared::Done(r) => r,
        Prepared::Judge(_) => panic!("no judge here"),
    };
    let r = run(0, "Lions are large cats of the savanna");
    assert!(r.passed && r.score >= 0.5, "{r:?}");
    assert!(!run(0, "A bird").passed);
    assert!(run(1, "the lion, a cat").passed);
    assert!(run(2, "The answer is 42.").passed);
    assert!(!run(2, "The answer is 41.").passed);
    assert!(run(3, "Here it is").passed);
    assert!(!run(3, "Sorry, no").passed);
    assert!(run(4, r#"{"name": "lion"}"#).passed);
    assert!(!run(4, r#"{"kind": "lion"}"#).passed);
}

#[test]
fn malformed_evaluators_in_a_file_name_the_evaluator() {
    let text = "name: bad\nevaluators:\n  - name: ok\n    string: {contains: a}\n  - name: judge without choices\n    llm: {modelId: openai/gpt-4o, prompt: 'rate {{completion}}'}\n";
    let file = PromptFile::parse(text, "bad.prompt.yml").expect("the YAML itself is fine");
    let err = EvaluatorSpec::parse_all(&file.evaluators).unwrap_err().to_string();
    assert!(
        err.starts_with("evaluator `judge without choices` (evaluators[1]): `llm.choices` must be a non-empty list"),
        "{err}"
    );
}
