//! The demo provider: deterministic offline answers computed from the request.
//!
//! [`DemoTransport`] answers the OpenAI-style paths (`/chat/completions`, `/embeddings`, `/models`) and
//! GitHub's `/catalog/models` in process, so the whole client path (encoding, retries, SSE, decoding) runs
//! without a network. Answers are computed, not canned: arithmetic is evaluated, a question about a given
//! passage is answered with the passage's best-matching sentence, a summary request gets the leading
//! sentences, a judge request ([`gm_core::judge`]) gets a grade from the overlap of response and reference,
//! JSON formats get JSON that follows the schema. Smaller models (`mini`, `nano`, `small`, `8b` in the name)
//! answer more wordily, so comparisons between demo models show differences. It answers only the models of its
//! catalog ([`DEMO_MODELS`]): any other id gets the 404 `unknown_model` a real service sends, naming the
//! closest ids, so a misspelt model is never "evaluated" offline. Every answer is labelled: the
//! completion id starts with `demo-`, `system_fingerprint` is `gm-demo`, and the response carries
//! `x-gm-demo: true`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use gm_core::{chat_input_tokens, estimate_tokens, truncate_to_tokens, ChatRequest, EmbeddingRequest, ResponseFormat};
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};

use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError};

/// The base URL the demo provider is addressed by. It is never resolved.
pub const DEMO_BASE_URL: &str = "http://demo.invalid/v1";

/// The models the demo provider lists, and the only ones it answers.
pub const DEMO_MODELS: &[(&str, &str, &str)] = &[
    ("openai/gpt-4.1", "OpenAI GPT-4.1 (demo)", "high"),
    ("openai/gpt-4o", "OpenAI GPT-4o (demo)", "high"),
    ("openai/gpt-4.1-mini", "OpenAI GPT-4.1-mini (demo)", "low"),
    ("openai/gpt-4o-mini", "OpenAI GPT-4o mini (demo)", "low"),
    ("meta/llama-3.3-70b-instruct", "Llama-3.3-70B-Instruct (demo)", "high"),
    ("mistral-ai/mistral-small-2503", "Mistral Small 3.1 (demo)", "low"),
    ("openai/text-embedding-3-small", "OpenAI Text Embedding 3 (small) (demo)", "embeddings"),
];

/// An in-process transport that answers like a model server, deterministically and offline.
#[derive(Debug, Clone)]
pub struct DemoTransport {
    simulate_latency: bool,
}

impl Default for DemoTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl DemoTransport {
    /// A demo transport that simulates a plausible, deterministic latency (time to first token plus time per token).
    pub fn new() -> Self {
        Self { simulate_latency: true }
    }

