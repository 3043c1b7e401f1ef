//! Windows shared through Redis. Each test starts its own `redis-server` on a free loopback port and stops
//! it afterwards; where `redis-server` is missing the skip policy of `gm_testkit::skip` applies.
#![cfg(feature = "redis")]

use std::sync::Arc;

use std::time::{Duration, SystemTime};

use gm_core::{Clock, ManualClock};
use gm_limits::store::LEASE_POLL;
use gm_limits::{
    BlockAdmission, BlockWant, Denied, LimitSpec, RedisWindows, StoreAdmission, TokenCount, WaitReason, Window,
    WindowStore,
};
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

/// A store whose renewing thread stays asleep through a test: it renews with the wall clock, which is far from
/// the times of the tests that keep their own.
fn quiet(server: &RedisServer) -> RedisWindows {
    RedisWindows::open_with_lease(&server.url(), "test", Duration::from_secs(3600)).unwrap()
}

fn want(requests: u32, leases: u32, hold: Duration) -> BlockWant {
    BlockWant { requests, leases, hold }
}

/// A block's grant: the requests, until when they may be handed out, the leases.
fn granted(answer: BlockAdmission) -> (u32, SystemTime, Vec<i64>) {
    match answer {
        BlockAdmission::Granted { requests, until, leases, .. } => (requests, until, leases),
        other => panic!("{other:?}"),
    }
}

/// A fixed sequence of numbers from `seed` (xorshift), each below the bound it is asked for.
fn numbers(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |below| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    }
}

/// The most requests granted within any half-open interval of length `per`, by the instants given.
fn most_granted_within(grants: &[(SystemTime, u32)], per: Duration) -> u32 {
    let within = |a: SystemTime| grants.iter().filter(|&&(b, _)| b >= a && b < a + per).map(|&(_, n)| n).sum();
    grants.iter().map(|&(a, _)| within(a)).max().unwrap_or(0)
}

/// A block takes at most half of what the tightest window has left, rounded up, so one process leaves room for
/// the others; at least one while there is room, never more than asked, and when a window is full, a wait
/// until its oldest admission leaves it.
#[test]
fn a_block_is_at_most_half_the_room_and_at_least_one() {
    let Some(server) = RedisServer::start() else { return };
    let store = quiet(&server);
    let spec = LimitSpec::parse("10/1m,4/1s,margin=0s").unwrap();
    let (t, hold) = (stores::start(), Duration::from_millis(100));
    let ask = |at: SystemTime| store.admit_block(&key(), &spec, want(8, 0, hold), at).unwrap();
    // Room for 4 in the second (10 in the minute): 2. Then 2 left: 1; then 1 left: 1.
    assert_eq!(granted(ask(t)), (2, t + hold, vec![]));
    assert_eq!(granted(ask(t)).0, 1);
    assert_eq!(granted(ask(t)).0, 1);
    // The second is full until the four, recorded at the end of their hold, leave it.
    let second = Window::new(4, Duration::from_secs(1));
    assert_eq!(
        ask(t),
        BlockAdmission::Wait { until: t + hold + Duration::from_secs(1), reason: WaitReason::Requests(second) }
    );
    // Later the minute is the tighter: 6 left (the second's 4 set the grant: 2), then 4 (2), 2 (1), 1 (1).
    let at = |s: u64| t + Duration::from_secs(s);
    assert_eq!(granted(ask(at(5))).0, 2);
    assert_eq!(granted(ask(at(10))).0, 2);
    assert_eq!(granted(ask(at(15))).0, 1);
    assert_eq!(granted(ask(at(20))).0, 1);
    assert_eq!(store.count(&key(), Duration::from_secs(60), at(20)).unwrap(), 10);
    let minute = Window::new(10, Duration::from_secs(60));
    assert_eq!(
        ask(at(25)),
        BlockAdmission::Wait { until: t + hold + Duration::from_secs(60), reason: WaitReason::Requests(minute) }
    );
    // With room for more, a block is what was asked; with no cap, it takes no leases.
    let (requests, _, leases) = granted(store.admit_block(&key(), &spec, want(1, 2, hold), at(61)).unwrap());
    assert_eq!((requests, leases), (1, vec![]));
}

