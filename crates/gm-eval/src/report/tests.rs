//! Tests of the report renderers, on summaries built by hand.

use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{json, Map, Value};

use super::*;
use crate::evaluators::EvalResult;
use crate::run::{CaseFigures, EvaluationSummary, RunFigures, Summary, TestResult};

/// A response with everything a renderer must escape: markup, quotes, a table pipe, a newline, an
/// emoji and an ANSI escape (a control character).
const NASTY: &str = "<b>&\"quoted\" 'single'</b> | pipe\nsecond line 🎉 \u{1b}[31mred";

fn row(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn eval(name: &str, score: f64, passed: bool, details: Option<&str>) -> EvalResult {
    EvalResult { evaluator_name: name.into(), score, passed, details: details.map(String::from) }
}

fn case(latency_ms: f64, cached: bool) -> CaseFigures {
    CaseFigures {
        latency_ms,
        tokens_in: 12,
        tokens_out: 3,
        cached,
        judge_calls: 0,
        samples: None,
        ..Default::default()
    }
}

fn suite(name: &str, results: Vec<TestResult>, cases: Vec<CaseFigures>) -> EvaluationSummary {
    let total = results.len();
    let passed = results.iter().filter(|r| r.passed()).count();
    EvaluationSummary {
        name: name.into(),
        description: "Multiplication".into(),
        model: "openai/gpt-4.1".into(),
        test_results: results,
        summary: Summary {
            total_tests: total,
            passed_tests: passed,
            failed_tests: total - passed,
            pass_rate: pass_rate(passed, total),
        },
        gm: RunFigures {
            provider: "openai-compatible".into(),
            latency_p50_ms: Some(120.0),
            latency_p95_ms: Some(340.5),
            latency_p99_ms: Some(1500.0),
            tokens_in: 24,
            tokens_out: 6,
            tokens_estimated: 0,
            latency_from_server: 0,
            queue_p50_ms: None,
            tokens_per_second: Some(85.25),
            tokens_per_second_wall: Some(40.0),
            cost_usd: None,
            cache_hits: 1,
            retries: 2,
            rate_limited: 1,
            requests: 3,
            wall_ms: 1234.0,
            cases,
            repeat: None,
            timing: None,
        },
    }
}

fn passing() -> TestResult {
    TestResult {
        test_case: row(json!({"a": 6, "b": 7, "expected": "42"})),
        model_response: "42".into(),
        evaluation_results: vec![eval("has the product", 1.0, true, Some("Expected to contain: '42'"))],
    }
}

fn failing() -> TestResult {
    TestResult {
        test_case: row(json!({"a": 3, "b": 5, "expected": "15"})),
        model_response: "The answer is 16, I think.\nYes.".into(),
        evaluation_results: vec![
            eval("has the product", 0.0, false, Some("Expected to contain: '15'")),
            eval("polite", 1.0, true, None),
        ],
    }
}

fn nasty() -> TestResult {
    TestResult {
        test_case: row(json!({"input": NASTY, "expected": "x"})),
        model_response: NASTY.into(),
        evaluation_results: vec![eval("checks <tags> & | pipes", 0.0, false, Some(NASTY))],
    }
}

fn empty() -> EvaluationSummary {
    let mut s = suite("empty", vec![], vec![]);
    s.gm.latency_p50_ms = None;
    s.gm.latency_p95_ms = None;
    s.gm.latency_p99_ms = None;
    s.gm.tokens_per_second = None;
    s.gm.tokens_per_second_wall = None;
    s
}

fn mixed() -> EvaluationSummary {
    suite(
        "arithmetic",
        vec![passing(), failing(), nasty()],
        vec![case(120.0, false), case(0.0, true), case(340.5, false)],
    )
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    f(&mut out).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("reports are UTF-8")
}

// ---- helpers ----

#[test]
fn preview_cuts_at_characters_not_bytes() {
    assert_eq!(preview("héllo", 2), "hé...");
    assert_eq!(preview("héllo", 5), "héllo");
    assert_eq!(preview(&"🎉".repeat(101), 100), format!("{}...", "🎉".repeat(100)));
}

#[test]
fn input_preview_prefers_the_input_key() {
    assert_eq!(input_preview(&row(json!({"input": "line one\nline two", "x": 1}))), "line one line two");
    assert_eq!(input_preview(&row(json!({"a": 6, "b": "seven"}))), "a: 6, b: seven");
    let long = "word ".repeat(40);
    assert_eq!(input_preview(&row(json!({"input": long}))).chars().count(), INPUT_PREVIEW_CHARS + 3);
}

// ---- human ----

#[test]
fn human_passing_case_has_gh_models_lines() {
    let text = render(|o| human(&suite("arithmetic", vec![passing()], vec![case(120.0, false)]), o));
    let expected = "\
Running evaluation: arithmetic
Description: Multiplication
Model: openai/gpt-4.1
Test cases: 1

-------------------------
Running test case 1/1...
Result  ✓ PASSED

EVALUATION       RESULT  SCORE  CRITERIA
has the product  ✓       1.00   Expected to contain: '42'

Evaluation Summary:
Passed: 1/1 (100.00%)
🎉 All tests passed!

gm figures:
";
    assert!(text.starts_with(expected), "got:\n{text}");
}

#[test]
fn human_failing_case_has_gh_models_lines() {
    let text = render(|o| human(&suite("arithmetic", vec![failing()], vec![case(120.0, false)]), o));
    let expected = "\
Running evaluation: arithmetic
Description: Multiplication
Model: openai/gpt-4.1
Test cases: 1

-------------------------
Running test case 1/1...
Result          ✗ FAILED
Model Response  The answer is 16, I think. Yes.

EVALUATION       RESULT  SCORE  CRITERIA
has the product  ✗       0.00   Expected to contain: '15'
polite           ✓       1.00

Evaluation Summary:
Passed: 0/1 (0.00%)
❌ Some tests failed.

gm figures:
";
    assert!(text.starts_with(expected), "got:\n{text}");
}

#[test]
fn human_figures_follow_the_summary() {
    let text = render(|o| human(&mixed(), o));
    let figures = text.split("\ngm figures:\n").nth(1).expect("a figures block");
    let lines: Vec<&str> = figures.lines().collect();
    let pad = |label: &str, value: &str| format!("  {label:<23}  {value}");
    assert_eq!(lines[0], pad("Provider", "openai-compatible"));
    for (label, value) in [
        ("Latency p50", "120 ms"),
        ("Latency p95", "340 ms"),
        ("Latency p99", "1.50 s"),
        ("Queue wait p50", "n/a"),
        ("Tokens in", "24"),
        ("Tokens out", "6"),
        ("Tokens/s per request", "85.2"),
        ("Tokens/s over wall time", "40.0"),
        ("Cache hits", "1"),
        ("Retries", "2"),
        ("429s", "1"),
        ("Wall time", "1.23 s"),
    ] {
        assert!(lines.contains(&pad(label, value).as_str()), "{label}: {figures}");
    }
    assert!(text.contains("Passed: 1/3 (33.33%)\n❌ Some tests failed.\n"));
}

#[test]
fn estimated_token_counts_are_marked_in_every_report() {
    let mut s = mixed();
    s.gm.tokens_estimated = 2;
    let text = render(|o| human(&s, o));
    assert!(text.contains("Tokens in                24 (estimated for 2 calls)"), "{text}");
    let md = render(|o| markdown(std::slice::from_ref(&s), o));
    assert!(md.contains("| 6 (estimated for 2 calls) |"), "{md}");
}

#[test]
fn human_response_preview_is_at_most_100_characters() {
    let mut t = failing();
    t.model_response = "é".repeat(150);
    let text = render(|o| human(&suite("long", vec![t], vec![case(1.0, false)]), o));
    let line = text.lines().find(|l| l.starts_with("Model Response")).expect("a preview row");
    assert_eq!(line, format!("Model Response  {}...", "é".repeat(100)));
}

#[test]
fn human_keeps_every_table_row_on_one_line() {
    let text = render(|o| human(&suite("nasty", vec![nasty()], vec![case(1.0, false)]), o));
    let preview_line = text.lines().find(|l| l.starts_with("Model Response")).expect("a preview row");
    assert!(preview_line.contains("| pipe second line 🎉 [31mred"), "{preview_line}");
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn human_marks_the_cases_answered_from_the_cache() {
    let text =
        render(|o| human(&suite("cached", vec![passing(), failing()], vec![case(0.0, true), case(9.0, false)]), o));
    let results: Vec<&str> = text.lines().filter(|l| l.starts_with("Result")).collect();
    assert_eq!(results, ["Result  ✓ PASSED (cached)", "Result          ✗ FAILED"]);
}

#[test]
fn human_of_a_stored_run_does_not_say_running() {
    let options = HumanOptions { stored: true, ..HumanOptions::default() };
    let text = render(|o| human_with(&mixed(), options, o));
    assert!(text.contains("\nTest case 1/3\n") && !text.contains("Running test case"), "{text}");
}

#[test]
fn human_colours_only_the_marks_and_keeps_the_columns() {
    let plain = render(|o| human(&mixed(), o));
    let options = HumanOptions { color: true, ..HumanOptions::default() };
    let coloured = render(|o| human_with(&mixed(), options, o));
    assert!(coloured.contains("\u{1b}[1m\u{1b}[32m✓ PASSED\u{1b}[0m"), "{coloured}");
    assert!(coloured.contains("\u{1b}[1m\u{1b}[31m✗ FAILED\u{1b}[0m"), "{coloured}");
    assert!(!plain.contains('\u{1b}'));
    // Without its escapes the coloured report is the plain one: no column moved.
    let stripped = regex::Regex::new("\u{1b}\\[[0-9;]*m").unwrap().replace_all(&coloured, "");
    assert_eq!(stripped, plain);
}

#[test]
fn human_empty_suite_passes_like_gh_models() {
    let text = render(|o| human(&empty(), o));
    assert!(
        text.contains("Test cases: 0\n\nEvaluation Summary:\nPassed: 0/0 (0.00%)\n🎉 All tests passed!\n"),
        "{text}"
    );
    assert!(text.contains("  Latency p50              n/a\n"), "{text}");
}

#[test]
fn display_width_counts_wide_characters_twice() {
    assert_eq!(human::display_width("abc"), 3);
    assert_eq!(human::display_width("✓"), 1);
    assert_eq!(human::display_width("🎉日本"), 6);
}

// ---- JUnit ----

/// An XML element's name and its unescaped attributes.
type Element = (String, Vec<(String, String)>);

/// Parses `xml` with a conforming reader, failing on any well-formedness error; returns each element's
/// name with its unescaped attributes, and the unescaped text of every `<system-out>` and `<failure>`.
fn parse_xml(xml: &str) -> (Vec<Element>, Vec<String>) {
    let mut reader = Reader::from_str(xml);
    let mut elements = Vec::new();
    let mut texts = Vec::new();
    let mut in_text = false;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).expect("UTF-8 name");
                in_text = name == "system-out" || name == "failure";
                if in_text {
                    texts.push(String::new());
                }
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("a well-formed attribute");
                        let key = String::from_utf8(a.key.as_ref().to_vec()).expect("UTF-8 key");
                        (key, a.unescape_value().expect("an attribute that unescapes").into_owned())
                    })
                    .collect();
                elements.push((name, attrs));
            }
            Ok(Event::Text(t)) if in_text => {
                let last = texts.last_mut().expect("inside a text element");
                last.push_str(&t.unescape().expect("text that unescapes"));
            }
            Ok(Event::End(_)) => in_text = false,
            Ok(_) => {}
            Err(e) => panic!("not well-formed at {}: {e}\n{xml}", reader.buffer_position()),
        }
    }
    (elements, texts)
}

