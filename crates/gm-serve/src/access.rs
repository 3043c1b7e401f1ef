//! Who is calling, and whether their limits let them: client keys, public visitors, or nobody (local use).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use gm_limits::{Denied, LimitKey, LimitSpec, Limiter, Permit, TokenCount, WindowStore};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::config::PublicLimits;
use crate::keys::{hash_key, KeyRecord, KeyStore};
use crate::wire::ApiFailure;

/// The caller of one request.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// No keys exist and the gateway is not public: local use, no limits of its own.
    Open,
    /// A valid client key.
    Key(Arc<KeyRecord>),
    /// A keyless visitor of a `--public` gateway, by address.
    Visitor(IpAddr),
}

impl Caller {
    /// The name in logs and metric labels (never a secret).
    pub(crate) fn label(&self) -> &str {
        match self {
            Caller::Open => "-",
            Caller::Key(k) => &k.name,
            Caller::Visitor(_) => "public",
        }
    }
}

/// Marks a request the gateway sends itself, in process (the dashboard's evaluations, whose requests were
/// counted against the viewer's limits before they started): it needs no key. Only code of this crate can put
/// it on a request; nothing from the network carries it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InProcess;

/// An admitted request: the permits that count it, settled with its usage once it is answered.
#[derive(Debug, Default)]
pub(crate) struct Pass {
    tokens: Option<Permit>,
    usd: Option<Permit>,
    others: Vec<Permit>,
    /// `x-ratelimit-*` headers for the answer.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

impl Pass {
    /// Replaces the reservations by what the request used.
    pub(crate) fn settle(self, tokens: u64, micro_usd: u64) {
        if let Some(p) = self.tokens {
            p.settle(tokens);
        }
        if let Some(p) = self.usd {
            p.settle(micro_usd);
        }
        drop(self.others);
    }

