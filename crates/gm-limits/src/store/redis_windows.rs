//! Windows in Redis, for many machines sharing one credential's quota.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use ::redis::ScriptInvocation;

use super::{from_micros, micros, span_us, BlockAdmission, BlockWant, StoreAdmission, WindowStore, LEASE_POLL};
use crate::{LimitError, LimitKey, LimitSpec, WaitReason};

fn store_err(e: ::redis::RedisError) -> LimitError {
    LimitError::Store(Box::new(e))
}

/// The start of every admission script (each is this text followed by its own), run by Redis atomically.
/// Times are integer microseconds (exact in Lua's doubles up to 2^53, i.e. for 285 years after 1970); a time
/// written into a command's text goes through `%d`, since Lua's own conversion of a number to text keeps 14
/// digits (100 µs at today's times).
///
/// KEYS: admissions (sorted set: id by time), tokens (hash: id → tokens), block (hash), sequence (the ids of
/// admissions and leases), horizon (the longest window any spec has used on the key, in microseconds), leases
/// (sorted set: id by the time its concurrency lease lapses).
/// ARGV: now, the script's own arguments, then the spec as [`push_spec`] gives it: the number of request
/// windows and their (limit, span) pairs, the number of token windows and their (budget, span) pairs, the
/// shortest history to keep and the most admissions to keep, the concurrency cap (0: none), the lease, the
/// poll interval.
/// A script that waits returns `{0, until, kind, index}` (kind 0: server block with index 1 when daily;
/// 1: request window `index`; 2: token window `index`; 3: the concurrency cap).
const COMMON: &str = r"
local now = tonumber(ARGV[1])
local wait_until, kind, index = nil, 0, 0
-- Every limit in the way frees at some time: the wait lasts until the latest.
local function later(u, k, i)
  if wait_until == nil or u > wait_until then wait_until, kind, index = u, k, i end
end
local function read_spec(a)
  local s = {req = {}, tok = {}, longest = 0}
  for _, list in ipairs({s.req, s.tok}) do
    local n = tonumber(ARGV[a]); a = a + 1
    for w = 1, n do
      local limit, span = tonumber(ARGV[a]), tonumber(ARGV[a + 1]); a = a + 2
      list[w] = {limit = limit, span = span}
      if span > s.longest then s.longest = span end
    end
  end
  s.floor, s.cap = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  s.conc, s.lease, s.poll = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  return s
end
local function check_block()
  local b = redis.call('HMGET', KEYS[3], 'until', 'daily')
  if b[1] and tonumber(b[1]) > now then later(tonumber(b[1]), 0, tonumber(b[2] or '0')) end
end
-- The time of the limit-th most recent admission a window of `span` still counts (those recorded later than
-- now too), if it counts that many: it fills the window until it expires.
local function nth(limit, span)
  local r = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', string.format('(%d', now - span), 'WITHSCORES',
    'LIMIT', limit - 1, 1)
  if #r > 0 then return tonumber(r[2]) end