fn attr<'a>(element: &'a Element, key: &str) -> &'a str {
    element.1.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn junit_is_well_formed_with_one_testcase_per_row() {
    let xml = render(|o| junit(&[mixed(), suite("second", vec![passing()], vec![case(5.0, false)])], o));
    let (elements, texts) = parse_xml(&xml);
    let root = elements.iter().find(|e| e.0 == "testsuites").expect("a root");
    assert_eq!(attr(root, "tests"), "4");
    assert_eq!(attr(root, "failures"), "2");
    let suites: Vec<_> = elements.iter().filter(|e| e.0 == "testsuite").collect();
    assert_eq!(suites.len(), 2);
    assert_eq!(attr(suites[0], "name"), "arithmetic");
    assert_eq!(attr(suites[0], "tests"), "3");
    assert_eq!(attr(suites[0], "failures"), "2");
    assert_eq!(attr(suites[0], "time"), "1.234");
    let cases: Vec<_> = elements.iter().filter(|e| e.0 == "testcase").collect();
    assert_eq!(cases.len(), 4);
    assert_eq!(attr(cases[0], "name"), "1: a: 6, b: 7, expected: 42");
    assert_eq!(attr(cases[0], "time"), "0.120");
    assert_eq!(attr(cases[3], "classname"), "second");
    // Only the second case's answer came from the cache.
    let cached: Vec<_> = elements.iter().filter(|e| e.0 == "property" && attr(e, "name") == "cached").collect();
    assert_eq!(cached.len(), 1);
    let failures: Vec<_> = elements.iter().filter(|e| e.0 == "failure").collect();
    assert_eq!(failures.len(), 2);
    assert_eq!(attr(failures[0], "message"), "1 of 2 evaluators failed: has the product");
    // the passing case's output, then the failing case's failure and output
    assert_eq!(texts[0], "42");
    assert_eq!(
        texts[1],
        "has the product (score 0.00): Expected to contain: '15'\nModel Response: The answer is 16, I think.\nYes."
    );
    assert_eq!(texts[2], "The answer is 16, I think.\nYes.");
}

