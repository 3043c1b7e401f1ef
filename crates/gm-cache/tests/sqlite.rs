//! The SQLite tier: persistence, expiry, the size cap, several connections and processes, bad files.
#![cfg(feature = "sqlite")]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gm_cache::{Error, PersistentStore, RequestKey, SqliteCache, ROW_OVERHEAD, SCHEMA_VERSION};
use gm_testkit::{child_test, TempDir};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn k(i: u128) -> RequestKey {
    RequestKey::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834) ^ i)
}

fn value(cache: &SqliteCache, key: RequestKey, now: SystemTime) -> Option<Vec<u8>> {
    cache.get(&key, now).unwrap().map(|v| v.value.to_vec())
}

#[test]
fn entries_survive_a_restart() {
    let dir = TempDir::new("cache-restart");
    let path = dir.join("gm.sqlite");
    {
        let cache = SqliteCache::open(&path, 1 << 20).unwrap();
        cache.set(k(1), b"one", Some(Duration::from_secs(60)), at(0)).unwrap();
        cache.set(k(2), b"two", None, at(0)).unwrap();
    }
    let cache = SqliteCache::open(&path, 1 << 20).unwrap();
    assert_eq!(value(&cache, k(1), at(30)).as_deref(), Some(&b"one"[..]));
    let stored = cache.get(&k(1), at(30)).unwrap().unwrap();
    assert_eq!(stored.expires_at, Some(at(60)));
    assert_eq!(value(&cache, k(2), at(1_000_000)).as_deref(), Some(&b"two"[..]));
    let s = cache.stats().unwrap();
    assert_eq!((s.entries, s.bytes), (2, 6 + 2 * ROW_OVERHEAD));
    let mode: String =
        rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn expired_entries_are_misses_and_can_be_purged() {
    let dir = TempDir::new("cache-expiry");
    let cache = SqliteCache::open(dir.join("gm.sqlite"), 1 << 20).unwrap();
    cache.set(k(1), b"a", Some(Duration::from_secs(10)), at(0)).unwrap();
    cache.set(k(2), b"b", Some(Duration::from_secs(10)), at(0)).unwrap();
    cache.set(k(3), b"c", Some(Duration::from_secs(100)), at(0)).unwrap();
    assert!(value(&cache, k(1), at(9)).is_some());
    assert!(value(&cache, k(1), at(10)).is_none(), "a get at the TTL is a miss");
    assert_eq!(cache.purge_expired(at(10)).unwrap(), 1);
    let s = cache.stats().unwrap();
    assert_eq!((s.hits, s.misses, s.expirations, s.entries), (1, 1, 2, 1));
}

#[test]
fn size_cap_evicts_least_recently_accessed() {
    let dir = TempDir::new("cache-cap");
    let row = 100 + ROW_OVERHEAD;
    let cache =
        SqliteCache::builder(dir.join("gm.sqlite")).max_bytes(3 * row).touch_interval(Duration::ZERO).open().unwrap();
    let v = [7u8; 100];
    cache.set(k(1), &v, None, at(0)).unwrap();
    cache.set(k(2), &v, None, at(1)).unwrap();
    cache.set(k(3), &v, None, at(2)).unwrap();
    assert!(value(&cache, k(1), at(3)).is_some()); // 1 is now the most recently used
    cache.set(k(4), &v, None, at(4)).unwrap();
    assert!(value(&cache, k(2), at(5)).is_none(), "2 was the least recently used");
    for i in [1, 3, 4] {
        assert!(value(&cache, k(i), at(5)).is_some(), "{i} must remain");
    }
    let s = cache.stats().unwrap();
    assert_eq!((s.entries, s.bytes, s.evictions), (3, 3 * row, 1));

    // A value larger than the whole cap is not stored, and replaces the previous value.
    cache.set(k(1), &[0u8; 1000], None, at(6)).unwrap();
    assert!(value(&cache, k(1), at(7)).is_none());
}

#[test]
fn replacing_a_value_keeps_the_totals_right() {
    let dir = TempDir::new("cache-replace");
    let cache = SqliteCache::open(dir.join("gm.sqlite"), 1 << 20).unwrap();
    cache.set(k(1), &[0u8; 10], None, at(0)).unwrap();
    cache.set(k(1), &[0u8; 30], None, at(1)).unwrap();
    let s = cache.stats().unwrap();
    assert_eq!((s.entries, s.bytes, s.inserts), (1, 30 + ROW_OVERHEAD, 2));
    assert!(cache.remove(&k(1)).unwrap());
    assert!(!cache.remove(&k(1)).unwrap());
    assert_eq!(cache.stats().unwrap().bytes, 0);
}

#[test]
fn two_connections_share_one_file() {
    let dir = TempDir::new("cache-two-conns");
    let path = dir.join("gm.sqlite");
    let a = SqliteCache::open(&path, 1 << 24).unwrap();
    let b = SqliteCache::open(&path, 1 << 24).unwrap();
    a.set(k(1), b"from a", None, at(0)).unwrap();
    assert_eq!(value(&b, k(1), at(0)).as_deref(), Some(&b"from a"[..]));

    std::thread::scope(|s| {
        for (t, cache) in [(0u128, &a), (1, &b), (2, &a), (3, &b)] {
            s.spawn(move || {
                for i in 0..200u128 {
                    cache.set(k(1000 * (t + 1) + i), &[t as u8; 64], None, at(1)).unwrap();
                    assert!(value(cache, k(1000 * (t + 1) + i), at(1)).is_some());
                }
            });
        }
    });
    assert_eq!(a.stats().unwrap().entries, 801);
    assert_eq!(b.stats().unwrap().bytes, 6 + ROW_OVERHEAD + 800 * (64 + ROW_OVERHEAD));
}

/// Run by `two_processes_share_one_file` in a child process.
#[test]
#[ignore = "a child process of two_processes_share_one_file, which runs it"]
fn child_process_writer() {
    let path = std::env::var_os("GM_CACHE_TEST_CHILD_DB").expect("set by its parent test");
    let cache = SqliteCache::open(PathBuf::from(path), 1 << 24).unwrap();
    for i in 0..300u128 {
        cache.set(k(10_000 + i), b"from the child", None, at(0)).unwrap();
    }
}

#[test]
fn two_processes_share_one_file() {
    let dir = TempDir::new("cache-two-procs");
    let path = dir.join("gm.sqlite");
    let cache = SqliteCache::open(&path, 1 << 24).unwrap();
    let mut child = child_test("child_process_writer")
        .env("GM_CACHE_TEST_CHILD_DB", &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for i in 0..300u128 {
        cache.set(k(20_000 + i), b"from the parent", None, at(0)).unwrap();
    }
    assert!(child.wait().unwrap().success(), "the child process failed");
    for i in 0..300u128 {
        assert_eq!(value(&cache, k(10_000 + i), at(1)).as_deref(), Some(&b"from the child"[..]));
        assert_eq!(value(&cache, k(20_000 + i), at(1)).as_deref(), Some(&b"from the parent"[..]));
    }
    assert_eq!(cache.stats().unwrap().entries, 600);
}

fn write_garbage(path: &Path, len: usize) {
    let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(path, garbage).unwrap();
}

#[test]
fn a_file_of_garbage_is_a_clear_error_and_is_left_alone() {
    let dir = TempDir::new("cache-garbage");
    let path = dir.join("gm.sqlite");
    write_garbage(&path, 10_000);
    let err = SqliteCache::open(&path, 1 << 20).unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("is not a SQLite database") && msg.contains("choose another path"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap().len(), 10_000, "the file is never deleted");
}

#[test]
fn a_file_of_garbage_can_be_moved_aside() {
    let dir = TempDir::new("cache-aside");
    let path = dir.join("gm.sqlite");
    write_garbage(&path, 5_000);
    let cache = SqliteCache::builder(&path).move_aside_if_unreadable(true).open().unwrap();
    let aside = cache.moved_aside().expect("moved aside").to_path_buf();
    assert_eq!(std::fs::read(&aside).unwrap().len(), 5_000);
    cache.set(k(1), b"fresh", None, at(0)).unwrap();
    assert!(value(&cache, k(1), at(0)).is_some());
}

#[test]
fn a_damaged_database_never_panics() {
    let dir = TempDir::new("cache-damaged");
    let path = dir.join("gm.sqlite");
    {
        let cache = SqliteCache::open(&path, 1 << 24).unwrap();
        for i in 0..500u128 {
            cache.set(k(i), &[i as u8; 300], None, at(0)).unwrap();
        }
    }
    // Fold the WAL into the file, then overwrite everything after the first page.
    rusqlite::Connection::open(&path).unwrap().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i * 31 % 256) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    match SqliteCache::open(&path, 1 << 24) {
        Err(e) => {
            assert!(matches!(e, Error::Corrupt { .. } | Error::NotADatabase { .. }), "{e:?}");
            assert!(e.to_string().contains("choose another path"), "{e}");
        }
        Ok(cache) => {
            // Opening read only the first page; the damage shows on use, as an error.
            let r = cache.get(&k(1), at(0));
            assert!(r.is_err(), "{r:?}");
            let e = r.unwrap_err();
            assert!(e.to_string().contains("sqlite"), "{e}");
        }
    }
}

#[test]
fn a_damaged_header_is_a_clear_error() {
    let dir = TempDir::new("cache-header");
    let path = dir.join("gm.sqlite");
    {
        let cache = SqliteCache::open(&path, 1 << 24).unwrap();
        cache.set(k(1), b"x", None, at(0)).unwrap();
    }
    rusqlite::Connection::open(&path).unwrap().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // Keep the magic string; destroy the rest of the header and the schema page.
    for b in bytes.iter_mut().take(4096).skip(16) {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = SqliteCache::open(&path, 1 << 24).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. } | Error::NotADatabase { .. }), "{err:?}");
}

