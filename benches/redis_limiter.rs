//! Redis decisions per second over one connection: sequential (one in flight) and with 64
//! in flight (multiplexed on the same connection), from tasks on a multi-threaded tokio
//! runtime. Skipped,
//! successfully, when KEYMINT_TEST_REDIS_URL is not set.
//!
//! `benches/redis/run.sh` runs this against `redis-benchmark` sending the same `EVALSHA`
//! (same script, same key, same arguments) to the same server, alternating rounds, and
//! prints the medians and ratios. On its own (`cargo bench --features redis --bench
//! redis_limiter`) it prints both rates and the matching `redis-benchmark` command lines.
//!
//! Environment: `KEYMINT_BENCH_MODE` = `sequential`, `in-flight`, `both` (default) or
//! `block-on` (sequential from `block_on`'s thread instead of a worker task),
//! `KEYMINT_BENCH_SECS` = seconds per measurement (default 3), `KEYMINT_BENCH_WORKERS` =
//! runtime worker threads (default: tokio's, one per core the process may use).
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymint::ratelimit::{Policy, Quota, RateLimiter, RedisLimiter};

const IN_FLIGHT: usize = 64;
/// The one key every decision uses, so `redis-benchmark` can send exactly the same call.
const KEY: &str = "bench_lineage";

fn main() {
    let Ok(url) = std::env::var("KEYMINT_TEST_REDIS_URL") else {
        println!("redis_limiter bench skipped: KEYMINT_TEST_REDIS_URL is not set");
        return;
    };
    let mode = std::env::var("KEYMINT_BENCH_MODE").unwrap_or_else(|_| "both".into());
    let secs: f64 = std::env::var("KEYMINT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let window = Duration::from_secs_f64(secs);
    // tokio's default: one worker per core this process may run on (one under
    // `taskset -c 1`, as benches/redis/run.sh runs it); KEYMINT_BENCH_WORKERS overrides.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = std::env::var("KEYMINT_BENCH_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        builder.worker_threads(workers);
    }
    let rt = builder.enable_all().build().unwrap();
    let ns = format!("kmbench:{}:", std::process::id());
    let limiter = {
        let _guard = rt.enter();
        Arc::new(RedisLimiter::builder(&url).namespace(&ns).build().unwrap())
    };
    // 10^9 per second: never denies, so every call does the full read-decide-write.
    let policy = Policy::single(
        "bench",
        Quota::per_second(NonZeroU32::new(1_000_000_000).unwrap()),
    )
    .unwrap();
    // The measurements run in a spawned task, on a runtime worker, as a server's request
    // handler does. `block_on`'s own thread is no worker: from there every decision pays
    // two more cross-thread wake-ups (that thread -> the connection's task on a worker ->
    // back), which mode `block-on` shows.
    let on_worker = |f: Job| rt.block_on(async move { tokio::spawn(f).await.unwrap() });
    let (l, p) = (Arc::clone(&limiter), policy.clone());
    on_worker(Box::pin(async move {
        for _ in 0..2_000 {
            // loads the script, warms the connection and the caches
            assert!(l.check(KEY, &p, 1).await.unwrap().allowed);
        }
        0.0
    }));
    if mode == "sequential" || mode == "both" {
        let (l, p) = (Arc::clone(&limiter), policy.clone());
        let rate = on_worker(Box::pin(async move { sequential(&l, &p, window).await }));
        println!("keymint sequential {rate:.0}");
    }
    if mode == "block-on" {
        let rate = rt.block_on(sequential(&limiter, &policy, window));
        println!("keymint sequential-block-on {rate:.0}");
    }
    if mode == "in-flight" || mode == "both" {
        let (l, p) = (Arc::clone(&limiter), policy.clone());
        let rate = on_worker(Box::pin(async move { in_flight(&l, &p, window).await }));
        println!("keymint in-flight-{IN_FLIGHT} {rate:.0}");
    }
    let key = limiter.redis_key(&policy, 0, KEY).unwrap();
    let sha = limiter.script_hash();
    // What the limiter sends: EVALSHA sha 1 key cost kind interval_ns burst.
    let evalsha = format!("EVALSHA {sha} 1 {key} 1 0 1 1000000000");
    println!("evalsha {evalsha}");
    if mode == "both" {
        let port = url
            .rsplit(':')
            .next()
            .unwrap_or("6379")
            .trim_end_matches('/');
        println!("compare (same call, same server):");
        println!("  redis-benchmark -p {port} -n 100000 -c 1 -P 1 {evalsha}");
        println!("  redis-benchmark -p {port} -n 100000 -c 1 -P {IN_FLIGHT} {evalsha}");
    }
}

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = f64> + Send>>;

async fn sequential(limiter: &RedisLimiter, policy: &Policy, window: Duration) -> f64 {
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < window {
        for _ in 0..256 {
            let d = limiter.check(KEY, policy, 1).await.unwrap();
            assert!(d.allowed);
        }
        done += 256;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

async fn in_flight(limiter: &Arc<RedisLimiter>, policy: &Policy, window: Duration) -> f64 {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (limiter, policy) = (Arc::clone(limiter), policy.clone());
        tasks.spawn(async move {
            let mut done = 0u64;
            while start.elapsed() < window {
                for _ in 0..64 {
                    assert!(limiter.check(KEY, &policy, 1).await.unwrap().allowed);
                }
                done += 64;
            }
            done
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}
