//! keymint's MemoryLimiter against governor's keyed limiter, same workloads, same run.
//!
//! Both limiters use their defaults (keymint: SystemClock, foldhash-seeded fingerprints;
//! governor: `RateLimiter::keyed`, i.e. DashMap with std's SipHash and the quanta clock)
//! and a quota high enough that every check is admitted, so both do the full update.
//! Bytes per key are measured in child processes (RSS growth for 1 000 000 keys).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use keymint::ratelimit::{MemoryLimiter, Policy, Quota};

const RATE: u32 = 1_000_000_000;
const MEM_VAR: &str = "KEYMINT_BENCH_MEMORY";
const MEM_KEYS: usize = 1_000_000;

type Governor = governor::DefaultKeyedRateLimiter<String>;

fn quota() -> Quota {
    Quota::per_second(NonZeroU32::new(RATE).unwrap())
}

fn governor_limiter() -> Governor {
    governor::RateLimiter::keyed(governor::Quota::per_second(NonZeroU32::new(RATE).unwrap()))
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key_{i:08}")).collect()
}

/// A fixed pseudo-random visiting order, so neither map benefits from insertion order.
fn order(len: usize, n: usize) -> Vec<u32> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            u32::try_from(x % n as u64).unwrap()
        })
        .collect()
}

/// Writes `key_%08d` into `buf` without allocating: the workload reads no key table of
/// its own, so the cache misses measured are the limiter's.
fn write_key(buf: &mut String, mut i: u32) {
    let mut digits = [b'0'; 8];
    for d in digits.iter_mut().rev() {
        *d = b'0' + u8::try_from(i % 10).unwrap();
        i /= 10;
    }
    buf.clear();
    buf.push_str("key_");
    buf.push_str(std::str::from_utf8(&digits).unwrap());
}

fn keyed(c: &mut Criterion, label: &str, n: usize) {
    let visit = order(n.max(1 << 16), n);
    let policy = Policy::single("bench", quota()).unwrap();
    // Governor never evicts on its own; keep keymint's table as full as governor's (with a
    // 1 ns emission interval every key is idle 1 ns after use and would be swept).
    let ours = MemoryLimiter::new().auto_sweep(false);
    let theirs = governor_limiter();
    let mut buf = String::with_capacity(16);
    for i in 0..u32::try_from(n).unwrap() {
        write_key(&mut buf, i);
        ours.check_now(&buf, &policy, 1).unwrap();
        theirs.check_key(&buf).unwrap();
    }
    let mut group = c.benchmark_group(label);
    group.bench_function(BenchmarkId::new("keymint", n), |b| {
        let (mut i, mut buf) = (0, String::with_capacity(16));
        b.iter(|| {
            write_key(&mut buf, visit[i % visit.len()]);
            i += 1;
            black_box(ours.check_now(&buf, &policy, 1).unwrap().allowed)
        });
    });
    group.bench_function(BenchmarkId::new("governor", n), |b| {
        let (mut i, mut buf) = (0, String::with_capacity(16));
        b.iter(|| {
            write_key(&mut buf, visit[i % visit.len()]);
            i += 1;
            black_box(theirs.check_key(&buf).is_ok())
        });
    });
    group.finish();
}

fn two_threads(c: &mut Criterion) {
    let policy = Policy::single("bench", quota()).unwrap();
    let ours = Arc::new(MemoryLimiter::new().auto_sweep(false));
    let theirs = Arc::new(governor_limiter());
    let key = "hot_key_000".to_owned();
    let mut group = c.benchmark_group("two_threads_one_key");
    group.bench_function("keymint", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let (ours, policy, key) = (&ours, &policy, &key);
                    s.spawn(move || {
                        for _ in 0..iters / 2 {
                            black_box(ours.check_now(key, policy, 1).unwrap().allowed);
                        }
                    });
                }
            });
            start.elapsed()
        });
    });
    group.bench_function("governor", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let (theirs, key) = (&theirs, &key);
                    s.spawn(move || {
                        for _ in 0..iters / 2 {
                            black_box(theirs.check_key(key).is_ok());
                        }
                    });
                }
            });
            start.elapsed()
        });
    });
    group.finish();
}

