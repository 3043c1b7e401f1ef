//! Request keys: what changes them and what does not.

use gm_cache::RequestKey;
use gm_core::{ChatMessage, ChatRequest, StreamOptions};
use proptest::prelude::*;
use serde_json::{json, Value};

const GITHUB: &str = "https://models.github.ai";

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).expect("a valid chat request")
}

fn key(r: &ChatRequest) -> RequestKey {
    RequestKey::for_chat("github", GITHUB, r, 0)
}

fn key_of(v: Value) -> RequestKey {
    key(&req(v))
}

fn full() -> Value {
    json!({
        "model": "openai/gpt-4.1",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
        ],
        "temperature": 0.5, "top_p": 0.9, "max_tokens": 100, "seed": 7, "stop": ["\n\n"],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}}}},
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "required": ["a"]}}}],
        "tool_choice": "auto",
        "reasoning_effort": "low",
        "logit_bias": {"50256": -100, "1": 2}
    })
}

#[test]
fn field_order_does_not_change_the_key() {
    let reordered = json!({
        "logit_bias": {"1": 2, "50256": -100},
        "tool_choice": "auto",
        "tools": [{"function": {"parameters": {"required": ["a"], "type": "object"}, "description": "d", "name": "f"}, "type": "function"}],
        "reasoning_effort": "low",
        "response_format": {"json_schema": {"schema": {"properties": {"a": {"minimum": 1, "type": "integer"}}, "type": "object"}, "name": "x"}, "type": "json_schema"},
        "stop": ["\n\n"], "seed": 7, "max_tokens": 100, "top_p": 0.9, "temperature": 0.5,
        "messages": [
            {"content": "be brief", "role": "system"},
            {"content": [{"text": "what is this?", "type": "text"},
                         {"image_url": {"url": "data:image/png;base64,AAAA"}, "type": "image_url"}], "role": "user"}
        ],
        "model": "openai/gpt-4.1"
    });
    assert_eq!(key_of(full()), key_of(reordered));
}

#[test]
fn integral_numbers_match_whatever_their_spelling() {
    let mut a = full();
    a["temperature"] = json!(1);
    a["response_format"]["json_schema"]["schema"]["properties"]["a"]["minimum"] = json!(1);
    a["logit_bias"]["1"] = json!(2);
    let mut b = a.clone();
    b["temperature"] = json!(1.0);
    b["response_format"]["json_schema"]["schema"]["properties"]["a"]["minimum"] = json!(1.0);
    b["logit_bias"]["1"] = serde_json::from_str::<Value>("2e0").unwrap();
    assert_eq!(key_of(a.clone()), key_of(b));
    let mut c = a.clone();
    c["logit_bias"]["1"] = json!(2.5);
    assert_ne!(key_of(a), key_of(c));
}

#[test]
fn stream_and_stream_options_are_ignored() {
    let plain = req(full());
    let mut streamed = plain.clone();
    streamed.stream = Some(true);
    streamed.stream_options = Some(StreamOptions { include_usage: true });
    assert_eq!(key(&plain), key(&streamed));
    streamed.stream = Some(false);
    assert_eq!(key(&plain), key(&streamed));
}

#[test]
fn null_and_absent_fields_match() {
    let mut a = full();
    a["user"] = Value::Null;
    a["logprobs"] = Value::Null;
    assert_eq!(key_of(full()), key_of(a));
}

#[test]
fn model_ids_that_differ_in_case_are_two_keys() {
    // The request keeps its case on the wire, and a server may tell the two apart.
    let mut a = full();
    a["model"] = json!("OpenAI/GPT-4.1");
    assert_ne!(key_of(full()), key_of(a.clone()));
    a["model"] = json!(" openai/gpt-4.1 ");
    assert_eq!(key_of(full()), key_of(a));
}

#[test]
fn endpoint_spelling_is_normalised() {
    let r = req(full());
    assert_eq!(key(&r), RequestKey::for_chat("GitHub", "https://models.github.ai/", &r, 0));
}

