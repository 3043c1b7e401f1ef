//! Client keys: created once, shown once, stored only as a SHA-256 hash, in the state file or in Redis.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gm_limits::{LimitSpec, Window};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ServeError;

/// A client's spending limits per period: requests, tokens and dollars.
///
/// Stored and shown in the form it is written in (`requests=1000/1d,tokens=200000/1d,usd=5/1d`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    /// Requests per window.
    pub requests: Option<Window>,
    /// Tokens (input + output) per window.
    pub tokens: Option<Window>,
    /// Dollars at list prices, in millionths, per window.
    pub micro_usd: Option<Window>,
}

impl Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Budget::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Budget {
    /// Parses `requests=N,tokens=N,usd=X/PERIOD`: a part without its own `/PERIOD` takes the period written
    /// after a later part, else one day.
    pub fn parse(text: &str) -> Result<Self, ServeError> {
        let bad = |why: String| {
            ServeError::Config(format!(
                "invalid budget `{text}`: {why}; write e.g. requests=1000,tokens=200000,usd=5/1d"
            ))
        };
        let mut parts = Vec::new();
        for raw in text.split(',') {
            let (name, value) = raw.split_once('=').ok_or_else(|| bad(format!("`{}` has no `=`", raw.trim())))?;
            let (amount, per) = match value.split_once('/') {
                Some((a, p)) => (a.trim(), Some(gm_limits::parse_duration(p.trim()).map_err(|e| bad(e.to_string()))?)),
                None => (value.trim(), None),
            };
            parts.push((name.trim().to_ascii_lowercase(), amount.to_string(), per));
        }
        let mut out = Budget::default();
        let mut period = Duration::from_secs(86_400);
        for (name, amount, per) in parts.into_iter().rev() {
            if let Some(p) = per {
                period = p;
            }
            let whole = || amount.parse::<u64>().ok().filter(|n| *n > 0);
            let window = |limit: u64| Window { limit, per: period };
            match name.as_str() {
                "requests" => {
                    out.requests =
                        Some(window(whole().ok_or_else(|| bad(format!("`{amount}` is not a positive whole number")))?))
                }
                "tokens" => {
                    out.tokens =
                        Some(window(whole().ok_or_else(|| bad(format!("`{amount}` is not a positive whole number")))?))
                }
                "usd" => {
                    let usd: f64 = amount
                        .parse()
                        .ok()
                        .filter(|x: &f64| *x > 0.0 && x.is_finite())
                        .ok_or_else(|| bad(format!("`{amount}` is not a positive amount of dollars")))?;
                    out.micro_usd = Some(window((usd * 1e6).round() as u64));
                }
                other => return Err(bad(format!("`{other}` is not requests, tokens or usd"))),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let per = |w: &Window| gm_limits::format_duration(w.per);
        if let Some(w) = &self.requests {
            parts.push(format!("requests={}/{}", w.limit, per(w)));
        }
        if let Some(w) = &self.tokens {
            parts.push(format!("tokens={}/{}", w.limit, per(w)));
        }
        if let Some(w) = &self.micro_usd {
            parts.push(format!("usd={}/{}", w.limit as f64 / 1e6, per(w)));
        }
        f.write_str(&parts.join(","))
    }
}

/// A client key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// A short public id (the start of the hash).
    pub id: String,
    /// The name given at creation (shown in logs and metrics).
    pub name: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
    /// Request windows and caps of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitSpec>,
    /// Its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Seconds since the Unix epoch at creation.
    pub created: u64,
    /// Seconds since the Unix epoch at revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<u64>,
    /// Whether it administers the dashboard (keys, limits, the cache, larger runs, everyone's runs); as a
    /// client key of the API it is like any other.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

impl KeyRecord {
    /// The limiter spec of its request windows, caps and token budget.
    pub fn spec(&self) -> LimitSpec {
        let mut spec = self.limits.clone().unwrap_or_default();
        if let Some(b) = &self.budget {
            if let Some(w) = b.requests {
                spec.windows.retain(|x| x.per != w.per);
                spec.windows.push(w);
                spec.windows.sort_by_key(|w| w.per);
            }
            if let Some(w) = b.tokens {
                spec.token_windows.retain(|x| x.per != w.per);
                spec.token_windows.push(w);
                spec.token_windows.sort_by_key(|w| w.per);
            }
        }
        spec
    }
}

/// A new key: its secret (to show once) and its record (to store).
pub struct NewKey {
    /// The key to hand to the client, once.
    pub secret: String,
    /// What is stored.
    pub record: KeyRecord,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey").field("secret", &"<redacted>").field("record", &self.record).finish()
    }
}

/// The hash a key is stored and looked up by.
pub fn hash_key(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Makes a key: `gm_` and 48 hex digits from the operating system's random source.
pub fn generate(name: &str, limits: Option<LimitSpec>, budget: Option<Budget>) -> Result<NewKey, ServeError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| ServeError::Config(format!("the operating system gave no random bytes for a key: {e}")))?;
    let mut secret = String::from("gm_");
    for b in bytes {
        use std::fmt::Write;
        let _ = write!(secret, "{b:02x}");
    }
    let hash = hash_key(&secret);
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let record = KeyRecord {
        id: hash[..12].to_string(),
        name: name.to_string(),
        hash,
        limits,
        budget,
        created,
        revoked: None,
        admin: false,
    };
    Ok(NewKey { secret, record })
}