#[test]
fn junit_escapes_everything_and_drops_no_text() {
    let xml = render(|o| junit(&[suite("a <suite> & \"quotes\"", vec![nasty()], vec![case(1.0, false)])], o));
    assert!(!xml.chars().any(|c| c.is_control() && c != '\n'), "raw control characters in\n{xml}");
    let (elements, texts) = parse_xml(&xml);
    let visible = NASTY.replace('\u{1b}', "\\u{1b}");
    let suite = elements.iter().find(|e| e.0 == "testsuite").expect("a suite");
    assert_eq!(attr(suite, "name"), "a <suite> & \"quotes\"");
    let case = elements.iter().find(|e| e.0 == "testcase").expect("a case");
    assert!(attr(case, "name").starts_with("1: <b>&\"quoted\" 'single'</b> | pipe second line 🎉"));
    let failure = elements.iter().find(|e| e.0 == "failure").expect("a failure");
    assert_eq!(attr(failure, "message"), "1 of 1 evaluators failed: checks <tags> & | pipes");
    assert!(texts[0].starts_with(&format!("checks <tags> & | pipes (score 0.00): {visible}\n")));
    assert_eq!(texts[1], visible);
}

#[test]
fn junit_keeps_newlines_in_attributes() {
    let mut s = suite("multi\nline", vec![], vec![]);
    s.description = "one\r\ntwo\tthree".into();
    let xml = render(|o| junit(&[s], o));
    let (elements, _) = parse_xml(&xml);
    let suite = elements.iter().find(|e| e.0 == "testsuite").expect("a suite");
    assert_eq!(attr(suite, "name"), "multi\nline");
    let description =
        elements.iter().find(|e| e.0 == "property" && attr(e, "name") == "description").expect("a description");
    assert_eq!(attr(description, "value"), "one\r\ntwo\tthree");
}