/// Alternating rounds (keymint, governor, keymint, ...) of a fixed number of checks each;
/// the median ns per check of each side and their ratio. On a shared, loaded machine this
/// is steadier than two criterion runs minutes apart.
fn paired(label: &str, n: usize, threads: usize) {
    const ROUNDS: usize = 9;
    // KEYMINT_BENCH_ONLY=<label> runs one workload (for profiling).
    if std::env::var("KEYMINT_BENCH_ONLY").is_ok_and(|only| only != label) {
        return;
    }
    let visit = order(n.max(1 << 16), n);
    let policy = Policy::single("bench", quota()).unwrap();
    let ours = MemoryLimiter::new().auto_sweep(false);
    let theirs = governor_limiter();
    let mut buf = String::with_capacity(16);
    for i in 0..u32::try_from(n).unwrap() {
        write_key(&mut buf, i);
        ours.check_now(&buf, &policy, 1).unwrap();
        theirs.check_key(&buf).unwrap();
    }
    let per_thread = 400_000 / threads;
    let run = |use_ours: bool| -> f64 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                let (ours, theirs, policy, visit) = (&ours, &theirs, &policy, &visit);
                s.spawn(move || {
                    let mut buf = String::with_capacity(16);
                    for i in 0..per_thread {
                        write_key(&mut buf, visit[(t * 7919 + i) % visit.len()]);
                        if use_ours {
                            black_box(ours.check_now(&buf, policy, 1).unwrap().allowed);
                        } else {
                            black_box(theirs.check_key(&buf).is_ok());
                        }
                    }
                });
            }
        });
        start.elapsed().as_nanos() as f64 / (per_thread * threads) as f64
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        a.push(run(true));
        b.push(run(false));
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (ma, mb) = (a[ROUNDS / 2], b[ROUNDS / 2]);
    println!(
        "paired {label:<22} keymint {ma:>7.1} ns  governor {mb:>7.1} ns  ratio {:.2}",
        ma / mb
    );
}

/// Median ns per read of each time source the limiter could use (9 rounds of 400 000).
fn clock_costs() {
    use keymint::Clock;
    fn median(mut f: impl FnMut() -> i64) -> f64 {
        let mut v: Vec<f64> = (0..9)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..400_000 {
                    black_box(f());
                }
                start.elapsed().as_nanos() as f64 / 400_000.0
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v[4]
    }
    let system_time = median(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap())
    });
    let chrono_now = median(|| keymint::SystemClock.now().timestamp_nanos_opt().unwrap());
    let fast = median(|| keymint::SystemClock.now_unix_nanos());
    let manual = keymint::ManualClock::default();
    let manual_ns = median(|| manual.now_unix_nanos());
    println!(
        "clock ns/read: SystemTime::now {system_time:.1}, SystemClock::now (chrono) {chrono_now:.1}, \
         SystemClock::now_unix_nanos (quanta) {fast:.1}, ManualClock::now_unix_nanos {manual_ns:.1}"
    );
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Child mode: fill one limiter with MEM_KEYS keys and print the RSS growth per key.
fn measure_memory(which: &str) {
    let keys = keys(MEM_KEYS);
    let before = rss_bytes();
    let grown = match which {
        "keymint" => {
            let l = MemoryLimiter::new().auto_sweep(false);
            let p = Policy::single("bench", quota()).unwrap();
            for k in &keys {
                l.check_now(k, &p, 1).unwrap();
            }
            let after = rss_bytes();
            // Sweep cost: a pass that keeps everything, then one that evicts everything.
            let keep =
                Policy::single("keep", Quota::per_hour(NonZeroU32::new(1).unwrap())).unwrap();
            let l2 = MemoryLimiter::new().auto_sweep(false);
            for k in &keys {
                l2.check_now(k, &keep, 1).unwrap();
            }
            let t = Instant::now();
            let kept = l2.len() - l2.sweep();
            let scan = t.elapsed();
            let t = Instant::now();
            let evicted = l.sweep();
            let evict = t.elapsed();
            eprintln!(
                "sweep of {MEM_KEYS} keys: {scan:?} keeping {kept}, {evict:?} evicting {evicted}"
            );
            after - before
        }
        _ => {
            let l = governor_limiter();
            for k in &keys {
                l.check_key(k).unwrap();
            }
            let after = rss_bytes();
            black_box(&l);
            after - before
        }
    };
    println!("{}", grown / MEM_KEYS);
}

fn bytes_per_key() {
    let exe = std::env::current_exe().unwrap();
    let run = |which: &str| -> String {
        let out = Command::new(&exe)
            .env(MEM_VAR, which)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (ours, theirs) = (run("keymint"), run("governor"));
    println!(
        "bytes per tracked key (RSS growth, {MEM_KEYS} keys of 12 chars): keymint {ours}, governor {theirs}"
    );
}

fn main() {
    if let Ok(which) = std::env::var(MEM_VAR) {
        measure_memory(&which);
        return;
    }
    if std::env::var_os("KEYMINT_BENCH_ONLY").is_none() {
        bytes_per_key();
    }
    if std::env::var_os("KEYMINT_BENCH_PAIRED_ONLY").is_some()
        || std::env::args().any(|a| a == "--paired")
    {
        if std::env::var_os("KEYMINT_BENCH_ONLY").is_none() {
            clock_costs();
        }
        paired("one_hot_key", 1, 1);
        paired("keys_10k", 10_000, 1);
        paired("keys_1m", 1_000_000, 1);
        paired("two_threads_one_key", 1, 2);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    keyed(&mut c, "one_hot_key", 1);
    keyed(&mut c, "keys_10k", 10_000);
    keyed(&mut c, "keys_1m", 1_000_000);
    two_threads(&mut c);
    c.final_summary();
}