    /// A demo transport that answers at once (for benchmarks and tests).
    pub fn instant() -> Self {
        Self { simulate_latency: false }
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Whether a model id names a small model, which the demo makes answer more wordily.
fn is_small(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    ["mini", "nano", "small", "8b", "3b", "1b"].iter().any(|s| m.contains(s))
}

/// The catalog id `model` names: the id itself (case ignored) or, without a publisher, the one id of that name.
pub fn demo_model(model: &str) -> Option<&'static str> {
    let wanted = model.trim().to_lowercase();
    let ids = || DEMO_MODELS.iter().map(|(id, _, _)| *id);
    if let Some(id) = ids().find(|id| *id == wanted) {
        return Some(id);
    }
    if wanted.contains('/') {
        return None;
    }
    let mut named = ids().filter(|id| id.rsplit('/').next() == Some(wanted.as_str()));
    match (named.next(), named.next()) {
        (Some(id), None) => Some(id),
        _ => None,
    }
}

/// The 404 a service sends for a model it does not have, with the closest ids of the demo's catalog.
fn unknown_model(model: &str) -> HttpResponse {
    let ids = || DEMO_MODELS.iter().map(|(id, _, _)| *id);
    let closest = gm_core::closest_ids(model, ids(), 3);
    let mut message = format!("unknown model `{model}`: the demo provider answers only the models of its catalog");
    if closest.is_empty() {
        // Nothing is near: the catalog is short enough to name whole.
        message.push_str(&format!(" (none is close; the catalog: {})", ids().collect::<Vec<_>>().join(", ")));
    } else {
        message.push_str(&format!(" (the closest: {})", closest.join(", ")));
    }
    json_response(404, json!({"error": {"code": "unknown_model", "message": message}}))
}

fn json_response(status: u16, body: Value) -> HttpResponse {
    let mut h = HeaderMap::new();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert("x-gm-demo", HeaderValue::from_static("true"));
    HttpResponse::from_bytes(status, h, Bytes::from(body.to_string()))
}

fn catalog() -> Value {
    Value::Array(
        DEMO_MODELS
            .iter()
            .map(|(id, name, tier)| {
                let (publisher, _) = id.split_once('/').unwrap_or(("demo", id));
                let embed = *tier == "embeddings";
                json!({
                    "id": id, "name": name, "publisher": publisher, "registry": "gm-demo",
                    "summary": "Offline demo stand-in: answers are computed locally by gm, not by a model.",
                    "rate_limit_tier": tier, "version": "demo",
                    "capabilities": if embed { json!([]) } else { json!(["streaming"]) },
                    "limits": {"max_input_tokens": 8000, "max_output_tokens": if embed { Value::Null } else { json!(4000) }},
                    "tags": ["demo"],
                    "supported_input_modalities": ["text"],
                    "supported_output_modalities": if embed { json!(["embeddings"]) } else { json!(["text"]) },
                })
            })
            .collect(),
    )
}

#[async_trait]
impl Transport for DemoTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let path = request.url.path().to_string();
        let bad = |msg: String| json_response(400, json!({"error": {"code": "invalid_request", "message": msg}}));
        if request.method == Method::GET && (path.ends_with("/catalog/models") || path.ends_with("/models")) {
            if path.ends_with("/catalog/models") {
                return Ok(json_response(200, catalog()));
            }
            let data: Vec<Value> = DEMO_MODELS
                .iter()
                .map(|(id, _, _)| json!({"id": id, "object": "model", "owned_by": "gm-demo"}))
                .collect();
            return Ok(json_response(200, json!({"object": "list", "data": data})));
        }
        if request.method != Method::POST {
            return Ok(json_response(
                404,
                json!({"error": {"code": "not_found", "message": format!("no route for {path}")}}),
            ));
        }
        if path.ends_with("/embeddings") {
            let req: EmbeddingRequest = match serde_json::from_slice(&request.body) {
                Ok(r) => r,
                Err(e) => return Ok(bad(format!("invalid embeddings request: {e}"))),
            };
            if demo_model(&req.model).is_none() {
                return Ok(unknown_model(&req.model));
            }
            return Ok(json_response(200, embeddings(&req)));
        }
        if !path.ends_with("/chat/completions") {
            return Ok(json_response(
                404,
                json!({"error": {"code": "not_found", "message": format!("no route for {path}")}}),
            ));
        }
        let req: ChatRequest = match serde_json::from_slice(&request.body) {
            Ok(r) => r,
            Err(e) => return Ok(bad(format!("invalid chat request: {e}"))),
        };
        if demo_model(&req.model).is_none() {
            return Ok(unknown_model(&req.model));
        }
        if req.messages.is_empty() {
            return Ok(bad("messages must not be empty".into()));
        }
        let text = answer(&req);
        let prompt_tokens = chat_input_tokens(&req, estimate_tokens);
        let mut completion_tokens = estimate_tokens(&text);
        let mut text = text;
        let mut finish = "stop";
        if let Some(max) = req.max_tokens.or(req.max_completion_tokens) {
            if completion_tokens > u64::from(max) {
                text = truncate_to_tokens(&text, u64::from(max)).to_string();
                completion_tokens = estimate_tokens(&text);
                finish = "length";
            }
        }
        let small = is_small(&req.model);
        let seed = fnv(&text) ^ fnv(&req.model);
        let jitter = 0.8 + (seed % 400) as f64 / 1000.0;
        let (ttft_ms, per_token_ms) = if small { (15.0, 0.4) } else { (25.0, 0.8) };
        let id = format!("demo-{:016x}", seed);
        let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
        let latency = self.simulate_latency;
        if req.is_stream() {
            let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
            let pieces = split_pieces(&text);
            let model = req.model.clone();
            let per_piece = Duration::from_secs_f64(per_token_ms * jitter / 1000.0);
            let ttft = Duration::from_secs_f64(ttft_ms * jitter / 1000.0);
            let mut events: Vec<String> = Vec::with_capacity(pieces.len() + 4);
            let chunk = |delta: Value, finish: Value| {
                json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "system_fingerprint": "gm-demo",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            events.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null).to_string());
            for p in &pieces {
                events.push(chunk(json!({"content": p}), Value::Null).to_string());
            }
            events.push(chunk(json!({}), json!(finish)).to_string());
            if include_usage {
                events.push(
                    json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [], "usage": usage})
                        .to_string(),
                );
            }
            let stream = futures_util::stream::unfold((0usize, events), move |(i, events)| async move {
                if i > events.len() {
                    return None;
                }
                if latency {
                    tokio::time::sleep(if i == 0 { ttft } else { per_piece }).await;
                }
                let bytes = if i == events.len() {
                    Bytes::from_static(b"data: [DONE]\n\n")
                } else {
                    Bytes::from(format!("data: {}\n\n", events[i]))
                };
                Some((Ok::<_, TransportError>(bytes), (i + 1, events)))
            });
            let mut h = HeaderMap::new();
            h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert("x-gm-demo", HeaderValue::from_static("true"));
            return Ok(HttpResponse { status: 200, headers: h, body: Box::pin(stream) });
        }
        if latency {
            let ms = (ttft_ms + per_token_ms * completion_tokens as f64) * jitter;
            tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
        }
        Ok(json_response(
            200,
            json!({
                "id": id, "object": "chat.completion", "created": 0, "model": req.model, "system_fingerprint": "gm-demo",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": usage,
            }),
        ))
    }
}

