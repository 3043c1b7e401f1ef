//! Windows in Redis, for many machines sharing one credential's quota.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::{from_micros, micros, span_us, StoreAdmission, WindowStore};
use crate::{LimitError, LimitKey, LimitSpec, WaitReason};

fn store_err(e: ::redis::RedisError) -> LimitError {
    LimitError::Store(Box::new(e))
}

/// Admission as one script, which Redis runs atomically. Times are integer microseconds (exact in Lua's
/// doubles up to 2^53, i.e. for 285 years after 1970).
///
/// KEYS: admissions (sorted set: id by time), tokens (hash: id → tokens), block (hash), sequence, horizon (the
/// longest window any spec has used on the key, in microseconds).
/// ARGV: now, tokens, the number of request windows and their (limit, span) pairs, the number of token
/// windows and their (budget, span) pairs, the shortest history to keep and the most admissions to keep.
/// Returns `{1, id}` when admitted, `{0, until, kind, index}` otherwise (kind 0: server block with index 1
/// when daily; 1: request window `index`; 2: token window `index`).
const ADMIT: &str = r"
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local wait_until, kind, index = nil, 0, 0
local function later(u, k, i)
  if wait_until == nil or u > wait_until then wait_until, kind, index = u, k, i end
end
local b = redis.call('HMGET', KEYS[3], 'until', 'daily')
if b[1] and tonumber(b[1]) > now then later(tonumber(b[1]), 0, tonumber(b[2] or '0')) end
local longest = 0
local a = 3
local nreq = tonumber(ARGV[a]); a = a + 1
for w = 1, nreq do
  local limit, span = tonumber(ARGV[a]), tonumber(ARGV[a + 1]); a = a + 2
  if span > longest then longest = span end
  -- The limit-th most recent admission still counting fills the window until it expires.
  local r = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '(' .. (now - span), 'WITHSCORES', 'LIMIT', limit - 1, 1)
  if #r > 0 then later(tonumber(r[2]) + span, 1, w) end
end
local ntok = tonumber(ARGV[a]); a = a + 1
for w = 1, ntok do
  local budget, span = tonumber(ARGV[a]), tonumber(ARGV[a + 1]); a = a + 2
  if span > longest then longest = span end
  local r = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - span), '+inf', 'WITHSCORES')
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
if wait_until then return {0, wait_until, kind, index} end
-- Keep what the longest window any spec ever used on this key counts (another process may use longer ones),
-- and at least ARGV[a] (a day), up to the latest ARGV[a + 1] admissions.
local floor, cap = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
if floor > longest then longest = floor end
local horizon = tonumber(redis.call('GET', KEYS[5]) or '0')
if horizon > longest then longest = horizon else redis.call('SET', KEYS[5], longest) end
local at = now
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #last > 0 and tonumber(last[2]) > at then at = tonumber(last[2]) end
local id = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[1], at, id)
redis.call('HSET', KEYS[2], id, tokens)
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - longest)
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
  redis.call('HDEL', KEYS[2], unpack(old))
end
local over = redis.call('ZCARD', KEYS[1]) - cap
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, over - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
  redis.call('HDEL', KEYS[2], unpack(oldest))
end
local ttl = math.ceil(longest / 1000) + 60000
for k = 1, 5 do redis.call('PEXPIRE', KEYS[k], ttl) end
return {1, id}
";

/// Request windows and token budgets in Redis, shared by every process on every machine that uses the
/// same server and prefix.
///
/// Admission is one Lua script, which Redis runs atomically: it reads the key's recent admissions, checks
/// every window and records the admission. A key's data sits under `{prefix}:{key}:…` (the braces keep a
/// key's entries in one Redis Cluster slot) and expires once no window counts it any more. Times are the
/// clients' wall clocks in microseconds, so the machines' clocks should agree (NTP keeps them within a few
/// milliseconds, well inside the default margin for windows of a minute or longer).
pub struct RedisWindows {
    conn: Mutex<::redis::Connection>,
    prefix: String,
    admit: ::redis::Script,
}

impl std::fmt::Debug for RedisWindows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisWindows").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// How long connecting to the Redis server, or one command, may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