/// A key's history keeps its latest `HISTORY_CAP` admissions, so a block never grants more: admissions it
/// could not keep would not count.
#[test]
fn a_block_never_grants_more_than_the_history_keeps() {
    let Some(server) = RedisServer::start() else { return };
    let store = quiet(&server);
    let spec = LimitSpec::parse("1000000/1d,margin=0s").unwrap();
    let t = stores::start();
    let (requests, ..) = granted(store.admit_block(&key(), &spec, want(100_000, 0, Duration::ZERO), t).unwrap());
    assert_eq!(requests, u32::try_from(gm_limits::HISTORY_CAP).unwrap());
    let day = Duration::from_secs(86_400);
    assert_eq!(store.count(&key(), day, t).unwrap(), u64::from(requests));
}

/// Two connections take blocks of up to 16 in turn under 40/1s, one every 37 ms for 8 s, each held 100 ms.
/// Every answer is the one the rule gives (half the room left, rounded up; when the window is full, a wait
/// until the 40th most recent admission leaves it), and the requests granted within any second, by the time
/// they were granted or by the last moment they may be handed out, reach 40 and never pass it.
#[test]
fn blocks_from_two_connections_never_exceed_the_window() {
    let Some(server) = RedisServer::start() else { return };
    let connections = [quiet(&server), quiet(&server)];
    let spec = LimitSpec::parse("40/1s,margin=0s").unwrap();
    let (per, hold) = (Duration::from_secs(1), Duration::from_millis(100));
    // The oracle's record: the time each admission counts from (the end of its hold, or the latest before it).
    let mut recorded: Vec<SystemTime> = Vec::new();
    let mut grants = Vec::new();
    let mut now = stores::start();
    for i in 0..216 {
        let counted = &recorded[recorded.partition_point(|&r| r + per <= now)..];
        let room = 40 - u32::try_from(counted.len()).unwrap();
        let expected = if room == 0 {
            let reason = WaitReason::Requests(Window::new(40, per));
            BlockAdmission::Wait { until: counted[counted.len() - 40] + per, reason }
        } else {
            let n = room.div_ceil(2).min(16);
            let at = recorded.last().map_or(now + hold, |&latest| latest.max(now + hold));
            recorded.extend(std::iter::repeat_n(at, n as usize));
            grants.push((now, n));
            BlockAdmission::Granted { requests: n, first: 0, until: now + hold, leases: vec![] }
        };
        let mut answer = connections[i % 2].admit_block(&key(), &spec, want(16, 0, hold), now).unwrap();
        // The model does not follow ids.
        if let BlockAdmission::Granted { first, .. } = &mut answer {
            *first = 0;
        }
        assert_eq!(answer, expected, "attempt {i}");
        now += Duration::from_millis(37);
    }
    assert!(grants.len() > 40, "{grants:?}");
    assert_eq!(most_granted_within(&grants, per), 40);
    let handed_out: Vec<_> = grants.iter().map(|&(at, n)| (at + hold, n)).collect();
    assert_eq!(most_granted_within(&handed_out, per), 40);
    let counted = recorded.iter().filter(|&&r| r + per > now).count();
    assert_eq!(connections[1].count(&key(), per, now).unwrap(), u64::try_from(counted).unwrap());
}

/// The same from two threads at once, whose blocks reach the server in either order: the requests granted
/// within any second still never pass 40.
#[test]
fn blocks_from_two_threads_never_exceed_the_window() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let Some(server) = RedisServer::start() else { return };
    let spec = LimitSpec::parse("40/1s,margin=0s").unwrap();
    let hold = Duration::from_millis(100);
    let clock = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (store, spec, clock) = (quiet(&server), spec.clone(), clock.clone());
            std::thread::spawn(move || {
                let mut grants = Vec::new();
                for _ in 0..150 {
                    let now = stores::start() + Duration::from_micros(clock.fetch_add(37_000, Ordering::SeqCst));
                    match store.admit_block(&key(), &spec, want(16, 0, hold), now).unwrap() {
                        BlockAdmission::Granted { requests, until, .. } => {
                            assert!((1..=16).contains(&requests) && until == now + hold, "{requests} {until:?}");
                            grants.push((now, requests));
                        }
                        BlockAdmission::Wait { until, .. } => assert!(until > now),
                        other => panic!("{other:?}"),
                    }
                }
                grants
            })
        })
        .collect();
    let grants: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(grants.len() > 40, "{grants:?}");
    let per = Duration::from_secs(1);
    assert!(most_granted_within(&grants, per) <= 40, "{grants:?}");
    let handed_out: Vec<_> = grants.iter().map(|&(at, n)| (at + hold, n)).collect();
    assert!(most_granted_within(&handed_out, per) <= 40, "{grants:?}");
}

