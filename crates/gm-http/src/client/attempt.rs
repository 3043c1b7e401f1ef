//! The attempt layer: every request passes the limiter (a permit per attempt), is sent and retried as the
//! policy allows, and each answer teaches the limiter what the server said.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use gm_core::{ChatRequest, ErrorBody, ProviderKind};
use http::{HeaderMap, Method};

use super::{poisoned, Client};
use crate::error::{ApiError, Error, GITHUB_MODELS_RETIRED_ON};
use crate::retry::{server_wait, RetryPolicy};
use crate::transport::{HttpRequest, HttpResponse, TransportError, TransportErrorKind};

impl Client {
    /// The key under which the limiter counts requests to `model`: the provider, a fingerprint of the credential
    /// (and of the base URL, for an endpoint other than the provider's own), and the model.
    pub fn limit_key(&self, model: &str) -> gm_limits::LimitKey {
        let model = self.wire_model(model).unwrap_or_else(|_| model.to_string());
        gm_limits::LimitKey::new(
            self.inner.provider.as_str(),
            self.inner.credential_fingerprint.clone(),
            model.to_lowercase(),
        )
    }

    /// Reads a success answer's body up to the size cap.
    pub(super) async fn collect(&self, resp: HttpResponse, url: &http::Uri) -> Result<Bytes, Error> {
        let limit = self.inner.max_response_bytes;
        resp.collect(limit).await.map_err(|e| match e.kind {
            TransportErrorKind::TooLarge => Error::TooLarge { url: url.to_string(), limit },
            _ => map_transport(e, url),
        })
    }

    /// Gives a GitHub Models key the limits of its catalog tier on the configured plan.
    async fn apply_github_tier(&self, limiter: &gm_limits::Limiter, key: &gm_limits::LimitKey) -> Result<(), Error> {
        let tier = if limiter.config().uniform {
            None
        } else {
            let models = self.models().await?;
            models.iter().find(|m| m.id.eq_ignore_ascii_case(&key.model)).and_then(|m| m.rate_limit_tier.clone())
        };
        let spec = limiter.config().spec_for_github_model(&key.provider, &key.model, tier.as_deref())?;
        limiter.set_limits(key, spec);
        Ok(())
    }

    /// The limiter's handle on the key of `model`, made once per model (a GitHub key gets its catalog tier
    /// then): later requests find it without building the key or looking it up in the limiter.
    async fn key_handle(&self, limiter: &gm_limits::Limiter, model: &str) -> Result<gm_limits::KeyHandle, Error> {
        if let Some(h) = self.inner.handles.read().map_err(|_| poisoned())?.get(model) {
            return Ok(h.clone());
        }
        let key = self.limit_key(model);
        if self.inner.provider == ProviderKind::Github {
            self.apply_github_tier(limiter, &key).await?;
        }
        let handle = limiter.handle(&key);
        self.inner.handles.write().map_err(|_| poisoned())?.insert(model.to_string(), handle.clone());
        Ok(handle)
    }

    /// Sends with retries; returns a success response (status < 400) with its body unread.
    pub(super) async fn execute(
        &self,
        method: Method,
        url: http::Uri,
        body: Bytes,
        limited: Option<&ChatRequest>,
    ) -> Result<(HttpResponse, Meta), Error> {
        // Every attempt passes the limiter; a request over a per-request cap fails here, before sending.
        let limit = match (&self.inner.limiter, limited) {
            (Some((limiter, max_wait)), Some(req)) => {
                // Counting tokens costs a tokenizer pass, which only limits on tokens need.
                let handle = self.key_handle(limiter, &req.model).await?;
                let tokens =
                    if handle.counts_tokens() { gm_limits::count_tokens(req) } else { gm_limits::TokenCount::ZERO };
                handle.check(&tokens)?;
                Some((limiter.as_ref(), *max_wait, handle, tokens))
            }
            _ => None,
        };
        self.attempts(method, url, body, limit).await
    }