#[test]
fn everything_that_changes_the_answer_changes_the_key() {
    let base = key_of(full());
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("temperature", Box::new(|v| v["temperature"] = json!(0.6))),
        ("top_p", Box::new(|v| v["top_p"] = json!(1))),
        ("max_tokens", Box::new(|v| v["max_tokens"] = json!(101))),
        ("seed", Box::new(|v| v["seed"] = json!(8))),
        ("stop", Box::new(|v| v["stop"] = json!(["\n"]))),
        ("model", Box::new(|v| v["model"] = json!("openai/gpt-4.1-mini"))),
        ("system message", Box::new(|v| v["messages"][0]["content"] = json!("be long"))),
        ("role", Box::new(|v| v["messages"][0]["role"] = json!("developer"))),
        (
            "image",
            Box::new(|v| v["messages"][1]["content"][1]["image_url"]["url"] = json!("data:image/png;base64,AAAB")),
        ),
        ("message order", Box::new(|v| v["messages"].as_array_mut().unwrap().reverse())),
        ("response format", Box::new(|v| v["response_format"] = json!({"type": "json_object"}))),
        (
            "schema",
            Box::new(|v| v["response_format"]["json_schema"]["schema"]["properties"]["a"]["minimum"] = json!(2)),
        ),
        ("tools", Box::new(|v| v["tools"][0]["function"]["name"] = json!("g"))),
        ("tool_choice", Box::new(|v| v["tool_choice"] = json!("required"))),
        ("extra field", Box::new(|v| v["reasoning_effort"] = json!("high"))),
        ("new extra field", Box::new(|v| v["logprobs"] = json!(true))),
        ("presence_penalty", Box::new(|v| v["presence_penalty"] = json!(0))),
        ("n", Box::new(|v| v["n"] = json!(2))),
    ];
    let mut seen = std::collections::HashSet::from([base]);
    for (what, edit) in edits {
        let mut v = full();
        edit(&mut v);
        let k = key_of(v);
        assert_ne!(k, base, "changing {what} must change the key");
        assert!(seen.insert(k), "changing {what} collided with another change");
    }
    let r = req(full());
    assert_ne!(RequestKey::for_chat("openai", GITHUB, &r, 0), base, "provider");
    assert_ne!(RequestKey::for_chat("github", "http://localhost:8080", &r, 0), base, "base url");
    assert_ne!(RequestKey::for_chat("github", GITHUB, &r, 1), base, "sample index");
}

#[test]
fn message_boundaries_are_part_of_the_key() {
    let a = ChatRequest::new("m", vec![ChatMessage::user("ab"), ChatMessage::user("c")]);
    let b = ChatRequest::new("m", vec![ChatMessage::user("a"), ChatMessage::user("bc")]);
    assert_ne!(key(&a), key(&b));
    let c = ChatRequest::new("m", vec![ChatMessage::user("abc")]);
    assert_ne!(key(&a), key(&c));
}

/// Keys name entries in files and in Redis shared between machines, so the encoding must not drift:
/// this value changes only with a deliberate bump of the key version.
#[test]
fn key_of_a_fixed_request_is_stable_across_builds() {
    let r = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("hi")]).with_temperature(0.0);
    assert_eq!(key(&r).to_string(), "ce27588e3e6acfb0fd16cdae95f6d0f2");
}

#[test]
fn keys_print_and_parse() {
    let k = key_of(full());
    assert_eq!(k.to_string().parse::<RequestKey>().unwrap(), k);
    assert_eq!(RequestKey::from_bytes(k.to_bytes()), k);
    assert!("xyz".parse::<RequestKey>().unwrap_err().to_string().contains("32 hexadecimal digits"));
}

#[test]
fn other_bodies_have_keys_too() {
    let body = json!({"model": "openai/text-embedding-3-small", "input": ["a", "b"], "stream": true});
    let k = RequestKey::for_body("embeddings", "github", GITHUB, &body, 0, &["stream"]).unwrap();
    let reordered = json!({"stream": false, "input": ["a", "b"], "model": "openai/text-embedding-3-small"});
    assert_eq!(RequestKey::for_body("embeddings", "github", GITHUB, &reordered, 0, &["stream"]).unwrap(), k);
    assert_ne!(RequestKey::for_body("chat", "github", GITHUB, &body, 0, &["stream"]).unwrap(), k);
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-e]{1,3}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The same value with every object's members in reverse order.
fn reversed(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().rev().map(|(k, v)| (k.clone(), reversed(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn member_order_never_changes_the_key(extra in json_value()) {
        let mut a = ChatRequest::new("m", vec![ChatMessage::user("hi")]);
        a.extra.insert("x".into(), extra.clone());
        a.extra.insert("y".into(), json!(1));
        let mut b = ChatRequest::new("m", vec![ChatMessage::user("hi")]);
        b.extra.insert("y".into(), json!(1));
        b.extra.insert("x".into(), reversed(&extra));
        prop_assert_eq!(key(&a), key(&b));
    }

    #[test]
    fn different_texts_give_different_keys(x in ".{0,40}", y in ".{0,40}") {
        prop_assume!(x != y);
        let a = ChatRequest::new("m", vec![ChatMessage::user(x)]);
        let b = ChatRequest::new("m", vec![ChatMessage::user(y)]);
        prop_assert_ne!(key(&a), key(&b));
    }
}