impl RedisWindows {
    /// Connects to `url` (`redis://host:port/db`) and keeps keys under `prefix` (e.g. `gm:limits`). Connecting,
    /// and every later command, gives up after 5 seconds, so a server that stops answering fails the request
    /// instead of hanging it.
    pub fn open(url: &str, prefix: &str) -> Result<Self, LimitError> {
        let client = ::redis::Client::open(url).map_err(store_err)?;
        let conn = client.get_connection_with_timeout(REDIS_TIMEOUT).map_err(store_err)?;
        conn.set_read_timeout(Some(REDIS_TIMEOUT)).map_err(store_err)?;
        conn.set_write_timeout(Some(REDIS_TIMEOUT)).map_err(store_err)?;
        Ok(Self { conn: Mutex::new(conn), prefix: prefix.to_string(), admit: ::redis::Script::new(ADMIT) })
    }

    fn keys(&self, key: &LimitKey) -> [String; 5] {
        let base = format!("{}:{{{key}}}", self.prefix);
        [
            format!("{base}:admissions"),
            format!("{base}:tokens"),
            format!("{base}:block"),
            format!("{base}:seq"),
            format!("{base}:horizon"),
        ]
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, ::redis::Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WindowStore for RedisWindows {
    fn admit(
        &self,
        key: &LimitKey,
        spec: &LimitSpec,
        tokens: u64,
        now: SystemTime,
    ) -> Result<StoreAdmission, LimitError> {
        let keys = self.keys(key);
        let mut call = self.admit.prepare_invoke();
        for k in &keys {
            call.key(k);
        }
        call.arg(micros(now)).arg(tokens).arg(spec.windows.len());
        for w in &spec.windows {
            call.arg(w.limit).arg(span_us(w.per, spec));
        }
        call.arg(spec.token_windows.len());
        for w in &spec.token_windows {
            call.arg(w.limit).arg(span_us(w.per, spec));
        }
        call.arg(i64::try_from(crate::HISTORY_SPAN.as_micros()).unwrap_or(i64::MAX)).arg(crate::HISTORY_CAP);
        let out: Vec<i64> = call.invoke(&mut *self.conn()).map_err(store_err)?;
        let bad = || LimitError::Store(format!("unexpected answer from the admission script: {out:?}").into());
        match out.as_slice() {
            [1, id] => Ok(StoreAdmission::Admitted { id: *id }),
            [0, until, kind, index] => {
                let window = |list: &[crate::Window]| {
                    usize::try_from(*index).ok().and_then(|i| i.checked_sub(1)).and_then(|i| list.get(i)).copied()
                };
                let reason = match kind {
                    0 => WaitReason::Server { daily: *index == 1 },
                    1 => WaitReason::Requests(window(&spec.windows).ok_or_else(bad)?),
                    _ => WaitReason::Tokens(window(&spec.token_windows).ok_or_else(bad)?),
                };
                Ok(StoreAdmission::Wait { until: from_micros(*until), reason })
            }
            _ => Err(bad()),
        }
    }

    fn settle(&self, key: &LimitKey, id: i64, tokens: u64) -> Result<(), LimitError> {
        let [_, tok, _, _, _] = self.keys(key);
        // Only an admission still counted has an entry to update.
        let script = ::redis::Script::new(
            r"
            if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
            return 1",
        );
        script.key(&tok).arg(id).arg(tokens).invoke::<i64>(&mut *self.conn()).map_err(store_err)?;
        Ok(())
    }

    fn block(&self, key: &LimitKey, until: SystemTime, daily: bool) -> Result<(), LimitError> {
        let [_, _, block, _, _] = self.keys(key);
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
            .invoke::<i64>(&mut *self.conn())
            .map_err(store_err)?;
        Ok(())
    }

    fn reset(&self, key: &LimitKey) -> Result<(), LimitError> {
        let keys = self.keys(key);
        ::redis::cmd("DEL").arg(&keys[..3]).arg(&keys[4]).query::<()>(&mut *self.conn()).map_err(store_err)
    }

    fn count(&self, key: &LimitKey, within: Duration, now: SystemTime) -> Result<u64, LimitError> {
        let [adm, _, _, _, _] = self.keys(key);
        let since = micros(now) - i64::try_from(within.as_micros()).unwrap_or(i64::MAX / 4);
        ::redis::cmd("ZCOUNT")
            .arg(&adm)
            .arg(format!("({since}"))
            .arg("+inf")
            .query(&mut *self.conn())
            .map_err(store_err)
    }
}