#[test]
fn junit_of_an_empty_suite_has_no_testcases() {
    let xml = render(|o| junit(&[empty()], o));
    let (elements, _) = parse_xml(&xml);
    let suite = elements.iter().find(|e| e.0 == "testsuite").expect("a suite");
    assert_eq!(attr(suite, "tests"), "0");
    assert_eq!(attr(suite, "failures"), "0");
    assert!(!elements.iter().any(|e| e.0 == "testcase"));
    let (_, texts) = parse_xml(&render(|o| junit(&[], o)));
    assert!(texts.is_empty());
}

// ---- Markdown ----

/// The `|` that separate cells (not those escaped as `\|`).
fn cell_separators(line: &str) -> usize {
    let mut count = 0;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '|' if !escaped => count += 1,
            _ => escaped = false,
        }
    }
    count
}

#[test]
fn markdown_has_a_headline_and_a_row_per_case() {
    let md = render(|o| markdown(&[mixed(), suite("second", vec![passing()], vec![case(5.0, false)])], o));
    assert!(md.starts_with("## ❌ gm eval: 2/4 tests passed (50.00%), 2 failed, 2 files\n"), "{md}");
    assert!(md.contains("### ❌ arithmetic (openai/gpt-4.1)\n"), "{md}");
    assert!(md.contains("### ✅ second (openai/gpt-4.1)\n"), "{md}");
    assert!(md.contains("| 1 | ✅ | a: 6, b: 7, expected: 42 |  |\n"), "{md}");
    assert!(
        md.contains(
            "| 2 | ❌ (cached) | a: 3, b: 5, expected: 15 | **has the product** (0.00): Expected to contain: '15' |\n"
        ),
        "the second case's answer came from the cache: {md}"
    );
    assert!(md.contains("| Provider | Latency p50 | Latency p95 |"), "{md}");
    assert!(
        md.contains(
            "| openai-compatible | 120 ms | 340 ms | 1.50 s | n/a | 24 | 6 | 85.2 | 40.0 | n/a | 1 | 2 | 1 | 3 | 1.23 s |\n"
        ),
        "{md}"
    );
}

