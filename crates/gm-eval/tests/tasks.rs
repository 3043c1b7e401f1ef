//! The task catalog: the built-in tasks' data, user task folders, and running tasks on the demo provider.

use std::path::{Path, PathBuf};

use gm_core::ProviderKind;
use gm_eval::evaluators::{EvalOptions, EvaluatorSpec, Prepared};
use gm_eval::prompt::format_value;
use gm_eval::run::{EvalRunner, RunOptions};
use gm_eval::tasks::{builtin_names, builtin_tasks, catalog, placeholders, Task, TaskError};
use gm_testkit::TempDir;
use serde_json::Value;

const NAMES: [&str; 5] = ["text_generation", "question_answering", "summarization", "code_generation", "reasoning"];

fn all_builtins() -> Vec<Task> {
    NAMES
        .iter()
        .map(|n| match Task::try_builtin(n) {
            Some(Ok(task)) => task,
            Some(Err(e)) => panic!("built-in task {n} does not load: {e}"),
            None => panic!("no built-in task {n}"),
        })
        .collect()
}

fn text<'a>(item: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("item has no text `{key}`: {item:?}"))
}

#[test]
fn every_builtin_task_loads_with_at_least_25_items() {
    assert_eq!(builtin_names().collect::<Vec<_>>(), NAMES);
    let infos = builtin_tasks();
    assert_eq!(infos.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), NAMES);
    for (task, info) in all_builtins().iter().zip(&infos) {
        assert!(task.items.len() >= 25, "{} has {} items", task.name, task.items.len());
        assert!(task.items.iter().all(|i| i.contains_key("expected")), "{}: every item has a reference", task.name);
        assert_eq!(info.items, task.items.len());
        assert!(!task.description.is_empty() && !task.version.is_empty(), "{}", task.name);
        assert!(!info.scorers.is_empty(), "{}", task.name);
        assert_eq!(task.needs_code_execution, task.name == "code_generation", "{}", task.name);
        assert_eq!(info.needs_code_execution, task.needs_code_execution);
    }
    assert!(Task::builtin("no_such_task").is_none());
}

#[test]
fn every_item_fills_every_placeholder() {
    for task in all_builtins() {
        let vars: Vec<String> = task.messages.iter().flat_map(|m| placeholders(&m.content)).collect();
        assert!(!vars.is_empty(), "{} has a template with no placeholder", task.name);
        let file = task.to_prompt_file("openai/gpt-4o-mini", None);
        for (i, item) in task.items.iter().enumerate() {
            for message in file.render_messages(item) {
                assert!(!message.text().contains("{{"), "{} item {}: {}", task.name, i + 1, message.text());
            }
            for var in &vars {
                let value = item.get(var).map(format_value).unwrap_or_default();
                assert!(!value.trim().is_empty(), "{} item {} has an empty `{var}`", task.name, i + 1);
            }
        }
    }
}

#[test]
fn every_evaluator_parses_and_scorers_are_the_documented_ones() {
    let scorers = |name: &str| {
        let task = Task::builtin(name).unwrap_or_else(|| panic!("{name}"));
        assert!(EvaluatorSpec::parse_all(&task.evaluators).is_ok(), "{name}");
        task.evaluators
            .iter()
            .flat_map(|e| e.as_object().into_iter().flat_map(|m| m.keys().cloned()))
            .collect::<Vec<_>>()
    };
    let has = |keys: &[String], k: &str| keys.iter().any(|x| x == k);
    let qa = scorers("question_answering");
    assert!(has(&qa, "squad_em") && has(&qa, "squad_f1"));
    let sum = scorers("summarization");
    assert!(has(&sum, "rougeL") && has(&sum, "rougeLsum") && has(&sum, "uses"));
    assert!(has(&scorers("reasoning"), "numeric_match"));
    let tg = scorers("text_generation");
    assert!(has(&tg, "uses") && has(&tg, "regex"));
    let code = Task::builtin("code_generation").unwrap_or_else(|| panic!("code_generation"));
    let exec = code.execution.as_ref().unwrap_or_else(|| panic!("code_generation has no execute scorer"));
    assert_eq!((exec.language.as_str(), exec.tests_key.as_str(), exec.k), ("python", "tests", 1));
    assert!(code.evaluators.iter().all(|e| e.get("execute").is_none()), "the runner must not see `execute`");
    assert!(code.info().scorers.contains(&"pass@1".to_string()));
}