/// Splits an answer into stream pieces of about one word each, whitespace attached to the word before it.
fn split_pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        if ch.is_whitespace() && !cur.trim().is_empty() {
            cur.push(ch);
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn embeddings(req: &EmbeddingRequest) -> Value {
    let dims = req.dimensions.unwrap_or(64).clamp(1, 3072) as usize;
    let inputs = req.input.as_vec();
    let mut total = 0u64;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            total += estimate_tokens(text);
            let mut v = vec![0f64; dims];
            for w in words(text) {
                let h = fnv(&w);
                let idx = (h % dims as u64) as usize;
                v[idx] += if (h >> 32) & 1 == 0 { 1.0 } else { -1.0 };
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            let v: Vec<f32> = v.iter().map(|x| (x / norm) as f32).collect();
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    json!({"object": "list", "data": data, "model": req.model, "usage": {"prompt_tokens": total, "total_tokens": total}})
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The demo's answer to a chat request.
pub fn answer(req: &ChatRequest) -> String {
    use gm_core::Role;
    let system: String = req
        .messages
        .iter()
        .filter(|m| matches!(m.role, Role::System | Role::Developer))
        .map(|m| m.text())
        .collect::<Vec<_>>()
        .join("\n");
    let user = req.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.text()).unwrap_or_default();
    let small = is_small(&req.model);
    match &req.response_format {
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema.schema.clone().unwrap_or(json!({"type": "object"}));
            return instance_of(&schema, &user, 0).to_string();
        }
        Some(ResponseFormat::JsonObject) => {
            return json!({"answer": plain_answer(&system, &user, small), "source": "gm demo provider"}).to_string();
        }
        _ => {}
    }
    if let Some(grade) = judge(req) {
        return grade;
    }
    plain_answer(&system, &user, small)
}

fn plain_answer(system: &str, user: &str, small: bool) -> String {
    let lower = user.to_lowercase();
    if let Some(v) = arithmetic(user) {
        let v = fmt_number(v);
        return if small { format!("Let me work it out. The answer is {v}.") } else { format!("The answer is {v}.") };
    }
    if lower.contains("summar") || lower.contains("tl;dr") || system.to_lowercase().contains("summar") {
        let body = passage(user);
        let sentences = sentences(&body);
        let n = if small { 1 } else { 2 };
        let s: Vec<&str> = sentences.iter().take(n).map(String::as_str).collect();
        if !s.is_empty() {
            return s.join(" ");
        }
    }
    if lower.contains("def ") || lower.contains("python function") || lower.contains("write a function") {
        return code_answer(user);
    }
    if let Some(ans) = extractive_answer(user, small) {
        return ans;
    }
    if let Some(fact) = known_fact(&lower) {
        return if small { format!("I believe it is {fact}.") } else { fact.to_string() };
    }
    let topic: Vec<String> = words(user).into_iter().filter(|w| w.len() > 3).take(8).collect();
    if topic.is_empty() {
        "Hello! This is the gm demo provider: answers are computed offline, not by a model.".to_string()
    } else {
        format!(
            "This is a demo answer computed offline by gm about: {}. Configure a provider (--provider openai, azure or openai-compatible) for real model output.",
            topic.join(", ")
        )
    }
}

fn known_fact(lower: &str) -> Option<&'static str> {
    const FACTS: &[(&[&str], &str)] = &[
        (&["capital", "france"], "Paris"),
        (&["capital", "germany"], "Berlin"),
        (&["capital", "japan"], "Tokyo"),
        (&["capital", "italy"], "Rome"),
        (&["capital", "spain"], "Madrid"),
        (&["bread", "french"], "pain"),
        (&["largest", "planet"], "Jupiter"),
        (&["boiling", "water"], "100 degrees Celsius"),
        (&["who", "wrote", "hamlet"], "William Shakespeare"),
        (&["chemical", "symbol", "gold"], "Au"),
    ];
    FACTS.iter().find(|(keys, _)| keys.iter().all(|k| lower.contains(k))).map(|(_, a)| *a)
}