#[test]
fn markdown_escapes_cells() {
    let md = render(|o| markdown(&[suite("nasty", vec![nasty()], vec![case(1.0, false)])], o));
    let row = md.lines().find(|l| l.starts_with("| 1 |")).expect("a row for the case");
    assert_eq!(cell_separators(row), 5, "{row}");
    assert!(
        row.contains("&lt;b&gt;&amp;\"quoted\" 'single'&lt;/b&gt; \\| pipe second line 🎉 \\u{1b}\\[31mred"),
        "{row}"
    );
    assert!(row.contains("**checks &lt;tags&gt; &amp; \\| pipes** (0.00): "), "{row}");
    assert!(row.contains("pipe<br>second line"), "{row}");
    assert!(!md.contains('\u{1b}'));
    for line in md.lines().filter(|l| l.starts_with('|')) {
        let header = md.lines().find(|h| h.starts_with("| # |")).expect("a header");
        if line.starts_with("| 1 |") {
            assert_eq!(cell_separators(line), cell_separators(header));
        }
    }
}

#[test]
fn markdown_of_an_empty_suite_passes() {
    let md = render(|o| markdown(&[empty()], o));
    assert!(md.starts_with("## ✅ gm eval: 0/0 tests passed (100.00%), 0 failed, 1 file\n"), "{md}");
    assert!(md.contains("Passed: 0/0 (100.00%)"), "{md}");
    assert!(md.contains("_No test cases._"), "{md}");
    assert!(md.contains("| openai-compatible | n/a | n/a | n/a |"), "{md}");
}

// ---- JSON ----

#[test]
fn json_is_one_object_for_one_file_and_an_array_for_several() {
    let one = render(|o| json(&[mixed()], o));
    assert!(one.starts_with("{\n  \"name\": \"arithmetic\",\n  \"description\""), "{one}");
    assert!(one.ends_with("}\n"));
    let value: Value = serde_json::from_str(&one).expect("valid JSON");
    let keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["name", "description", "model", "testResults", "summary", "gm"]);
    assert_eq!(
        value["summary"],
        json!({"totalTests": 3, "passedTests": 1, "failedTests": 2, "passRate": 1.0 / 3.0 * 100.0})
    );
    let back: EvaluationSummary = serde_json::from_value(value).expect("the summary reads back");
    assert_eq!(back, mixed());

    let two: Value = serde_json::from_str(&render(|o| json(&[mixed(), empty()], o))).expect("valid JSON");
    assert_eq!(two.as_array().map(Vec::len), Some(2));
    assert_eq!(two[1]["summary"]["passRate"], 100.0);
    assert_eq!(render(|o| json(&[], o)), "[]\n");
}

// ---- JSON Lines ----

#[test]
fn jsonl_line_has_the_keys_in_order() {
    let line = jsonl_line(&failing(), &case(120.5, false), "arith.prompt.yml", 2);
    assert!(!line.contains('\n'));
    let value: Value = serde_json::from_str(&line).expect("valid JSON");
    let keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["file", "index", "testCase", "modelResponse", "evaluationResults", "passed", "gm"]);
    assert_eq!(
        value,
        json!({
            "file": "arith.prompt.yml",
            "index": 2,
            "testCase": {"a": 3, "b": 5, "expected": "15"},
            "modelResponse": "The answer is 16, I think.\nYes.",
            "evaluationResults": [
                {"evaluatorName": "has the product", "score": 0.0, "passed": false, "details": "Expected to contain: '15'"},
                {"evaluatorName": "polite", "score": 1.0, "passed": true}
            ],
            "passed": false,
            "gm": {"latency_ms": 120.5, "tokens_in": 12, "tokens_out": 3, "cached": false, "judge_calls": 0}
        })
    );
}

