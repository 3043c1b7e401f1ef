//! Client keys through a damaged state file. When the session finds the state file damaged and moves it
//! aside, the keys it held (and the counts of their limits and budgets) are read back from the damaged copy
//! into the new file, as far as they can be read; when none can be, the new file remembers that keys were
//! lost, and the gateway will not serve without keys until keys are made again (or the loss is accepted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gm_app::Session;
#[cfg(test)]
use gm_limits::LimitKey;
use gm_limits::{LimitSpec, SqliteWindows, Window, WindowStore};
use rusqlite::{Connection, OpenFlags};

use crate::keys::{KeyRecord, KeyStore, RedisKeys, SqliteKeys};
use crate::ServeError;

/// What was read back of a damaged state file's client keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeysSalvaged {
    /// The damaged copy.
    pub from: PathBuf,
    /// Keys put back into the new state file (revoked ones included).
    pub keys: usize,
    /// Requests counted against those keys' limits and budgets, put back.
    pub admissions: usize,
    /// Whether the damaged file's key table was read to its end (else the keys found in its bytes were kept,
    /// and others may be lost).
    pub complete: bool,
}

/// Opens the key store of `session`'s gateway: in Redis when the session names one, else in its state file
/// (else in memory). When the session moved a damaged state file aside, its keys and their counts are read
/// back from it first. With `serving`, a state file whose keys were lost, with no key made since, is an
/// error: the gateway would otherwise serve without keys.
pub fn open_salvaging(session: &Session, serving: bool) -> Result<Arc<dyn KeyStore>, ServeError> {
    if let Some(url) = &session.config().redis_url {
        return Ok(Arc::new(RedisKeys::open(url, "gm:serve")?));
    }
    let Some(path) = session.state_file()? else { return Ok(Arc::new(crate::keys::MemoryKeys::default())) };
    let store = SqliteKeys::open(&path)?;
    if let Some(damaged) = session.state_file_moved_to() {
        let windows = session.shared_windows()?;
        let salvaged = salvage(&damaged, &store, windows.as_deref())?;
        if salvaged.keys == 0 && !salvaged.complete {
            store.mark_lost(&damaged)?;
        }
        tracing::warn!(
            from = %damaged.display(),
            keys = salvaged.keys,
            admissions = salvaged.admissions,
            complete = salvaged.complete,
            "client keys read back from the damaged state file"
        );
    }
    if serving {
        if let Some(moved_to) = store.lost()? {
            if !store.any_active()? {
                return Err(ServeError::KeysLost { state_file: path, moved_to: PathBuf::from(moved_to) });
            }
        }
    }
    Ok(Arc::new(store))
}

/// Reads the keys of the damaged file `damaged` into `store` (those it lacks), and the requests counted
/// against them into `windows`.
pub fn salvage(
    damaged: &Path,
    store: &dyn KeyStore,
    windows: Option<&dyn WindowStore>,
) -> Result<KeysSalvaged, ServeError> {
    let (found, complete) = read_keys(damaged);
    let mut out = KeysSalvaged { from: damaged.to_path_buf(), complete, ..KeysSalvaged::default() };
    for rec in found.values() {
        if store.find(&rec.hash)?.is_none() {
            store.insert(rec)?;
        }
        out.keys += 1;
    }
    if let Some(windows) = windows {
        out.admissions = restore_counts(damaged, &found, windows);
    }
    Ok(out)
}

/// The key records of a damaged file by hash, and whether its key table was read to its end. SQLite reads
/// what it can; the file's bytes (and its write-ahead log's) are searched for records besides, which finds
/// keys in a file whose header or table pages are broken. Of two versions of a record, the revoked one wins.
fn read_keys(damaged: &Path) -> (BTreeMap<String, KeyRecord>, bool) {
    let mut found = BTreeMap::new();
    let (from_table, complete) = read_table(damaged);
    for rec in from_table {
        keep(&mut found, rec);
    }
    if !complete {
        let mut wal = damaged.as_os_str().to_owned();
        wal.push("-wal");
        for file in [damaged.to_path_buf(), PathBuf::from(wal)] {
            if let Ok(bytes) = std::fs::read(&file) {
                for rec in scan(&bytes) {
                    keep(&mut found, rec);
                }
            }
        }
    }
    (found, complete)
}

fn keep(found: &mut BTreeMap<String, KeyRecord>, rec: KeyRecord) {
    match found.get(&rec.hash) {
        Some(had) if had.revoked.is_some() => {}
        _ => {
            found.insert(rec.hash.clone(), rec);
        }
    }
}

