//! Rate limits and quotas as the keyring applies them.

use std::num::NonZeroU32;

use keymint::ratelimit::{CalendarQuota, MemoryLimiter, Policy};
use keymint::{
    IssueRequest, KeyFormat, Keyring, ManualClock, MemoryStore, TimeDelta, Utc, VerifyError,
};

use crate::support::{ctx, fast_hashes};

#[tokio::test]
async fn rotation_hands_the_rate_limit_budget_on_instead_of_resetting_it() {
    let clock = ManualClock::new(
        "2026-03-10T12:00:00Z"
            .parse::<keymint::DateTime<Utc>>()
            .unwrap(),
    );
    let monthly = Policy::single("monthly", CalendarQuota::per_utc_month(NonZeroU32::MIN)).unwrap();
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(fast_hashes())
        .clock(clock.clone())
        .rate_limiter(MemoryLimiter::with_clock(clock.clone()))
        .policy(monthly)
        .default_policy("monthly")
        .build()
        .unwrap();
    let issued = keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();

    let successor = keyring.rotate(&issued.record.id, None).await.unwrap();
    // The month's one request is spent: neither the new key nor the old one (in its grace
    // period) gets a fresh budget.
    for key in [&successor.key, &issued.key] {
        let err = keyring
            .verify(key.expose_secret(), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::RateLimited(_)), "{err:?}");
    }
    assert_eq!(successor.record.lineage(), &issued.record.id);

    clock.advance(TimeDelta::days(25)); // into April
    keyring
        .verify(successor.key.expose_secret(), &ctx())
        .await
        .unwrap();
}