/// A block's leases come from the admissions' sequence: distinct from each other, from every admission's id
/// (which a single admission's lease shares) and from the admissions the block records.
#[test]
fn block_lease_ids_are_distinct_from_each_other_and_from_admission_ids() {
    let Some(server) = RedisServer::start() else { return };
    let (a, b) = (quiet(&server), quiet(&server));
    let spec = LimitSpec::parse("100/1m,concurrency=8,margin=0s").unwrap();
    let t = stores::start();
    let StoreAdmission::Admitted { id: first } = a.admit(&key(), &spec, 0, t).unwrap() else { panic!() };
    // Room for 7 leases: 3 asked; for 99 requests: 4 asked.
    let (requests, _, mut leases) = granted(b.admit_block(&key(), &spec, want(4, 3, Duration::ZERO), t).unwrap());
    assert_eq!((requests, leases.len()), (4, 3));
    let StoreAdmission::Admitted { id: second } = a.admit(&key(), &spec, 0, t).unwrap() else { panic!() };
    // Room for 3: 2 of the 5 asked.
    let (_, _, more) = granted(b.admit_block(&key(), &spec, want(0, 5, Duration::ZERO), t).unwrap());
    assert_eq!(more.len(), 2);
    leases.extend(more);
    let mut raw = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let admissions: Vec<i64> =
        redis::cmd("ZRANGE").arg(format!("test:{{{}}}:admissions", key())).arg(0).arg(-1).query(&mut raw).unwrap();
    assert_eq!(admissions.len(), 6, "{admissions:?}");
    assert!(admissions.contains(&first) && admissions.contains(&second), "{admissions:?}");
    let mut ids: Vec<i64> = admissions.iter().chain(&leases).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6 + 5, "admissions {admissions:?}, block leases {leases:?}");
    assert_eq!(a.in_flight(&key(), t).unwrap(), 2 + 5);
    assert_eq!(a.count(&key(), Duration::from_secs(60), t).unwrap(), 6);
}

/// Leases taken in a block are requests in flight for every process: they fill the cap for single admissions
/// through another connection, a release frees one, and the store renews those it keeps.
#[test]
fn block_leases_count_against_the_cap_until_released() {
    let Some(server) = RedisServer::start() else { return };
    let (a, b) =
        (RedisWindows::open(&server.url(), "test").unwrap(), RedisWindows::open(&server.url(), "test").unwrap());
    let spec = LimitSpec::parse("concurrency=4,margin=0s").unwrap();
    // The stores' own threads renew with the wall clock, which only lengthens leases from now on.
    let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs());
    let (_, _, leases) = granted(a.admit_block(&key(), &spec, want(0, 8, Duration::ZERO), t).unwrap());
    assert_eq!(leases.len(), 2, "half the cap");
    for _ in 0..2 {
        assert!(matches!(b.admit(&key(), &spec, 0, t).unwrap(), StoreAdmission::Admitted { .. }));
    }
    let cap = (t + LEASE_POLL, WaitReason::Concurrency(4));
    let StoreAdmission::Wait { until, reason } = b.admit(&key(), &spec, 0, t).unwrap() else { panic!("a fifth") };
    assert_eq!((until, reason), cap);
    let BlockAdmission::Wait { until, reason } = a.admit_block(&key(), &spec, want(0, 1, Duration::ZERO), t).unwrap()
    else {
        panic!("a fifth lease")
    };
    assert_eq!((until, reason), cap);
    a.release(&key(), leases[0]).unwrap();
    assert_eq!(b.in_flight(&key(), t).unwrap(), 3);
    assert!(matches!(b.admit(&key(), &spec, 0, t).unwrap(), StoreAdmission::Admitted { .. }), "still held");
    // A renews the block lease it keeps, which outlasts B's three.
    a.renew(t + Duration::from_secs(8)).unwrap();
    let later = t + Duration::from_secs(15);
    assert_eq!(b.in_flight(&key(), later).unwrap(), 1);
    a.release(&key(), leases[1]).unwrap();
    assert_eq!(b.in_flight(&key(), later).unwrap(), 0);
}