/// The rows of the key table that SQLite can read, and whether it read them all. A file without the table
/// had no keys: it was read whole.
fn read_table(damaged: &Path) -> (Vec<KeyRecord>, bool) {
    let Ok(conn) = Connection::open_with_flags(damaged, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return (Vec::new(), false);
    };
    let has_table =
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'serve_keys'", [], |r| {
            r.get::<_, i64>(0)
        });
    match has_table {
        Ok(0) => return (Vec::new(), true),
        Ok(_) => {}
        Err(_) => return (Vec::new(), false),
    }
    let Ok(mut st) = conn.prepare("SELECT record FROM serve_keys") else { return (Vec::new(), false) };
    let Ok(rows) = st.query_map([], |r| r.get::<_, String>(0)) else { return (Vec::new(), false) };
    let mut out = Vec::new();
    let mut complete = true;
    for row in rows {
        match row.ok().and_then(|text| serde_json::from_str::<KeyRecord>(&text).ok()) {
            Some(rec) if plausible(&rec) => out.push(rec),
            _ => {
                complete = false;
                break;
            }
        }
    }
    (out, complete)
}

/// Every key record written out in `bytes` (as the key table stores them, JSON objects that start with
/// their id).
fn scan(bytes: &[u8]) -> Vec<KeyRecord> {
    const START: &[u8] = b"{\"id\":\"";
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(START.len()).position(|w| w == START) {
        let from = at + i;
        let mut records = serde_json::Deserializer::from_slice(&bytes[from..]).into_iter::<KeyRecord>();
        if let Some(Ok(rec)) = records.next() {
            if plausible(&rec) {
                out.push(rec);
            }
        }
        at = from + 1;
    }
    out
}

/// A record is whole when its hash is a SHA-256 in hex and its id the hash's start.
fn plausible(rec: &KeyRecord) -> bool {
    rec.hash.len() == 64 && rec.hash.bytes().all(|b| b.is_ascii_hexdigit()) && rec.hash.starts_with(&rec.id)
}

/// Puts the requests the damaged file counted against the salvaged keys back into `windows`, as they were
/// (when, and the tokens or micro-dollars each took); returns how many. What cannot be read stays lost.
fn restore_counts(damaged: &Path, keys: &BTreeMap<String, KeyRecord>, windows: &dyn WindowStore) -> usize {
    let Ok(old) = SqliteWindows::open(damaged) else { return 0 };
    let Ok(counted) = old.keys() else { return 0 };
    let by_id: BTreeMap<&str, &KeyRecord> = keys.values().map(|k| (k.id.as_str(), k)).collect();
    let mut restored = 0;
    for key in counted {
        let Some(rec) = (key.provider == "gm-serve").then(|| by_id.get(key.credential.as_str())).flatten() else {
            continue;
        };
        let Ok(admissions) = old.admissions(&key) else { continue };
        let spec = recording_spec(rec);
        for (at, tokens) in admissions {
            if windows.admit(&key, &spec, tokens, at).is_ok() {
                restored += 1;
            }
        }
    }
    restored
}

