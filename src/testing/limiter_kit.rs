//! The [`RateLimiter`] conformance checks. None depends on time passing (quotas are per
//! hour or day, and every check finishes in far less), so they run as well against a
//! server with its own clock; keys and policy names are random per run.

use std::num::NonZeroU32;

use crate::ratelimit::{Policy, Quota, RateLimitError, RateLimiter};

fn n(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN)
}

/// A name or key of its own per call, so runs on a persistent server never meet.
fn unique(tag: &str) -> String {
    let mut nonce = [0u8; 8];
    let _ = crate::random::fill(&mut nonce);
    format!("kit-{tag}-{:016x}", u64::from_le_bytes(nonce))
}

fn hourly(name: &str, burst: u32) -> Policy {
    #[allow(clippy::expect_used)]
    Policy::single(name, Quota::per_hour(n(burst))).expect("valid policy")
}

async fn allowed<L: RateLimiter>(limiter: &L, key: &str, policy: &Policy, cost: u32) -> bool {
    #[allow(clippy::expect_used)]
    limiter
        .check(key, policy, cost)
        .await
        .expect("the limiter must answer")
        .allowed
}

/// A fresh key gets exactly its burst, then a denial that says when to retry.
pub async fn admits_the_burst_then_denies<L: RateLimiter>(limiter: &L) {
    let policy = hourly(&unique("burst"), 5);
    let key = unique("key");
    for i in 0..5 {
        assert!(
            allowed(limiter, &key, &policy, 1).await,
            "request {} of a burst of 5 must be admitted",
            i + 1
        );
    }
    #[allow(clippy::expect_used)]
    let denied = limiter.check(&key, &policy, 1).await.expect("answer");
    assert!(
        !denied.allowed,
        "the request after the burst must be denied"
    );
    assert_eq!(denied.remaining, 0, "a denial reports nothing left");
    assert!(
        denied.retry_after.is_some_and(|d| !d.is_zero()),
        "a denial says when to retry"
    );
}

/// All or nothing: a request one limit of a policy denies is charged to none of them
/// (observed through a one-limit policy that shares the first limit's state: same name,
/// same limit at the same index, as the trait documents).
pub async fn a_denied_request_is_charged_to_no_limit<L: RateLimiter>(limiter: &L) {
    let name = unique("multi");
    #[allow(clippy::expect_used)]
    let both = Policy::new(
        &name,
        [Quota::per_hour(n(10)).into(), Quota::per_day(n(3)).into()],
    )
    .expect("valid policy");
    let first_only = hourly(&name, 10);
    let key = unique("key");
    assert!(allowed(limiter, &key, &both, 2).await, "2 of 10 and 2 of 3");
    assert!(
        !allowed(limiter, &key, &both, 2).await,
        "the second limit has 1 left, so 2 more must be denied"
    );
    #[allow(clippy::expect_used)]
    let peek = limiter.check(&key, &first_only, 0).await.expect("answer");
    assert_eq!(
        peek.remaining, 8,
        "the denied request must not have been charged to the first limit"
    );
}

/// A cost of 0 reports the state and changes nothing, not even for a new key.
pub async fn a_peek_changes_nothing<L: RateLimiter>(limiter: &L) {
    let policy = hourly(&unique("peek"), 3);
    let key = unique("key");
    for _ in 0..5 {
        #[allow(clippy::expect_used)]
        let peek = limiter.check(&key, &policy, 0).await.expect("answer");
        assert!(
            peek.allowed && peek.remaining == 3,
            "a peek must charge nothing: {peek:?}"
        );
    }
    for _ in 0..3 {
        assert!(
            allowed(limiter, &key, &policy, 1).await,
            "peeks must not use up the burst"
        );
    }
    #[allow(clippy::expect_used)]
    let exhausted = limiter.check(&key, &policy, 0).await.expect("answer");
    assert!(
        !exhausted.allowed,
        "a peek at an exhausted key reports the denial"
    );
}

/// A request of cost `c` is charged `c` to every limit.
pub async fn weights_are_charged_in_full<L: RateLimiter>(limiter: &L) {
    let policy = hourly(&unique("weight"), 5);
    let key = unique("key");
    #[allow(clippy::expect_used)]
    let first = limiter.check(&key, &policy, 3).await.expect("answer");
    assert!(
        first.allowed && first.remaining == 2,
        "cost 3 of 5 leaves 2: {first:?}"
    );
    assert!(
        !allowed(limiter, &key, &policy, 3).await,
        "3 more do not fit in 2"
    );
    assert!(allowed(limiter, &key, &policy, 2).await, "2 more do");
}

/// A cost no limit could ever admit is an error, not a denial with no retry time.
pub async fn a_cost_above_the_burst_is_an_error<L: RateLimiter>(limiter: &L) {
    let policy = hourly(&unique("toohigh"), 5);
    let result = limiter.check(&unique("key"), &policy, 6).await;
    assert!(
        matches!(result, Err(RateLimitError::CostTooHigh { .. })),
        "cost 6 against a burst of 5 must be CostTooHigh, got {result:?}"
    );
}

/// Any string is a key of its own: long ones, Unicode, separators and hash-tag braces
/// never share state with another key.
pub async fn keys_are_opaque_and_independent<L: RateLimiter>(limiter: &L) {
    let policy = hourly(&unique("keys"), 1);
    let base = unique("key");
    let keys = [
        base.clone(),
        format!("{base}:"),
        format!("{base}:x"),
        format!("{{{base}}}"),
        format!("{base}\u{0}"),
        format!("{base}ключ"),
        format!("{base}{}", "k".repeat(10_000)),
        String::new(),
    ];
    let mut first = Vec::new();
    for key in &keys {
        first.push(allowed(limiter, key, &policy, 1).await);
    }
    let empty_was_fresh = first.last().copied().unwrap_or(false);
    assert!(
        first[..first.len() - 1].iter().all(|a| *a),
        "every distinct key must have its own budget: {first:?}"
    );
    let _ = empty_was_fresh; // the empty key may be shared with other runs
    for key in &keys[..keys.len() - 1] {
        assert!(
            !allowed(limiter, key, &policy, 1).await,
            "each key's second request must be denied"
        );
    }
}
