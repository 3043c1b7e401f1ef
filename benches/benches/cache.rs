//! Cache benchmarks: gm-cache's memory tier beside a raw `lru::LruCache` and moka 0.12, request-key
//! computation, the whole cached request path, the SQLite tier, and memory per entry.
//!
//! `cargo bench -p gm-benches --bench cache` runs everything; memory per entry is measured in a fresh
//! child process per structure (the resident-set growth while it fills with 1M entries) and printed first.

use std::cell::{OnceCell, RefCell};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion};
use gm_cache::{Cache, CacheConfig, MemoryCache, PersistentStore, RequestKey, SqliteCache};
use gm_core::{ChatMessage, ChatRequest};

const SIZES: [(usize, &str); 2] = [(10_000, "10k"), (1_000_000, "1M")];
const VALUE_LEN: usize = 64;

/// Keys spread as real request hashes are.
fn key_bits(i: u64) -> u128 {
    let x = u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    x ^ (x >> 61)
}

fn value(i: u64) -> Bytes {
    Bytes::from(vec![i as u8; VALUE_LEN])
}

fn config(n: usize) -> CacheConfig {
    CacheConfig { max_entries: n, max_bytes: u64::MAX, default_ttl: Some(Duration::from_secs(7 * 24 * 3600)) }
}

fn ours(n: usize, now: Instant) -> MemoryCache {
    let cache = MemoryCache::new(config(n));
    for i in 0..n as u64 {
        cache.set(RequestKey::from_u128(key_bits(i)), value(i), None, now);
    }
    cache
}

fn raw_lru(n: usize) -> lru::LruCache<u128, Bytes> {
    let mut cache = lru::LruCache::new(NonZeroUsize::new(n).unwrap());
    for i in 0..n as u64 {
        cache.put(key_bits(i), value(i));
    }
    cache
}

fn moka(n: usize) -> moka::sync::Cache<u128, Bytes> {
    let cache = moka::sync::Cache::new(n as u64);
    for i in 0..n as u64 {
        cache.insert(key_bits(i), value(i));
    }
    cache.run_pending_tasks();
    cache
}

/// Walks the keys in a scattered order, so the 1M case measures a cache larger than the CPU's caches.
struct Walk {
    i: u64,
    n: u64,
    offset: u64,
}

impl Walk {
    fn present(n: usize) -> Self {
        Walk { i: 0, n: n as u64, offset: 0 }
    }
    fn absent(n: usize) -> Self {
        Walk { i: 0, n: n as u64, offset: 1 << 40 }
    }
    fn next(&mut self) -> u128 {
        self.i = (self.i + 7_919) % self.n;
        key_bits(self.i + self.offset)
    }
}

fn configure<'a>(group: &mut criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>, n: usize) {
    if n >= 1_000_000 {
        group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    } else {
        group.sample_size(50).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    }
}

