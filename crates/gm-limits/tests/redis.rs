//! Windows shared through Redis. Each test starts its own `redis-server` on a free loopback port and stops
//! it afterwards; where `redis-server` is missing the skip policy of `gm_testkit::skip` applies.
#![cfg(feature = "redis")]

use std::sync::Arc;

use std::time::{Duration, SystemTime};

use gm_core::{Clock, ManualClock};
use gm_limits::{Denied, LimitSpec, RedisWindows, StoreAdmission, TokenCount, WaitReason, WindowStore};
use gm_testkit::{child_test, RedisServer};

mod stores;
use stores::key;

#[test]
fn two_connections_in_two_threads_never_exceed_the_window_together() {
    let Some(server) = RedisServer::start() else { return };
    let url = server.url();
    stores::two_connections_never_exceed_the_window_together(move || RedisWindows::open(&url, "test").unwrap());
}

#[test]
fn two_limiters_share_windows_blocks_and_resets() {
    let Some(server) = RedisServer::start() else { return };
    stores::two_limiters_share_windows_blocks_and_resets(|| {
        Arc::new(RedisWindows::open(&server.url(), "gm:limits").unwrap())
    });
}

#[test]
fn token_budgets_are_shared_and_settled() {
    let Some(server) = RedisServer::start() else { return };
    stores::token_budgets_are_shared_and_settled(|| RedisWindows::open(&server.url(), "test").unwrap());
}

#[test]
fn a_shorter_spec_never_cuts_the_history_a_longer_one_counts() {
    let Some(server) = RedisServer::start() else { return };
    stores::a_shorter_spec_never_cuts_the_history_a_longer_one_counts(
        &RedisWindows::open(&server.url(), "test").unwrap(),
    );
}

/// Times near 1.8e15 µs have 16 digits, two more than Lua writes a number with: a window's lower bound written
/// that way moved by up to 50 µs, so an admission 20 µs from leaving its window stopped counting early.
#[test]
fn windows_count_an_admission_to_the_microsecond() {
    let Some(server) = RedisServer::start() else { return };
    let store = RedisWindows::open(&server.url(), "test").unwrap();
    let first = stores::start() + Duration::from_micros(80);
    for (spec, tokens, per) in
        [("1/1s,margin=0s", 0, Duration::from_secs(1)), ("tpm=100,margin=0s", 100, Duration::from_secs(60))]
    {
        let spec = LimitSpec::parse(spec).unwrap();
        store.reset(&key()).unwrap();
        assert!(matches!(store.admit(&key(), &spec, tokens, first).unwrap(), StoreAdmission::Admitted { .. }));
        let now = first + per - Duration::from_micros(20);
        let StoreAdmission::Wait { until, .. } = store.admit(&key(), &spec, 1, now).unwrap() else {
            panic!("admitted 20 µs before the first admission left its window of {per:?}")
        };
        assert_eq!(until, first + per);
        assert!(matches!(store.admit(&key(), &spec, 1, first + per).unwrap(), StoreAdmission::Admitted { .. }));
    }
}

#[test]
fn the_concurrency_cap_is_shared_and_renewed_while_held() {
    let Some(server) = RedisServer::start() else { return };
    let lease = Duration::from_secs(10);
    let a = RedisWindows::open_with_lease(&server.url(), "test", lease).unwrap();
    let b = RedisWindows::open_with_lease(&server.url(), "test", lease).unwrap();
    let spec = LimitSpec::parse("concurrency=2,margin=0s").unwrap();
    // The stores' own threads renew with the wall clock, which only lengthens leases from now on.
    // (In whole seconds, since the store keeps microseconds.)
    let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs());
    let StoreAdmission::Admitted { id: in_a } = a.admit(&key(), &spec, 0, t).unwrap() else { panic!() };
    let StoreAdmission::Admitted { id: in_b } = b.admit(&key(), &spec, 0, t).unwrap() else { panic!() };
    // One in flight in each, two in all: a third waits, and looks again shortly.
    let StoreAdmission::Wait { until, reason } = a.admit(&key(), &spec, 0, t).unwrap() else { panic!("a third") };
    assert_eq!((until, reason), (t + gm_limits::store::LEASE_POLL, WaitReason::Concurrency(2)));
    assert_eq!(a.in_flight(&key(), t).unwrap(), 2);
    // When B's request ends, A may send another.
    b.release(&key(), in_b).unwrap();
    let StoreAdmission::Admitted { .. } = a.admit(&key(), &spec, 0, t).unwrap() else { panic!("slot not freed") };
    a.release(&key(), in_a).unwrap();
    // A renews the lease it still holds, so it outlasts its first term.
    a.renew(t + Duration::from_secs(8)).unwrap();
    let later = t + Duration::from_secs(15);
    assert_eq!(b.in_flight(&key(), later).unwrap(), 1);
    let StoreAdmission::Admitted { .. } = b.admit(&key(), &spec, 0, later).unwrap() else { panic!() };
    assert!(matches!(b.admit(&key(), &spec, 0, later).unwrap(), StoreAdmission::Wait { .. }));
    // A lease nobody renews lapses: A's after its renewed term, B's after its own.
    let StoreAdmission::Admitted { .. } = b.admit(&key(), &spec, 0, t + Duration::from_secs(19)).unwrap() else {
        panic!("the renewed lease did not lapse")
    };
    assert_eq!(b.in_flight(&key(), t + Duration::from_secs(30)).unwrap(), 0);
}

