//! Streamed chat: the answer chunk by chunk, assembled into one completion at the end; a cached answer
//! replayed as the stream a server would have sent; a streamed answer stored once it ends with `[DONE]`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gm_core::Clock;

use bytes::Bytes;
use futures_util::StreamExt;
use gm_core::{
    ChatCompletion, ChatCompletionChunk, ChatRequest, Choice, ErrorBody, ProviderKind, ResponseMessage, StreamOptions,
};
use http::Method;

use super::attempt::Meta;
use super::replay::{to_micros, Recorder, Took};
use super::{ChatResponse, Client};
use crate::error::Error;
use crate::sse::{SseEvent, SseParser};
use crate::transport::BodyStream;
use gm_cache::recording::RequestSummary;

impl Client {
    /// Sends a chat request with `stream: true` and returns the answer as it arrives.
    ///
    /// Usage is asked for with `stream_options.include_usage` unless the request sets `stream_options` itself.
    /// With a cache configured, a cached answer is replayed as a stream, and a streamed answer that ends with
    /// `[DONE]` is stored.
    pub async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, Error> {
        super::check_numbers(request)?;
        let mut req = request.clone();
        req.model = self.wire_model(&req.model)?;
        req.stream = Some(true);
        if req.stream_options.is_none() {
            req.stream_options = Some(StreamOptions { include_usage: true });
        }
        let started = self.inner.clock.now();
        let mut record = None;
        if let Some(rec) = &self.inner.recorder {
            let key = self.cache_key(&req, 0);
            if let Some(entry) = self.replayed(&key, &req, 0)? {
                let answer = ChatResponse::from_recorded(self.inner.provider, &entry)?;
                let meta = Meta { attempts: answer.attempts, rate_limited: answer.rate_limited, ..Meta::default() };
                let body = replay_as_sse(&answer.completion);
                let mut s = self.stream_of(body, started, meta, req);
                s.cached = answer.cached;
                s.first_chunk = Some(entry.time_to_first_token_us.map(Duration::from_micros).unwrap_or(answer.latency));
                s.recorded_latency = Some(answer.latency);
                return Ok(s);
            }
            record = Some((rec.clone(), key, self.summary(&req, 0)));
        }
        let mut sink = None;
        if let Some(cache) = &self.inner.cache {
            let key = self.cache_key(&req, 0);
            if !self.inner.cache_policy.refresh {
                let hit = cache.get(&key, started).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the cache could not be read");
                    None
                });
                if let Some(hit) = hit {
                    let completion: ChatCompletion = self.decode(&hit.value)?;
                    let body = replay_as_sse(&completion);
                    let mut s = self.stream_of(body, started, Meta::default(), req);
                    s.cached = true;
                    s.record = record;
                    return Ok(s);
                }
            }
            sink = Some((cache.clone(), key, self.inner.cache_policy.ttl));
        }
        let body = serde_json::to_vec(&req)
            .map_err(|e| Error::InvalidRequest(format!("could not encode the request: {e}")))?;
        let url = self.inner.chat_url.clone();
        let (resp, meta) =
            tokio::time::timeout(self.inner.timeout, self.execute(Method::POST, url.clone(), body.into(), Some(&req)))
                .await
                .map_err(|_| Error::Timeout { url: url.to_string(), message: "no answer headers in time".into() })??;
        // An event stream is what was asked for. A whole JSON answer (a server that ignores `stream`) is
        // read as one, and replayed as its stream; anything else (a proxy's HTML page) is an error that
        // says what came instead.
        let content_type = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            let bytes = self.collect(resp, &url).await?;
            let completion: ChatCompletion = self.decode(&bytes)?;
            let mut s = self.stream_of(replay_as_sse(&completion), started, meta, req);
            s.sink = sink;
            return Ok(s);
        }
        if !content_type.is_empty() && !content_type.starts_with("text/event-stream") {
            let mut first = Vec::new();
            let mut body = resp.body;
            while first.len() < 200 {
                match body.next().await {
                    Some(Ok(b)) => first.extend_from_slice(&b),
                    _ => break,
                }
            }
            first.truncate(200);
            let start = self.scrub(&String::from_utf8_lossy(&first));
            return Err(Error::Stream {
                provider: self.inner.provider,
                message: format!(
                    "the server answered {} with `{content_type}` instead of an event stream; the answer began: \
                     {start:?}; check the base URL",
                    resp.status
                ),
            });
        }
        let mut s = self.stream_of(resp.body, started, meta, req);
        s.sink = sink;
        s.record = record;
        Ok(s)
    }

    fn stream_of(&self, body: BodyStream, started: Instant, meta: Meta, req: ChatRequest) -> ChatStream {
        let mut s = ChatStream::new(self.inner.provider, body, self.inner.clock.clone(), started, meta, req);
        s.limit = self.inner.max_response_bytes;
        s.known = self.inner.credential.clone();
        s
    }
}