/// Evaluates `+ - * /` with parentheses and unary minus: enough to recompute the reasoning items.
fn eval(expr: &str) -> f64 {
    fn sum(s: &[u8], i: &mut usize) -> f64 {
        let mut v = product(s, i);
        while *i < s.len() && (s[*i] == b'+' || s[*i] == b'-') {
            let op = s[*i];
            *i += 1;
            let r = product(s, i);
            v = if op == b'+' { v + r } else { v - r };
        }
        v
    }
    fn product(s: &[u8], i: &mut usize) -> f64 {
        let mut v = atom(s, i);
        while *i < s.len() && (s[*i] == b'*' || s[*i] == b'/') {
            let op = s[*i];
            *i += 1;
            let r = atom(s, i);
            v = if op == b'*' { v * r } else { v / r };
        }
        v
    }
    fn atom(s: &[u8], i: &mut usize) -> f64 {
        match s[*i] {
            b'-' => {
                *i += 1;
                -atom(s, i)
            }
            b'(' => {
                *i += 1;
                let v = sum(s, i);
                assert_eq!(s[*i], b')');
                *i += 1;
                v
            }
            _ => {
                let start = *i;
                while *i < s.len() && (s[*i].is_ascii_digit() || s[*i] == b'.') {
                    *i += 1;
                }
                std::str::from_utf8(&s[start..*i])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("bad number"))
            }
        }
    }
    let s: Vec<u8> = expr.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut i = 0;
    let v = sum(&s, &mut i);
    assert_eq!(i, s.len(), "trailing input in {expr}");
    v
}

#[test]
fn reasoning_answers_are_numerically_consistent() {
    let task = Task::builtin("reasoning").unwrap_or_else(|| panic!("reasoning"));
    for item in &task.items {
        let expected: f64 = text(item, "expected").parse().unwrap_or_else(|_| panic!("not a number: {item:?}"));
        let check = text(item, "check");
        let computed = eval(check);
        assert!((computed - expected).abs() < 1e-9, "{check} = {computed}, but expected is {expected}");
    }
    assert_eq!(eval("-4+3*7"), 17.0);
    assert_eq!(eval("(52/4)*(52/4)"), 169.0);
}

#[test]
fn question_answering_answers_are_spans_of_their_passages() {
    let task = Task::builtin("question_answering").unwrap_or_else(|| panic!("question_answering"));
    for item in &task.items {
        let (context, expected) = (text(item, "context"), text(item, "expected"));
        assert!(context.contains(expected), "`{expected}` is not in: {context}");
    }
}

#[test]
fn code_generation_items_have_tests_for_their_entry_point() {
    let task = Task::builtin("code_generation").unwrap_or_else(|| panic!("code_generation"));
    for item in &task.items {
        let name = text(item, "entry_point");
        assert!(text(item, "signature").starts_with(&format!("{name}(")), "{item:?}");
        assert!(text(item, "expected").contains(&format!("def {name}(")), "{item:?}");
        let tests = item.get("tests").and_then(Value::as_array).unwrap_or_else(|| panic!("{item:?}"));
        assert!(tests.iter().all(|t| t.as_str().is_some_and(|t| t.starts_with("assert ") && t.contains(name))));
    }
}