/// Where keys are kept. Lookups are on every request: implementations answer them without a write.
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// Stores a new key.
    fn insert(&self, record: &KeyRecord) -> Result<(), ServeError>;
    /// Every key, revoked ones included, oldest first.
    fn list(&self) -> Result<Vec<KeyRecord>, ServeError>;
    /// Revokes the key with this id or name; returns it.
    fn revoke(&self, id_or_name: &str) -> Result<KeyRecord, ServeError>;
    /// The key with this hash, if any (revoked or not).
    fn find(&self, hash: &str) -> Result<Option<Arc<KeyRecord>>, ServeError>;
    /// Whether any key was ever created (a revoked one too: revoking the last key does not open the gateway).
    fn any_active(&self) -> Result<bool, ServeError>;
    /// Whether a key that administers the dashboard exists and is not revoked.
    fn any_admin(&self) -> Result<bool, ServeError> {
        Ok(self.list()?.iter().any(|k| k.admin && k.revoked.is_none()))
    }
    /// What a request needs to know, in one look: the key with this hash if one was sent and is known, else
    /// whether any key exists ([`KeyStore::any_active`]; `true` when a key was found).
    fn lookup(&self, hash: Option<&str>) -> Result<(Option<Arc<KeyRecord>>, bool), ServeError> {
        if let Some(found) = hash.map(|h| self.find(h)).transpose()?.flatten() {
            return Ok((Some(found), true));
        }
        Ok((None, self.any_active()?))
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn pick<'a>(keys: &'a [KeyRecord], id_or_name: &str) -> Result<&'a KeyRecord, ServeError> {
    let active = |k: &&KeyRecord| k.revoked.is_none();
    keys.iter()
        .filter(active)
        .find(|k| k.id == id_or_name)
        .or_else(|| keys.iter().filter(active).find(|k| k.name == id_or_name))
        .ok_or_else(|| ServeError::UnknownKey(id_or_name.to_string()))
}

/// Keys in memory only (a gateway without a state file).
#[derive(Debug, Default)]
pub struct MemoryKeys {
    keys: Mutex<Vec<KeyRecord>>,
}

impl KeyStore for MemoryKeys {
    fn insert(&self, record: &KeyRecord) -> Result<(), ServeError> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).push(record.clone());
        Ok(())
    }
    fn list(&self) -> Result<Vec<KeyRecord>, ServeError> {
        Ok(self.keys.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
    fn revoke(&self, id_or_name: &str) -> Result<KeyRecord, ServeError> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let id = pick(&keys, id_or_name)?.id.clone();
        let k = keys.iter_mut().find(|k| k.id == id).ok_or_else(|| ServeError::UnknownKey(id_or_name.into()))?;
        k.revoked = Some(now_secs());
        Ok(k.clone())
    }
    fn find(&self, hash: &str) -> Result<Option<Arc<KeyRecord>>, ServeError> {
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|k| k.hash == hash)
            .cloned()
            .map(Arc::new))
    }
    fn any_active(&self) -> Result<bool, ServeError> {
        Ok(!self.keys.lock().unwrap_or_else(PoisonError::into_inner).is_empty())
    }
}