fn memory_tier(c: &mut Criterion) {
    for (n, label) in SIZES {
        let now = Instant::now();
        // Built on first use, so a filtered run (`-- key`) does not fill caches it will not measure.
        let ours_cell = OnceCell::new();
        let ours = || ours_cell.get_or_init(|| ours(n, now));
        let raw_cell: OnceCell<RefCell<lru::LruCache<u128, Bytes>>> = OnceCell::new();
        let raw = || raw_cell.get_or_init(|| RefCell::new(raw_lru(n)));
        let locked_cell = OnceCell::new();
        let locked = || locked_cell.get_or_init(|| Mutex::new(raw_lru(n)));
        let moka_cell = OnceCell::new();
        let moka = || moka_cell.get_or_init(|| moka(n));

        let mut group = c.benchmark_group(format!("cache/hit/{label}"));
        configure(&mut group, n);
        let mut w = Walk::present(n);
        group.bench_function("gm-cache", |b| {
            let ours = ours();
            b.iter(|| black_box(ours.get(&RequestKey::from_u128(w.next()), now)))
        });
        let mut w = Walk::present(n);
        group.bench_function("lru", |b| {
            let mut raw = raw().borrow_mut();
            b.iter(|| black_box(raw.get(&w.next()).cloned()))
        });
        let mut w = Walk::present(n);
        group.bench_function("lru+mutex", |b| {
            let locked = locked();
            b.iter(|| black_box(locked.lock().unwrap().get(&w.next()).cloned()))
        });
        let mut w = Walk::present(n);
        group.bench_function("moka", |b| {
            let moka = moka();
            b.iter(|| black_box(moka.get(&w.next())))
        });
        group.finish();

        let mut group = c.benchmark_group(format!("cache/miss/{label}"));
        configure(&mut group, n);
        let mut w = Walk::absent(n);
        group.bench_function("gm-cache", |b| {
            let ours = ours();
            b.iter(|| black_box(ours.get(&RequestKey::from_u128(w.next()), now)))
        });
        let mut w = Walk::absent(n);
        group.bench_function("lru", |b| {
            let mut raw = raw().borrow_mut();
            b.iter(|| black_box(raw.get(&w.next()).cloned()))
        });
        let mut w = Walk::absent(n);
        group.bench_function("moka", |b| {
            let moka = moka();
            b.iter(|| black_box(moka.get(&w.next())))
        });
        group.finish();

        // Inserting new keys into a full cache: every insert also evicts the least recently used entry.
        let mut group = c.benchmark_group(format!("cache/insert/{label}"));
        configure(&mut group, n);
        let v = value(1);
        let mut i = n as u64;
        group.bench_function("gm-cache", |b| {
            let ours = ours();
            b.iter(|| {
                i += 1;
                ours.set(RequestKey::from_u128(key_bits(i)), v.clone(), None, now)
            })
        });
        let mut i = n as u64;
        group.bench_function("lru", |b| {
            let mut raw = raw().borrow_mut();
            b.iter(|| {
                i += 1;
                black_box(raw.push(key_bits(i), v.clone()))
            })
        });
        let mut i = n as u64;
        group.bench_function("moka", |b| {
            let moka = moka();
            b.iter(|| {
                i += 1;
                moka.insert(key_bits(i), v.clone())
            })
        });
        group.finish();
    }
}

/// A chat request of about 4 KB of JSON: a system prompt, a few turns, parameters and a tool.
fn request_4k() -> ChatRequest {
    let para = "The quick brown fox jumps over the lazy dog while the model considers its answer carefully. ";
    let mut messages = vec![ChatMessage::system(para.repeat(8))];
    for turn in 0..4 {
        messages.push(ChatMessage::user(format!("Question {turn}: {}", para.repeat(4))));
        messages.push(ChatMessage::assistant(format!("Answer {turn}: {}", para.repeat(3))));
    }
    let mut req = ChatRequest::new("openai/gpt-4.1-mini", messages).with_temperature(0.2).with_max_tokens(512);
    req.tools = Some(vec![gm_core::Tool::function(
        "lookup",
        "Looks a term up",
        serde_json::json!({"type": "object", "properties": {"term": {"type": "string"}}, "required": ["term"]}),
    )]);
    req.extra.insert("reasoning_effort".into(), "low".into());
    req
}

fn keys_and_path(c: &mut Criterion) {
    let req = request_4k();
    let json_len = serde_json::to_vec(&req).unwrap().len();
    eprintln!("request body used for key benchmarks: {json_len} bytes of JSON");

    let mut group = c.benchmark_group("key");
    group.sample_size(50).measurement_time(Duration::from_secs(2));
    group.bench_function(BenchmarkId::new("for_chat", format!("{json_len}B")), |b| {
        b.iter(|| RequestKey::for_chat("github", "https://models.github.ai", black_box(&req), 0))
    });
    group.bench_function(BenchmarkId::new("serde_json::to_vec (reference)", format!("{json_len}B")), |b| {
        b.iter(|| serde_json::to_vec(black_box(&req)).unwrap())
    });
    group.finish();

    // The whole cached request path: key the request, look it up, clone the stored answer.
    let now = Instant::now();
    let cache = Cache::new(config(10_000));
    for i in 0..9_999u64 {
        cache.set(RequestKey::from_u128(key_bits(i)), value(i), None, now).unwrap();
    }
    let answer = Bytes::from(vec![b'a'; 2048]);
    let key = RequestKey::for_chat("github", "https://models.github.ai", &req, 0);
    cache.set(key, answer, None, now).unwrap();
    let mut group = c.benchmark_group("cached_request_path");
    group.sample_size(50).measurement_time(Duration::from_secs(2));
    group.bench_function("key+lookup+clone (4KB request, 10k entries)", |b| {
        b.iter(|| {
            let key = RequestKey::for_chat("github", "https://models.github.ai", black_box(&req), 0);
            cache.get(&key, now).unwrap().unwrap().value
        })
    });
    group.finish();
}