/// A spec that records every admission of a key, over the longest window the key counts in, without ever
/// refusing one.
fn recording_spec(rec: &KeyRecord) -> LimitSpec {
    let spec = rec.spec();
    let usd = rec.budget.as_ref().and_then(|b| b.micro_usd).map(|w| w.per);
    let per = spec
        .windows
        .iter()
        .chain(&spec.token_windows)
        .map(|w| w.per)
        .chain(usd)
        .max()
        .unwrap_or(Duration::from_secs(86_400));
    let all = Window { limit: u64::MAX / 4, per };
    LimitSpec { windows: vec![all], token_windows: vec![all], ..LimitSpec::default() }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use gm_app::{CacheSettings, SessionConfig};
    use gm_testkit::TempDir;

    use super::*;
    use crate::keys::{generate, hash_key};

    fn session(dir: &TempDir) -> Session {
        Session::new(SessionConfig {
            data_dir: Some(dir.path().to_path_buf()),
            cache: CacheSettings { enabled: false, ..CacheSettings::default() },
            ..SessionConfig::default()
        })
    }

    /// A state file with two keys (one revoked); returns their secrets.
    fn with_keys(dir: &TempDir) -> (String, String) {
        let s = session(dir);
        let store = open_salvaging(&s, true).unwrap();
        let (alice, bob) = (generate("alice", None, None).unwrap(), generate("bob", None, None).unwrap());
        store.insert(&alice.record).unwrap();
        store.insert(&bob.record).unwrap();
        store.revoke("bob").unwrap();
        (alice.secret.clone(), bob.secret.clone())
    }

    fn overwrite(path: &Path, at: usize, len: usize) {
        let mut bytes = std::fs::read(path).unwrap();
        let end = (at + len).min(bytes.len());
        bytes[at..end].iter_mut().for_each(|b| *b = 0x5a);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn keys_are_read_back_from_a_file_whose_header_is_broken() {
        let dir = TempDir::new("salvage-header");
        let (alice, bob) = with_keys(&dir);
        let path = session(&dir).state_file().unwrap().unwrap();
        overwrite(&path, 0, 100);

        let s = session(&dir);
        let store = open_salvaging(&s, true).expect("the keys were read back, so the gateway may serve");
        let moved = s.state_file_moved_to().expect("the damaged file was moved aside");
        assert!(moved.exists() && path.exists() && moved != path);
        let alice = store.find(&hash_key(&alice)).unwrap().expect("alice's key is back");
        assert_eq!((alice.name.as_str(), alice.revoked), ("alice", None));
        let bob = store.find(&hash_key(&bob)).unwrap().expect("bob's key is back");
        assert!(bob.revoked.is_some(), "a revoked key stays revoked");
        assert!(store.any_active().unwrap());
    }

    #[test]
    fn a_gateway_whose_keys_are_lost_does_not_serve_without_keys() {
        let dir = TempDir::new("salvage-lost");
        let (alice, _) = with_keys(&dir);
        let path = session(&dir).state_file().unwrap().unwrap();
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        overwrite(&path, 0, len);

        let err = open_salvaging(&session(&dir), true).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ServeError::KeysLost { .. }), "{text}");
        assert!(text.contains(".unreadable-") && text.contains("gm serve keys create"), "{text}");
        // The new file remembers it: the next start is refused too, and the old key opens nothing.
        let s = session(&dir);
        assert!(matches!(open_salvaging(&s, true), Err(ServeError::KeysLost { .. })));
        let store = open_salvaging(&s, false).unwrap();
        assert!(store.find(&hash_key(&alice)).unwrap().is_none());
        // A new key ends it: the gateway serves, with keys.
        store.insert(&generate("alice-2", None, None).unwrap().record).unwrap();
        assert!(open_salvaging(&session(&dir), true).unwrap().any_active().unwrap());
    }

    #[test]
    fn a_loss_accepted_serves_without_keys_again() {
        let dir = TempDir::new("salvage-accept");
        with_keys(&dir);
        let path = session(&dir).state_file().unwrap().unwrap();
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        overwrite(&path, 0, len);
        assert!(open_salvaging(&session(&dir), true).is_err());
        assert!(SqliteKeys::open(&path).unwrap().accept_lost().unwrap());
        let store = open_salvaging(&session(&dir), true).unwrap();
        assert!(!store.any_active().unwrap());
    }

    #[test]
    fn a_file_that_never_had_keys_loses_none() {
        let dir = TempDir::new("salvage-none");
        let path = session(&dir).state_file().unwrap().unwrap();
        let s = session(&dir);
        drop(open_salvaging(&s, true).unwrap());
        drop(s);
        let (found, complete) = read_keys(&path);
        assert!(found.is_empty() && complete);
    }

    #[test]
    fn the_counts_of_salvaged_keys_come_back() {
        let dir = TempDir::new("salvage-counts");
        let old = dir.join("old.sqlite");
        let old_keys = SqliteKeys::open(&old).unwrap();
        let mut k = generate("ci", None, Some(crate::keys::Budget::parse("requests=100,usd=2/1d").unwrap())).unwrap();
        k.record.admin = true;
        old_keys.insert(&k.record).unwrap();
        let windows = SqliteWindows::open(&old).unwrap();
        let spec = k.record.spec();
        let key = LimitKey::new("gm-serve", k.record.id.clone(), "requests");
        let other = LimitKey::new("openai", "-", "gpt-4.1");
        let now = SystemTime::now();
        for s in [30u64, 20, 10] {
            windows.admit(&key, &spec, 0, now - Duration::from_secs(s)).unwrap();
            windows.admit(&other, &spec, 0, now - Duration::from_secs(s)).unwrap();
        }
        drop((old_keys, windows));

        let new = dir.join("new.sqlite");
        let (store, windows) = (SqliteKeys::open(&new).unwrap(), SqliteWindows::open(&new).unwrap());
        let got = salvage(&old, &store, Some(&windows)).unwrap();
        assert_eq!((got.keys, got.admissions, got.complete), (1, 3, true));
        assert!(store.find(&k.record.hash).unwrap().unwrap().admin, "the key keeps its role");
        assert_eq!(windows.count(&key, Duration::from_secs(86_400), now).unwrap(), 3);
        assert_eq!(windows.count(&other, Duration::from_secs(86_400), now).unwrap(), 0, "only the keys' counts");
    }
}