/// Keys in the state file, table `serve_keys`. Every process that opens the file sees a change at its next
/// request. Each request looks first at SQLite's `data_version` (did another connection write to the file at
/// all?), then, when it moved, at the table's generation, which triggers bump on every change of
/// `serve_keys` whoever makes it; the keys are read again only when that moved. The file's other writers (the
/// limiter's admissions, the cache) move `data_version` on nearly every request, but not the generation.
#[derive(Debug)]
pub struct SqliteKeys {
    inner: Mutex<SqliteInner>,
}

#[derive(Debug)]
struct SqliteInner {
    conn: Connection,
    version: Option<i64>,
    generation: Option<i64>,
    by_hash: HashMap<String, Arc<KeyRecord>>,
    active: bool,
}

fn sql_err(what: &str) -> impl Fn(rusqlite::Error) -> ServeError + '_ {
    move |e| ServeError::store(format!("the key store in the state file ({what})"), e)
}

impl SqliteKeys {
    /// Opens (and creates if needed) the table in the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ServeError> {
        let path = path.as_ref();
        // Processes opening a new file at once can be told "locked" without waiting: try again.
        let busy = |e: &rusqlite::Error| e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy);
        let conn = gm_core::busy::retry_while_busy(Duration::from_secs(10), busy, || Self::prepare(path))
            .map_err(sql_err("open"))?;
        let inner = SqliteInner { conn, version: None, generation: None, by_hash: HashMap::new(), active: false };
        Ok(Self { inner: Mutex::new(inner) })
    }

    /// A connection to the file at `path` in WAL mode, with the key tables.
    fn prepare(path: &Path) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS serve_keys (
                 id TEXT PRIMARY KEY,
                 hash TEXT NOT NULL UNIQUE,
                 record TEXT NOT NULL,
                 created INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS serve_keys_lost (
                 moved_to TEXT NOT NULL,
                 at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS serve_keys_generation (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 n INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO serve_keys_generation (id, n) VALUES (1, 0);
             CREATE TRIGGER IF NOT EXISTS serve_keys_inserted AFTER INSERT ON serve_keys
                 BEGIN UPDATE serve_keys_generation SET n = n + 1 WHERE id = 1; END;
             CREATE TRIGGER IF NOT EXISTS serve_keys_updated AFTER UPDATE ON serve_keys
                 BEGIN UPDATE serve_keys_generation SET n = n + 1 WHERE id = 1; END;
             CREATE TRIGGER IF NOT EXISTS serve_keys_deleted AFTER DELETE ON serve_keys
                 BEGIN UPDATE serve_keys_generation SET n = n + 1 WHERE id = 1; END;",
        )?;
        Ok(conn)
    }

    /// Remembers that the keys of the damaged state file now at `moved_to` could not be read back, so a
    /// gateway does not serve without keys until one is made (or [`SqliteKeys::accept_lost`]).
    pub fn mark_lost(&self, moved_to: &Path) -> Result<(), ServeError> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.conn
            .execute(
                "INSERT INTO serve_keys_lost (moved_to, at) VALUES (?1, ?2)",
                params![moved_to.display().to_string(), now_secs() as i64],
            )
            .map_err(sql_err("note the lost keys"))?;
        Ok(())
    }

    /// Where the damaged state file whose keys were lost is, while no key has been made since.
    pub fn lost(&self) -> Result<Option<String>, ServeError> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.conn
            .query_row("SELECT moved_to FROM serve_keys_lost ORDER BY at DESC LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(sql_err("read the lost keys"))
    }

    /// Forgets that keys were lost: a gateway without keys serves on loopback without one again.
    pub fn accept_lost(&self) -> Result<bool, ServeError> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let n = g.conn.execute("DELETE FROM serve_keys_lost", []).map_err(sql_err("forget the lost keys"))?;
        Ok(n > 0)
    }

    fn fresh(&self) -> Result<std::sync::MutexGuard<'_, SqliteInner>, ServeError> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let v: i64 = g.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(sql_err("read"))?;
        if g.version == Some(v) {
            return Ok(g);
        }
        let n: i64 = g
            .conn
            .prepare_cached("SELECT n FROM serve_keys_generation WHERE id = 1")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(sql_err("read"))?;
        if g.generation != Some(n) {
            let all = read_all(&g.conn)?;
            g.active = !all.is_empty();
            g.by_hash = all.into_iter().map(|k| (k.hash.clone(), Arc::new(k))).collect();
            g.generation = Some(n);
        }
        g.version = Some(v);
        Ok(g)
    }
}

