//! Prompt files are untrusted input: size and nesting are checked before the YAML parser sees the text, and
//! a file of the wrong shape says what a prompt file is.

use gm_eval::prompt::{PromptError, PromptFile, MAX_PROMPT_FILE_BYTES, MAX_PROMPT_FILE_DEPTH};

fn err(text: &str) -> String {
    PromptFile::parse(text, "x.prompt.yml").unwrap_err().to_string()
}

#[test]
fn deep_flow_nesting_is_refused_before_parsing() {
    // 200k nested brackets (a 400 KB file) did not finish parsing in two minutes.
    let text = format!("messages: {}{}", "[".repeat(200_000), "]".repeat(200_000));
    let e = PromptFile::parse(&text, "deep.prompt.yml").unwrap_err();
    assert!(matches!(e, PromptError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("nests 200001 levels deep"), "{e}");
}

#[test]
fn deep_block_nesting_is_refused_before_parsing() {
    let mut text = String::from("testData:\n");
    for i in 0..100 {
        text.push_str(&" ".repeat(2 * (i + 1)));
        text.push_str("- \n");
    }
    assert!(err(&text).contains("levels deep"), "{}", err(&text));
    let mut text = String::from("testData:\n");
    for i in 0..100 {
        text.push_str(&" ".repeat(i + 1));
        text.push_str(&format!("k{i}:\n"));
    }
    assert!(err(&text).contains("levels deep"), "{}", err(&text));
}

#[test]
fn an_ordinary_file_is_well_within_the_depth_limit() {
    let text = r#"
name: nested but fine # a [comment with [brackets
model: openai/gpt-4.1
messages:
  - role: system
    content: 'Answer with [A] or [B] {and nothing else'
  - role: user
    content: "{{question}} ["
testData:
  - question: "[[[["
    expected: {a: [1, [2, [3]]]}
evaluators:
  - name: has answer
    string:
      contains: "{{expected}}"
"#;
    let file = PromptFile::parse(text, "fine.prompt.yml").unwrap();
    assert_eq!(file.test_data.len(), 1);
    // The deepest file the limit allows parses.
    let at_limit = format!(
        "name: x\nmessages: []\ntestData:\n  - a: {}{}\n",
        "[".repeat(MAX_PROMPT_FILE_DEPTH - 3),
        "]".repeat(MAX_PROMPT_FILE_DEPTH - 3)
    );
    PromptFile::parse(&at_limit, "limit.prompt.yml").unwrap();
}

#[test]
fn a_file_over_the_size_limit_is_refused_without_being_read_whole() {
    let dir = gm_testkit::TempDir::new("prompt-size");
    let path = dir.path().join("big.prompt.yml");
    let row = "  - question: what is one plus one\n";
    let rows = (MAX_PROMPT_FILE_BYTES as usize / row.len()) + 10;
    std::fs::write(&path, format!("name: big\nmessages: []\ntestData:\n{}", row.repeat(rows))).unwrap();
    let e = PromptFile::load(&path).unwrap_err();
    assert!(matches!(e, PromptError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("larger than 4 MiB") && e.to_string().contains("split"), "{e}");
}

#[test]
fn an_empty_file_or_a_list_says_what_a_prompt_file_is() {
    for text in ["", "\n# only a comment\n", "---\n"] {
        let e = err(text);
        assert!(e.contains("the file is empty") && e.contains("mapping of keys"), "{text:?}: {e}");
    }
    let e = err("- role: user\n  content: hi\n");
    assert!(e.contains("is a list, not a mapping"), "{e}");
    let e = err("just a sentence");
    assert!(e.contains("mapping of keys") && !e.contains("RawPromptFile"), "{e}");
}

#[test]
fn a_task_folder_has_the_same_limits() {
    use gm_eval::tasks::{Task, TaskError, MAX_TASK_DATA_BYTES};
    let data = "{\"input\": \"a\", \"reference\": \"a\"}\n";
    // A deeply nested task.yaml is refused before the YAML parser sees it.
    let deep = format!("name: deep\nmessages: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
    let e = Task::parse("deep", &deep, "deep/task.yaml", data, "deep/data.jsonl").unwrap_err();
    assert!(matches!(e, TaskError::Invalid { .. }) && e.to_string().contains("nests 200001 levels deep"), "{e}");

    let dir = gm_testkit::TempDir::new("task-size");
    let folder = dir.path().join("big");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("task.yaml"), "name: big\nmessages:\n  - role: user\n    content: \"{{input}}\"\n")
        .unwrap();
    std::fs::write(folder.join("data.jsonl"), data.repeat(MAX_TASK_DATA_BYTES as usize / data.len() + 10)).unwrap();
    let e = Task::load(&folder).unwrap_err();
    assert!(e.to_string().contains("data.jsonl: the file is larger than 16 MiB"), "{e}");
    std::fs::write(folder.join("data.jsonl"), data).unwrap();
    std::fs::write(folder.join("task.yaml"), format!("# {}\n", "x".repeat(MAX_PROMPT_FILE_BYTES as usize))).unwrap();
    let e = Task::load(&folder).unwrap_err();
    assert!(e.to_string().contains("task.yaml: the file is larger than 4 MiB"), "{e}");
}