/// Each task's non-judge scorers pass the reference answer, and a non-answer fails at least one of them.
#[test]
fn scorers_pass_the_reference_answer() {
    let options = EvalOptions::default();
    for task in all_builtins() {
        let specs = EvaluatorSpec::parse_all(&task.evaluators).unwrap_or_else(|e| panic!("{}: {e}", task.name));
        for item in &task.items {
            let reference = match task.name.as_str() {
                "code_generation" => format!("```python\n{}\n```", text(item, "expected")),
                _ => text(item, "expected").to_string(),
            };
            for spec in &specs {
                match spec.prepare(item, &reference, &options) {
                    Ok(Prepared::Done(r)) => {
                        assert!(r.passed, "{}: {} fails the reference {reference}", task.name, spec.name)
                    }
                    Ok(Prepared::Judge(_)) => {}
                    Err(e) => panic!("{}: {e}", task.name),
                }
            }
            let non_answer_fails = specs.iter().any(
                |spec| matches!(spec.prepare(item, "I do not know.", &options), Ok(Prepared::Done(r)) if !r.passed),
            );
            assert!(non_answer_fails, "{}: a non-answer passes every scorer that needs no judge", task.name);
        }
    }
}

#[test]
fn text_generation_format_checks() {
    let task = Task::builtin("text_generation").unwrap_or_else(|| panic!("text_generation"));
    let specs = EvaluatorSpec::parse_all(&task.evaluators).unwrap_or_else(|e| panic!("{e}"));
    let item = &task.items[0];
    let keyword = text(item, "keyword");
    let good = format!("{} {keyword}.", "word ".repeat(50));
    let short = format!("Only a few words about {keyword}.");
    let listed = format!("- {}{keyword}", "word ".repeat(50));
    let options = EvalOptions::default();
    let passes = |answer: &str| -> Vec<bool> {
        specs
            .iter()
            .filter_map(|s| match s.prepare(item, answer, &options) {
                Ok(Prepared::Done(r)) => Some(r.passed),
                _ => None,
            })
            .collect()
    };
    assert_eq!(passes(&good), [true, true, true]);
    assert_eq!(passes(&short), [false, true, true]);
    assert_eq!(passes(&listed), [true, true, false]);
    assert_eq!(passes(&"word ".repeat(60)), [true, false, true]);
}

fn scratch(label: &str) -> TempDir {
    TempDir::new(&format!("eval-tasks-{label}"))
}

