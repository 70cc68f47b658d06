//! Faults against real servers (issue 13, item 6): PostgreSQL and Redis stopped under
//! traffic and started again, on servers of each test's own (`support/servers.rs`), so
//! tests running in parallel never see the outage.
//!
//! Ignored by default like the other server tests; they need only the binaries (initdb and
//! pg_ctl, redis-server) and panic with a message saying what to install when those are
//! missing. CI runs them under `bash .ci/services.sh cargo test --all-features --
//! --include-ignored`.
#![cfg(all(feature = "postgres", feature = "redis", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/servers.rs"]
mod servers;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use keymint::ratelimit::{FailurePolicy, Policy, Quota, RedisLimiter};
use keymint::store::PgStore;
use keymint::{
    IssueRequest, IssuedKey, KeyFormat, KeyRecord, KeyStore, Keyring, MemoryStore, PageRequest,
    VerifyContext, VerifyError,
};

/// Every call is bounded by PgStore's 5 s timeout (and the limiter's 1 s): a generous
/// ceiling that proves "fails within the bound".
const CEILING: Duration = Duration::from_secs(15);

async fn poll<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < CEILING, "{what}: not within {CEILING:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn verify<S: KeyStore, L: keymint::RateLimiter>(
    keyring: &Keyring<S, L>,
    key: &IssuedKey,
) -> Result<(), VerifyError> {
    keyring
        .verify(key.key.expose_secret(), &VerifyContext::new())
        .await
        .map(|_| ())
}

/// Every record of `owner`, in id order.
async fn all_records(store: &PgStore, owner: &str) -> Vec<KeyRecord> {
    let mut out = Vec::new();
    let mut page = PageRequest::new(100);
    loop {
        let got = store.list_by_owner(owner, &page).await.unwrap();
        out.extend(got.items);
        match got.next_after {
            Some(after) => page = PageRequest::new(100).after(after),
            None => return out,
        }
    }
}

