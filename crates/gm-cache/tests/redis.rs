//! The Redis tier against a real `redis-server` started on a random loopback port (the skip policy of
//! `gm_testkit::skip` applies where it is missing).
#![cfg(feature = "redis")]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use gm_cache::{Cache, CacheConfig, Error, Origin, PersistentStore, RedisCache, RequestKey};
use gm_core::{Clock, ManualClock};
use gm_testkit::RedisServer;

fn k(i: u128) -> RequestKey {
    RequestKey::from_u128(i * 0x1_0000_0001)
}

#[test]
fn values_round_trip_with_their_ttl() {
    let Some(server) = RedisServer::start() else { return };
    let cache = RedisCache::open(&server.url()).unwrap();
    let now = SystemTime::now();
    cache.set(k(1), b"one", Some(Duration::from_secs(60)), now).unwrap();
    cache.set(k(2), b"two", None, now).unwrap();
    let one = cache.get(&k(1), now).unwrap().unwrap();
    assert_eq!(&one.value[..], b"one");
    let left = one.expires_at.unwrap().duration_since(now).unwrap();
    assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50), "{left:?}");
    assert_eq!(cache.get(&k(2), now).unwrap().unwrap().expires_at, None);
    assert!(cache.get(&k(3), now).unwrap().is_none());
    let s = cache.stats().unwrap();
    assert_eq!((s.hits, s.misses, s.inserts, s.entries, s.bytes), (2, 1, 2, 2, 6));
}

#[test]
fn an_expired_value_is_gone() {
    let Some(server) = RedisServer::start() else { return };
    let cache = RedisCache::open(&server.url()).unwrap();
    let now = SystemTime::now();
    cache.set(k(1), b"v", Some(Duration::from_secs(60)), now).unwrap();
    // Move the expiry into the past instead of waiting for it: the server then treats the key as expired.
    let client = redis::Client::open(server.url().as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let key = format!("gm:cache:v1:{}", k(1));
    let _: i64 = redis::cmd("PEXPIREAT").arg(&key).arg(1).query(&mut conn).unwrap();
    assert!(cache.get(&k(1), now).unwrap().is_none());
    // A zero TTL stores nothing.
    cache.set(k(2), b"v", Some(Duration::ZERO), now).unwrap();
    assert!(cache.get(&k(2), now).unwrap().is_none());
}

#[test]
fn clear_removes_only_this_prefix() {
    let Some(server) = RedisServer::start() else { return };
    let a = RedisCache::open_with(&server.url(), "gm:a", 1 << 20).unwrap();
    let b = RedisCache::open_with(&server.url(), "gm:b", 1 << 20).unwrap();
    let now = SystemTime::now();
    for i in 0..2500 {
        a.set(k(i), b"x", None, now).unwrap();
    }
    b.set(k(1), b"y", None, now).unwrap();
    assert_eq!(a.stats().unwrap().entries, 2500);
    assert_eq!(a.clear().unwrap(), 2500);
    assert_eq!(a.stats().unwrap().entries, 0);
    assert_eq!(&b.get(&k(1), now).unwrap().unwrap().value[..], b"y");
    // Oversized values are not stored.
    assert!(a.set(k(5), &vec![0u8; 2 << 20], None, now).is_ok());
    assert!(a.get(&k(5), now).unwrap().is_none());
}

#[test]
fn a_restarted_server_is_reconnected_to() {
    let Some(server) = RedisServer::start() else { return };
    let cache = RedisCache::open(&server.url()).unwrap();
    let now = SystemTime::now();
    cache.set(k(1), b"v", None, now).unwrap();
    // Drop the cache's connection from the server side; the next command reconnects.
    let mut admin = redis::Client::open(server.url().as_str()).unwrap().get_connection().unwrap();
    let killed: i64 =
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal").arg("SKIPME").arg("yes").query(&mut admin).unwrap();
    assert_eq!(killed, 1);
    assert_eq!(&cache.get(&k(1), now).unwrap().unwrap().value[..], b"v");
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = RedisCache::open(&format!("redis://:hunter2@127.0.0.1:{port}")).unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("check that the server runs") && !msg.contains("hunter2"), "{msg}");
}

#[tokio::test]
async fn two_machines_share_answers_through_redis() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new();
    let first = Cache::with_store(CacheConfig::default(), RedisCache::open(&server.url()).unwrap());
    let second = Cache::with_store(CacheConfig::default(), RedisCache::open(&server.url()).unwrap());
    let key = k(42);
    let got = first
        .get_or_fetch(key, None, clock.now(), async { Ok::<_, std::io::Error>(Bytes::from("answer")) })
        .await
        .unwrap();
    assert_eq!(got.origin, Origin::Upstream);
    let got = second
        .get_or_fetch(key, None, clock.now(), async { unreachable!("cached") as Result<Bytes, std::io::Error> })
        .await
        .unwrap();
    assert_eq!((got.origin, got.value), (Origin::Persistent, Bytes::from("answer")));
    assert_eq!(second.stats().persistent.unwrap().hits, 1);
}
