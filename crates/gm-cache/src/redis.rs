//! The shared tier in Redis (feature `redis`).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use redis::{Client, Connection, RedisResult};

use crate::error::Error;
use crate::key::RequestKey;
use crate::memory::CacheStats;
use crate::store::{Counters, PersistentStore, StoredValue};

/// Keys are `PREFIX:` followed by the 32 hex digits of the request key.
const DEFAULT_PREFIX: &str = "gm:cache:v1";

/// The shared tier: cached answers in a Redis server, so many machines (CI runners) share one cache.
///
/// Semantics follow the SQLite tier: a TTL per entry (stored with `SET … PX`, so Redis expires entries
/// itself), values above a size cap are not stored, and [`clear`](PersistentStore::clear) removes only
/// keys under this cache's prefix. The total size is bounded by the server: give it a `maxmemory` and
/// `maxmemory-policy allkeys-lru` (or `volatile-lru`), and it evicts by last access as the SQLite tier does.
///
/// Because Redis expires entries on its own, `expirations` and `evictions` in [`stats`](PersistentStore::stats)
/// stay 0 here; `entries` and `bytes` are counted by scanning the prefix, so call `stats` sparingly on a
/// large cache.
///
/// Commands block the calling thread for one round trip; a dropped connection is re-opened on the next call.
pub struct RedisCache {
    client: Client,
    conn: Mutex<Option<Connection>>,
    url: String,
    prefix: String,
    max_value_bytes: u64,
    timeout: Duration,
    counters: Counters,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("url", &self.url).field("prefix", &self.prefix).finish()
    }
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

fn store_err(e: redis::RedisError) -> Error {
    Error::Store { store: "redis", source: Box::new(e) }
}

impl RedisCache {
    /// Connects to the server at `url` (`redis://[user:password@]host:port[/db]`) with the default key
    /// prefix `gm:cache:v1` and values of up to 16 MiB. Fails at once if the server cannot be reached.
    pub fn open(url: &str) -> Result<RedisCache, Error> {
        Self::open_with(url, DEFAULT_PREFIX, 16 << 20)
    }

    /// As [`open`](Self::open), with a key prefix (to keep several caches apart on one server) and a cap
    /// on the size of one value.
    pub fn open_with(url: &str, prefix: &str, max_value_bytes: u64) -> Result<RedisCache, Error> {
        let redacted = redact(url);
        let connect_err = |e: redis::RedisError| Error::Connect { url: redacted.clone(), source: Box::new(e) };
        let client = Client::open(url).map_err(connect_err)?;
        let cache = RedisCache {
            client,
            conn: Mutex::new(None),
            url: redacted.clone(),
            prefix: prefix.to_string(),
            max_value_bytes,
            timeout: Duration::from_secs(5),
            counters: Counters::default(),
        };
        let mut conn = cache.connect().map_err(connect_err)?;
        redis::cmd("PING").query::<String>(&mut conn).map_err(connect_err)?;
        *cache.lock() = Some(conn);
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        // A connection left mid-command by a panic is dropped below on its next error.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn connect(&self) -> RedisResult<Connection> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    /// Runs `f` on the connection, opening it if needed and once more if it had dropped.
    fn with_conn<T>(&self, mut f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T, Error> {
        let mut slot = self.lock();
        for attempt in 0..2 {
            let conn = match slot.as_mut() {
                Some(conn) => conn,
                None => slot.insert(self.connect().map_err(store_err)?),
            };
            match f(conn) {
                Ok(v) => return Ok(v),
                Err(e) if attempt == 0 && (e.is_io_error() || e.is_connection_dropped()) => *slot = None,
                Err(e) => {
                    if e.is_io_error() || e.is_connection_dropped() {
                        *slot = None;
                    }
                    return Err(store_err(e));
                }
            }
        }
        Err(Error::Store { store: "redis", source: "the connection dropped twice".into() })
    }

    fn key(&self, key: &RequestKey) -> String {
        format!("{}:{key}", self.prefix)
    }

    /// Every key under this cache's prefix, in batches.
    fn scan(&self, mut each: impl FnMut(&mut Connection, Vec<String>) -> RedisResult<()>) -> Result<(), Error> {
        let pattern = format!("{}:*", self.prefix);
        self.with_conn(|conn| {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) =
                    redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query(conn)?;
                if !keys.is_empty() {
                    each(conn, keys)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })
    }
}

impl PersistentStore for RedisCache {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn get(&self, key: &RequestKey, now: SystemTime) -> Result<Option<StoredValue>, Error> {
        let k = self.key(key);
        let (value, pttl): (Option<Vec<u8>>, i64) =
            self.with_conn(|conn| redis::pipe().cmd("GET").arg(&k).cmd("PTTL").arg(&k).query(conn))?;
        let Some(value) = value else {
            Counters::bump(&self.counters.misses, 1);
            return Ok(None);
        };
        Counters::bump(&self.counters.hits, 1);
        // PTTL is -1 for a key without expiry (and -2 if it vanished between the two commands).
        let expires_at = (pttl >= 0).then(|| now + Duration::from_millis(pttl as u64));
        Ok(Some(StoredValue { value: Bytes::from(value), expires_at }))
    }

    /// Redis measures the TTL on its own clock from the moment of the command, so `now` is not used.
    fn set(&self, key: RequestKey, value: &[u8], ttl: Option<Duration>, _now: SystemTime) -> Result<(), Error> {
        let k = self.key(&key);
        if value.len() as u64 > self.max_value_bytes || ttl.is_some_and(|t| t.as_millis() == 0) {
            return self.with_conn(|conn| redis::cmd("DEL").arg(&k).query::<i64>(conn)).map(|_| ());
        }
        self.with_conn(|conn| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&k).arg(value);
            if let Some(ttl) = ttl {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                // Redis refuses expiries beyond 2^63 ms; anything that long is "never" in practice.
                if ms < (1 << 62) {
                    cmd.arg("PX").arg(ms);
                }
            }
            cmd.query::<()>(conn)
        })?;
        Counters::bump(&self.counters.inserts, 1);
        Ok(())
    }