/// One event of a streamed answer: the chunk as parsed, and the event's data as the server sent it, for a
/// program that passes the stream on (a gateway) and must not change a field. A cached answer's replay is
/// rendered by [`ChatStream`] itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// The chunk.
    pub chunk: ChatCompletionChunk,
    /// The data of its event (the JSON text after `data: `), unchanged.
    pub data: String,
}

/// A streamed chat answer. Read it with [`ChatStream::next_chunk`] (or [`ChatStream::next_event`], with each
/// event's data as sent) or gather it with [`ChatStream::collect`].
pub struct ChatStream {
    /// The request, to estimate the usage of an answer that comes without any.
    request: ChatRequest,
    provider: ProviderKind,
    body: BodyStream,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
    finished: bool,
    truncated: bool,
    clock: Arc<dyn Clock>,
    started: Instant,
    first_chunk: Option<Duration>,
    meta: Meta,
    assembled: Assembler,
    cached: bool,
    sink: Option<(Arc<gm_cache::Cache>, gm_cache::RequestKey, Option<Duration>)>,
    /// Where the whole answer is recorded once it ends with `[DONE]`.
    record: Option<(Recorder, gm_cache::RequestKey, RequestSummary)>,
    /// The latency reported for a recorded answer (replayed, or just recorded).
    recorded_latency: Option<Duration>,
    /// The most bytes the whole stream may bring, as for a whole answer.
    limit: usize,
    /// Bytes read so far.
    read: usize,
    /// The credential, to take out of whatever the server sends back.
    known: Option<crate::auth::Credential>,
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream")
            .field("provider", &self.provider)
            .field("finished", &self.finished)
            .field("cached", &self.cached)
            .finish()
    }
}

/// Builds one completion out of the chunks of a stream.
#[derive(Debug, Default, Clone)]
struct Assembler {
    completion: ChatCompletion,
    text: String,
    finish: Option<String>,
    role: Option<gm_core::Role>,
    /// Whether a chunk carried what one text message cannot hold (tool calls, a refusal, log probabilities,
    /// another choice, fields of a provider's own): such an answer is never cached, since a replay would lose it.
    lossy: bool,
}