#[test]
fn jsonl_line_round_trips_awkward_text_and_scores() {
    let mut t = nasty();
    t.evaluation_results[0].score = f64::NAN;
    let line = jsonl_line(&t, &case(1.0, true), "a \"file\".yml", 1);
    assert!(!line.contains('\n'));
    let value: Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!(value["modelResponse"], NASTY);
    assert_eq!(value["testCase"]["input"], NASTY);
    assert_eq!(value["file"], "a \"file\".yml");
    assert_eq!(value["evaluationResults"][0]["score"], Value::Null);
    assert_eq!(value["gm"]["cached"], true);
}

// ---- HTML ----

#[test]
fn html_is_self_contained_and_shows_every_case() {
    let summaries = [mixed(), suite("second", vec![passing()], vec![case(5.0, false)])];
    let page = render(|o| html(&summaries, o));
    let lower = page.to_ascii_lowercase();
    for bad in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "href=\"//",
        "src=\"//",
        "<script",
        "<link",
        "@import",
        "url(",
    ] {
        assert!(!lower.contains(bad), "{bad} in the page");
    }
    assert!(!lower.contains("http://") && !lower.contains("https://"));
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.trim_end().ends_with("</body></html>"));
    for (n, s) in summaries.iter().enumerate() {
        assert!(page.contains(&format!("<section id=\"suite-{}\">", n + 1)));
        for (i, r) in s.test_results.iter().enumerate() {
            assert!(page.contains(&format!("id=\"suite-{}-case-{}\"", n + 1, i + 1)), "case {} of {}", i + 1, s.name);
            let input = input_preview(&r.test_case)
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;")
                .replace('\u{1b}', "\\u{1b}");
            assert!(page.contains(&format!("<td>{input}</td>")), "input of case {}", i + 1);
        }
    }
    assert_eq!(page.matches("<details>").count(), 4);
    assert_eq!(page.matches("<svg").count(), 2);
    assert_eq!(page.matches("<rect").count(), 4);
    assert!(page.contains("2/4 tests passed (50.00%)"));
    assert!(page.contains("<td>Tokens/s per request</td><td class=\"num\">85.2</td>"));
}

#[test]
fn html_escapes_all_text() {
    let page = render(|o| html(&[suite("<script>alert(1)</script>", vec![nasty()], vec![case(1.0, false)])], o));
    assert!(!page.contains("<script"));
    assert!(!page.contains("<b>"));
    assert!(!page.contains('\u{1b}'));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page
        .contains("&lt;b&gt;&amp;&quot;quoted&quot; &#39;single&#39;&lt;/b&gt; | pipe\nsecond line 🎉 \\u{1b}[31mred"));
    assert!(page.contains("checks &lt;tags&gt; &amp; | pipes"));
}

#[test]
fn html_of_an_empty_suite_passes() {
    let page = render(|o| html(&[empty()], o));
    assert!(page.contains("0/0 tests passed (100.00%)"), "{page}");
    assert!(page.contains("No test cases."));
    assert!(!page.contains("<svg"));
}

// ---- writers ----

/// A writer that refuses every write.
struct Broken;

impl std::io::Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk full"))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_errors_are_returned_not_swallowed() {
    let s = [mixed()];
    assert_eq!(human(&s[0], &mut Broken).map_err(|e| e.to_string()), Err("disk full".to_string()));
    assert!(junit(&s, &mut Broken).is_err());
    assert!(markdown(&s, &mut Broken).is_err());
    assert!(html(&s, &mut Broken).is_err());
}

#[test]
fn renderers_take_a_dyn_writer() {
    let mut buffer = Vec::new();
    let out: &mut dyn std::io::Write = &mut buffer;
    human(&empty(), out).expect("a Vec takes every write");
    junit(&[empty()], out).expect("a Vec takes every write");
    assert!(!buffer.is_empty());
}