    fn remove(&self, key: &RequestKey) -> Result<bool, Error> {
        let k = self.key(key);
        let n: i64 = self.with_conn(|conn| redis::cmd("DEL").arg(&k).query(conn))?;
        Ok(n > 0)
    }

    fn clear(&self) -> Result<u64, Error> {
        let mut removed = 0u64;
        self.scan(|conn, keys| {
            let n: u64 = redis::cmd("DEL").arg(&keys).query(conn)?;
            removed += n;
            Ok(())
        })?;
        Ok(removed)
    }

    fn purge_expired(&self, _now: SystemTime) -> Result<u64, Error> {
        Ok(0)
    }

    fn stats(&self) -> Result<CacheStats, Error> {
        let (mut entries, mut bytes) = (0u64, 0u64);
        self.scan(|conn, keys| {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("STRLEN").arg(k);
            }
            let lens: Vec<u64> = pipe.query(conn)?;
            entries += lens.iter().filter(|l| **l > 0).count() as u64;
            bytes += lens.iter().sum::<u64>();
            Ok(())
        })?;
        Ok(self.counters.snapshot(entries, bytes))
    }

    fn entries(&self, now: SystemTime) -> Result<Vec<(RequestKey, StoredValue)>, Error> {
        let mut out = Vec::new();
        let prefix = format!("{}:", self.prefix);
        self.scan(|conn, keys| {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("GET").arg(k).cmd("PTTL").arg(k);
            }
            let values: Vec<redis::Value> = pipe.query(conn)?;
            let mut values = values.into_iter();
            for k in &keys {
                let (Some(value), Some(pttl)) = (values.next(), values.next()) else { break };
                let value: Option<Vec<u8>> = redis::from_redis_value(value)?;
                let pttl: i64 = redis::from_redis_value(pttl)?;
                let Some(value) = value else { continue };
                let Some(key) = k.strip_prefix(&prefix).and_then(|h| h.parse::<RequestKey>().ok()) else { continue };
                let expires_at = (pttl >= 0).then(|| now + Duration::from_millis(pttl as u64));
                out.push((key, StoredValue { value: Bytes::from(value), expires_at }));
            }
            Ok(())
        })?;
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:secret@host:6379/0"), "redis://:***@host:6379/0");
        assert_eq!(redact("redis://user:secret@host"), "redis://user:***@host");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
