//! Recorded answers: a JSON Lines file of answers by request key, for replaying runs without a provider.
//!
//! One line is one [`Recorded`] answer: the [`RequestKey`] (the cache's key, so a recording and a cache
//! export are the same format and either fills the other), a summary of the request, the answer's body, its
//! usage, and what it took (latency, time to first token, attempts, 429s, whether the cache answered it).
//! Lines are sorted by key and hold no timestamp of the recording, so a file re-recorded from the same
//! answers is byte for byte the same, and a diff shows exactly the requests that changed. The request's
//! credential is never part of a request body, so it is never in the file.
//!
//! ```
//! use gm_cache::recording::{Recorded, RecordedAnswers};
//! use gm_cache::RequestKey;
//! use gm_core::{ChatMessage, ChatRequest};
//!
//! let req = ChatRequest::new("llama3.2", vec![ChatMessage::user("What is 6 * 7?")]);
//! let key = RequestKey::for_chat("openai-compatible", "http://localhost:11434/v1", &req, 0);
//! let answers = RecordedAnswers::new("answers.jsonl");
//! let mut entry = Recorded::new(key, serde_json::json!({"choices": [{"message": {"content": "42"}}]}));
//! entry.latency_us = Some(1250);
//! answers.insert(entry);
//! let text = answers.to_jsonl();
//! assert!(text.starts_with(&format!("{{\"key\":\"{key}\"")));
//! let back = RecordedAnswers::parse("answers.jsonl", &text).unwrap();
//! assert_eq!(back.get(&key).unwrap().latency_us, Some(1250));
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use gm_core::{ChatRequest, Role};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::key::RequestKey;

/// The longest prompt excerpt a request summary keeps, in characters.
const PROMPT_EXCERPT: usize = 160;

/// What a recorded answer was asked: enough to recognise the request in a diff or an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// The provider it was sent to.
    pub provider: String,
    /// The base URL it was sent to (any password in it removed).
    pub base_url: String,
    /// The model, as sent.
    pub model: String,
    /// Which sample of a repeated request (0 for the first).
    pub sample: u32,
    /// How many messages the request has.
    pub messages: usize,
    /// The start of the last user message.
    pub prompt: String,
}

impl RequestSummary {
    /// The summary of a chat request sent to `provider` at `base_url`.
    pub fn of(provider: &str, base_url: &str, req: &ChatRequest, sample: u32) -> Self {
        let last_user = req.messages.iter().rev().find(|m| m.role == Role::User);
        let text = last_user.map(|m| m.text()).unwrap_or_default();
        let mut prompt: String = text.chars().take(PROMPT_EXCERPT).collect();
        if text.chars().count() > PROMPT_EXCERPT {
            prompt.push('…');
        }
        Self {
            provider: provider.to_string(),
            base_url: without_password(base_url),
            model: req.model.clone(),
            sample,
            messages: req.messages.len(),
            prompt,
        }
    }
}

/// A URL without the password of its user information.
fn without_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// One recorded answer: a line of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    /// The request's key (the cache's key: provider, base URL, model, messages, parameters, sample).
    #[serde(serialize_with = "key_out", deserialize_with = "key_in")]
    pub key: RequestKey,
    /// What was asked; absent for an answer exported from a cache, which keeps no request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSummary>,
    /// The answer's body, as JSON (for chat, the completion; a streamed answer assembled into one).
    pub response: serde_json::Value,
    /// The answer's usage, as the provider reported it (absent when it sent none: a replay estimates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<serde_json::Value>,
    /// From sending to the whole answer, in microseconds; absent for an answer the cache gave (recorded from
    /// the cache, or exported from one): a look-up is not a model's latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// For a streamed answer, from sending to the first text, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_token_us: Option<u64>,
    /// Attempts it took (retries included; 0 when the cache answered).
    #[serde(default)]
    pub attempts: u32,
    /// 429 answers received on the way.
    #[serde(default)]
    pub rate_limited: u32,
    /// Whether the response cache answered it when it was recorded (no request was sent then).
    #[serde(default)]
    pub cached: bool,
    /// Whether it was received as a stream.
    #[serde(default)]
    pub streamed: bool,
}

impl Recorded {
    /// An answer under `key` with nothing else known.
    pub fn new(key: RequestKey, response: serde_json::Value) -> Self {
        Self {
            key,
            request: None,
            usage: response.get("usage").cloned().filter(|u| !u.is_null()),
            response,
            latency_us: None,
            time_to_first_token_us: None,
            attempts: 0,
            rate_limited: 0,
            cached: false,
            streamed: false,
        }
    }

    /// The response's bytes, as a cache stores them.
    pub fn response_bytes(&self) -> Vec<u8> {
        match &self.response {
            // A cache value that was not JSON is exported as a string and comes back as its bytes.
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            v => v.to_string().into_bytes(),
        }
    }

    /// The response of a cache value: its JSON, or the text of a value that is not JSON.
    pub fn response_of(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }
}

fn key_out<S: Serializer>(key: &RequestKey, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(key)
}