#[test]
fn junit_times_are_numbers_even_for_odd_figures() {
    let mut s = suite("odd", vec![passing()], vec![case(f64::NAN, false)]);
    s.gm.wall_ms = f64::INFINITY;
    let xml = render(|o| junit(&[s], o));
    let (elements, _) = parse_xml(&xml);
    for e in elements.iter().filter(|e| e.0 == "testsuite" || e.0 == "testcase" || e.0 == "testsuites") {
        assert_eq!(attr(e, "time"), "0.000", "{xml}");
    }
}

// ---- any text ----

proptest::proptest! {
    #[test]
    fn any_text_keeps_junit_well_formed(text in "\\PC{0,80}|[\\x00-\\x7f]{0,80}|.{0,80}") {
        let mut t = nasty();
        t.model_response = text.clone();
        t.test_case = row(json!({"input": text.clone()}));
        t.evaluation_results[0].details = Some(text.clone());
        let mut s = suite(&text, vec![t], vec![case(1.0, false)]);
        s.description = text.clone();
        let xml = render(|o| junit(&[s], o));
        proptest::prop_assert!(!xml.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t')));
        let (_, texts) = parse_xml(&xml);
        let visible: String = text
            .chars()
            .map(|c| if super::is_unsafe_control(c) { format!("\\u{{{:x}}}", c as u32) } else { c.to_string() })
            .collect();
        proptest::prop_assert_eq!(&texts[1], &visible);
    }

    #[test]
    fn any_text_stays_in_its_markdown_cell(text in "\\PC{0,80}|[\\x00-\\x7f]{0,80}|.{0,80}") {
        let mut t = nasty();
        t.test_case = row(json!({"input": text.clone()}));
        t.evaluation_results[0].evaluator_name = text.clone();
        t.evaluation_results[0].details = Some(text.clone());
        let md = render(|o| markdown(&[suite("any", vec![t], vec![case(1.0, false)])], o));
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| 1 |")).collect();
        proptest::prop_assert_eq!(rows.len(), 1);
        proptest::prop_assert_eq!(cell_separators(rows[0]), 5);
    }

    #[test]
    fn any_text_is_inert_in_html(text in "\\PC{0,80}|[\\x00-\\x7f]{0,80}|.{0,80}") {
        let mut t = nasty();
        t.model_response = text.clone();
        t.test_case = row(json!({"input": text.clone()}));
        let page = render(|o| html(&[suite(&text, vec![t], vec![case(1.0, false)])], o));
        // Every tag in the page is one the renderer wrote: no text can open an element.
        let tags: std::collections::BTreeSet<String> = page
            .split('<')
            .skip(1)
            .map(|t| t.split([' ', '>']).next().unwrap_or_default().to_string())
            .collect();
        for tag in &tags {
            let known = ["!DOCTYPE", "html", "/html", "head", "meta", "title", "/title", "style", "/style", "body",
                "/body", "h1", "/h1", "h2", "/h2", "p", "/p", "section", "/section", "code", "/code", "table",
                "/table", "tr", "/tr", "th", "/th", "td", "/td", "details", "/details", "summary", "/summary",
                "pre", "/pre", "svg", "/svg", "text", "/text", "rect", "rect/", "a", "/a", "/head"];
            proptest::prop_assert!(known.contains(&tag.as_str()), "unexpected tag {tag:?}");
        }
    }
}

// ---- bench page ----

#[test]
fn bench_page_draws_the_latency_distribution_and_the_baseline_chart() {
    let cell = |model: &str, e: EvaluationSummary| crate::bench::Cell {
        model: model.into(),
        task: "arithmetic".into(),
        metrics: crate::bench::cell_metrics(&e),
        evaluation: e,
    };
    let fast = suite("arithmetic", vec![passing(), failing()], vec![case(20.0, false), case(40.0, false)]);
    let slow = suite("arithmetic", vec![passing(), passing()], vec![case(300.0, false), case(0.0, true)]);
    let report = crate::bench::report(vec![cell("model-<a>", fast.clone()), cell("model-b", slow.clone())]);
    let finished = |e: &EvaluationSummary| -> crate::run::Finished {
        e.test_results.iter().cloned().zip(e.gm.cases.iter().cloned()).enumerate().map(|(i, x)| (i + 1, x)).collect()
    };
    let change = crate::compare::compare(&finished(&slow), &finished(&fast)).unwrap();
    let page = render(|o| bench_html(&report, &[("arithmetic".into(), "model-b".into(), change)], o));
    assert!(page.contains("Latency distribution per model") && page.contains("changes against the baseline"));
    // The box plot of model-b has its one sent call (the cached one took no time).
    assert!(page.contains("model-b: 1 calls; min 300"), "{page}");
    assert!(page.contains("model-&lt;a&gt;: 2 calls; min 20, p25 25, median 30"), "{page}");
    assert!(!page.contains("<script") && !page.contains("model-<a>"), "self-contained and escaped");
    assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    // Heat map, distribution, cells and baseline; these cells have no price, so no cost chart.
    assert_eq!(page.matches("<svg").count(), 4);
}

#[test]
fn bench_page_labels_each_cost_dot_with_its_task_and_names_the_unpriced_models() {
    let cell = |model: &str, task: &str, cost: Option<f64>| {
        let e = suite(task, vec![passing()], vec![case(20.0, false)]);
        let mut metrics = crate::bench::cell_metrics(&e);
        metrics.cost_usd = cost;
        crate::bench::Cell { model: model.into(), task: task.into(), metrics, evaluation: e }
    };
    let report = crate::bench::report(vec![
        cell("priced", "arithmetic", Some(0.002)),
        cell("priced", "summaries", Some(0.001)),
        cell("local-model", "arithmetic", None),
        cell("local-model", "summaries", None),
    ]);
    let page = render(|o| bench_html(&report, &[], o));
    let chart = page.split("<h2>Quality against cost</h2>").nth(1).unwrap().split("<h2>").next().unwrap();
    for task in ["arithmetic", "summaries"] {
        assert!(chart.contains(&format!(r##"fill="#57606a">{task}</text>"##)), "no label for {task}: {chart}");
    }
    assert_eq!(chart.matches("<title>").count(), 2, "one dot a priced cell: {chart}");
    assert!(!chart.contains(">local-model</text>"), "an unpriced model in the legend: {chart}");
    assert!(chart.contains("Left out for lack of a price: <code>local-model</code>"), "{chart}");
}

#[test]
fn every_report_of_a_demo_run_says_so_where_a_reader_looks() {
    let mut s = suite("arithmetic", vec![passing()], vec![case(120.0, false)]);
    s.gm.provider = "demo".into();
    let one = std::slice::from_ref(&s);
    let human_text = render(|o| human(&s, o));
    assert!(human_text.starts_with(&format!("{DEMO_NOTE}\n\nRunning evaluation: arithmetic\n")), "{human_text}");
    let md = render(|o| markdown(one, o));
    let headline_then_note = md.lines().take(3).collect::<Vec<_>>();
    assert_eq!(headline_then_note[2], format!("> **{DEMO_NOTE}**"), "{md}");
    let page = render(|o| html(one, o));
    assert!(page.contains("<title>gm eval: arithmetic (demo run)</title>"), "{page}");
    assert!(page.contains(&format!(r#"<p class="demo">{}</p>"#, html::esc(DEMO_NOTE))), "{page}");
    let xml = render(|o| junit(one, o));
    assert!(xml.contains(r#"<testsuite name="arithmetic [demo run]""#), "{xml}");
    assert!(xml.contains(r#"<property name="demo" value="DEMO RUN: "#), "{xml}");
    let json_text = render(|o| json(one, o));
    let v: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(v["gm"]["provider"], "demo");
    // A run on a real provider carries none of it.
    s.gm.provider = "openai-compatible".into();
    let one = std::slice::from_ref(&s);
    for text in
        [render(|o| human(&s, o)), render(|o| markdown(one, o)), render(|o| html(one, o)), render(|o| junit(one, o))]
    {
        assert!(!text.contains("DEMO RUN") && !text.contains("demo run"), "{text}");
    }
    let mut bench = crate::bench::report(vec![]);
    bench.provider = "demo".into();
    let page = render(|o| bench_html(&bench, &[], o));
    assert!(page.contains(r#"<p class="demo">"#), "{page}");
}
