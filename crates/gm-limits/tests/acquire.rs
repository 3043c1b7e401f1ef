//! The async `acquire`: waits in line, first come first served, gives up its place when dropped, and
//! fails at once when the quota frees too late. Time is tokio's paused clock: nothing here sleeps for real.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gm_core::Clock;
use gm_limits::{LimitError, LimitKey, LimitSpec, Limiter, LimitsConfig, ServerSignal, TokenCount, TokioClock};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const FOREVER: Duration = Duration::from_secs(365 * 86_400);

fn setup(spec: &str) -> (Limiter, LimitKey) {
    let l = Limiter::new(LimitsConfig::uniform(LimitSpec::parse(spec).unwrap()));
    (l, LimitKey::anonymous("test", "model"))
}

fn now() -> std::time::Instant {
    TokioClock.now()
}

#[tokio::test(start_paused = true)]
async fn a_burst_passes_at_once_and_the_next_waits_exactly_one_window() {
    let (l, key) = setup("3/2s,margin=0s");
    let t0 = now();
    for _ in 0..3 {
        drop(l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap());
    }
    assert_eq!(now(), t0, "a burst into an empty window must not wait");
    drop(l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap());
    assert_eq!(now() - t0, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn waiters_are_admitted_in_arrival_order_at_the_earliest_allowed_instants() {
    let (l, key) = setup("2/1s,margin=0s");
    let t0 = now();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..7u32 {
        let (l, key, order) = (l.clone(), key.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let p = l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap();
            order.lock().unwrap().push((i, now() - t0));
            drop(p);
        }));
        tokio::task::yield_now().await; // let each task take its place in line before the next
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = order.lock().unwrap().clone();
    let ms = Duration::from_millis;
    assert_eq!(
        got,
        vec![(0, ms(0)), (1, ms(0)), (2, ms(1000)), (3, ms(1000)), (4, ms(2000)), (5, ms(2000)), (6, ms(3000))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_frees_its_place() {
    let (l, key) = setup("1/10s,margin=0s");
    let t0 = now();
    let _first = l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap();
    let (l2, k2) = (l.clone(), key.clone());
    let doomed = tokio::spawn(async move { l2.acquire(&k2, TokenCount::ZERO, FOREVER).await.map(drop) });
    tokio::task::yield_now().await;
    let (l3, k3) = (l.clone(), key.clone());
    let patient = tokio::spawn(async move {
        let p = l3.acquire(&k3, TokenCount::ZERO, FOREVER).await.unwrap();
        drop(p);
        now() - t0
    });
    tokio::task::yield_now().await;
    assert_eq!(l.key_status(&key, now()).unwrap().waiting, 2);
    doomed.abort();
    assert!(doomed.await.unwrap_err().is_cancelled());
    assert_eq!(l.key_status(&key, now()).unwrap().waiting, 1);
    // The second waiter takes the slot the first would have had.
    assert_eq!(patient.await.unwrap(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_permit_releases_its_concurrency_slot() {
    let (l, key) = setup("concurrency=1");
    let held = l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap();
    let (l2, k2) = (l.clone(), key.clone());
    let waiter = tokio::spawn(async move { l2.acquire(&k2, TokenCount::ZERO, FOREVER).await.map(drop) });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!waiter.is_finished());
    let t = now();
    drop(held);
    waiter.await.unwrap().unwrap();
    assert_eq!(now(), t);
}

#[tokio::test(start_paused = true)]
async fn settling_below_the_estimate_frees_tokens_for_the_next_request() {
    let (l, key) = setup("tpm=1000,margin=0s");
    let t0 = now();
    let p = l.acquire(&key, TokenCount::new(300, 500), FOREVER).await.unwrap();
    let (l2, k2) = (l.clone(), key.clone());
    let waiter = tokio::spawn(async move { l2.acquire(&k2, TokenCount::new(400, 200), FOREVER).await.map(drop) });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    p.settle(350);
    waiter.await.unwrap().unwrap();
    assert_eq!(now(), t0);
}

#[tokio::test(start_paused = true)]
async fn max_wait_fails_at_once_and_says_when_the_quota_frees() {
    let (l, key) = setup("2/1m");
    for _ in 0..2 {
        drop(l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap());
    }
    let t = now();
    let e = l.acquire(&key, TokenCount::ZERO, Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(now(), t, "must fail without waiting");
    assert_eq!(e.retry_in(), Some(Duration::from_millis(60_080)));
    let msg = e.to_string();
    assert!(
        msg.contains("2 requests per 1m are used") && msg.contains("frees in 1m") && msg.contains("--max-wait"),
        "{msg}"
    );
    // Within the allowed wait it waits instead.
    drop(l.acquire(&key, TokenCount::ZERO, Duration::from_secs(61)).await.unwrap());
    assert_eq!(now() - t, Duration::from_millis(60_080));
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_that_surely_frees_too_late_fails_at_once() {
    let (l, key) = setup("1/10s,margin=0s");
    drop(l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap());
    let (l2, k2) = (l.clone(), key.clone());
    let first = tokio::spawn(async move { l2.acquire(&k2, TokenCount::ZERO, FOREVER).await.map(drop) });
    tokio::task::yield_now().await;
    // Second in line: it cannot pass before 20 s.
    let t = now();
    let e = l.acquire(&key, TokenCount::ZERO, Duration::from_secs(15)).await.unwrap_err();
    assert_eq!(now(), t);
    assert_eq!(e.retry_in(), Some(Duration::from_secs(20)));
    first.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_slot_times_out_after_max_wait() {
    let (l, key) = setup("concurrency=1");
    let _held = l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap();
    let t = now();
    let e = l.acquire(&key, TokenCount::ZERO, Duration::from_secs(3)).await.unwrap_err();
    assert_eq!(now() - t, Duration::from_secs(3));
    assert!(matches!(e, LimitError::WaitTimedOut { .. }), "{e}");
    assert!(e.to_string().contains("1 requests are in flight"), "{e}");
    assert_eq!(l.key_status(&key, now()).unwrap().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn a_spent_daily_quota_stops_the_run_cleanly() {
    let (l, key) = setup("15/1m,150/1d");
    let sig = ServerSignal::new(429).header("retry-after", "5631").header("x-ratelimit-type", "UserByModelByDay");
    l.observe(&key, &sig, now());
    let e = l.acquire(&key, TokenCount::ZERO, Duration::from_secs(120)).await.unwrap_err();
    assert!(matches!(e, LimitError::DailyQuotaSpent { .. }), "{e}");
    assert!(e.to_string().contains("daily quota") && e.to_string().contains("frees in 1h 33m 51s"), "{e}");
    let st = l.key_status(&key, now()).unwrap();
    assert!(st.daily_quota_spent);
    assert_eq!(st.blocked_for, Some(Duration::from_secs(5631)));
}

#[tokio::test(start_paused = true)]
async fn a_429_blocks_the_key_until_the_server_says() {
    let (l, key) = setup("15/1m");
    let t = now();
    let seen = l.observe(&key, &ServerSignal::new(429).header("retry-after-ms", "1500"), t);
    assert_eq!(seen.retry_after, Some(Duration::from_millis(1500)));
    drop(l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap());
    assert_eq!(now() - t, Duration::from_millis(1500));
    // A reset clears the block.
    l.observe(&key, &ServerSignal::new(429), now());
    assert!(l.reset(&key));
    let t = now();
    drop(l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap());
    assert_eq!(now(), t);
}

#[tokio::test(start_paused = true)]
async fn over_the_cap_is_refused_before_waiting() {
    let (l, key) = setup("1/1m,tokens_in=8000");
    let _ = l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap();
    let e = l.acquire(&key, TokenCount::new(9000, 0), FOREVER).await.unwrap_err();
    assert!(e.is_request_too_large() && e.to_string().contains("1000 over the cap of 8000"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn status_shows_where_the_key_stands() {
    let (l, key) = setup("2/1m,10/1d,concurrency=3,tpm=5000,margin=0s");
    let t = now();
    let p = l.acquire(&key, TokenCount::new(100, 50), FOREVER).await.unwrap();
    tokio::time::advance(Duration::from_secs(20)).await;
    let s = &l.status()[0];
    assert_eq!(s.key, key);
    assert_eq!((s.requests[0].used, s.requests[0].remaining), (1, 1));
    assert_eq!(s.requests[0].frees_in, Some(Duration::from_secs(40)));
    assert_eq!(s.requests[1].remaining, 9);
    assert_eq!((s.tokens[0].used, s.tokens[0].remaining), (150, 4850));
    assert_eq!((s.in_flight, s.concurrency, s.waiting), (1, Some(3), 0));
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["key"]["model"], "model");
    assert_eq!(json["limits"], "2/1m,10/1d,concurrency=3,tpm=5000,margin=0s");
    assert_eq!(json["requests"][0]["frees_in_ms"], 40_000);
    drop(p);
    assert_eq!(l.status_at(t + Duration::from_secs(20))[0].in_flight, 0);
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/acquire.txt"))),
        ..ProptestConfig::default()
    })]

    /// Waiters that are dropped at random moments free their places: everyone who stays is admitted, in
    /// arrival order, never more than N per window, and no later than if the dropped ones had never come.
    #[test]
    fn dropped_waiters_free_their_places(
        n in 1u64..4,
        per_ms in 100u64..2000,
        waiters in prop::collection::vec((any::<bool>(), 0u64..3000), 1..20),
    ) {
        let rt = paused_runtime();
        rt.block_on(async move {
            let spec = format!("{n}/{per_ms}ms,margin=0s");
            let (l, key) = setup(&spec);
            let t0 = now();
            let admitted = Arc::new(Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            for (i, (cancel, cancel_after)) in waiters.iter().enumerate() {
                let (l, key, admitted) = (l.clone(), key.clone(), admitted.clone());
                let task = tokio::spawn(async move {
                    let p = l.acquire(&key, TokenCount::ZERO, FOREVER).await.unwrap();
                    admitted.lock().unwrap().push((i, now()));
                    drop(p);
                });
                tokio::task::yield_now().await;
                tasks.push((task, *cancel, *cancel_after));
            }
            // Cancel some of them after a while, possibly after they were admitted.
            let mut cancels: Vec<_> = tasks.iter().enumerate().filter(|(_, t)| t.1).map(|(i, t)| (t.2, i)).collect();
            cancels.sort();
            let mut at = 0;
            let mut cancelled_at = Vec::new();
            for (after, i) in cancels {
                tokio::time::sleep(Duration::from_millis(after - at)).await;
                at = after;
                tasks[i].0.abort();
                cancelled_at.push(now());
            }
            for (t, _, _) in tasks {
                let _ = t.await;
            }
            let got = admitted.lock().unwrap().clone();
            // Everyone not cancelled was admitted.
            for (i, (cancel, _)) in waiters.iter().enumerate() {
                if !cancel {
                    assert!(got.iter().any(|(j, _)| *j == i), "waiter {i} was never admitted");
                }
            }
            // In arrival order.
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{got:?}");
            // Never more than n in any window, and each admitted as early as the window allows:
            // the k-th admission happens at the first instant the window had room for it.
            let per = Duration::from_millis(per_ms);
            let times: Vec<_> = got.iter().map(|(_, t)| *t).collect();
            for (k, &t) in times.iter().enumerate() {
                let in_window = times[..k].iter().filter(|&&a| a + per > t).count();
                assert!(in_window < n as usize, "{:?}", times.iter().map(|x| *x - t0).collect::<Vec<_>>());
                let k = k as u64;
                if k >= n {
                    assert!(t >= times[(k - n) as usize] + per);
                }
                // Never delayed: an admission happens at the start, when the window frees room for it,
                // or when a cancellation moves it up the line; never at any other instant.
                let freed = k >= n && t == times[(k - n) as usize] + per;
                assert!(t == t0 || freed || cancelled_at.contains(&t), "admission {k} at {:?} was delayed", t - t0);
            }
        });
    }
}