    /// The retry loop: each attempt takes a permit from the limiter (when given), sends, and reads the status.
    pub(super) async fn attempts(
        &self,
        method: Method,
        url: http::Uri,
        body: Bytes,
        limit: Option<(&gm_limits::Limiter, Duration, gm_limits::KeyHandle, gm_limits::TokenCount)>,
    ) -> Result<(HttpResponse, Meta), Error> {
        let headers = if body.is_empty() { &self.inner.headers } else { &self.inner.json_headers };
        let policy = &self.inner.retry;
        let mut meta = Meta::default();
        loop {
            meta.attempts += 1;
            let waiting = self.inner.clock.now();
            if let Some((_, max_wait, handle, tokens)) = &limit {
                // A failed attempt gave its permit back before its backoff (below), so a retry never waits
                // for the concurrency slot it holds itself.
                meta.permit = Some(handle.acquire(*tokens, *max_wait).await?);
            }
            // The server's cap counts what is sent to it; a catalog request is not held back by it.
            if let (Some(slots), true) = (&self.inner.server_slots, method == Method::POST) {
                meta.slot = Some(slots.clone().acquire_owned().await.map_err(|_| poisoned())?);
            }
            if limit.is_some() || meta.slot.is_some() {
                meta.queued += self.inner.clock.now().saturating_duration_since(waiting);
            }
            self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);
            let request =
                HttpRequest { method: method.clone(), url: url.clone(), headers: headers.clone(), body: body.clone() };
            let can_retry = meta.attempts < policy.max_attempts.max(1);
            let resp = match self.inner.transport.send(request).await {
                Ok(r) => r,
                Err(e) => {
                    let retryable = match e.kind {
                        TransportErrorKind::Connect => true,
                        TransportErrorKind::Timeout | TransportErrorKind::Io => policy.retry_maybe_sent,
                        _ => false,
                    };
                    if retryable && can_retry {
                        tracing::debug!(attempt = meta.attempts, error = %e, "retrying after a transport error");
                        self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                        // Nothing is in flight while the backoff runs: free the concurrency slot for others.
                        meta.permit = None;
                        meta.slot = None;
                        tokio::time::sleep(policy.backoff(meta.attempts)).await;
                        continue;
                    }
                    return Err(map_transport(e, &url));
                }
            };
            if resp.status < 400 {
                if let Some((limiter, _, handle, _)) = &limit {
                    let _ = observe(limiter, handle.key(), resp.status, &resp.headers, None);
                }
                return Ok((resp, meta));
            }
            let status = resp.status;
            let resp_headers = resp.headers.clone();
            let raw = resp.collect(64 << 10).await.unwrap_or_default();
            // A server may echo the request's credential back (an error naming the key it refused): it is taken
            // out before anything of the answer is kept, shown or logged.
            let raw = Bytes::from(self.scrub(&String::from_utf8_lossy(&raw)));
            let parsed = ErrorBody::parse(&raw);
            let seen = limit
                .as_ref()
                .map(|(limiter, _, handle, _)| observe(limiter, handle.key(), status, &resp_headers, Some(&raw)));
            // A `retry-after` HTTP date is wall-clock time, which no monotonic `Clock` can tell.
            let wait = server_wait(&resp_headers, parsed.as_ref(), SystemTime::now());
            // A 429 that says nothing about waiting blocked the key for the limiter's short, growing backoff:
            // the retry waits just as long (the limiter would hold it back until then anyway).
            let backoff = seen.filter(|s| status == 429 && !s.told).and_then(|s| s.retry_after);
            let mut raw_text = String::from_utf8_lossy(&raw).into_owned();
            if raw_text.len() > 4096 {
                let cut = (0..=4096).rev().find(|&i| raw_text.is_char_boundary(i)).unwrap_or(0);
                raw_text.truncate(cut);
            }
            let api = ApiError {
                provider: self.inner.provider,
                status,
                body: parsed,
                raw: raw_text,
                retry_after: wait,
                rate_limit_type: resp_headers.get("x-ratelimit-type").and_then(|v| v.to_str().ok()).map(str::to_string),
                credential: self.inner.credential.as_ref().map(|c| c.source().to_string()),
                base_url: self.inner.base.clone(),
            };
            if status == 429 {
                meta.rate_limited += 1;
                self.inner.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            if status == 410
                && (self.inner.provider == ProviderKind::Github || api.code().is_some_and(|c| c.contains("retire")))
            {
                let code = api.code().map(|c| format!(" ({c})")).unwrap_or_default();
                return Err(Error::Retired { retired_on: GITHUB_MODELS_RETIRED_ON, code, api: Box::new(api) });
            }
            if !RetryPolicy::is_retryable_status(status) || !can_retry || api.is_daily_limit() {
                return Err(Error::Api(Box::new(api)));
            }
            // The cap applies to a wait the server asked for; our own backoff is only shortened to it.
            let delay = match wait {
                Some(w) if w > policy.max_wait => {
                    return Err(Error::WaitTooLong { wait: w, cap: policy.max_wait, api: Box::new(api) });
                }
                Some(w) => w,
                None => policy.backoff(meta.attempts).max(backoff.unwrap_or_default()).min(policy.max_wait),
            };
            tracing::info!(
                status,
                attempt = meta.attempts,
                wait_ms = delay.as_millis() as u64,
                told = wait.is_some(),
                "retrying"
            );
            self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
            meta.permit = None;
            meta.slot = None;
            tokio::time::sleep(delay).await;
        }
    }
}

/// What getting an answer took, and the limiter's permit to settle once its usage is known.
#[derive(Debug, Default)]
pub(super) struct Meta {
    pub(super) attempts: u32,
    pub(super) rate_limited: u32,
    pub(super) permit: Option<gm_limits::Permit>,
    /// A place among the requests in flight to the server, held until the answer is whole.
    pub(super) slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The time spent waiting for the limiter and the server's cap before sending, over every attempt.
    pub(super) queued: Duration,
}

/// Shows an answer's status, rate-limit headers and error body to the limiter, at the limiter's own time (its
/// clock may not be the client's).
fn observe(
    limiter: &gm_limits::Limiter,
    key: &gm_limits::LimitKey,
    status: u16,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> gm_limits::Observation {
    let mut signal = gm_limits::ServerSignal::new(status);
    let mut told = false;
    for (name, value) in headers {
        // Names come lower-case; only these tell the limiter anything. `date` tells nothing alone, but an
        // HTTP-date `retry-after` is measured against it.
        let name = name.as_str();
        let limits = name.starts_with("retry-after") || name.starts_with("x-ratelimit-");
        if !(limits || name == "date") {
            continue;
        }
        if let Ok(v) = value.to_str() {
            signal.set_header(name, v);
            told |= limits;
        }
    }
    // A success without rate-limit headers has nothing to teach.
    if status < 400 && !told {
        return gm_limits::Observation::default();
    }
    if let Some(b) = body {
        signal = signal.body(b);
    }
    limiter.observe(key, &signal, limiter.clock().now())
}

fn map_transport(e: TransportError, url: &http::Uri) -> Error {
    let url = url.to_string();
    match e.kind {
        TransportErrorKind::InvalidRequest => Error::InvalidRequest(e.message),
        TransportErrorKind::Connect => Error::Connect { url, message: e.message, cause: e.cause },
        TransportErrorKind::Timeout => Error::Timeout { url, message: e.message },
        _ => Error::Io { url, message: e.message, cause: e.cause },
    }
}
