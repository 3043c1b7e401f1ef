//! Recorded answers: every chat answer written to a file ([`RecordMode::Record`]), or answered from one
//! ([`RecordMode::Replay`]) without sending anything, or both ([`RecordMode::ReplayRecordMissing`]).
//!
//! The layer sits in front of the cache: a replayed answer is neither looked up in nor stored in the cache,
//! and carries the figures it was recorded with (latency, time to first token, attempts, 429s, whether the
//! cache had answered it), so a replayed run reports what the recorded run reported. A recorded latency is
//! kept to the microsecond, and the recording run reports it to the microsecond too. An answer the cache gave
//! is recorded as cached, with no latency (the look-up is not a model's latency); an answer whose usage the
//! server did not send is recorded without usage, so its replay estimates it again and marks it estimated.

use std::sync::Arc;
use std::time::Duration;

use gm_cache::recording::{Recorded, RecordedAnswers, RequestSummary};
use gm_cache::RequestKey;
use gm_core::{ChatCompletion, ChatRequest};

use super::{ChatResponse, Client};
use crate::error::{Error, NotRecorded};

/// How a client uses a recorded answers file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordMode {
    /// Every chat answer (from the provider or the cache) is added to the file.
    Record,
    /// Every chat answer comes from the file; a request the file does not hold fails and nothing is sent.
    Replay,
    /// Answers come from the file; a request it does not hold goes to the provider (or the cache) and its
    /// answer is added.
    ReplayRecordMissing,
}

impl RecordMode {
    /// Whether answers are looked up in the file.
    pub fn replays(self) -> bool {
        matches!(self, RecordMode::Replay | RecordMode::ReplayRecordMissing)
    }

    /// Whether new answers are added to the file.
    pub fn records(self) -> bool {
        matches!(self, RecordMode::Record | RecordMode::ReplayRecordMissing)
    }
}

/// The file and the mode.
#[derive(Debug, Clone)]
pub(super) struct Recorder {
    pub(super) answers: Arc<RecordedAnswers>,
    pub(super) mode: RecordMode,
}

/// A duration to the microsecond, as a recording keeps it.
pub(super) fn to_micros(d: Duration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What a recorded answer took, for [`Recorder::record`].
pub(super) struct Took {
    pub(super) latency: Duration,
    pub(super) time_to_first_token: Option<Duration>,
    pub(super) attempts: u32,
    pub(super) rate_limited: u32,
    pub(super) cached: bool,
    pub(super) streamed: bool,
}

impl Recorder {
    /// Adds an answer to the file (kept in memory until the file is saved). An answer the cache gave does not
    /// replace one the provider gave under the same key earlier in the run: that one has a measured latency.
    pub(super) fn record(&self, key: RequestKey, summary: RequestSummary, completion: &ChatCompletion, took: Took) {
        if took.cached && self.answers.get(&key).is_some_and(|earlier| !earlier.cached) {
            return;
        }
        let response = match serde_json::to_value(completion) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "could not encode an answer for the recording");
                return;
            }
        };
        let mut entry = Recorded::new(key, response);
        entry.request = Some(summary);
        // An answer the cache gave took only the look-up: it is marked cached, with no latency, so that no
        // replay takes the look-up for a model's latency (record with the cache off for measured latencies).
        if !took.cached {
            entry.latency_us = Some(micros(took.latency));
            entry.time_to_first_token_us = took.time_to_first_token.map(micros);
        }
        entry.attempts = took.attempts;
        entry.rate_limited = took.rate_limited;
        entry.cached = took.cached;
        entry.streamed = took.streamed;
        self.answers.insert(entry);
    }
}

impl Client {
    /// How the client uses a recorded answers file, if it has one ([`ClientBuilder::recording`](super::ClientBuilder::recording)).
    pub fn recording(&self) -> Option<RecordMode> {
        self.inner.recorder.as_ref().map(|r| r.mode)
    }

    /// The recorded answers, if the client has a file.
    pub fn recorded_answers(&self) -> Option<&Arc<RecordedAnswers>> {
        self.inner.recorder.as_ref().map(|r| &r.answers)
    }

    /// The summary of a request as the recording keeps it.
    pub(super) fn summary(&self, req: &ChatRequest, sample: u32) -> RequestSummary {
        RequestSummary::of(self.inner.provider.as_str(), &self.inner.base, req, sample)
    }

    /// The recorded answer to `req` when the client replays: `Ok(None)` when it does not replay, or records
    /// what is missing; an error naming the request when the file must answer and does not.
    pub(super) fn replayed(&self, key: &RequestKey, req: &ChatRequest, sample: u32) -> Result<Option<Recorded>, Error> {
        let Some(rec) = self.inner.recorder.as_ref().filter(|r| r.mode.replays()) else { return Ok(None) };
        if let Some(entry) = rec.answers.get(key) {
            return Ok(Some(entry));
        }
        if rec.mode.records() {
            return Ok(None);
        }
        let summary = self.summary(req, sample);
        let here = (summary.provider.clone(), summary.base_url.clone());
        let sources = rec.answers.sources();
        let hint = if !sources.is_empty() && !sources.contains(&here) {
            let (p, b) = &sources[0];
            format!("; its answers were recorded from {p} at {b}, and this run asks {} at {}", here.0, here.1)
        } else {
            String::new()
        };
        Err(Error::NotRecorded(Box::new(NotRecorded {
            file: rec.answers.path().display().to_string(),
            key: key.to_string(),
            model: summary.model,
            sample,
            prompt: summary.prompt,
            hint,
        })))
    }
}

impl ChatResponse {
    /// A recorded answer with the figures it was recorded with.
    pub(super) fn from_recorded(provider: gm_core::ProviderKind, entry: &Recorded) -> Result<Self, Error> {
        let completion: ChatCompletion = serde_json::from_value(entry.response.clone()).map_err(|e| Error::Decode {
            provider,
            message: format!("the recorded answer {} is not a chat completion: {e}", entry.key),
        })?;
        Ok(Self {
            service: super::server_timing(&completion),
            usage_estimated: completion.usage.is_none(),
            queued: Duration::ZERO,
            completion,
            latency: Duration::from_micros(entry.latency_us.unwrap_or(0)),
            attempts: entry.attempts,
            rate_limited: entry.rate_limited,
            cached: entry.cached,
            // A recording keeps the answer as parsed JSON, not the bytes the server sent.
            body: None,
        })
    }
}