fn write_task(dir: &Path, folder: &str, yaml: &str, data: &str) -> PathBuf {
    let f = dir.join(folder);
    std::fs::create_dir_all(&f).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(f.join("task.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(f.join("data.jsonl"), data).unwrap_or_else(|e| panic!("{e}"));
    f
}

const CAPITALS_YAML: &str = r#"description: Capital cities
version: 2
modelParameters: {maxTokens: 20, temperature: 0}
messages:
  - role: system
    content: Answer with the city name only.
  - role: user
    content: "What is the capital of {{country}}?"
evaluators:
  - name: names the city
    string: {contains: "{{expected}}"}
  - squad_f1: {min: 0.5}
"#;
const CAPITALS_DATA: &str = "{\"country\": \"France\", \"expected\": \"Paris\"}\n\n{\"country\": \"Japan\", \"expected\": \"Tokyo\"}\n{\"country\": \"Kenya\", \"expected\": \"Nairobi\"}\n";

#[test]
fn a_user_task_dir_round_trips() {
    let dir = scratch("roundtrip");
    write_task(&dir, "capitals", CAPITALS_YAML, CAPITALS_DATA);
    write_task(
        &dir,
        "b_second",
        "name: second\nmessages: [{role: user, content: '{{q}}'}]\nevaluators: [{regex: x}]\n",
        "{\"q\": \"hi\"}\n",
    );
    std::fs::create_dir_all(dir.join("not_a_task")).unwrap_or_else(|e| panic!("{e}"));
    let tasks = Task::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tasks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["second", "capitals"]);
    let t = &tasks[1];
    assert_eq!((t.description.as_str(), t.version.as_str(), t.items.len()), ("Capital cities", "2", 3));
    assert_eq!(t.model_parameters.max_tokens, Some(20));
    assert!(!t.needs_code_execution);
    assert_eq!(t.info().scorers, ["names the city", "squad_f1"]);
    let file = t.to_prompt_file("openai/gpt-4o", Some(2));
    assert_eq!(file.test_data.len(), 2);
    assert_eq!(file.evaluators, t.evaluators);
    assert_eq!(
        file.to_request("openai/gpt-4o", &file.test_data[1]).messages[1].text(),
        "What is the capital of Japan?"
    );
    assert_eq!(t.to_prompt_file("m", Some(99)).test_data.len(), 3);
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
}

/// Loads a broken task; returns the paths of its two files and the error.
fn load_error(yaml: &str, data: &str) -> ((String, String), TaskError) {
    let dir = scratch("bad");
    let folder = write_task(&dir, "broken", yaml, data);
    let error = Task::load_dir(&dir).expect_err("the task must not load");
    let _ = std::fs::remove_dir_all(&dir);
    let path = |f: &str| folder.join(f).display().to_string();
    ((path("task.yaml"), path("data.jsonl")), error)
}

#[test]
fn malformed_user_files_name_the_file_and_line() {
    let ((_, data), e) =
        load_error(CAPITALS_YAML, "{\"country\": \"France\", \"expected\": \"Paris\"}\n{\"country\": \"Japan\",\n");
    let msg = e.to_string();
    assert!(matches!(e, TaskError::Item { line: 2, .. }), "{msg}");
    assert!(msg.starts_with(&format!("{data}:2: not valid JSON")), "{msg}");

    let (_, e) = load_error(CAPITALS_YAML, "{\"country\": \"France\", \"expected\": \"Paris\"}\n[1, 2]\n");
    assert!(e.to_string().contains("data.jsonl:2: each line must be a JSON object"), "{e}");

    let (_, e) =
        load_error(CAPITALS_YAML, "{\"country\": \"France\", \"expected\": \"Paris\"}\n\n{\"expected\": \"Tokyo\"}\n");
    assert!(e.to_string().contains("data.jsonl:3: the item has no `country`"), "{e}");

    let (_, e) = load_error(CAPITALS_YAML, "{\"country\": \"France\"}\n");
    assert!(e.to_string().contains("data.jsonl:1: the item has no `expected`"), "{e}");

    let ((yaml, _), e) = load_error("messages:\n  - role: user\n    content: [unclosed\n", CAPITALS_DATA);
    assert!(matches!(e, TaskError::Syntax { line: 3, .. }), "{e}");
    assert!(e.to_string().starts_with(&format!("{yaml}:3:")), "{e}");

    let (_, e) = load_error("messages: [{role: user, content: x}]\nevaluatorz: []\n", CAPITALS_DATA);
    assert!(e.to_string().contains("task.yaml:") && e.to_string().contains("evaluatorz"), "{e}");

    let (_, e) =
        load_error("messages: [{role: user, content: x}]\nevaluators: [{name: close, rougeL: {}}]\n", CAPITALS_DATA);
    assert!(matches!(e, TaskError::Evaluator { .. }));
    assert!(
        e.to_string().contains("task.yaml: ") && e.to_string().contains("`close`") && e.to_string().contains("min"),
        "{e}"
    );

    let (_, e) =
        load_error("messages: [{role: user, content: x}]\nevaluators: [{execute: {language: ruby}}]\n", CAPITALS_DATA);
    assert!(e.to_string().contains("only python is supported"), "{e}");

    let (_, e) = load_error(
        "messages: [{role: user, content: x}]\nevaluators: [{execute: {language: python}}]\n",
        CAPITALS_DATA,
    );
    assert!(e.to_string().contains("data.jsonl:1: `tests` must be a non-empty list"), "{e}");

    let (_, e) = load_error("messages: [{role: user, content: x}]\n", CAPITALS_DATA);
    assert!(e.to_string().contains("no `evaluators`"), "{e}");

    let yaml = "messages: [{role: user, content: x}]\nevaluators: [{regex: '^{{city}}$'}]\n";
    let (_, e) = load_error(yaml, CAPITALS_DATA);
    assert!(e.to_string().contains("data.jsonl:1: the item has no `city`"), "{e}");

    let (_, e) = load_error(&format!("name: two words\n{CAPITALS_YAML}"), CAPITALS_DATA);
    assert!(e.to_string().contains("task.yaml: the task name `two words` is not allowed"), "{e}");

    let (_, e) = load_error(CAPITALS_YAML, "\n");
    assert!(e.to_string().contains("data.jsonl: the dataset is empty"), "{e}");

    let dir = scratch("empty");
    let e = Task::load_dir(&dir).expect_err("an empty dir holds no task");
    assert!(e.to_string().contains("holds no task"), "{e}");
    let e = Task::load_dir(&dir.join("missing")).expect_err("a missing dir");
    assert!(matches!(e, TaskError::Read { .. }) && e.to_string().contains("missing"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_user_task_with_an_execute_scorer_needs_code_execution() {
    let dir = scratch("exec");
    write_task(
        &dir,
        "add",
        "messages: [{role: user, content: 'Write add(a, b) for {{hint}}'}]\nevaluators:\n  - {name: pass@2, execute: {language: python, k: 2}}\n",
        "{\"hint\": \"ints\", \"tests\": [\"assert add(1, 2) == 3\"]}\n",
    );
    let tasks = Task::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let t = &tasks[0];
    assert_eq!(t.name, "add");
    assert!(t.needs_code_execution && t.evaluators.is_empty());
    let exec = t.execution.as_ref().unwrap_or_else(|| panic!("no execution"));
    assert_eq!((exec.k, exec.timeout_seconds, exec.memory_mb, exec.name.as_str()), (2, 10, 256, "pass@2"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_builtin_task_runs_on_the_demo_provider() {
    let client = gm_http::Client::builder().provider(ProviderKind::Demo).build().unwrap_or_else(|e| panic!("{e}"));
    let runner = EvalRunner::new(client, RunOptions::default());
    // The code task runs too: the runner applies its other scorers and leaves `execute` to a sandbox.
    for task in all_builtins() {
        let file = task.to_prompt_file("openai/gpt-4o-mini", Some(3));
        let summary = runner.run(&file).await.unwrap_or_else(|e| panic!("{}: {e}", task.name));
        assert_eq!(summary.test_results.len(), 3, "{}", task.name);
        assert_eq!(summary.name, task.name);
    }
}

/// The text of the fenced block that follows `label` in `doc`.
fn block_after<'d>(doc: &'d str, label: &str) -> &'d str {
    let start = doc.find(label).unwrap_or_else(|| panic!("no {label}"));
    let rest = &doc[start..];
    let open = rest.find("```").unwrap_or_else(|| panic!("no block after {label}"));
    let body = &rest[open..];
    let body = &body[body.find('\n').unwrap_or(0) + 1..];
    &body[..body.find("```").unwrap_or_else(|| panic!("unclosed block after {label}"))]
}

#[test]
fn the_example_in_adding_a_task_loads() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/adding-a-task.md"))
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = scratch("doc");
    write_task(
        &dir,
        "capitals",
        block_after(&doc, "`my-tasks/capitals/task.yaml`:"),
        block_after(&doc, "`my-tasks/capitals/data.jsonl`:"),
    );
    let tasks = Task::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tasks[0].name, "capitals");
    assert_eq!(tasks[0].items.len(), 4);
    assert_eq!(tasks[0].info().scorers, ["names the city", "exact answer", "relevant"]);
    let _ = std::fs::remove_dir_all(&dir);

    // The error messages the page shows.
    let ((yaml, _), e) = load_error("messages:\n  - role: user\n    content: x\n  - role: system\n", CAPITALS_DATA);
    let shown = "messages[1]: missing field `content` at line 4 column 5; see docs/adding-a-task.md for the format";
    assert_eq!(e.to_string(), format!("{yaml}:4:5: {shown}"));
    let ((yaml, _), e) = load_error(
        "messages: [{role: user, content: x}]\nevaluators: [{regex: x}, {name: close enough, rougeL: {}}]\n",
        CAPITALS_DATA,
    );
    let shown = "evaluator `close enough` (evaluators[1]): `rougeL` needs a passing threshold `min` in [0, 1], e.g. `rougeL: {min: 0.4}`";
    assert_eq!(e.to_string(), format!("{yaml}: {shown}"));
    assert!(doc.contains(shown));
}

#[test]
fn the_catalog_adds_user_tasks_after_the_builtins_and_refuses_a_builtin_name() {
    let names = |tasks: Vec<Task>| tasks.into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert_eq!(names(catalog(None).unwrap_or_else(|e| panic!("{e}"))), NAMES);
    let dir = scratch("catalog");
    write_task(&dir, "capitals", CAPITALS_YAML, CAPITALS_DATA);
    let all = names(catalog(Some(&dir)).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(all.len(), 6);
    assert_eq!(all[5], "capitals");
    write_task(&dir, "mine", &format!("name: reasoning\n{CAPITALS_YAML}"), CAPITALS_DATA);
    let e = catalog(Some(&dir)).expect_err("a user task named like a built-in");
    assert!(
        e.to_string().contains("named `reasoning`, which is a built-in task; give the user task another name"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metric_choices_narrow_a_task_to_its_chosen_scorers() {
    use gm_eval::tasks::{select_scorers, MetricChoice};
    let choose = |list: &[&str]| list.iter().map(|c| MetricChoice::parse(c).unwrap()).collect::<Vec<_>>();

    // A scorer by name, case ignored; a threshold replaces the metric scorer's own.
    let summarization = Task::builtin("summarization").unwrap();
    let (graded, applied) = summarization.with_metrics(&choose(&["rouge-l:0.9", "Coherence", "pass@1"])).unwrap();
    assert_eq!(graded.info().scorers, ["ROUGE-L", "coherence"]);
    assert_eq!(applied, [true, true, false]);
    assert_eq!(graded.evaluators[0]["rougeL"]["min"], 0.9);
    // The threshold makes a difference: the reference summary scores 1, a partial one below 0.9.
    let specs = EvaluatorSpec::parse_all(&graded.evaluators).unwrap();
    let item = &graded.items[0];
    let half: String = text(item, "expected").split(' ').take(8).collect::<Vec<_>>().join(" ");
    match specs[0].prepare(item, &half, &EvalOptions::default()).unwrap() {
        Prepared::Done(r) => assert!(!r.passed && r.score < 0.9, "{r:?}"),
        Prepared::Judge(_) => panic!("ROUGE needs no judge"),
    }

    // The code-execution scorer stays only when chosen; without it no code runs.
    let code = Task::builtin("code_generation").unwrap();
    let (only_exec, _) = code.with_metrics(&choose(&["pass@1"])).unwrap();
    assert!(only_exec.needs_code_execution && only_exec.evaluators.is_empty());
    let (no_exec, _) = code.with_metrics(&choose(&["chrf"])).unwrap();
    assert!(!no_exec.needs_code_execution && no_exec.execution.is_none());
    assert_eq!(no_exec.evaluators[0]["chrf"]["min"], gm_eval::tasks::DEFAULT_METRIC_MIN);
    assert_eq!(no_exec.evaluators[0]["chrf"]["referenceKey"], "expected");

    // A threshold on a judge, and a task none of whose scorers was chosen, are refused with the fix.
    let e = summarization.with_metrics(&choose(&["coherence:0.5"])).unwrap_err();
    assert!(e.contains("not a metric and takes no threshold"), "{e}");
    let e = select_scorers("reasoning", &Task::builtin("reasoning").unwrap().evaluators, None, &choose(&["fluency"]))
        .unwrap_err();
    assert!(e.contains("its own scorers are final answer"), "{e}");
    assert!(MetricChoice::parse(":0.5").is_err() && MetricChoice::parse("bleu:x").is_err());
}
