//! Redis decisions per second over one connection: sequential, and with 64 in flight
//! (multiplexed on the same connection). Skipped, successfully, when
//! KEYMINT_TEST_REDIS_URL is not set. Prints the matching `redis-benchmark` command lines
//! for raw EVALSHA throughput of the same script on the same server.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use keymint::ratelimit::{Policy, Quota, RateLimiter, RedisLimiter};

const SEQUENTIAL: usize = 20_000;
const IN_FLIGHT: usize = 64;
const PER_TASK: usize = 1_000;

fn main() {
    let Ok(url) = std::env::var("KEYMINT_TEST_REDIS_URL") else {
        println!("redis_limiter bench skipped: KEYMINT_TEST_REDIS_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let ns = format!("kmbench:{}:", std::process::id());
        let limiter = Arc::new(RedisLimiter::builder(&url).namespace(&ns).build().unwrap());
        let policy =
            Policy::single("bench", Quota::per_second(NonZeroU32::new(1_000_000_000).unwrap()))
                .unwrap();
        let keys: Arc<Vec<String>> = Arc::new((0..1000).map(|i| format!("key_{i:08}")).collect());
        for k in keys.iter() {
            assert!(limiter.check(k, &policy, 1).await.unwrap().allowed); // loads the script
        }

        let start = Instant::now();
        for i in 0..SEQUENTIAL {
            let d = limiter.check(&keys[i % keys.len()], &policy, 1).await.unwrap();
            assert!(d.allowed);
        }
        let seq = SEQUENTIAL as f64 / start.elapsed().as_secs_f64();

        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..IN_FLIGHT {
            let (limiter, policy, keys) = (Arc::clone(&limiter), policy.clone(), Arc::clone(&keys));
            tasks.spawn(async move {
                for i in 0..PER_TASK {
                    let key = &keys[(t * PER_TASK + i) % keys.len()];
                    assert!(limiter.check(key, &policy, 1).await.unwrap().allowed);
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let par = (IN_FLIGHT * PER_TASK) as f64 / start.elapsed().as_secs_f64();

        println!("keymint RedisLimiter, one connection:");
        println!("  sequential:        {seq:>9.0} decisions/s");
        println!("  {IN_FLIGHT} in flight:      {par:>9.0} decisions/s");
        let port = url.rsplit(':').next().unwrap_or("6379").trim_end_matches('/');
        let key = limiter.redis_key(&policy, 0, "key_00000000").unwrap();
        let sha = limiter.script_hash();
        println!("compare (same script, same server):");
        println!("  redis-benchmark -p {port} -n 100000 -c 1 EVALSHA {sha} 1 {key} 1 0 1 1000000000");
        println!("  redis-benchmark -p {port} -n 100000 -c 1 -P {IN_FLIGHT} EVALSHA {sha} 1 {key} 1 0 1 1000000000");
    });
}