end
local function check_tokens(s, tokens)
  for w, win in ipairs(s.tok) do
    local budget, span = win.limit, win.span
    local r = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now - span), '+inf', 'WITHSCORES')
    local used, entries = 0, {}
    for j = 1, #r, 2 do
      local t = tonumber(redis.call('HGET', KEYS[2], r[j]) or '0')
      used = used + t
      entries[#entries + 1] = {tonumber(r[j + 1]), t}
    end
    if used + tokens > budget then
      local free = now + span
      for _, e in ipairs(entries) do
        used = used - e[2]
        if used + tokens <= budget then free = e[1] + span; break end
      end
      later(free, 2, w)
    end
  end
end
-- The requests in flight: a lease its holder stopped renewing (the process died) has lapsed and no longer
-- counts.
local function open_leases()
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  return redis.call('ZCARD', KEYS[6])
end
-- How far back a key's history reaches: the longest window of the spec, and at least s.floor (a day).
local function history(s)
  if s.floor > s.longest then return s.floor end
  return s.longest
end
-- Records `n` admissions of `tokens` each at `at`, or at the key's latest admission if that is later (so the
-- times follow the ids), and returns the last id. Then forgets what no window counts any more: the history
-- keeps what the longest window any spec ever used on this key counts (another process may use longer ones),
-- and at least s.floor (a day), up to the latest s.cap admissions; the key lasts a minute longer.
local function record(s, n, at, tokens)
  local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #last > 0 and tonumber(last[2]) > at then at = tonumber(last[2]) end
  local top = redis.call('INCRBY', KEYS[4], n)
  -- A thousand at a time, well within the arguments a Lua call may pass.
  for first = top - n + 1, top, 1000 do
    local scored, weighed = {}, {}
    for id = first, math.min(first + 999, top) do
      scored[#scored + 1] = at; scored[#scored + 1] = id
      weighed[#weighed + 1] = id; weighed[#weighed + 1] = tokens
    end
    redis.call('ZADD', KEYS[1], unpack(scored))
    redis.call('HSET', KEYS[2], unpack(weighed))
  end
  local longest = history(s)
  local horizon = tonumber(redis.call('GET', KEYS[5]) or '0')
  if horizon > longest then longest = horizon else redis.call('SET', KEYS[5], longest) end
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - longest)
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
    redis.call('HDEL', KEYS[2], unpack(old))
  end
  local over = redis.call('ZCARD', KEYS[1]) - s.cap
  if over > 0 then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, over - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
    redis.call('HDEL', KEYS[2], unpack(oldest))
  end
  local ttl = math.ceil((at - now + longest) / 1000) + 60000
  for k = 1, 5 do redis.call('PEXPIRE', KEYS[k], ttl) end
  return top
end
-- Leases the ids `first` to `last` until now + s.lease; the set lasts a minute longer.
local function lease(s, first, last)
  for id = first, last do redis.call('ZADD', KEYS[6], now + s.lease, id) end
  redis.call('PEXPIRE', KEYS[6], math.ceil(s.lease / 1000) + 60000)
end
";

/// Admission of one request: [`COMMON`], then this. ARGV after now: the tokens to reserve, then the spec.
/// Returns `{1, id}` when admitted (the admission's id, and its lease's when the key has a concurrency cap).
const ADMIT: &str = r"
local tokens = tonumber(ARGV[2])
local s = read_spec(3)
check_block()
for w, win in ipairs(s.req) do
  local at = nth(win.limit, win.span)
  if at then later(at + win.span, 1, w) end
end
check_tokens(s, tokens)
-- A full cap frees when a request ends, which only a look can tell: the wait is a short poll.
if s.conc > 0 and open_leases() >= s.conc then later(now + s.poll, 3, s.conc) end
if wait_until then return {0, wait_until, kind, index} end
local id = record(s, 1, now, tokens)
if s.conc > 0 then lease(s, id, id) end
return {1, id}
";

/// A block of admissions and leases ([`WindowStore::admit_block`]): [`COMMON`], then this. ARGV after now:
/// the requests and the leases wanted and the hold, then the spec. Each kind is granted at most half the room
/// its tightest limit has left (rounded up), so one process leaves room for the others, and at least one.
/// Returns `{1, requests, until, first admission's id, lease ids…}` when granted.
const BLOCK: &str = r"
local requests, leases, hold = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local s = read_spec(5)
local function half(room) return math.floor((room + 1) / 2) end
check_block()
if requests > 0 then
  for w, win in ipairs(s.req) do
    local room = win.limit - redis.call('ZCOUNT', KEYS[1], string.format('(%d', now - win.span), '+inf')
    if room > 0 then
      requests = math.min(requests, half(room))
    else
      -- (A window that allows none has no such admission.)
      local at = nth(win.limit, win.span)
      later(at and at + win.span or now + 1, 1, w)
    end
  end
  -- Handed out later, the admissions reserve no tokens: a token budget holds them only when already spent.
  check_tokens(s, 0)
  -- The history keeps s.cap admissions: a larger grant would not all count.
  requests = math.min(requests, s.cap)
end
if s.conc == 0 then leases = 0 end
if leases > 0 then
  local room = s.conc - open_leases()
  if room > 0 then leases = math.min(leases, half(room)) else later(now + s.poll, 3, s.conc) end
end
if wait_until then return {0, wait_until, kind, index} end
-- Recorded as made at the end of the hold, the admissions count in every window at least as long as any
-- request they admit.
local out = {1, requests, now + hold, 0}
if requests > 0 then out[4] = record(s, requests, now + hold, 0) - requests + 1 end
if leases > 0 then
  -- Lease ids come from the admissions' sequence, so they never meet each other nor an admission's id; the
  -- sequence lasts as long as an admission's record would (never less than it already does).
  local top = redis.call('INCRBY', KEYS[4], leases)
  lease(s, top - leases + 1, top)
  for id = top - leases + 1, top do out[#out + 1] = id end
  local keep = math.ceil(history(s) / 1000) + 60000
  if redis.call('PTTL', KEYS[4]) < keep then redis.call('PEXPIRE', KEYS[4], keep) end
end
return out
";

/// Request windows, token budgets and concurrency caps in Redis, shared by every process on every machine
/// that uses the same server and prefix.
///
/// Admission is one Lua script, which Redis runs atomically: it reads the key's recent admissions, checks
/// every window and records the admission; so is a block of admissions and leases for a process to hand out
/// itself ([`WindowStore::admit_block`]). A key's data sits under `{prefix}:{key}:…` (the braces keep a
/// key's entries in one Redis Cluster slot) and expires once no window counts it any more. Times are the
/// clients' wall clocks in microseconds, so the machines' clocks should agree (NTP keeps them within a few
/// milliseconds, well inside the default margin for windows of a minute or longer).
///
/// A concurrency cap is shared too: each request in flight holds a lease in Redis that lapses after
/// [`RedisWindows::lease`] ([`REDIS_LEASE`] unless set with [`RedisWindows::open_with_lease`]). A thread of
/// the store renews the leases it holds every third of that, so a lease outlives its request only when
/// the process holding it dies (or cannot reach Redis): then the slot frees within one lease. The leases of
/// a block are renewed the same way until released.
pub struct RedisWindows {
    inner: Arc<Inner>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    conn: Mutex<::redis::Connection>,
    prefix: String,
    admit: ::redis::Script,
    block: ::redis::Script,
    lease: Duration,
    /// The leases this store holds, by the Redis key of their set.
    held: Mutex<HashMap<String, HashSet<i64>>>,
}

impl std::fmt::Debug for RedisWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisWindows")
            .field("prefix", &self.inner.prefix)
            .field("lease", &self.inner.lease)
            .finish_non_exhaustive()
    }
}