/// One verification made by the background traffic.
struct Sample {
    started: Instant,
    took: Duration,
    result: Result<(), VerifyError>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs initdb and pg_ctl (runs under .ci/services.sh)"]
async fn postgres_stopped_mid_traffic_fails_closed_and_recovers_without_losing_records() {
    let mut server = servers::PrivatePostgres::start();
    let store = PgStore::connect(&server.url()).await.unwrap();
    store.migrate().await.unwrap();
    let format = KeyFormat::new("sk_test").unwrap();
    // Uncached: every verification reads the store.
    let uncached = Keyring::builder(format.clone(), store.clone())
        .without_cache()
        .last_used_debounce(TimeDelta::hours(1))
        .build()
        .unwrap();
    // Cached: a metered key still needs the store on every cache hit (its uses).
    let cached = Keyring::builder(format, store.clone())
        .cache(TimeDelta::minutes(10), 100)
        .last_used_debounce(TimeDelta::hours(1))
        .build()
        .unwrap();

    // A varied set of records: active, revoked, disabled, rotated (in grace), expiring,
    // scoped, metered.
    let owner = "acct_faults";
    let mut active = Vec::new();
    for i in 0..6 {
        let request = IssueRequest::new(owner, format!("active {i}"))
            .scopes(["deploys:write"])
            .expires_in(TimeDelta::days(i + 1));
        active.push(uncached.issue(request).await.unwrap());
    }
    let revoked = uncached
        .issue(IssueRequest::new(owner, "revoked"))
        .await
        .unwrap();
    uncached.revoke(&revoked.record.id, "test").await.unwrap();
    let disabled = uncached
        .issue(IssueRequest::new(owner, "disabled"))
        .await
        .unwrap();
    uncached.disable(&disabled.record.id).await.unwrap();
    let old = uncached
        .issue(IssueRequest::new(owner, "rotated"))
        .await
        .unwrap();
    let successor = uncached
        .rotate(&old.record.id, Some(TimeDelta::hours(1)))
        .await
        .unwrap();
    active.push(old);
    active.push(successor);
    let metered = uncached
        .issue(IssueRequest::new(owner, "metered").remaining_uses(1000))
        .await
        .unwrap();

    // Warm up: each active key verified once, and its (debounced) last-used write landed,
    // so that from here on verification writes nothing but the metered key's uses.
    for key in &active {
        verify(&uncached, key).await.unwrap();
    }
    for _ in 0..3 {
        verify(&cached, &metered).await.unwrap();
    }
    poll("last-used writes landed", || async {
        let records = all_records(&store, owner).await;
        active.iter().chain([&metered]).all(|k| {
            records
                .iter()
                .any(|r| r.id == k.record.id && r.last_used_at.is_some())
        })
    })
    .await;
    let before = all_records(&store, owner).await;
    assert_eq!(before.len(), 11);
    let metered_before = before
        .iter()
        .find(|r| r.id == metered.record.id)
        .unwrap()
        .remaining_uses;
    assert_eq!(metered_before, Some(997));

    // Traffic: two tasks verifying the active keys in turn, and the refused ones.
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(active);
    let keys = active.clone();
    let refused = Arc::new([revoked, disabled]);
    let done = Arc::new(AtomicUsize::new(0));
    // Set once the server is stopped; workers count the verifications they started after.
    let outage = Arc::new(AtomicBool::new(false));
    let done_in_outage = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..2 {
        let (keyring, keys, refused, stop, done, outage, done_in_outage) = (
            uncached.clone(),
            keys.clone(),
            refused.clone(),
            stop.clone(),
            done.clone(),
            outage.clone(),
            done_in_outage.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::SeqCst) {
                let key = &keys[i % keys.len()];
                let in_outage = outage.load(Ordering::SeqCst);
                let started = Instant::now();
                let result = verify(&keyring, key).await;
                if in_outage {
                    done_in_outage.fetch_add(1, Ordering::SeqCst);
                }
                samples.push(Sample {
                    started,
                    took: started.elapsed(),
                    result,
                });
                // A refused key stays refused whatever the store does.
                let bad = &refused[i % refused.len()];
                assert!(
                    verify(&keyring, bad).await.is_err(),
                    "a refused key was granted"
                );
                i += 1;
                done.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
            samples
        }));
    }
    poll("traffic flowing", || async {
        done.load(Ordering::SeqCst) >= 20
    })
    .await;

    // Stop the server under traffic.
    let stopping = Instant::now();
    server.stop();
    let down = Instant::now();
    outage.store(true, Ordering::SeqCst);
    let attempts = std::sync::Mutex::new(Vec::new());
    let first_refusal = poll("an uncached verification fails closed", || async {
        let t = Instant::now();
        let outcome = verify(&uncached, &active[0]).await;
        let status = outcome.as_ref().err().map(VerifyError::status_code);
        attempts.lock().unwrap().push((t.elapsed(), status));
        matches!(outcome, Err(e) if e.status_code() == 503)
    })
    .await;
    let attempts = attempts.into_inner().unwrap();
    assert!(
        attempts.iter().all(|(_, status)| *status == Some(503)),
        "a verification after the stop was granted or refused for another reason: {attempts:?}"
    );
    let t = Instant::now();
    let metered_refusal = verify(&cached, &metered).await;
    let metered_took = t.elapsed();
    assert!(
        matches!(&metered_refusal, Err(VerifyError::StoreUnavailable(_))),
        "a cache hit on a metered key must not spend uses it cannot record: {metered_refusal:?}"
    );
    assert_eq!(metered_refusal.unwrap_err().status_code(), 503);
    assert!(metered_took < CEILING);
    // Every verification while down fails closed with 503 (two more here; the traffic
    // checks the rest). Each waits out the store's 5 s timeout: sqlx keeps retrying a
    // refused connection until then, and waits behind the uncached-concurrency gate add.
    for key in [&active[1], &active[active.len() - 1]] {
        let err = verify(&uncached, key).await.expect_err("the store is down");
        assert_eq!(err.status_code(), 503, "{err:?}");
    }
    // Keep the server down until the traffic itself saw the outage (verifications queued
    // behind a failure now fail at once, so the test's own calls may end the outage early).
    poll("traffic ran during the outage", || async {
        done_in_outage.load(Ordering::SeqCst) >= 2
    })
    .await;
    let resuming = Instant::now();

    server.resume();
    let back = poll("verification works again on the same keyring", || async {
        verify(&uncached, &active[0]).await.is_ok()
    })
    .await;
    poll("the metered key works again", || async {
        verify(&cached, &metered).await.is_ok()
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await.unwrap());
    }

    // Verifications started while the server was down all failed closed (503), and every
    // verification, in flight when it stopped or not, ended within the bound.
    let mut during = 0;
    for s in &samples {
        assert!(s.took < CEILING, "a verification took {:?}", s.took);
        if s.started >= down && s.started + s.took <= resuming {
            during += 1;
            match &s.result {
                Err(e) => assert_eq!(e.status_code(), 503, "{e:?}"),
                Ok(()) => panic!("a verification succeeded while the store was down"),
            }
        }
    }
    let slowest = samples.iter().map(|s| s.took).max().unwrap_or_default();
    let granted_after = samples
        .iter()
        .filter(|s| s.started > resuming && s.result.is_ok())
        .count();
    assert!(during > 0, "traffic ran during the outage");

    // Nothing stored was lost or corrupted: every record as before, except the metered
    // key's uses, spent only by the one verification that succeeded after the restart.
    let after = all_records(&store, owner).await;
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        if b.id == metered.record.id {
            assert_eq!(
                a.remaining_uses,
                Some(996),
                "no failed verification spent a use"
            );
            let mut a = a.clone();
            a.remaining_uses = b.remaining_uses;
            a.version = b.version;
            assert_eq!(&a, b);
        } else {
            assert_eq!(a, b, "record {} unchanged", b.id);
        }
    }
    eprintln!(
        "postgres fault: pg_ctl stop took {:?}; first 503 {first_refusal:?} after it returned; \
         metered cache hit refused in {metered_took:?}; slowest verification {slowest:?}; \
         {during} verifications during the outage, all 503; working again {back:?} after \
         pg_ctl start returned ({granted_after} granted after); attempts {attempts:?}",
        down - stopping
    );
}