fn read_all(conn: &Connection) -> Result<Vec<KeyRecord>, ServeError> {
    let mut st = conn.prepare("SELECT record FROM serve_keys ORDER BY created, id").map_err(sql_err("read"))?;
    let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(sql_err("read"))?;
    let mut out = Vec::new();
    for row in rows {
        let text = row.map_err(sql_err("read"))?;
        let rec: KeyRecord = serde_json::from_str(&text)
            .map_err(|e| ServeError::store("the key store in the state file (a record)", e))?;
        out.push(rec);
    }
    Ok(out)
}

impl KeyStore for SqliteKeys {
    fn insert(&self, record: &KeyRecord) -> Result<(), ServeError> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let text = serde_json::to_string(record).map_err(|e| ServeError::store("the key store", e))?;
        g.conn
            .execute(
                "INSERT INTO serve_keys (id, hash, record, created) VALUES (?1, ?2, ?3, ?4)",
                params![record.id, record.hash, text, record.created as i64],
            )
            .map_err(sql_err("insert"))?;
        // Keys exist again: the gateway needs them, whatever was lost before.
        g.conn.execute("DELETE FROM serve_keys_lost", []).map_err(sql_err("insert"))?;
        // This connection's own writes do not move its data_version.
        g.version = None;
        g.generation = None;
        Ok(())
    }

    fn list(&self) -> Result<Vec<KeyRecord>, ServeError> {
        read_all(&self.inner.lock().unwrap_or_else(PoisonError::into_inner).conn)
    }

    fn revoke(&self, id_or_name: &str) -> Result<KeyRecord, ServeError> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let all = read_all(&g.conn)?;
        let mut k = pick(&all, id_or_name)?.clone();
        k.revoked = Some(now_secs());
        let text = serde_json::to_string(&k).map_err(|e| ServeError::store("the key store", e))?;
        g.conn
            .execute("UPDATE serve_keys SET record = ?2 WHERE id = ?1", params![k.id, text])
            .map_err(sql_err("revoke"))?;
        g.version = None;
        g.generation = None;
        Ok(k)
    }

    fn find(&self, hash: &str) -> Result<Option<Arc<KeyRecord>>, ServeError> {
        Ok(self.fresh()?.by_hash.get(hash).cloned())
    }

    fn any_active(&self) -> Result<bool, ServeError> {
        Ok(self.fresh()?.active)
    }

    fn lookup(&self, hash: Option<&str>) -> Result<(Option<Arc<KeyRecord>>, bool), ServeError> {
        let g = self.fresh()?;
        Ok((hash.and_then(|h| g.by_hash.get(h).cloned()), g.active))
    }
}

/// Keys in Redis, shared by every replica: a hash `{prefix}:keys` from key hash to record, and the number of
/// keys ever created in `{prefix}:created`. Each request's lookup is one round trip, so a change is seen by the
/// next request.
pub struct RedisKeys {
    conn: Mutex<::redis::Connection>,
    keys: String,
    active: String,
}