/// Whether a JSON value says something (`null` and empty containers say nothing).
fn says_something(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => false,
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Whether a chunk holds more than the text, role and finish reason of its first choice.
fn beyond_text(chunk: &ChatCompletionChunk) -> bool {
    chunk.choices.iter().any(|c| {
        c.index != 0
            || c.extra.get("logprobs").is_some_and(says_something)
            || c.message.as_ref().is_some_and(|m| m.tool_calls.as_ref().is_some_and(|t| !t.is_empty()))
            || c.delta.as_ref().is_some_and(|d| {
                d.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
                    || d.refusal.as_deref().is_some_and(|r| !r.is_empty())
                    || d.extra.values().any(says_something)
            })
    })
}

impl Assembler {
    fn add(&mut self, chunk: &ChatCompletionChunk) {
        self.lossy = self.lossy || beyond_text(chunk);
        self.text.push_str(chunk.text());
        if let Some(r) = chunk.finish_reason() {
            self.finish = Some(r.to_string());
        }
        if self.role.is_none() {
            self.role = chunk.choices.first().and_then(|c| c.delta.as_ref()).and_then(|d| d.role.clone());
        }
        let c = &mut self.completion;
        if c.id.as_deref().unwrap_or("").is_empty() {
            c.id = chunk.id.clone().filter(|s| !s.is_empty());
        }
        if c.model.as_deref().unwrap_or("").is_empty() {
            c.model = chunk.model.clone().filter(|s| !s.is_empty());
        }
        if c.created.is_none() {
            c.created = chunk.created.filter(|t| *t != 0);
        }
        if chunk.usage.is_some() {
            c.usage = chunk.usage.clone();
        }
    }

    fn finish(&mut self) -> ChatCompletion {
        let mut c = std::mem::take(&mut self.completion);
        c.object = Some("chat.completion".into());
        c.choices = vec![Choice {
            index: 0,
            message: Some(ResponseMessage {
                role: self.role.take().or(Some(gm_core::Role::Assistant)),
                content: Some(std::mem::take(&mut self.text)),
                ..Default::default()
            }),
            finish_reason: self.finish.take(),
            ..Default::default()
        }];
        c
    }
}

/// Renders a whole completion as the event stream a server would have sent, for replaying a cached answer.
fn replay_as_sse(c: &ChatCompletion) -> BodyStream {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        serde_json::json!({"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut out = String::new();
    let mut push = |v: serde_json::Value| {
        out.push_str("data: ");
        out.push_str(&v.to_string());
        out.push_str("\n\n");
    };
    push(chunk(serde_json::json!({"role": "assistant", "content": c.text()}), serde_json::Value::Null));
    push(chunk(serde_json::json!({}), serde_json::json!(c.finish_reason().unwrap_or("stop"))));
    if let Some(u) = &c.usage {
        push(
            serde_json::json!({"id": c.id, "object": "chat.completion.chunk", "model": c.model, "choices": [], "usage": u}),
        );
    }
    out.push_str("data: [DONE]\n\n");
    let bytes = Bytes::from(out);
    Box::pin(futures_util::stream::once(async move { Ok(bytes) }))
}

impl ChatStream {
    fn new(
        provider: ProviderKind,
        body: BodyStream,
        clock: Arc<dyn Clock>,
        started: Instant,
        meta: Meta,
        request: ChatRequest,
    ) -> Self {
        Self {
            request,
            provider,
            body,
            parser: SseParser::default(),
            pending: VecDeque::new(),
            finished: false,
            truncated: false,
            clock,
            started,
            first_chunk: None,
            meta,
            assembled: Assembler::default(),
            cached: false,
            sink: None,
            record: None,
            recorded_latency: None,
            limit: usize::MAX,
            read: 0,
            known: None,
        }
    }

    /// The next chunk; `None` after `[DONE]`. A stream that ends without `[DONE]` is an error.
    pub async fn next_chunk(&mut self) -> Option<Result<ChatCompletionChunk, Error>> {
        Some(self.next_event().await?.map(|e| e.chunk))
    }

    /// The next chunk with its event's data as the server sent it; `None` after `[DONE]`. A stream that ends
    /// without `[DONE]` is an error.
    pub async fn next_event(&mut self) -> Option<Result<StreamEvent, Error>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                match ev {
                    SseEvent::Done => {
                        self.finished = true;
                        self.pending.clear();
                        // The answer is whole: the server's slot is free for the next request.
                        self.meta.slot = None;
                        if let Some(p) = self.meta.permit.take() {
                            match &self.assembled.completion.usage {
                                Some(u) => p.settle_usage(u),
                                None => drop(p),
                            }
                        }
                        self.store();
                        self.record();
                        return None;
                    }
                    SseEvent::Data(data) => {
                        let value: serde_json::Value = match serde_json::from_str(&data) {
                            Ok(v) => v,
                            Err(e) => return Some(Err(self.fail(format!("an event is not JSON ({e}): {data:.200}")))),
                        };
                        if let Some(err) = value.get("error").and_then(|_| ErrorBody::from_value(&value)) {
                            let message = crate::auth::scrub_secrets(&err.message, self.known.as_ref());
                            return Some(Err(self.fail(format!("the server sent an error: {message}"))));
                        }
                        return match serde_json::from_value::<ChatCompletionChunk>(value) {
                            Ok(chunk) => {
                                if self.first_chunk.is_none() && !chunk.text().is_empty() {
                                    self.first_chunk = Some(self.elapsed().saturating_sub(self.meta.queued));
                                }
                                self.assembled.add(&chunk);
                                Some(Ok(StreamEvent { chunk, data }))
                            }
                            Err(e) => Some(Err(self.fail(format!("an event is not a chat chunk ({e})")))),
                        };
                    }
                }
            }
            if self.truncated {
                return Some(Err(self.fail("the stream ended without [DONE]".into())));
            }
            if self.finished {
                return None;
            }
            let mut events = Vec::new();
            match self.body.next().await {
                Some(Ok(bytes)) => {
                    self.read = self.read.saturating_add(bytes.len());
                    if self.read > self.limit {
                        let limit = self.limit;
                        let message = format!(
                            "the answer is larger than the cap of {limit} bytes; raise the cap (--max-response-bytes) \
                             if answers this large are expected"
                        );
                        return Some(Err(self.fail(message)));
                    }
                    if let Err(e) = self.parser.feed(&bytes, &mut events) {
                        return Some(Err(self.fail(e.to_string())));
                    }
                }
                Some(Err(e)) => return Some(Err(self.fail(format!("the connection failed: {e}")))),
                None => {
                    if let Err(e) = self.parser.finish(&mut events) {
                        return Some(Err(self.fail(e.to_string())));
                    }
                    // Deliver what arrived, then report the missing end.
                    self.truncated = !events.contains(&SseEvent::Done);
                }
            }
            self.pending.extend(events);
        }
    }

    /// Stores a whole answer (one that ended with `[DONE]`) in the cache, if there is one.
    fn store(&mut self) {
        let Some((cache, key, ttl)) = self.sink.take() else { return };
        if self.assembled.lossy {
            return;
        }
        let mut copy = self.assembled.clone();
        match serde_json::to_vec(&copy.finish()) {
            Ok(bytes) => {
                if let Err(e) = cache.set(key, Bytes::from(bytes), ttl, self.clock.now()) {
                    tracing::warn!(error = %e, "could not store the answer in the cache");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not encode the answer for the cache"),
        }
    }

    /// Records a whole answer (one that ended with `[DONE]`), if the client records, with its latency and
    /// time to first token to the microsecond, as they are then reported.
    fn record(&mut self) {
        let Some((recorder, key, summary)) = self.record.take() else { return };
        let latency = to_micros(self.elapsed());
        self.first_chunk = self.first_chunk.map(to_micros);
        self.recorded_latency = Some(latency);
        let took = Took {
            latency,
            time_to_first_token: self.first_chunk,
            attempts: self.meta.attempts,
            rate_limited: self.meta.rate_limited,
            cached: self.cached,
            streamed: true,
        };
        let mut copy = self.assembled.clone();
        recorder.record(key, summary, &copy.finish(), took);
    }

    /// The time on the client's clock since the request was sent.
    fn elapsed(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.started)
    }

    fn fail(&mut self, message: String) -> Error {
        self.finished = true;
        self.truncated = false;
        self.pending.clear();
        self.sink = None;
        self.record = None;
        self.meta.permit = None;
        self.meta.slot = None;
        Error::Stream { provider: self.provider, message }
    }

    /// The time from sending to the first text, once it has arrived, on the client's clock (without the time
    /// the request waited in the client before it was sent).
    pub fn time_to_first_token(&self) -> Option<Duration> {
        self.first_chunk
    }

    /// Attempts it took to get the stream started (0 for a cached answer).
    pub fn attempts(&self) -> u32 {
        self.meta.attempts
    }

    /// Whether the stream replays a cached answer (no request was sent).
    pub fn is_cached(&self) -> bool {
        self.cached
    }

    /// Reads the rest of the stream and assembles it into one completion.
    pub async fn collect(mut self) -> Result<ChatResponse, Error> {
        while let Some(chunk) = self.next_chunk().await {
            chunk?;
        }
        let completion = self.assembled.finish();
        let total = self.recorded_latency.unwrap_or_else(|| self.elapsed());
        let request = std::mem::replace(&mut self.request, ChatRequest::new("", Vec::new()));
        Ok(ChatResponse::new(completion, total, self.meta, self.cached, &request, None))
    }
}