fn n(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

async fn redis_outage(policy: FailurePolicy) {
    let mut server = servers::PrivateRedis::start();
    let limiter = RedisLimiter::builder(&server.url())
        .failure_policy(policy)
        .build()
        .unwrap();
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .rate_limiter(limiter)
        .policy(Policy::single("p", Quota::per_hour(n(5))).unwrap())
        .default_policy("p")
        .build()
        .unwrap();
    let first = keyring
        .issue(IssueRequest::new("acct", "one"))
        .await
        .unwrap();
    for _ in 0..2 {
        verify(&keyring, &first).await.unwrap();
    }

    server.stop();
    let took = poll("the limiter notices the outage", || async {
        match (policy, verify(&keyring, &first).await) {
            (FailurePolicy::Closed, Err(VerifyError::RateLimiterUnavailable(_))) => true,
            (FailurePolicy::Closed, Err(other)) => panic!("unexpected refusal: {other:?}"),
            // Open: admitted however often, the limit is not enforced while Redis is down.
            (FailurePolicy::Open, Ok(())) => true,
            (_, other) => panic!("{policy:?}: unexpected outcome while down: {other:?}"),
        }
    })
    .await;
    let mut slowest = Duration::ZERO;
    for _ in 0..8 {
        let t = Instant::now();
        let outcome = verify(&keyring, &first).await;
        slowest = slowest.max(t.elapsed());
        match policy {
            FailurePolicy::Closed => {
                let err = outcome.expect_err("fail closed refuses");
                assert_eq!(err.status_code(), 503, "{err:?}");
            }
            _ => outcome.expect("fail open admits, beyond the quota of 5"),
        }
    }
    assert!(slowest < CEILING);

    server.resume();
    let back = poll("Redis decisions again", || async {
        verify(&keyring, &first).await.is_ok()
    })
    .await;
    // Enforcement is back: a fresh key gets exactly its quota (the restarted server kept
    // no state, being run without persistence).
    let fresh = keyring
        .issue(IssueRequest::new("acct", "two"))
        .await
        .unwrap();
    for i in 0..5 {
        verify(&keyring, &fresh)
            .await
            .unwrap_or_else(|e| panic!("use {i} of 5: {e:?}"));
    }
    let denied = verify(&keyring, &fresh)
        .await
        .expect_err("the sixth is refused");
    assert!(matches!(denied, VerifyError::RateLimited(_)), "{denied:?}");
    assert_eq!(denied.status_code(), 429);
    eprintln!(
        "redis fault ({policy:?}): first outcome while down after {took:?}, slowest decision \
         while down {slowest:?}, decisions from Redis again {back:?} after it answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (runs under .ci/services.sh)"]
async fn redis_stopped_fails_closed_then_recovers() {
    redis_outage(FailurePolicy::Closed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (runs under .ci/services.sh)"]
async fn redis_stopped_fails_open_when_configured_then_recovers() {
    redis_outage(FailurePolicy::Open).await;
}