impl fmt::Debug for RedisKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisKeys").field("keys", &self.keys).finish_non_exhaustive()
    }
}

fn redis_err(what: &str) -> impl Fn(::redis::RedisError) -> ServeError + '_ {
    move |e| ServeError::store(format!("the key store in Redis ({what})"), e)
}

impl RedisKeys {
    /// Connects to `url`, keeping keys under `prefix` (e.g. `gm:serve`).
    pub fn open(url: &str, prefix: &str) -> Result<Self, ServeError> {
        let client = ::redis::Client::open(url).map_err(redis_err("connect"))?;
        let conn = client.get_connection_with_timeout(Duration::from_secs(5)).map_err(redis_err("connect"))?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).map_err(redis_err("connect"))?;
        Ok(Self { conn: Mutex::new(conn), keys: format!("{prefix}:keys"), active: format!("{prefix}:created") })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, ::redis::Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn all(&self) -> Result<Vec<KeyRecord>, ServeError> {
        let values: Vec<String> =
            ::redis::cmd("HVALS").arg(&self.keys).query(&mut *self.conn()).map_err(redis_err("list"))?;
        let mut out: Vec<KeyRecord> = values
            .iter()
            .map(|t| serde_json::from_str(t).map_err(|e| ServeError::store("the key store in Redis (a record)", e)))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }
}

impl KeyStore for RedisKeys {
    fn insert(&self, record: &KeyRecord) -> Result<(), ServeError> {
        let text = serde_json::to_string(record).map_err(|e| ServeError::store("the key store", e))?;
        ::redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&self.keys)
            .arg(&record.hash)
            .arg(text)
            .ignore()
            .cmd("INCR")
            .arg(&self.active)
            .ignore()
            .query::<()>(&mut *self.conn())
            .map_err(redis_err("insert"))
    }

    fn list(&self) -> Result<Vec<KeyRecord>, ServeError> {
        self.all()
    }

    fn revoke(&self, id_or_name: &str) -> Result<KeyRecord, ServeError> {
        let all = self.all()?;
        let mut k = pick(&all, id_or_name)?.clone();
        k.revoked = Some(now_secs());
        let text = serde_json::to_string(&k).map_err(|e| ServeError::store("the key store", e))?;
        ::redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&self.keys)
            .arg(&k.hash)
            .arg(text)
            .ignore()
            .query::<()>(&mut *self.conn())
            .map_err(redis_err("revoke"))?;
        Ok(k)
    }

    fn find(&self, hash: &str) -> Result<Option<Arc<KeyRecord>>, ServeError> {
        let text: Option<String> =
            ::redis::cmd("HGET").arg(&self.keys).arg(hash).query(&mut *self.conn()).map_err(redis_err("look up"))?;
        text.map(|t| serde_json::from_str(&t).map(Arc::new).map_err(|e| ServeError::store("the key store in Redis", e)))
            .transpose()
    }

    fn any_active(&self) -> Result<bool, ServeError> {
        let n: Option<i64> =
            ::redis::cmd("GET").arg(&self.active).query(&mut *self.conn()).map_err(redis_err("count"))?;
        Ok(n.unwrap_or(0) > 0)
    }

    /// One round trip: the key's record and the count of keys, pipelined.
    fn lookup(&self, hash: Option<&str>) -> Result<(Option<Arc<KeyRecord>>, bool), ServeError> {
        let Some(hash) = hash else { return Ok((None, self.any_active()?)) };
        let (text, n): (Option<String>, Option<i64>) = ::redis::pipe()
            .cmd("HGET")
            .arg(&self.keys)
            .arg(hash)
            .cmd("GET")
            .arg(&self.active)
            .query(&mut *self.conn())
            .map_err(redis_err("look up"))?;
        let found = text
            .map(|t| serde_json::from_str(&t).map(Arc::new).map_err(|e| ServeError::store("the key store in Redis", e)))
            .transpose()?;
        Ok((found, n.unwrap_or(0) > 0))
    }
}

pub use crate::salvage::{open_salvaging, salvage, KeysSalvaged};