#[test]
fn a_foreign_database_is_shared_not_taken_over() {
    let dir = TempDir::new("cache-foreign");
    let path = dir.join("gm.sqlite");
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO runs (name) VALUES ('first run'), ('second run');
             CREATE TABLE limits_windows (key TEXT PRIMARY KEY, count INTEGER);
             INSERT INTO limits_windows VALUES ('github/openai/gpt-4.1', 12);",
        )
        .unwrap();
    }
    let cache = SqliteCache::open(&path, 1 << 20).unwrap();
    cache.set(k(1), b"cached", None, at(0)).unwrap();
    // Another component writes while the cache is open.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute("INSERT INTO runs (name) VALUES ('third run')", []).unwrap();
    assert_eq!(cache.clear().unwrap(), 1);
    drop(cache);
    let runs: i64 = other.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap();
    let count: i64 = other.query_row("SELECT count FROM limits_windows", [], |r| r.get(0)).unwrap();
    assert_eq!((runs, count), (3, 12));
    let cache = SqliteCache::open(&path, 1 << 20).unwrap();
    assert_eq!(cache.stats().unwrap().entries, 0);
}

#[test]
fn an_old_cache_layout_is_rebuilt_and_a_newer_one_refused() {
    let dir = TempDir::new("cache-versions");
    let path = dir.join("gm.sqlite");
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY);
             INSERT INTO runs DEFAULT VALUES;
             CREATE TABLE cache_entries (k TEXT, v TEXT);
             INSERT INTO cache_entries VALUES ('old', 'layout');",
        )
        .unwrap();
    }
    let cache = SqliteCache::open(&path, 1 << 20).unwrap();
    assert_eq!(cache.stats().unwrap().entries, 0, "the unknown layout was rebuilt");
    cache.set(k(1), b"v1", None, at(0)).unwrap();
    drop(cache);

    let db = rusqlite::Connection::open(&path).unwrap();
    let runs: i64 = db.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap();
    assert_eq!(runs, 1, "tables of others are untouched");
    db.execute("UPDATE cache_meta SET value = ?1 WHERE name = 'schema_version'", [(SCHEMA_VERSION + 1).to_string()])
        .unwrap();
    let err = SqliteCache::open(&path, 1 << 20).unwrap_err();
    assert!(matches!(err, Error::NewerSchema { .. }), "{err:?}");
    assert!(err.to_string().contains("upgrade gm"), "{err}");
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let dir = TempDir::new("cache-missing");
    let err = SqliteCache::open(dir.join("no/such/dir/gm.sqlite"), 1 << 20).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("check that its directory exists"), "{err}");
}