fn sqlite_tier(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("gm-bench-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let now = SystemTime::now();
    let n = 10_000u64;
    let answer = vec![b'a'; 2048];
    let filled = |name: &str, touch: Duration| {
        let store = SqliteCache::builder(dir.join(name)).max_bytes(1 << 30).touch_interval(touch).open().unwrap();
        for i in 0..n {
            store.set(RequestKey::from_u128(key_bits(i)), &answer, None, now).unwrap();
        }
        store
    };

    let mut group = c.benchmark_group("sqlite");
    group.sample_size(30).measurement_time(Duration::from_secs(3));
    for (label, name, touch) in [
        ("hit (access time fresh)", "fresh.sqlite", Duration::from_secs(60)),
        ("hit (writes access time)", "touch.sqlite", Duration::ZERO),
    ] {
        let store = OnceCell::new();
        let mut w = Walk::present(n as usize);
        let mut t = now;
        group.bench_function(format!("{label}, 2KB value, 10k rows"), |b| {
            let store = store.get_or_init(|| filled(name, touch));
            b.iter(|| {
                // Each hit a millisecond later, so with a zero touch interval every hit is a write.
                t += Duration::from_millis(1);
                store.get(&RequestKey::from_u128(w.next()), t).unwrap().unwrap()
            })
        });
    }
    let store = OnceCell::new();
    let mut w = Walk::absent(n as usize);
    group.bench_function("miss", |b| {
        let store = store.get_or_init(|| filled("miss.sqlite", Duration::from_secs(60)));
        b.iter(|| store.get(&RequestKey::from_u128(w.next()), now).unwrap())
    });
    let store = OnceCell::new();
    let mut i = n;
    group.bench_function("insert 2KB value", |b| {
        let store = store.get_or_init(|| filled("insert.sqlite", Duration::from_secs(60)));
        b.iter(|| {
            i += 1;
            store.set(RequestKey::from_u128(key_bits(i)), &answer, None, now).unwrap()
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The resident set size of this process, from `/proc/self/status` (Linux).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// In a child process: fills one structure with 1M entries and prints the RSS growth per entry.
fn measure_memory(which: &str) {
    let n = 1_000_000usize;
    let before = rss_bytes().unwrap_or(0);
    let now = Instant::now();
    let keep: Box<dyn std::any::Any> = match which {
        "gm-cache" => Box::new(ours(n, now)),
        "lru" => Box::new(raw_lru(n)),
        "moka" => Box::new(moka(n)),
        "values-only" => Box::new((0..n as u64).map(|i| (key_bits(i), value(i))).collect::<Vec<_>>()),
        _ => return,
    };
    let after = rss_bytes().unwrap_or(0);
    println!("{}", (after.saturating_sub(before)) as f64 / n as f64);
    drop(keep);
}

fn report_memory() {
    let Ok(exe) = std::env::current_exe() else { return };
    eprintln!("memory per entry at 1M entries (RSS growth, {VALUE_LEN}-byte values, u128 keys):");
    for which in ["gm-cache", "lru", "moka", "values-only"] {
        let out = std::process::Command::new(&exe).env("GM_BENCH_MEMORY", which).output();
        match out {
            Ok(out) if out.status.success() => {
                eprintln!("  {which:<12} {:>8} bytes/entry", String::from_utf8_lossy(&out.stdout).trim())
            }
            _ => eprintln!("  {which:<12} could not be measured"),
        }
    }
}

fn main() {
    if let Ok(which) = std::env::var("GM_BENCH_MEMORY") {
        measure_memory(&which);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The memory report runs with the whole suite, or when the filter asks for it; not when cargo only
    // lists or smoke-tests the benchmarks.
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let smoke = args.iter().any(|a| a == "--list" || a == "--test");
    if !smoke && filter.is_none_or(|f| "memory".contains(f.as_str()) || f.contains("memory")) {
        report_memory();
    }
    let mut c = Criterion::default().configure_from_args();
    keys_and_path(&mut c);
    sqlite_tier(&mut c);
    memory_tier(&mut c);
    c.final_summary();
}
