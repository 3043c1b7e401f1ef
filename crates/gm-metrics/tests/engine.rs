//! The `gm score` engine: input and output shape, order, errors and corpus scores.

use gm_metrics::score_file::{score_jsonl, ScoreFileOptions, ScoreSummary};
use gm_metrics::{Error, Metric};
use serde_json::Value;

fn run(input: &str, metrics: &str, threads: usize) -> Result<(Vec<Value>, ScoreSummary), Error> {
    let mut options = ScoreFileOptions::new(Metric::parse_list(metrics)?);
    options.threads = threads;
    options.corpus = true;
    let mut out = Vec::new();
    let summary = score_jsonl(input.as_bytes(), &mut out, &options)?;
    let text = String::from_utf8(out).unwrap();
    let lines = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    Ok((lines, summary))
}

fn many_lines(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"id\": {i}, \"prediction\": \"answer {i} is {}\", \"references\": [\"answer {i} is {}\"]}}\n",
                i % 7,
                i % 5
            )
        })
        .collect()
}

#[test]
fn output_follows_input_order_with_the_requested_keys() {
    let input = many_lines(300);
    for threads in [1, 2, 3] {
        let (lines, summary) = run(&input, "squad_em,bleu,rougeL", threads).unwrap();
        assert_eq!(summary.cases, 300);
        assert_eq!(lines.len(), 300);
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line["id"], i);
            let keys: Vec<&String> = line["scores"].as_object().unwrap().keys().collect();
            assert_eq!(keys, ["squad_em", "bleu", "rougeL"]);
            let em = line["scores"]["squad_em"].as_f64().unwrap();
            assert_eq!(em, if i % 7 == i % 5 { 1.0 } else { 0.0 }, "line {i}");
        }
    }
}

#[test]
fn threads_give_the_same_output_and_corpus_scores() {
    let input = many_lines(500);
    let (one, s1) = run(&input, "bleu,chrf,rouge2", 1).unwrap();
    let (two, s2) = run(&input, "bleu,chrf,rouge2", 2).unwrap();
    assert_eq!(one, two);
    assert_eq!(s1, s2);
}

#[test]
fn a_single_reference_string_is_accepted() {
    let input = r#"{"id": "x", "prediction": "Paris", "reference": "paris"}"#;
    let (lines, _) = run(input, "squad_em,equals", 1).unwrap();
    assert_eq!(lines[0]["scores"]["squad_em"], 1.0);
    assert_eq!(lines[0]["scores"]["equals"], 0.0);
}

#[test]
fn ids_of_any_json_type_are_copied() {
    let input = "{\"id\": {\"task\": 3}, \"prediction\": \"a\", \"references\": [\"a\"]}\n\
                 {\"id\": null, \"prediction\": \"a\", \"references\": [\"a\"]}\n";
    let (lines, _) = run(input, "equals", 1).unwrap();
    assert_eq!(lines[0]["id"]["task"], 3);
    assert_eq!(lines[1]["id"], Value::Null);
}

#[test]
fn blank_lines_and_crlf_endings_are_tolerated() {
    let input = "\r\n{\"id\": 1, \"prediction\": \"a\", \"references\": [\"a\"]}\r\n\n   \n";
    let (lines, summary) = run(input, "equals", 1).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(summary.cases, 1);
}

fn line_error(input: &str, metrics: &str, threads: usize) -> (u64, String) {
    match run(input, metrics, threads) {
        Err(Error::MalformedLine { line, reason }) => (line, reason),
        other => panic!("expected a malformed line, got {other:?}"),
    }
}

#[test]
fn malformed_line_error_names_the_line() {
    let mut input = many_lines(3);
    input.push_str("{\"id\": 4, \"prediction\": \"a\", \"references\": [\"a\"\n");
    let (line, reason) = line_error(&input, "bleu", 1);
    assert_eq!(line, 4);
    assert!(reason.contains("expected a JSON object"), "{reason}");
    assert!(reason.starts_with("column ") && !reason.contains("line 1"), "{reason}");
    let message = Error::MalformedLine { line, reason }.to_string();
    assert!(message.starts_with("line 4: "), "{message}");
}

#[test]
fn an_array_line_is_not_read_as_a_case() {
    let mut input = many_lines(2);
    input.push_str("[\"a\", \"x\", [\"x\"], null]\n");
    let (line, reason) = line_error(&input, "equals", 1);
    assert_eq!(line, 3);
    assert!(reason.contains("not a JSON object"), "{reason}");
}

#[test]
fn malformed_line_is_found_by_any_thread() {
    let mut input = many_lines(400);
    input.push_str("not json\n");
    input.push_str(&many_lines(10));
    for threads in [1, 2] {
        assert_eq!(line_error(&input, "bleu", threads).0, 401);
    }
}