/// A block of leases alone admits no request: it records no admission, and a full request window does not
/// hold it back.
#[test]
fn a_block_of_leases_alone_records_no_admission() {
    let Some(server) = RedisServer::start() else { return };
    let store = quiet(&server);
    let spec = LimitSpec::parse("1/1m,concurrency=3,margin=0s").unwrap();
    let (t, hold) = (stores::start(), Duration::from_millis(100));
    assert!(matches!(store.admit(&key(), &spec, 0, t).unwrap(), StoreAdmission::Admitted { .. }));
    let (requests, until, leases) = granted(store.admit_block(&key(), &spec, want(0, 4, hold), t).unwrap());
    assert_eq!((requests, until, leases.len()), (0, t + hold, 1));
    assert_eq!(store.count(&key(), Duration::from_secs(60), t).unwrap(), 1);
    assert_eq!(store.in_flight(&key(), t).unwrap(), 2);
    // Asking for a request as well waits for the window.
    let minute = WaitReason::Requests(Window::new(1, Duration::from_secs(60)));
    let wait = store.admit_block(&key(), &spec, want(1, 1, hold), t).unwrap();
    assert_eq!(wait, BlockAdmission::Wait { until: t + Duration::from_secs(60), reason: minute });
    assert_eq!(store.count(&key(), Duration::from_secs(60), t).unwrap(), 1);
    assert_eq!(store.in_flight(&key(), t).unwrap(), 2);
}

/// Every key a block writes expires, and none before what it holds stops mattering: the admissions (recorded at
/// the end of their hold) once the longest window no longer counts them, the sequence of ids no sooner than
/// the admissions' would, even when the block takes only leases.
#[test]
fn a_blocks_keys_last_as_long_as_what_they_hold() {
    let Some(server) = RedisServer::start() else { return };
    let store = quiet(&server);
    let mut raw = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
    let mut ttl =
        |name: &str| -> i64 { redis::cmd("PTTL").arg(format!("test:{{{}}}:{name}", key())).query(&mut raw).unwrap() };
    let (day, hour) = (86_400_000, 3_600_000);
    let spec = LimitSpec::parse("concurrency=2,margin=0s").unwrap();
    granted(store.admit_block(&key(), &spec, want(0, 1, Duration::ZERO), stores::start()).unwrap());
    assert!(ttl("seq") > day, "{}", ttl("seq"));
    assert!(ttl("leases") > 0, "{}", ttl("leases"));
    store.reset(&key()).unwrap();
    let hold = Duration::from_secs(3_600);
    granted(store.admit_block(&key(), &spec, want(2, 1, hold), stores::start()).unwrap());
    for name in ["admissions", "tokens", "seq", "horizon"] {
        assert!(ttl(name) > day + hour, "{name}: {}", ttl(name));
    }
}

/// A block waits for the same limits, until the same moment, as a single admission: the server's block, a
/// full window (which frees later than the full cap beside it), a token budget already overspent (but not one
/// spent to the last token).
#[test]
fn a_block_waits_until_every_limit_in_its_way_frees() {
    let Some(server) = RedisServer::start() else { return };
    let store = quiet(&server);
    let t = stores::start();
    let now = t + Duration::from_secs(2);
    let expect = |spec: &LimitSpec, until: SystemTime, reason: WaitReason| {
        let StoreAdmission::Wait { until: u, reason: r } = store.admit(&key(), spec, 0, now).unwrap() else {
            panic!("admitted under {spec:?}")
        };
        assert_eq!((u, r), (until, reason), "a single admission");
        let answer = store.admit_block(&key(), spec, want(3, 1, Duration::from_millis(100)), now).unwrap();
        assert_eq!(answer, BlockAdmission::Wait { until, reason }, "a block");
    };
    let spec = LimitSpec::parse("5/1m,margin=0s").unwrap();
    store.block(&key(), t + Duration::from_secs(30), true).unwrap();
    expect(&spec, t + Duration::from_secs(30), WaitReason::Server { daily: true });
    store.reset(&key()).unwrap();
    let spec = LimitSpec::parse("2/1m,concurrency=1,margin=0s").unwrap();
    let StoreAdmission::Admitted { id } = store.admit(&key(), &spec, 0, t).unwrap() else { panic!() };
    store.release(&key(), id).unwrap();
    let StoreAdmission::Admitted { id } = store.admit(&key(), &spec, 0, t + Duration::from_secs(1)).unwrap() else {
        panic!()
    };
    let minute = WaitReason::Requests(Window::new(2, Duration::from_secs(60)));
    expect(&spec, t + Duration::from_secs(60), minute);
    store.release(&key(), id).unwrap();
    expect(&spec, t + Duration::from_secs(60), minute);
    store.reset(&key()).unwrap();
    let spec = LimitSpec::parse("tpm=100,margin=0s").unwrap();
    let StoreAdmission::Admitted { id } = store.admit(&key(), &spec, 100, t).unwrap() else { panic!() };
    // Spent to the last token, the budget still lets a block through (its requests reserve none).
    let (requests, ..) = granted(store.admit_block(&key(), &spec, want(3, 0, Duration::ZERO), now).unwrap());
    assert_eq!(requests, 3);
    store.settle(&key(), id, 150).unwrap();
    expect(&spec, t + Duration::from_secs(60), WaitReason::Tokens(Window::new(100, Duration::from_secs(60))));
}

