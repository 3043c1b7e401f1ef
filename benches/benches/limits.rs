//! Admission cost of gm-limits beside governor's single-quota check, uncontended and with two threads.
//!
//! Time is manual in both: gm-limits takes `now` as an argument and governor runs on its
//! `FakeRelativeClock`; each admission advances time by one request's share of the quota, so every
//! admission passes (the steady state of a limiter used at full rate). With two threads, both share one
//! key and one atomic time source, and the figure is each thread's time per admission.

// `criterion_group!` generates a public function that cannot carry documentation.
#![allow(missing_docs)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use gm_limits::{LimitKey, LimitSpec, Limiter, LimitsConfig, TokenCount};
use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};

/// Admissions tried and denied in the two-thread gm-limits runs: a thread preempted between reading the
/// shared time and taking the lock comes back with a stale `now` and may be denied, which is cheaper than
/// an admission; the share is printed at the end so the figures can be read with it.
static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
static DENIED: AtomicU64 = AtomicU64::new(0);

/// One request's share of the quota: 15 a minute.
const STEP: Duration = Duration::from_secs(4);

fn limiter(spec: &str) -> (Limiter, LimitKey) {
    let spec = LimitSpec::parse(spec).unwrap();
    (Limiter::new(LimitsConfig::uniform(spec)), LimitKey::for_token("github", "ghp_bench", "openai/gpt-4.1"))
}

/// Runs `per_thread` admissions on each of two threads; returns the wall time, i.e. each thread's time.
fn two_threads(iters: u64, f: impl Fn(u64) + Send + Sync + 'static) -> Duration {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (f, barrier) = (f.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f(iters);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("admission");

    g.bench_function("gm-limits 1 window (handle)", |b| {
        let (l, key) = limiter("15/1m,margin=0s");
        let h = l.handle(&key);
        let mut now = Instant::now();
        b.iter(|| {
            now += STEP;
            black_box(h.try_acquire(TokenCount::ZERO, now).is_ok())
        });
    });

    g.bench_function("gm-limits 1 window (by key)", |b| {
        let (l, key) = limiter("15/1m,margin=0s");
        let mut now = Instant::now();
        b.iter(|| {
            now += STEP;
            black_box(l.try_acquire(&key, TokenCount::ZERO, now).is_ok())
        });
    });

    g.bench_function("gm-limits 3 windows + concurrency (handle)", |b| {
        let (l, key) = limiter("15/1m,900/1h,21600/1d,concurrency=5,margin=0s");
        let h = l.handle(&key);
        let mut now = Instant::now();
        b.iter(|| {
            now += STEP;
            black_box(h.try_acquire(TokenCount::ZERO, now).is_ok())
        });
    });

    g.bench_function("gm-limits 3 windows + concurrency (by key)", |b| {
        let (l, key) = limiter("15/1m,900/1h,21600/1d,concurrency=5,margin=0s");
        let mut now = Instant::now();
        b.iter(|| {
            now += STEP;
            black_box(l.try_acquire(&key, TokenCount::ZERO, now).is_ok())
        });
    });

    g.bench_function("gm-limits 3 windows + concurrency + tpm (handle)", |b| {
        let (l, key) = limiter("15/1m,900/1h,21600/1d,concurrency=5,tpm=150000,margin=0s");
        let h = l.handle(&key);
        let mut now = Instant::now();
        b.iter(|| {
            now += STEP;
            black_box(h.try_acquire(TokenCount::new(5000, 5000), now).is_ok())
        });
    });

    g.bench_function("governor 1 quota (direct)", |b| {
        let clock = FakeRelativeClock::default();
        let gov = RateLimiter::direct_with_clock(Quota::per_minute(NonZeroU32::new(15).unwrap()), clock.clone());
        b.iter(|| {
            clock.advance(STEP);
            black_box(gov.check().is_ok())
        });
    });

    g.bench_function("governor 1 quota (keyed)", |b| {
        let clock = FakeRelativeClock::default();
        let gov = RateLimiter::dashmap_with_clock(Quota::per_minute(NonZeroU32::new(15).unwrap()), clock.clone());
        let key = LimitKey::for_token("github", "ghp_bench", "openai/gpt-4.1");
        b.iter(|| {
            clock.advance(STEP);
            black_box(gov.check_key(&key).is_ok())
        });
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("admission, 2 threads, one key");
    // Each admission advances the shared time by a request's share of 15 a minute; the quota is twice
    // that, so that the two threads' interleaving (a thread may take its time, then lose the lock to the
    // other) never denies.
    for (name, spec) in [
        ("gm-limits 1 window", "30/1m,margin=0s"),
        ("gm-limits 3 windows + concurrency", "30/1m,1800/1h,43200/1d,concurrency=5,margin=0s"),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (l, key) = limiter(spec);
                let h = l.handle(&key);
                let t0 = Instant::now();
                let clock = Arc::new(AtomicU64::new(0));
                two_threads(iters, move |n| {
                    let mut denied = 0;
                    for _ in 0..n {
                        let at = clock.fetch_add(STEP.as_nanos() as u64, Ordering::Relaxed);
                        denied += u64::from(h.try_acquire(TokenCount::ZERO, t0 + Duration::from_nanos(at)).is_err());
                    }
                    ATTEMPTS.fetch_add(n, Ordering::Relaxed);
                    DENIED.fetch_add(denied, Ordering::Relaxed);
                })
            });
        });
    }
    g.bench_function("governor 1 quota (direct)", |b| {
        b.iter_custom(|iters| {
            let clock = FakeRelativeClock::default();
            let gov = Arc::new(RateLimiter::direct_with_clock(
                Quota::per_minute(NonZeroU32::new(30).unwrap()),
                clock.clone(),
            ));
            two_threads(iters, move |n| {
                for _ in 0..n {
                    clock.advance(STEP);
                    black_box(gov.check().is_ok());
                }
            })
        });
    });
    g.finish();
}

criterion_group!(benches, uncontended, contended);

fn main() {
    benches();
    let (tried, denied) = (ATTEMPTS.load(Ordering::Relaxed), DENIED.load(Ordering::Relaxed));
    if tried > 0 {
        eprintln!(
            "two-thread gm-limits runs: {denied} of {tried} attempts denied ({:.3}%)",
            denied as f64 * 100.0 / tried as f64
        );
    }
    criterion::Criterion::default().configure_from_args().final_summary();
}