fn passage(user: &str) -> String {
    for marker in ["Text:", "Article:", "Passage:", "Context:", "Document:"] {
        if let Some(i) = user.find(marker) {
            return user[i + marker.len()..].trim().to_string();
        }
    }
    // "Summarize this article: …": the text is what follows a short instruction and a colon.
    match user.split_once(':') {
        Some((head, rest)) if head.len() < 120 && !rest.trim().is_empty() => rest.trim().to_string(),
        _ => user.trim().to_string(),
    }
}

fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        cur.push(ch);
        if matches!(ch, '.' | '!' | '?') || ch == '\n' {
            let s = cur.trim().to_string();
            if s.len() > 1 {
                out.push(s);
            }
            cur.clear();
        }
    }
    let s = cur.trim().to_string();
    if s.len() > 1 {
        out.push(s);
    }
    out
}

/// Answers a question about a given passage (`Context:` or `Passage:` … `Question:`). Large models answer with
/// the words of the best-matching clause that the question does not already contain; small ones with the whole
/// best-matching sentence.
fn extractive_answer(user: &str, small: bool) -> Option<String> {
    let marker = ["Context:", "Passage:"].into_iter().find(|m| user.contains(m))?;
    let i = user.find(marker)?;
    let rest = &user[i + marker.len()..];
    let (ctx, question) = rest.split_once("Question:").unwrap_or((rest, &user[..i]));
    let q: std::collections::HashSet<String> = words(question).into_iter().filter(|w| w.len() > 2).collect();
    let overlap = |s: &str| words(s).iter().filter(|w| q.contains(*w)).count();
    let best = sentences(ctx).into_iter().max_by_key(|s| overlap(s))?;
    let sentence = best.trim_end_matches('.').to_string();
    if small {
        return Some(format!("Based on the passage, {sentence}."));
    }
    const STOP: &[&str] = &[
        "the", "a", "an", "and", "of", "in", "on", "at", "to", "by", "was", "were", "is", "it", "its", "that", "so",
        "for", "with", "as",
    ];
    let clause = sentence
        .split([',', ';'])
        .flat_map(|c| c.split(" and "))
        .max_by_key(|c| overlap(c))
        .unwrap_or(&sentence)
        .to_string();
    let answer: Vec<&str> = clause
        .split_whitespace()
        .filter(|w| {
            let lw = w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
            !lw.is_empty() && !q.contains(&lw) && !STOP.contains(&lw.as_str())
        })
        .collect();
    Some(if answer.is_empty() {
        sentence
    } else {
        answer.join(" ").trim_matches(|c: char| !c.is_alphanumeric()).to_string()
    })
}

