//! The failure metrics (store and limiter errors by operation, the uncached path's waiting,
//! held and overloaded counts), checked with a recording recorder. A binary of its own:
//! a process has one global recorder, installed before the keyrings are built.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::sync::Arc;

use keymint::ratelimit::{Policy, Quota};
use keymint::testing::{Fault, FaultyStore, StoreOp};
use keymint::{
    Argon2idHasher, Decision, HashPolicy, IssueRequest, KeyFormat, Keyring, MemoryStore,
    RateLimitError, RateLimiter, VerifyContext, VerifyError, metrics as m,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

fn fast() -> HashPolicy {
    HashPolicy::new(
        Argon2idHasher::builder()
            .m_cost(64)
            .t_cost(1)
            .build()
            .unwrap(),
    )
}

#[derive(Debug)]
struct DownLimiter;

impl RateLimiter for DownLimiter {
    async fn check(&self, _: &str, _: &Policy, _: u32) -> Result<Decision, RateLimitError> {
        Err(RateLimitError::Unavailable(Arc::new(
            std::io::Error::other("down"),
        )))
    }
}

/// Every metric's running value. The debugging recorder's snapshot hands over each
/// counter's and gauge's value and resets it to zero, so values are summed across
/// snapshots: for a gauge, too, the sum is its level.
struct Totals {
    snapshotter: Snapshotter,
    sums: std::collections::HashMap<(String, Vec<(String, String)>), f64>,
}

impl Totals {
    fn get(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
        for (key, _, _, v) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let key_labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let add = match v {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            };
            *self
                .sums
                .entry((key.name().to_owned(), key_labels))
                .or_default() += add;
        }
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.sums
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_the_uncached_paths_load_are_reported() {
    let recorder = DebuggingRecorder::new();
    let mut totals = Totals {
        snapshotter: recorder.snapshotter(),
        sums: Default::default(),
    };
    recorder
        .install()
        .expect("the only recorder of this binary");

    let store = FaultyStore::new(MemoryStore::new());
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), store.clone())
        .hashes(fast())
        .uncached_concurrency(1, 1)
        .without_cache()
        .build()
        .unwrap();
    let ctx = VerifyContext::new();
    let issued = keyring.issue(IssueRequest::new("acct", "k")).await.unwrap();
    let key = issued.key.expose_secret().to_owned();

    // The store fails under each kind of work: counted by what the keyring was doing.
    store.set_down(true);
    assert!(matches!(
        keyring.verify(&key, &ctx).await,
        Err(VerifyError::StoreUnavailable(_))
    ));
    assert!(
        keyring
            .issue(IssueRequest::new("acct", "k2"))
            .await
            .is_err()
    );
    store.set_down(false);
    store.inject(StoreOp::Update, Fault::Fail);
    assert!(keyring.revoke(&issued.record.id, "x").await.is_err());
    assert_eq!(totals.get(m::STORE_ERRORS, &[("op", "verify")]), 1.0);
    assert_eq!(totals.get(m::STORE_ERRORS, &[("op", "issue")]), 1.0);
    assert_eq!(totals.get(m::STORE_ERRORS, &[("op", "manage")]), 1.0);

    // One verification holds the only place (its lookup paused), one waits, a third is
    // refused as overloaded.
    store.inject(StoreOp::Get, Fault::Pause);
    let holder = tokio::spawn({
        let (keyring, key) = (keyring.clone(), key.clone());
        async move { keyring.verify(&key, &VerifyContext::new()).await }
    });
    store.wait_paused().await;
    let waiter = tokio::spawn({
        let (keyring, key) = (keyring.clone(), key.clone());
        async move { keyring.verify(&key, &VerifyContext::new()).await }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while totals.get(m::UNCACHED_WAITING, &[]) < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiter never waited"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(totals.get(m::UNCACHED_IN_FLIGHT, &[]), 1.0);
    assert!(matches!(
        keyring.verify(&key, &ctx).await,
        Err(VerifyError::Overloaded)
    ));
    assert_eq!(totals.get(m::UNCACHED_OVERLOADED, &[]), 1.0);
    store.release();
    holder.await.unwrap().unwrap();
    waiter.await.unwrap().unwrap();
    assert_eq!(totals.get(m::UNCACHED_IN_FLIGHT, &[]), 0.0);
    assert_eq!(totals.get(m::UNCACHED_WAITING, &[]), 0.0);

    // A limiter that cannot decide.
    let limited = Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .hashes(fast())
        .rate_limiter(DownLimiter)
        .policy(Policy::single("p", Quota::per_hour(NonZeroU32::MIN)).unwrap())
        .default_policy("p")
        .build()
        .unwrap();
    let issued = limited.issue(IssueRequest::new("acct", "k")).await.unwrap();
    assert!(matches!(
        limited.verify(issued.key.expose_secret(), &ctx).await,
        Err(VerifyError::RateLimiterUnavailable(_))
    ));
    assert_eq!(totals.get(m::LIMITER_ERRORS, &[]), 1.0);
}