/// How long connecting to the Redis server, or one command, may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a concurrency lease in Redis holds without being renewed.
pub const REDIS_LEASE: Duration = Duration::from_secs(10);

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

impl RedisWindows {
    /// Connects to `url` (`redis://host:port/db`) and keeps keys under `prefix` (e.g. `gm:limits`). Connecting,
    /// and every later command, gives up after 5 seconds, so a server that stops answering fails the request
    /// instead of hanging it.
    pub fn open(url: &str, prefix: &str) -> Result<Self, LimitError> {
        Self::open_with_lease(url, prefix, REDIS_LEASE)
    }

    /// As [`RedisWindows::open`], with concurrency leases that lapse after `lease` unless renewed (at least
    /// 30 ms).
    pub fn open_with_lease(url: &str, prefix: &str, lease: Duration) -> Result<Self, LimitError> {
        let lease = lease.max(Duration::from_millis(30));
        let client = ::redis::Client::open(url).map_err(store_err)?;
        let conn = client.get_connection_with_timeout(REDIS_TIMEOUT).map_err(store_err)?;
        conn.set_read_timeout(Some(REDIS_TIMEOUT)).map_err(store_err)?;
        conn.set_write_timeout(Some(REDIS_TIMEOUT)).map_err(store_err)?;
        let inner = Arc::new(Inner {
            conn: Mutex::new(conn),
            prefix: prefix.to_string(),
            admit: ::redis::Script::new(&format!("{COMMON}{ADMIT}")),
            block: ::redis::Script::new(&format!("{COMMON}{BLOCK}")),
            lease,
            held: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&inner);
        let renewer = std::thread::Builder::new()
            .name("gm-limits-leases".into())
            .spawn(move || renew_while_open(&weak, lease / 3))
            .map_err(|e| LimitError::Store(Box::new(e)))?;
        Ok(Self { inner, renewer: Some(renewer) })
    }

    /// How long a concurrency lease holds without being renewed.
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    /// Extends every lease this store holds to `now` plus [`RedisWindows::lease`]. The store's own thread
    /// calls this with the wall clock every third of a lease; a lease that already lapsed is not revived.
    pub fn renew(&self, now: SystemTime) -> Result<(), LimitError> {
        self.inner.renew(now)
    }

    /// The requests in flight under a key across every process, as counted by their leases at `now`.
    pub fn in_flight(&self, key: &LimitKey, now: SystemTime) -> Result<u64, LimitError> {
        let [.., leases] = self.inner.keys(key);
        ::redis::cmd("ZCOUNT")
            .arg(&leases)
            .arg(format!("({}", micros(now)))
            .arg("+inf")
            .query(&mut *self.inner.conn())
            .map_err(store_err)
    }
}

impl Drop for RedisWindows {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            // The thread holds only a weak reference: once woken it finds the store gone and ends.
            renewer.thread().unpark();
        }
    }
}