fn code_answer(user: &str) -> String {
    let name = user
        .split("def ")
        .nth(1)
        .and_then(|r| r.split('(').next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .unwrap_or("solution");
    format!(
        "```python\ndef {name}(*args, **kwargs):\n    # gm demo provider: code generation needs a real model\n    raise NotImplementedError(\"demo provider\")\n```"
    )
}

/// Grades a judge request ([`gm_core::judge`]) from 1 to 5 by the word overlap of the response with its reference.
///
/// The reply is a line of reasoning and then the grade alone on the last line, as the judge's instructions ask.
/// The reasoning holds no digit, so gh-models' compat reading (the first choice found anywhere in the reply)
/// finds the same grade as the strict one (the last line).
fn judge(req: &ChatRequest) -> Option<String> {
    let fields = gm_core::judge::fields(req)?;
    let a: std::collections::HashSet<String> = words(&fields.response).into_iter().collect();
    let r: std::collections::HashSet<String> = words(&fields.reference).into_iter().collect();
    let overlap = if a.is_empty() || r.is_empty() {
        0.0
    } else {
        a.intersection(&r).count() as f64 / r.len().max(a.len()) as f64
    };
    let grade = if fields.response.is_empty() { 1 } else { 1 + (overlap * 4.0).round() as u32 };
    Some(format!("The demo provider grades by the words the response shares with the reference.\n{grade}"))
}

/// Evaluates the first arithmetic expression in the text (numbers with + - * / x ×, parentheses).
fn arithmetic(text: &str) -> Option<f64> {
    let lower = text
        .to_lowercase()
        .replace('×', "*")
        .replace(" x ", " * ")
        .replace(" times ", " * ")
        .replace(" plus ", " + ")
        .replace(" minus ", " - ")
        .replace(" divided by ", " / ");
    let chars: Vec<char> = lower.chars().collect();
    // Find the longest run made of digits, operators, parentheses, dots and spaces with an operator in it.
    let mut best: Option<String> = None;
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() || chars[i] == '(' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || " +-*/().,".contains(chars[i])) {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect::<String>().replace(',', "");
            let run = run.trim().trim_end_matches(['.', ' ']).to_string();
            if run.contains(['+', '-', '*', '/']) && best.as_ref().is_none_or(|b| run.len() > b.len()) {
                best = Some(run);
            }
        }
        i += 1;
    }
    let expr = best?;
    let tokens: Vec<char> = expr.chars().filter(|c| !c.is_whitespace()).collect();
    let mut p = Parser { t: &tokens, i: 0 };
    let v = p.expr()?;
    (p.i == tokens.len() && v.is_finite()).then_some(v)
}