fn key_in<'de, D: Deserializer<'de>>(d: D) -> Result<RequestKey, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// The answers of a recorded answers file, in memory, by key; shared by the requests of a run.
#[derive(Debug)]
pub struct RecordedAnswers {
    path: PathBuf,
    entries: Mutex<BTreeMap<RequestKey, Recorded>>,
}

impl RecordedAnswers {
    /// No answers yet; [`RecordedAnswers::save`] writes them to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), entries: Mutex::new(BTreeMap::new()) }
    }

    /// The answers of the file at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let text = std::fs::read_to_string(&path).map_err(|source| Error::File {
            action: "read",
            path: path.clone(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// The answers of `path` when it exists, else none yet.
    pub fn open_or_new(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        if path.exists() {
            Self::open(path)
        } else {
            Ok(Self::new(path))
        }
    }

    /// The answers in `text`, one JSON object a line (blank lines are skipped), for the file `path`.
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<Self, Error> {
        let path = path.into();
        let mut entries = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let entry: Recorded = serde_json::from_str(line).map_err(|e| Error::BadLine {
                path: path.clone(),
                line: i + 1,
                message: e.to_string(),
            })?;
            entries.insert(entry.key, entry);
        }
        Ok(Self { path, entries: Mutex::new(entries) })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<RequestKey, Recorded>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The answer recorded under `key`.
    pub fn get(&self, key: &RequestKey) -> Option<Recorded> {
        self.lock().get(key).cloned()
    }

    /// Adds an answer, replacing any under the same key.
    pub fn insert(&self, entry: Recorded) {
        self.lock().insert(entry.key, entry);
    }

    /// How many answers there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every answer, by key.
    pub fn entries(&self) -> Vec<Recorded> {
        self.lock().values().cloned().collect()
    }

    /// The providers and base URLs the answers were recorded from, each once.
    pub fn sources(&self) -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for r in self.lock().values().filter_map(|e| e.request.as_ref()) {
            let pair = (r.provider.clone(), r.base_url.clone());
            if !seen.contains(&pair) {
                seen.push(pair);
            }
        }
        seen
    }

    /// The file's text: one answer a line, sorted by key, each line ended by a newline.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for entry in self.lock().values() {
            // Serializing plain data to a string cannot fail.
            if let Ok(line) = serde_json::to_string(entry) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }

    /// Writes the file whole or not at all (a temporary file beside it, then renamed over it).
    pub fn save(&self) -> Result<(), Error> {
        let text = self.to_jsonl();
        let write_err = |source| Error::File { action: "write", path: self.path.clone(), source };
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = self.path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(write_err)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            write_err(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gm_core::ChatMessage;

    fn entry(prompt: &str, sample: u32) -> Recorded {
        let req = ChatRequest::new("m", vec![ChatMessage::system("s"), ChatMessage::user(prompt)]);
        let key = RequestKey::for_chat("openai", "https://api.openai.com/v1", &req, sample);
        let mut e = Recorded::new(key, serde_json::json!({"choices": [], "usage": {"total_tokens": 3}}));
        e.request = Some(RequestSummary::of("openai", "https://u:secret@api.openai.com/v1", &req, sample));
        e
    }

    #[test]
    fn lines_are_sorted_by_key_whatever_the_order_of_insertion() {
        let (a, b, c) = (entry("a", 0), entry("b", 0), entry("a", 1));
        let one = RecordedAnswers::new("x");
        let two = RecordedAnswers::new("x");
        for e in [&a, &b, &c] {
            one.insert(e.clone());
        }
        for e in [&c, &b, &a] {
            two.insert(e.clone());
        }
        assert_eq!(one.to_jsonl(), two.to_jsonl());
        let keys: Vec<String> = one.to_jsonl().lines().map(|l| l[8..40].to_string()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(RecordedAnswers::parse("x", &one.to_jsonl()).unwrap().to_jsonl(), one.to_jsonl());
    }

    #[test]
    fn a_summary_keeps_no_password_and_a_short_prompt() {
        let e = entry(&"word ".repeat(100), 2);
        let r = e.request.unwrap();
        assert_eq!(r.base_url, "https://api.openai.com/v1");
        assert_eq!(r.prompt.chars().count(), PROMPT_EXCERPT + 1);
        assert_eq!((r.sample, r.messages), (2, 2));
        assert_eq!(e.usage, Some(serde_json::json!({"total_tokens": 3})));
    }

    #[test]
    fn a_bad_line_is_named() {
        let good = RecordedAnswers::new("x");
        good.insert(entry("a", 0));
        let text = format!("{}\n{{\"key\": \"nothex\", \"response\": {{}}}}\n", good.to_jsonl());
        let e = RecordedAnswers::parse("answers.jsonl", &text).unwrap_err().to_string();
        assert!(e.starts_with("answers.jsonl:3: "), "{e}");
    }

    #[test]
    fn a_value_that_is_not_json_comes_back_as_its_bytes() {
        let r = Recorded::new(RequestKey::from_u128(1), Recorded::response_of(b"Paris."));
        assert_eq!(r.response_bytes(), b"Paris.");
        let r = Recorded::new(RequestKey::from_u128(1), Recorded::response_of(br#"{"a":1}"#));
        assert_eq!(r.response_bytes(), br#"{"a":1}"#);
    }
}