#[test]
fn missing_fields_are_errors() {
    let cases = [
        (r#"{"prediction": "a", "references": ["a"]}"#, "id"),
        (r#"{"id": 1, "references": ["a"]}"#, "prediction"),
        (r#"{"id": 1, "prediction": "a"}"#, "references"),
        (r#"{"id": 1, "prediction": "a", "references": [1]}"#, "expected a JSON object"),
        (r#"{"id": 1, "prediction": "a", "references": ["a"], "reference": "a"}"#, "give one of them"),
        (r#"[1, 2]"#, "expected a JSON object"),
    ];
    for (input, needle) in cases {
        let (line, reason) = line_error(input, "bleu", 1);
        assert_eq!(line, 1);
        assert!(reason.contains(needle), "{input}: {reason}");
    }
}

#[test]
fn invalid_utf8_is_an_error_naming_the_line() {
    let mut input = many_lines(1).into_bytes();
    input.extend_from_slice(b"{\"id\": 2, \"prediction\": \"\xff\", \"references\": [\"a\"]}\n");
    let options = ScoreFileOptions::new(vec![Metric::Bleu]);
    match score_jsonl(&input[..], &mut Vec::new(), &options) {
        Err(Error::MalformedLine { line: 2, reason }) => assert!(reason.contains("UTF-8"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_pattern_or_schema_is_an_error_naming_the_line() {
    let input = "{\"id\": 1, \"prediction\": \"a\", \"references\": [\"a+\"]}\n\
                 {\"id\": 2, \"prediction\": \"a\", \"references\": [\"(\"]}\n";
    let (line, reason) = line_error(input, "regex_match", 1);
    assert_eq!(line, 2);
    assert!(reason.contains("invalid regular expression"), "{reason}");
    let input = "{\"id\": 1, \"prediction\": \"{}\", \"references\": [\"{\\\"type\\\": 5}\"]}\n";
    let (line, reason) = line_error(input, "json_schema", 1);
    assert_eq!(line, 1);
    assert!(reason.contains("invalid JSON schema"), "{reason}");
}

#[test]
fn checks_run_through_the_engine() {
    let input = concat!(
        r#"{"id": 1, "prediction": "{\"name\": \"x\"}", "references": ["{\"type\": \"object\", \"required\": [\"name\"]}"]}"#,
        "\n",
        r#"{"id": 2, "prediction": "[1, 2]", "references": ["{\"type\": \"object\"}"]}"#,
        "\n"
    );
    let (lines, _) = run(input, "json_schema,json_valid", 1).unwrap();
    assert_eq!(lines[0]["scores"]["json_schema"], 1.0);
    assert_eq!(lines[0]["scores"]["json_valid"], 1.0);
    assert_eq!(lines[1]["scores"]["json_schema"], 0.0);
    assert_eq!(lines[1]["scores"]["json_valid"], 1.0);

    let input = r#"{"id": 1, "prediction": "The total is $1,250.", "references": ["\\$1,250"]}"#;
    let (lines, _) = run(input, "numeric_match,regex_match,contains,json_valid", 1).unwrap();
    assert_eq!(lines[0]["scores"]["numeric_match"], 1.0);
    assert_eq!(lines[0]["scores"]["regex_match"], 1.0);
    assert_eq!(lines[0]["scores"]["contains"], 0.0);
    assert_eq!(lines[0]["scores"]["json_valid"], 0.0);
}

#[test]
fn unknown_metric_is_an_error_listing_valid_names() {
    let err = Metric::parse_list("bleu,rougeX").unwrap_err();
    assert!(matches!(err, Error::UnknownMetric { ref name, .. } if name == "rougeX"));
    let message = err.to_string();
    assert!(message.contains("rougeLsum") && message.contains("gm score --list"), "{message}");
    assert!(matches!(Metric::parse_list(" , "), Err(Error::NoMetrics)));
    let options = ScoreFileOptions::new(Vec::new());
    assert!(matches!(score_jsonl(&b""[..], &mut Vec::new(), &options), Err(Error::NoMetrics)));
}

#[test]
fn corpus_scores_cover_every_line() {
    let input = many_lines(50);
    let (_, summary) = run(&input, "rouge1", 1).unwrap();
    let corpus = summary.corpus.unwrap();
    assert!(corpus.bleu > 0.0 && corpus.bleu < 1.0);
    assert!(corpus.chrf > 0.0 && corpus.chrf < 1.0);
    assert_eq!(corpus.bleu_signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0");
    let empty = run("", "rouge1", 1).unwrap().1;
    assert_eq!(empty.cases, 0);
    assert_eq!(empty.corpus.unwrap().bleu, 0.0);
}

#[test]
fn a_line_over_the_cap_is_refused_without_being_read_whole() {
    use gm_metrics::score_file::MAX_LINE_BYTES;
    // A reader that yields an endless line: the engine must stop at the cap rather than gather it.
    struct Endless(u64);
    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b'x');
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
    }
    let mut input = many_lines(2).into_bytes();
    input.extend_from_slice(b"{\"id\": 3, \"prediction\": \"");
    let mut reader = std::io::BufReader::new(std::io::Read::chain(&input[..], Endless(0)));
    let options = ScoreFileOptions::new(vec![Metric::Bleu]);
    match score_jsonl(&mut reader, &mut Vec::new(), &options) {
        Err(Error::MalformedLine { line: 3, reason }) => assert!(reason.contains("longer than 4 MiB"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let read = reader.into_inner().into_inner().1 .0;
    assert!(read <= MAX_LINE_BYTES as u64 + (64 << 10), "read {read} bytes of the line");
    // A line at the cap is scored.
    let at_cap = format!("{{\"id\": 1, \"prediction\": \"{}\", \"references\": [\"a\"]}}\n", "a ".repeat(1 << 20));
    assert!(at_cap.len() <= MAX_LINE_BYTES);
    run(&at_cap, "equals", 1).unwrap();
}