/// Redis grants what the state file's store grants, attempt for attempt, over a minute of blocks of requests,
/// leases or both (held 0 to 300 ms), single admissions with tokens, settlements, releases and the server's
/// blocks, under two request windows, a token budget and a concurrency cap.
#[cfg(feature = "sqlite")]
#[test]
fn blocks_in_redis_are_those_of_the_state_file() {
    let Some(server) = RedisServer::start() else { return };
    let file = gm_testkit::StateFile::new("limits-blocks-redis");
    let stores: [Box<dyn WindowStore>; 2] =
        [Box::new(quiet(&server)), Box::new(gm_limits::SqliteWindows::open(file.path()).unwrap())];
    let spec = LimitSpec::parse("40/1s,150/10s,tpm=12000,concurrency=8,margin=0s").unwrap();
    // Ids of the same admission or lease in each store.
    let (mut held, mut admitted): (Vec<[i64; 2]>, Vec<[i64; 2]>) = (Vec::new(), Vec::new());
    let mut next = numbers(0x2545_f491_4f6c_dd1d);
    let mut now = stores::start();
    // Blocks granted, and waits for the server, a request window, the token budget, the cap.
    let (mut blocks, mut waits) = (0, [0; 4]);
    for i in 0..1_000 {
        now += Duration::from_millis(next(120));
        match next(9) {
            0..=2 => {
                let hold = Duration::from_millis([0, 50, 300][usize::try_from(next(3)).unwrap()]);
                let w = want(u32::try_from(next(20)).unwrap(), u32::try_from(next(4)).unwrap(), hold);
                let [r, s] = [0, 1].map(|k| stores[k].admit_block(&key(), &spec, w, now).unwrap());
                match (r, s) {
                    (
                        BlockAdmission::Granted { requests, until, leases, .. },
                        BlockAdmission::Granted { requests: n, until: u, leases: l, .. },
                    ) => {
                        assert_eq!((requests, until, leases.len()), (n, u, l.len()), "attempt {i}: {w:?}");
                        held.extend(leases.into_iter().zip(l).map(|(a, b)| [a, b]));
                        blocks += 1;
                    }
                    (r, s) => {
                        assert_eq!(r, s, "attempt {i}: {w:?}");
                        let BlockAdmission::Wait { reason, .. } = r else { panic!("attempt {i}: {r:?}") };
                        waits[match reason {
                            WaitReason::Server { .. } => 0,
                            WaitReason::Requests(_) => 1,
                            WaitReason::Tokens(_) => 2,
                            _ => 3,
                        }] += 1;
                    }
                }
            }
            3 => {
                let tokens = next(200);
                match [0, 1].map(|k| stores[k].admit(&key(), &spec, tokens, now).unwrap()) {
                    [StoreAdmission::Admitted { id: r }, StoreAdmission::Admitted { id: s }] => {
                        held.push([r, s]);
                        admitted.push([r, s]);
                    }
                    [r, s] => assert_eq!(r, s, "attempt {i}"),
                }
            }
            4 if !admitted.is_empty() => {
                let ids = admitted[usize::try_from(next(admitted.len() as u64)).unwrap()];
                let tokens = next(600);
                for k in 0..2 {
                    stores[k].settle(&key(), ids[k], tokens).unwrap();
                }
            }
            8 => {
                let until = now + Duration::from_millis(next(200));
                for store in &stores {
                    store.block(&key(), until, false).unwrap();
                }
            }
            _ if !held.is_empty() => {
                let ids = held.swap_remove(usize::try_from(next(held.len() as u64)).unwrap());
                for k in 0..2 {
                    stores[k].release(&key(), ids[k]).unwrap();
                }
            }
            _ => {}
        }
    }
    assert!(blocks > 100 && waits.iter().all(|&n| n > 5), "{blocks} blocks granted, waits {waits:?}");
    for per in [1, 10, 60].map(Duration::from_secs) {
        let [r, s] = [0, 1].map(|k| stores[k].count(&key(), per, now).unwrap());
        assert_eq!(r, s, "{per:?}");
    }
}