/// The renewing thread: every `every`, extends the leases held, until the store is dropped.
fn renew_while_open(inner: &Weak<Inner>, every: Duration) {
    loop {
        std::thread::park_timeout(every);
        let Some(inner) = inner.upgrade() else { return };
        // A failed renewal is retried at the next turn; meanwhile the leases may lapse, which only frees slots
        // early for other processes if this one cannot reach Redis for a whole lease.
        let _ = inner.renew(SystemTime::now());
    }
}

impl Inner {
    fn keys(&self, key: &LimitKey) -> [String; 6] {
        let base = format!("{}:{{{key}}}", self.prefix);
        [
            format!("{base}:admissions"),
            format!("{base}:tokens"),
            format!("{base}:block"),
            format!("{base}:seq"),
            format!("{base}:horizon"),
            format!("{base}:leases"),
        ]
    }

    /// A call of `script` on the key's data at `now`, for the script's own arguments to follow.
    fn call<'a>(&self, script: &'a ::redis::Script, keys: &[String; 6], now: SystemTime) -> ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for k in keys {
            call.key(k);
        }
        call.arg(micros(now));
        call
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, ::redis::Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<i64>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn renew(&self, now: SystemTime) -> Result<(), LimitError> {
        let until = micros(now).saturating_add(us(self.lease));
        let mut pipe = ::redis::pipe();
        let held = self.held();
        if held.is_empty() {
            return Ok(());
        }
        // The set lasts a minute longer than its leases, as when a lease is taken: without that, Redis would
        // drop it a minute after the key's last admission, while a long request still holds its lease.
        let keep_ms = u64::try_from(self.lease.as_micros().div_ceil(1000)).unwrap_or(u64::MAX / 4) + 60_000;
        for (set, ids) in held.iter() {
            for id in ids {
                // XX: only a lease still there is extended; one that lapsed stays gone.
                pipe.cmd("ZADD").arg(set).arg("XX").arg(until).arg(*id).ignore();
            }
            pipe.cmd("PEXPIRE").arg(set).arg(keep_ms).ignore();
        }
        pipe.query::<()>(&mut *self.conn()).map_err(store_err)
    }
}

/// Adds the spec's arguments to a script's call, in the order `read_spec` of [`COMMON`] reads them.
fn push_spec(call: &mut ScriptInvocation<'_>, spec: &LimitSpec, lease: Duration) {
    for windows in [&spec.windows, &spec.token_windows] {
        call.arg(windows.len());
        for w in windows {
            call.arg(w.limit).arg(span_us(w.per, spec));
        }
    }
    call.arg(i64::try_from(crate::HISTORY_SPAN.as_micros()).unwrap_or(i64::MAX)).arg(crate::HISTORY_CAP);
    call.arg(spec.concurrency.unwrap_or(0)).arg(us(lease)).arg(us(LEASE_POLL));
}

/// The limit a script's wait names (`kind` and `index` as [`COMMON`] tells); `None` if the spec has no such
/// limit.
fn wait_reason(spec: &LimitSpec, kind: i64, index: i64) -> Option<WaitReason> {
    let window = |list: &[crate::Window]| {
        usize::try_from(index).ok().and_then(|i| i.checked_sub(1)).and_then(|i| list.get(i)).copied()
    };
    Some(match kind {
        0 => WaitReason::Server { daily: index == 1 },
        1 => WaitReason::Requests(window(&spec.windows)?),
        3 => WaitReason::Concurrency(u32::try_from(index).ok()?),
        _ => WaitReason::Tokens(window(&spec.token_windows)?),
    })
}

impl WindowStore for RedisWindows {
    fn admit(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        tokens: u64,
        now: SystemTime,
    ) -> Result<StoreAdmission, LimitError> {
        let inner = &*self.inner;
        let keys = inner.keys(key);
        let mut call = inner.call(&inner.admit, &keys, now);
        call.arg(tokens);
        push_spec(&mut call, spec, inner.lease);
        let out: Vec<i64> = call.invoke(&mut *inner.conn()).map_err(store_err)?;
        let bad = || LimitError::Store(format!("unexpected answer from the admission script: {out:?}").into());
        match out.as_slice() {
            [1, id] => {
                if spec.concurrency.is_some() {
                    inner.held().entry(keys[5].clone()).or_default().insert(*id);
                }
                Ok(StoreAdmission::Admitted { id: *id })
            }
            [0, until, kind, index] => {
                let reason = wait_reason(spec, *kind, *index).ok_or_else(bad)?;
                Ok(StoreAdmission::Wait { until: from_micros(*until), reason })
            }
            _ => Err(bad()),
        }
    }

