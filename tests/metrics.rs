//! What the keyring reports through the `metrics` facade, checked with a recording
//! recorder: every name and label of the documented table, and no label that could carry
//! a key id, an owner or anything else unbounded.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use keymint::ratelimit::{Policy, Quota};
use keymint::{
    Argon2idHasher, HashPolicy, IssueRequest, KeyFormat, Keyring, MemoryStore, VerifyContext,
    metrics as m,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyring_reports_the_documented_metrics_with_bounded_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .hashes(HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .policy(Policy::single("two", Quota::per_hour(NonZeroU32::new(2).unwrap())).unwrap())
        .default_policy("two")
        .build()
        .unwrap();
    let ctx = VerifyContext::new();
    let issued = keyring
        .issue(IssueRequest::new("acct_secret_owner", "k"))
        .await
        .unwrap();
    let key = issued.key.expose_secret().to_owned();
    keyring.verify(&key, &ctx).await.unwrap(); // uncached, then cached
    keyring.verify(&key, &ctx).await.unwrap();
    assert!(keyring.verify(&key, &ctx).await.is_err()); // rate limited (2 per hour)
    assert!(keyring.verify("sk_live_garbage", &ctx).await.is_err()); // rejected
    let successor = keyring.rotate(&issued.record.id, None).await.unwrap();
    keyring.revoke(&successor.record.id, "test").await.unwrap();

    let mut counters: BTreeMap<(String, Vec<(String, String)>), u64> = BTreeMap::new();
    let mut histograms: BTreeMap<(String, Vec<(String, String)>), usize> = BTreeMap::new();
    let mut label_values = BTreeSet::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_owned();
        let labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        for (_, v) in &labels {
            label_values.insert(v.clone());
        }
        match value {
            DebugValue::Counter(n) => {
                counters.insert((name, labels), n);
            }
            DebugValue::Histogram(samples) => {
                histograms.insert((name, labels), samples.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    let counter = |name: &str, labels: &[(&str, &str)]| {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        counters
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0)
    };
    let samples = |name: &str, labels: &[(&str, &str)]| {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        histograms
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0)
    };

    assert_eq!(counter(m::VERIFICATIONS, &[("outcome", "ok")]), 2);
    assert_eq!(counter(m::VERIFICATIONS, &[("outcome", "rate_limited")]), 1);
    assert_eq!(
        counter(m::VERIFICATIONS, &[("outcome", "unknown_prefix")]),
        1
    );
    assert_eq!(samples(m::VERIFY_DURATION, &[("path", "uncached")]), 1);
    assert_eq!(samples(m::VERIFY_DURATION, &[("path", "cached")]), 2);
    assert_eq!(samples(m::VERIFY_DURATION, &[("path", "rejected")]), 1);
    assert_eq!(counter(m::CACHE_LOOKUPS, &[("result", "hit")]), 2);
    assert_eq!(counter(m::CACHE_LOOKUPS, &[("result", "miss")]), 1);
    assert_eq!(samples(m::STORE_LOOKUP_DURATION, &[]), 1);
    assert_eq!(samples(m::HASH_DURATION, &[]), 1);
    assert_eq!(counter(m::RATE_LIMIT_DENIALS, &[("policy", "two")]), 1);
    // The successor is issued too.
    assert_eq!(counter(m::KEYS, &[("event", "issued")]), 2);
    assert_eq!(counter(m::KEYS, &[("event", "rotated")]), 1);
    assert_eq!(counter(m::KEYS, &[("event", "revoked")]), 1);

    // No label value is anything traffic-dependent: no id, owner or key text.
    for value in &label_values {
        assert!(
            !value.contains(issued.record.id.as_str())
                && !value.contains("acct_secret_owner")
                && !value.contains("sk_live"),
            "unbounded label value {value:?}"
        );
    }
    // Outcomes are every verification code (registered up front), and the rest are the
    // documented paths, results, the configured policy name and lifecycle events.
    let documented: BTreeSet<&str> = [
        "ok",
        "malformed",
        "unknown_prefix",
        "invalid",
        "revoked",
        "disabled",
        "expired",
        "not_yet_valid",
        "wrong_environment",
        "origin_not_allowed",
        "secret_key_in_browser",
        "client_not_allowed",
        "certificate_required",
        "certificate_mismatch",
        "insufficient_scope",
        "rate_limited",
        "throttled",
        "unknown_policy",
        "invalid_cost",
        "rate_limiter_unavailable",
        "usage_exhausted",
        "overloaded",
        "store_unavailable",
        "pepper_unavailable",
        "internal",
        "uncached",
        "token",
        "cached",
        "rejected",
        "hit",
        "miss",
        "two",
        "issued",
        "rotated",
    ]
    .into_iter()
    .collect();
    for value in &label_values {
        assert!(
            documented.contains(value.as_str()),
            "unexpected label value {value:?}"
        );
    }
}