/// Opens the key store of a configuration: Redis when given, else the state file, else memory.
pub fn open_store(state_file: Option<&Path>, redis: Option<&str>) -> Result<Arc<dyn KeyStore>, ServeError> {
    Ok(match (redis, state_file) {
        (Some(url), _) => Arc::new(RedisKeys::open(url, "gm:serve")?),
        (None, Some(path)) => Arc::new(SqliteKeys::open(path)?),
        (None, None) => Arc::new(MemoryKeys::default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_take_the_period_written_after_them() {
        let b = Budget::parse("requests=100,tokens=5000,usd=2.5/1h").unwrap();
        assert_eq!(b.requests, Some(Window { limit: 100, per: Duration::from_secs(3600) }));
        assert_eq!(b.micro_usd, Some(Window { limit: 2_500_000, per: Duration::from_secs(3600) }));
        assert_eq!(Budget::parse("requests=3").unwrap().requests.unwrap().per, Duration::from_secs(86_400));
        assert!(Budget::parse("apples=3").unwrap_err().to_string().contains("apples"));
        assert_eq!(b.to_string(), "requests=100/1h,tokens=5000/1h,usd=2.5/1h");
    }

    #[test]
    fn a_key_is_stored_as_its_hash_only() {
        let dir = gm_testkit::TempDir::new("serve-keys-hash");
        let path = dir.join("state.sqlite");
        let store = SqliteKeys::open(&path).unwrap();
        assert!(!store.any_active().unwrap());
        let k = generate("ci", None, None).unwrap();
        store.insert(&k.record).unwrap();
        // Another connection (another process) sees it at once.
        let other = SqliteKeys::open(&path).unwrap();
        assert!(other.any_active().unwrap());
        assert_eq!(other.find(&hash_key(&k.secret)).unwrap().unwrap().name, "ci");
        store.revoke("ci").unwrap();
        assert!(other.any_active().unwrap(), "a revoked last key still closes the gateway");
        assert!(other.find(&hash_key(&k.secret)).unwrap().unwrap().revoked.is_some());
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(k.secret.len()).any(|w| w == k.secret.as_bytes()));
        assert!(!format!("{k:?}").contains(&k.secret));
    }

    /// The file's other writers (the limiter, the cache) move its `data_version` on every request; a change
    /// of the keys, however it is written, is still seen by the next lookup.
    #[test]
    fn a_lookup_sees_every_change_of_the_keys_among_other_writes() {
        let dir = gm_testkit::TempDir::new("serve-keys-generation");
        let path = dir.join("state.sqlite");
        let gateway = SqliteKeys::open(&path).unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("CREATE TABLE elsewhere (n INTEGER)").unwrap();
        let k = generate("ci", None, None).unwrap();
        let hash = hash_key(&k.secret);
        assert_eq!(gateway.lookup(Some(&hash)).unwrap(), (None, false));
        other.execute("INSERT INTO elsewhere VALUES (1)", []).unwrap();
        assert_eq!(gateway.lookup(Some(&hash)).unwrap(), (None, false));
        // Written by hand, as a tool that knows only the table would.
        let text = serde_json::to_string(&k.record).unwrap();
        other
            .execute(
                "INSERT INTO serve_keys (id, hash, record, created) VALUES (?1, ?2, ?3, 0)",
                params![k.record.id, hash, text],
            )
            .unwrap();
        let (found, any) = gateway.lookup(Some(&hash)).unwrap();
        assert!(any);
        assert_eq!(found.unwrap().name, "ci");
        other.execute("INSERT INTO elsewhere VALUES (2)", []).unwrap();
        assert!(gateway.lookup(Some(&hash)).unwrap().0.is_some());
        SqliteKeys::open(&path).unwrap().revoke("ci").unwrap();
        assert!(gateway.lookup(Some(&hash)).unwrap().0.unwrap().revoked.is_some());
        other.execute("DELETE FROM serve_keys", []).unwrap();
        assert_eq!(gateway.lookup(Some(&hash)).unwrap(), (None, false));
    }
}
