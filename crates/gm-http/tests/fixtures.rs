//! Every fixture in `shared/fixtures/github-models/` parses, and error bodies map to the right error.

use std::path::PathBuf;

use gm_core::{CatalogEntry, ChatCompletion, ChatRequest, EmbeddingRequest, EmbeddingResponse, ErrorBody};
use gm_http::sse::{SseEvent, SseParser};

fn fixtures() -> PathBuf {
    gm_testkit::shared("fixtures/github-models")
}

fn read(rel: &str) -> Vec<u8> {
    gm_testkit::read_shared(&format!("fixtures/github-models/{rel}"))
}

#[test]
fn docs_examples_parse() {
    let catalog: Vec<CatalogEntry> =
        serde_json::from_slice(&read("docs-examples/catalog-models.response.json")).unwrap();
    assert_eq!(catalog[0].id, "openai/gpt-4.1");
    assert_eq!(catalog[0].limits.as_ref().unwrap().max_input_tokens, Some(1048576));
    assert!(catalog[0].is_chat_model());

    let req: ChatRequest =
        serde_json::from_slice(&read("docs-examples/inference-chat-completions.request.json")).unwrap();
    assert_eq!(req.model, "openai/gpt-4.1");
    // What we send is what the docs show.
    let sent = serde_json::to_value(&req).unwrap();
    let doc: serde_json::Value =
        serde_json::from_slice(&read("docs-examples/inference-chat-completions.request.json")).unwrap();
    assert_eq!(sent, doc);

    let resp: ChatCompletion =
        serde_json::from_slice(&read("docs-examples/inference-chat-completions.response.json")).unwrap();
    assert_eq!(resp.text(), "The capital of France is Paris.");

    let ereq: EmbeddingRequest =
        serde_json::from_slice(&read("docs-examples/inference-embeddings.request.json")).unwrap();
    assert_eq!(ereq.input.as_vec().len(), 2);
    let eresp: EmbeddingResponse =
        serde_json::from_slice(&read("docs-examples/inference-embeddings.response.json")).unwrap();
    assert_eq!(eresp.usage.unwrap().prompt_tokens, 8);
}

#[test]
fn captured_payloads_parse() {
    let entry: CatalogEntry = serde_json::from_slice(&read("captured/catalog-entry.gpt-4.1-mini.json")).unwrap();
    assert!(entry.capabilities.contains(&"agentsV2".to_string()));
    assert_eq!(entry.supports_streaming(), Some(true));
    let req: ChatRequest =
        serde_json::from_slice(&read("captured/legacy-azure-endpoint.chat-completion.request.json")).unwrap();
    assert_eq!(req.max_tokens, Some(8000));
    let resp: ChatCompletion =
        serde_json::from_slice(&read("captured/legacy-azure-endpoint.chat-completion.response.json")).unwrap();
    assert_eq!(resp.text(), "Ok!");
    assert_eq!(resp.usage.unwrap().total_tokens, 18);

    let mut p = SseParser::default();
    let mut events = Vec::new();
    p.feed(&read("captured/SYNTHETIC.sse-transcript.gh-models-test-shape.txt"), &mut events).unwrap();
    p.finish(&mut events).unwrap();
    assert_eq!(events.last(), Some(&SseEvent::Done));
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            SseEvent::Data(d) => {
                Some(serde_json::from_str::<gm_core::ChatCompletionChunk>(d).unwrap().text().to_string())
            }
            SseEvent::Done => None,
        })
        .collect();
    assert!(text.starts_with("This is the first part"));
}

#[test]
fn legacy_catalog_excerpt_is_json() {
    let v: serde_json::Value =
        serde_json::from_slice(&read("legacy/azureml-asset-gallery-catalog.EXCERPT.json")).unwrap();
    assert!(v.is_object() || v.is_array());
}

#[test]
fn every_error_body_parses_with_its_code() {
    let dir = fixtures().join("errors");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let body = ErrorBody::parse(&std::fs::read(&path).unwrap()).unwrap_or_else(|| panic!("{name} did not parse"));
        assert!(!body.message.is_empty(), "{name}");
        let code = name.split('-').nth(1).unwrap().split('.').next().unwrap();
        match code {
            "server_error" => assert_eq!(body.kind.as_deref(), Some("server_error")),
            c => assert_eq!(body.code.as_deref(), Some(c), "{name}"),
        }
        if name.starts_with("429") {
            assert!(body.please_wait_seconds().is_some(), "{name}");
        }
        n += 1;
    }
    assert!(n >= 9);
}