    /// Adds the rate-limit headers to an answer.
    pub(crate) fn apply(&self, h: &mut HeaderMap) {
        for (k, v) in &self.headers {
            h.insert(k.clone(), v.clone());
        }
    }
}

/// The gate in front of every model call.
#[derive(Debug)]
pub(crate) struct Access {
    pub(crate) keys: Arc<dyn KeyStore>,
    limiter: Limiter,
    store: Option<Arc<dyn WindowStore>>,
    public: Option<PublicLimits>,
    trust_proxy: bool,
    anchor: (Instant, SystemTime),
}

static LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
static REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
static LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
static REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");

fn unauthorized(message: &str) -> ApiFailure {
    ApiFailure::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl Access {
    pub(crate) fn new(
        keys: Arc<dyn KeyStore>,
        limiter: Limiter,
        store: Option<Arc<dyn WindowStore>>,
        public: Option<PublicLimits>,
        trust_proxy: bool,
    ) -> Self {
        Self { keys, limiter, store, public, trust_proxy, anchor: (Instant::now(), SystemTime::now()) }
    }

    /// Who sent `parts`: the gateway itself in process, else as [`Access::identify`] says.
    pub(crate) fn identify_request(
        &self,
        parts: &http::request::Parts,
        peer: SocketAddr,
    ) -> Result<Caller, ApiFailure> {
        if parts.extensions.get::<InProcess>().is_some() {
            return Ok(Caller::Open);
        }
        self.identify(&parts.headers, peer)
    }

    /// Who is calling. A key is a bearer token or an `api-key` header.
    pub(crate) fn identify(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<Caller, ApiFailure> {
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let store_failed =
            |e: crate::ServeError| ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable", e.to_string());
        // One look at the store per request: the key sent, and whether any key exists.
        let (found, any_keys) = self.keys.lookup(token.map(hash_key).as_deref()).map_err(store_failed)?;
        if let Some(rec) = found {
            if rec.revoked.is_some() {
                return Err(unauthorized("this key was revoked; ask the gateway's owner for a new one"));
            }
            return Ok(Caller::Key(rec));
        }
        if token.is_some() {
            if any_keys {
                return Err(unauthorized(
                    "the key is not known to this gateway; send a key made with `gm serve keys create` as a bearer token or api-key header",
                ));
            }
        } else if any_keys && self.public.is_none() {
            return Err(unauthorized(
                "this gateway needs a key: send it as `Authorization: Bearer KEY` or an `api-key` header",
            ));
        }
        if self.public.is_some() {
            return Ok(Caller::Visitor(self.visitor_addr(headers, peer)));
        }
        Ok(Caller::Open)
    }

    fn visitor_addr(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        if self.trust_proxy {
            // The proxy appends the address it saw last; earlier entries are the client's own claims.
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .next_back();
            if let Some(ip) = forwarded {
                return ip;
            }
        }
        peer.ip()
    }

    /// Counts a request against its caller's limits, or says when it may come back.
    pub(crate) fn admit(&self, caller: &Caller, tokens: TokenCount) -> Result<Pass, ApiFailure> {
        let now = Instant::now();
        let mut pass = Pass::default();
        match caller {
            Caller::Open => {}
            Caller::Key(rec) => {
                let spec = rec.spec();
                if !spec.is_unlimited() {
                    let key = LimitKey::new("gm-serve", rec.id.clone(), "requests");
                    let counted = if spec.token_windows.is_empty() { TokenCount::ZERO } else { tokens };
                    let permit = self.take(&key, &spec, counted, now, "this key's limits")?;
                    pass.headers.extend(self.headers(&key, &spec, now));
                    pass.tokens = Some(permit);
                }
                if let Some(w) = rec.budget.as_ref().and_then(|b| b.micro_usd) {
                    let key = LimitKey::new("gm-serve", rec.id.clone(), "usd");
                    let spec = LimitSpec { token_windows: vec![w], ..LimitSpec::default() };
                    // One micro-dollar is reserved, so a budget spent to the last micro-dollar admits no more.
                    pass.usd = Some(self.take(&key, &spec, TokenCount::new(1, 0), now, "this key's dollar budget")?);
                }
            }
            Caller::Visitor(ip) => {
                let Some(p) = &self.public else { return Ok(pass) };
                let key = LimitKey::new("gm-serve-visitor", ip.to_string(), "requests");
                let permit = self.take(&key, &p.visitor, TokenCount::ZERO, now, "the limits for each visitor")?;
                pass.headers.extend(self.headers(&key, &p.visitor, now));
                pass.others.push(permit);
                let global = LimitKey::new("gm-serve-public", "-", "requests");
                let permit =
                    self.take(&global, &p.global, TokenCount::ZERO, now, "the limits for all visitors together")?;
                pass.others.push(permit);
            }
        }
        Ok(pass)
    }

    fn take(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        tokens: TokenCount,
        now: Instant,
        what: &str,
    ) -> Result<Permit, ApiFailure> {
        self.limiter.set_limits(key, spec.clone());
        match self.limiter.try_acquire(key, tokens, now) {
            Ok(p) => Ok(p),
            Err(Denied::Wait(w)) => {
                let wait = w.after(now).unwrap_or(std::time::Duration::from_millis(50));
                let mut f = ApiFailure::rate_limited(
                    format!("{what} allow no more requests now ({}); retry after the time given", w.reason),
                    wait,
                );
                f.headers = self.headers(key, spec, now);
                Err(f)
            }
            Err(Denied::Refused(e)) if e.is_request_too_large() => {
                Err(ApiFailure::new(StatusCode::PAYLOAD_TOO_LARGE, "tokens_limit_reached", format!("{what}: {e}")))
            }
            Err(Denied::Refused(e)) => {
                Err(ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, "limits_unavailable", e.to_string()))
            }
            Err(other) => {
                Err(ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, "limits_unavailable", other.to_string()))
            }
        }
    }

    /// `x-ratelimit-limit-*` and `x-ratelimit-remaining-*` for the window with the least room left. Request
    /// counts come from the shared store when there is one, so they hold across replicas.
    fn headers(&self, key: &LimitKey, spec: &LimitSpec, now: Instant) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        let status = self.limiter.key_status(key, now);
        let mut best: Option<(u64, u64)> = None;
        for (i, w) in spec.windows.iter().enumerate() {
            let used = match &self.store {
                Some(store) => {
                    let (i0, w0) = self.anchor;
                    let wall = w0 + now.saturating_duration_since(i0);
                    store.count(key, spec.margin().apply(w.per), wall).ok()
                }
                None => None,
            }
            .or_else(|| status.as_ref().and_then(|s| s.requests.get(i)).map(|s| s.used))
            .unwrap_or(0);
            let remaining = w.limit.saturating_sub(used);
            if best.is_none_or(|(_, r)| remaining < r) {
                best = Some((w.limit, remaining));
            }
        }
        if let Some((limit, remaining)) = best {
            out.push((LIMIT_REQUESTS.clone(), HeaderValue::from(limit)));
            out.push((REMAINING_REQUESTS.clone(), HeaderValue::from(remaining)));
        }
        if let Some(s) = status {
            if let Some(t) = s.tokens.iter().min_by_key(|t| t.remaining) {
                out.push((LIMIT_TOKENS.clone(), HeaderValue::from(t.limit)));
                out.push((REMAINING_TOKENS.clone(), HeaderValue::from(t.remaining)));
            }
        }
        out
    }
}