    fn admit_block(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        want: BlockWant,
        now: SystemTime,
    ) -> Result<BlockAdmission, LimitError> {
        let inner = &*self.inner;
        let keys = inner.keys(key);
        let mut call = inner.call(&inner.block, &keys, now);
        call.arg(want.requests).arg(want.leases).arg(us(want.hold));
        push_spec(&mut call, spec, inner.lease);
        let out: Vec<i64> = call.invoke(&mut *inner.conn()).map_err(store_err)?;
        let bad = || LimitError::Store(format!("unexpected answer from the block script: {out:?}").into());
        match out.as_slice() {
            [1, requests, until, first, leases @ ..] => {
                let requests = u32::try_from(*requests).map_err(|_| bad())?;
                if !leases.is_empty() {
                    // Renewed with the store's other leases until released.
                    inner.held().entry(keys[5].clone()).or_default().extend(leases);
                }
                Ok(BlockAdmission::Granted {
                    requests,
                    first: *first,
                    until: from_micros(*until),
                    leases: leases.to_vec(),
                })
            }
            [0, until, kind, index] => {
                let reason = wait_reason(spec, *kind, *index).ok_or_else(bad)?;
                Ok(BlockAdmission::Wait { until: from_micros(*until), reason })
            }
            _ => Err(bad()),
        }
    }

    fn give_back(&self, key: &LimitKey, ids: std::ops::RangeInclusive<i64>) -> Result<(), LimitError> {
        let [admissions, tokens, ..] = self.inner.keys(key);
        let ids: Vec<i64> = ids.collect();
        if ids.is_empty() {
            return Ok(());
        }
        ::redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(&admissions)
            .arg(&ids)
            .ignore()
            .cmd("HDEL")
            .arg(&tokens)
            .arg(&ids)
            .ignore()
            .query::<()>(&mut *self.inner.conn())
            .map_err(store_err)
    }

    fn settle(&self, key: &LimitKey, id: i64, tokens: u64) -> Result<(), LimitError> {
        let [_, tok, ..] = self.inner.keys(key);
        // Only an admission still counted has an entry to update.
        let script = ::redis::Script::new(
            r"
            if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
            return 1",
        );
        script.key(&tok).arg(id).arg(tokens).invoke::<i64>(&mut *self.inner.conn()).map_err(store_err)?;
        Ok(())
    }

    fn block(&self, key: &LimitKey, until: SystemTime, daily: bool) -> Result<(), LimitError> {
        let [_, _, block, ..] = self.inner.keys(key);
        let script = ::redis::Script::new(
            r"
            local cur = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
            local u, d = tonumber(ARGV[1]), tonumber(ARGV[2])
            if u >= cur then
              redis.call('HSET', KEYS[1], 'until', u, 'daily', d)
            elseif d == 1 then
              redis.call('HSET', KEYS[1], 'daily', 1)
            end
            redis.call('PEXPIREAT', KEYS[1], math.ceil(math.max(u, cur) / 1000) + 60000)
            return 1",
        );
        script
            .key(&block)
            .arg(micros(until))
            .arg(i64::from(daily))
            .invoke::<i64>(&mut *self.inner.conn())
            .map_err(store_err)?;
        Ok(())
    }

    /// Forgets the key's admissions and block; the leases of requests in flight stay.
    fn reset(&self, key: &LimitKey) -> Result<(), LimitError> {
        let [admissions, tokens, block, _, horizon, _] = self.inner.keys(key);
        ::redis::cmd("DEL")
            .arg(&[admissions, tokens, block, horizon])
            .query::<()>(&mut *self.inner.conn())
            .map_err(store_err)
    }

    fn release(&self, key: &LimitKey, id: i64) -> Result<(), LimitError> {
        let [.., leases] = self.inner.keys(key);
        {
            let mut held = self.inner.held();
            if let Some(ids) = held.get_mut(&leases) {
                ids.remove(&id);
                if ids.is_empty() {
                    held.remove(&leases);
                }
            }
        }
        ::redis::cmd("ZREM").arg(&leases).arg(id).query::<()>(&mut *self.inner.conn()).map_err(store_err)
    }

    fn count(&self, key: &LimitKey, within: Duration, now: SystemTime) -> Result<u64, LimitError> {
        let [adm, ..] = self.inner.keys(key);
        let since = micros(now) - i64::try_from(within.as_micros()).unwrap_or(i64::MAX / 4);
        ::redis::cmd("ZCOUNT")
            .arg(&adm)
            .arg(format!("({since}"))
            .arg("+inf")
            .query(&mut *self.inner.conn())
            .map_err(store_err)
    }
}