struct Parser<'a> {
    t: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn expr(&mut self) -> Option<f64> {
        let mut v = self.term()?;
        while let Some(&c) = self.t.get(self.i) {
            if c == '+' || c == '-' {
                self.i += 1;
                let r = self.term()?;
                v = if c == '+' { v + r } else { v - r };
            } else {
                break;
            }
        }
        Some(v)
    }
    fn term(&mut self) -> Option<f64> {
        let mut v = self.atom()?;
        while let Some(&c) = self.t.get(self.i) {
            if c == '*' || c == '/' {
                self.i += 1;
                let r = self.atom()?;
                v = if c == '*' { v * r } else { v / r };
            } else {
                break;
            }
        }
        Some(v)
    }
    fn atom(&mut self) -> Option<f64> {
        match self.t.get(self.i)? {
            '(' => {
                self.i += 1;
                let v = self.expr()?;
                (self.t.get(self.i) == Some(&')')).then(|| self.i += 1)?;
                Some(v)
            }
            '-' => {
                self.i += 1;
                Some(-self.atom()?)
            }
            _ => {
                let start = self.i;
                while self.t.get(self.i).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
                    self.i += 1;
                }
                self.t[start..self.i].iter().collect::<String>().parse().ok()
            }
        }
    }
}

fn fmt_number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Builds a JSON value that follows a (simple) JSON Schema, filling strings from the prompt.
fn instance_of(schema: &Value, prompt: &str, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array).and_then(|a| a.first()) {
        return e.clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    out.insert(k.clone(), instance_of(v, prompt, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let item = schema.get("items").map(|s| instance_of(s, prompt, depth + 1)).unwrap_or(Value::Null);
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1).max(1) as usize;
            Value::Array(vec![item; min])
        }
        "integer" => json!(schema.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
        "number" => json!(schema.get("minimum").and_then(Value::as_f64).unwrap_or(1.0)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => {
            let w: Vec<String> = words(prompt).into_iter().filter(|w| w.len() > 3).take(4).collect();
            json!(if w.is_empty() { "demo".to_string() } else { w.join(" ") })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gm_core::ChatMessage;

    fn ask(model: &str, q: &str) -> String {
        answer(&ChatRequest::new(model, vec![ChatMessage::user(q)]))
    }

    #[test]
    fn arithmetic_is_evaluated() {
        assert_eq!(ask("openai/gpt-4.1", "What is 17 * 23?"), "The answer is 391.");
        assert_eq!(ask("openai/gpt-4.1", "Compute (2 + 3) x 4 - 1"), "The answer is 19.");
        assert!(ask("openai/gpt-4.1-mini", "What is 1,000 / 8?").ends_with("125."));
    }

    #[test]
    fn questions_and_summaries() {
        assert_eq!(ask("openai/gpt-4.1", "What is the capital of France?"), "Paris");
        let s = ask("openai/gpt-4.1", "Summarize: Rust is fast. It is safe. It has no GC.");
        assert_eq!(s, "Rust is fast. It is safe.");
        let qa = ask("openai/gpt-4.1", "Context: The sky is blue. Grass is green.\nQuestion: What color is grass?");
        assert_eq!(qa, "green");
        let qa = ask(
            "openai/gpt-4.1",
            "Passage: Its stone bridge was built in 1784 by the mason Edwin Holt, and it was widened in 1931.\n\nQuestion: Who built the stone bridge?",
        );
        assert_eq!(qa, "1784 mason Edwin Holt");
    }

    fn judge_request(user: &str) -> ChatRequest {
        let system = format!("You grade answers. {}", gm_core::judge::MARKER);
        ChatRequest::new("openai/gpt-4o", vec![ChatMessage::system(system), ChatMessage::user(user)])
    }

    #[test]
    fn a_judge_request_is_graded_by_overlap_with_the_grade_on_the_last_line() {
        let same = judge_request(
            "question: capital?\ncorrect answer: Paris is the capital\npredicted answer: Paris is the capital",
        );
        assert_eq!(answer(&same).lines().last(), Some("5"));
        let half = judge_request("QUERY: the sky is blue today\nRESPONSE: the sky was grey yesterday");
        assert_eq!(answer(&half).lines().last(), Some("3"));
        let reply = answer(&judge_request("CONTEXT: a source\nRESPONSE: nothing in common"));
        assert_eq!(reply.lines().last(), Some("1"));
        // Only the grade is a digit, so reading the first digit or the last line agree.
        assert_eq!(reply.chars().filter(char::is_ascii_digit).collect::<String>(), "1");
        assert!(answer(&judge_request("the judge forgot the response")).ends_with("\n1"));
    }

    #[test]
    fn rubric_wording_without_the_marker_is_an_ordinary_question() {
        let j = ask(
            "openai/gpt-4o",
            "question: capital?\ncorrect answer: Paris is the capital\npredicted answer: Paris is the capital\nstars:",
        );
        assert!(!j.ends_with("\n5") && j != "5", "{j}");
    }

    #[tokio::test]
    async fn usage_is_the_one_estimate_and_max_tokens_cuts_the_answer_to_it() {
        let client = crate::Client::builder()
            .provider(gm_core::ProviderKind::Demo)
            .transport(std::sync::Arc::new(DemoTransport::instant()))
            .build()
            .unwrap();
        let req = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("What is 17 * 23?")]);
        let usage = client.chat(&req).await.unwrap().usage();
        assert_eq!(usage.prompt_tokens, chat_input_tokens(&req, estimate_tokens));
        assert_eq!(usage.completion_tokens, estimate_tokens("The answer is 391."));
        let cut = client.chat(&req.with_max_tokens(2)).await.unwrap();
        assert_eq!((cut.text(), cut.usage().completion_tokens), ("The an", 2));
    }

    #[tokio::test]
    async fn a_model_outside_the_catalog_is_refused_with_the_closest_ids() {
        let client = crate::Client::builder()
            .provider(gm_core::ProviderKind::Demo)
            .transport(std::sync::Arc::new(DemoTransport::instant()))
            .build()
            .unwrap();
        let ask = |model: &str| ChatRequest::new(model, vec![gm_core::ChatMessage::user("hi")]);
        let e = client.chat(&ask("openai/gpt-5-nonexistent")).await.unwrap_err();
        assert_eq!(e.status(), Some(404));
        assert!(e.is_usage(), "{e}");
        let shown = e.to_string();
        assert!(shown.contains("unknown_model") && shown.contains("catalog"), "{shown}");
        let e = client.chat(&ask("openai/gpt-4.2")).await.unwrap_err().to_string();
        assert!(e.contains("the closest: openai/gpt-4.1"), "{e}");
        // A one-letter name is close to nothing: the catalog is named whole.
        let e = client.chat(&ask("nope/x")).await.unwrap_err().to_string();
        assert!(e.contains("(none is close; the catalog: openai/gpt-4.1, "), "{e}");
        let mut stream = ask("nope/x");
        stream.stream = Some(true);
        assert_eq!(client.chat_stream(&stream).await.err().and_then(|e| e.status()), Some(404));
        // The catalog's ids answer, case ignored, and a name alone when one id has it.
        for model in ["openai/gpt-4.1", "OpenAI/GPT-4.1", "gpt-4.1-mini"] {
            assert!(client.chat(&ask(model)).await.is_ok(), "{model}");
        }
        assert_eq!(demo_model("llama-3.3-70b-instruct"), Some("meta/llama-3.3-70b-instruct"));
    }

    #[test]
    fn json_schema_is_followed() {
        let mut req = ChatRequest::new("openai/gpt-4.1", vec![ChatMessage::user("classify the animal")]);
        req.response_format = Some(ResponseFormat::JsonSchema {
            json_schema: gm_core::JsonSchemaFormat {
                name: "x".into(),
                description: None,
                schema: Some(
                    json!({"type": "object", "properties": {"kind": {"type": "string", "enum": ["cat", "dog"]}, "legs": {"type": "integer"}}, "required": ["kind"]}),
                ),
                strict: None,
                extra: Default::default(),
            },
        });
        let v: Value = serde_json::from_str(&answer(&req)).unwrap();
        assert_eq!(v, json!({"kind": "cat", "legs": 1}));
    }
}