/// A request may outlast the minute Redis keeps a key's set of leases after its last admission: renewing the
/// lease keeps the set too, or the lease would vanish and another process take the slot.
#[test]
fn renewing_keeps_the_set_of_leases_of_a_long_request() {
    let Some(server) = RedisServer::start() else { return };
    let store = RedisWindows::open(&server.url(), "test").unwrap();
    let spec = LimitSpec::parse("concurrency=1,margin=0s").unwrap();
    let now = SystemTime::now();
    let StoreAdmission::Admitted { .. } = store.admit(&key(), &spec, 0, now).unwrap() else { panic!() };
    let mut raw = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let leases = format!("test:{{{}}}:leases", key());
    // As if most of that minute had passed.
    redis::cmd("PEXPIRE").arg(&leases).arg(10_000).query::<()>(&mut raw).unwrap();
    store.renew(now).unwrap();
    let left: i64 = redis::cmd("PTTL").arg(&leases).query(&mut raw).unwrap();
    assert!(left > 60_000, "the set of leases expires in {left} ms");
    assert_eq!(store.in_flight(&key(), now).unwrap(), 1);
}

#[test]
fn limiters_share_the_cap_through_redis() {
    let Some(server) = RedisServer::start() else { return };
    let clock = ManualClock::new();
    let open = || Arc::new(RedisWindows::open(&server.url(), "gm:limits").unwrap()) as Arc<dyn WindowStore>;
    let (a, b) = stores::two_limiters("concurrency=1,margin=0s", &clock, open);
    let now = clock.now();
    let held = a.try_acquire(&key(), TokenCount::ZERO, now).unwrap();
    let Err(Denied::Wait(w)) = b.try_acquire(&key(), TokenCount::ZERO, now) else { panic!("admitted a second") };
    assert_eq!(w.reason, WaitReason::Concurrency(1));
    drop(held);
    assert!(b.try_acquire(&key(), TokenCount::ZERO, now).is_ok());
}

/// Run by [`a_killed_holders_lease_lapses`] in a child process: takes the only slot of a concurrency cap of
/// one, says so, and waits to be killed.
#[test]
#[ignore = "a child process of a_killed_holders_lease_lapses, which runs it"]
fn child_process_holds_a_slot_until_killed() {
    let url = std::env::var("GM_LIMITS_TEST_REDIS").expect("set by its parent test");
    let store = RedisWindows::open_with_lease(&url, "test", Duration::from_secs(60)).unwrap();
    let spec = LimitSpec::parse("concurrency=1,margin=0s").unwrap();
    assert!(matches!(store.admit(&key(), &spec, 0, SystemTime::now()).unwrap(), StoreAdmission::Admitted { .. }));
    println!("holding");
    loop {
        std::thread::park();
    }
}

#[test]
fn a_killed_holders_lease_lapses() {
    use std::io::BufRead;
    let Some(server) = RedisServer::start() else { return };
    let mut child = child_test("child_process_holds_a_slot_until_killed")
        .arg("--nocapture")
        .env("GM_LIMITS_TEST_REDIS", server.url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("holding")), "the child never took the slot");
    let now = SystemTime::now();
    child.kill().unwrap(); // SIGKILL: nothing ends the lease
    child.wait().unwrap();
    let store = RedisWindows::open(&server.url(), "test").unwrap();
    let spec = LimitSpec::parse("concurrency=1,margin=0s").unwrap();
    let StoreAdmission::Wait { reason, .. } = store.admit(&key(), &spec, 0, now).unwrap() else {
        panic!("the killed process's lease did not count")
    };
    assert_eq!(reason, WaitReason::Concurrency(1));
    // Nobody renews the dead process's lease, so once its term is over the slot is free.
    let after = now + Duration::from_secs(61);
    assert_eq!(store.in_flight(&key(), after).unwrap(), 0);
    assert!(matches!(store.admit(&key(), &spec, 0, after).unwrap(), StoreAdmission::Admitted { .. }));
}