/// A limiter on Redis takes a steady stream's admissions and leases a block at a time.
#[test]
fn a_steady_stream_takes_redis_a_block_at_a_time() {
    let Some(server) = RedisServer::start() else { return };
    stores::a_steady_stream_takes_the_store_a_block_at_a_time(|| {
        Arc::new(RedisWindows::open(&server.url(), "test").unwrap())
    });
}

#[test]
fn giving_back_a_blocks_unused_admissions_frees_their_places() {
    let Some(server) = RedisServer::start() else { return };
    stores::giving_back_a_blocks_unused_admissions_frees_their_places(|| {
        RedisWindows::open(&server.url(), "test").unwrap()
    });
}

#[test]
fn a_quiet_limiter_gives_back_what_it_holds() {
    let Some(server) = RedisServer::start() else { return };
    stores::a_quiet_limiter_gives_back_what_it_holds(|| Arc::new(RedisWindows::open(&server.url(), "test").unwrap()));
}

#[test]
fn a_reset_keeps_the_leases_of_requests_in_flight_and_kept() {
    let Some(server) = RedisServer::start() else { return };
    stores::a_reset_keeps_the_leases_of_requests_in_flight_and_kept(|| {
        Arc::new(RedisWindows::open(&server.url(), "test").unwrap())
    });
}

#[test]
fn new_limits_give_back_the_leases_kept_under_the_old() {
    let Some(server) = RedisServer::start() else { return };
    stores::new_limits_give_back_the_leases_kept_under_the_old(|| {
        Arc::new(RedisWindows::open(&server.url(), "test").unwrap())
    });
}

/// A burst shorter than a hold takes no block from Redis either.
#[test]
fn a_short_burst_is_admitted_one_request_at_a_time() {
    let Some(server) = RedisServer::start() else { return };
    stores::a_short_burst_is_admitted_one_request_at_a_time(|| {
        Arc::new(RedisWindows::open(&server.url(), "test").unwrap())
    });
}

/// Three limiters taking blocks from one Redis server never let more requests through a window, nor more into
/// flight, than the limits allow: the check the state file's store runs under proptest, here on a fixed
/// sequence of 3,000 admissions and ends for each spec.
#[test]
fn blocks_from_three_limiters_keep_every_window_and_the_cap() {
    let specs = [
        "256/200ms,concurrency=32,margin=0s",
        "64/60ms,600/1s,margin=0s",
        "concurrency=48",
        "96/100ms,600/1s,concurrency=64,margin=0s",
        "128/80ms,margin=0s",
    ];
    for (seed, spec) in (1..).map(|i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).zip(specs) {
        let Some(server) = RedisServer::start() else { return };
        let mut next = numbers(seed);
        let steps: Vec<stores::Step> = (0..3_000)
            .map(|_| {
                let limiter = usize::try_from(next(3)).unwrap();
                // Mostly admissions close together, some ends, now and then a pause.
                match next(73) {
                    0..=39 => stores::Step::Admit { gap_us: next(500), limiter },
                    40 => stores::Step::Admit { gap_us: next(300_000), limiter },
                    41..=64 => stores::Step::End { limiter },
                    _ => stores::Step::EndNewest { limiter },
                }
            })
            .collect();
        let open = || Arc::new(quiet(&server)) as Arc<dyn WindowStore>;
        stores::blocks_keep_every_window_and_the_cap(open, spec, &steps);
    }
}
