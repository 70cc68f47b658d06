//! Uses left (credits): taken only by admitted requests, spent by weight, reported by
//! peeks, refilled on schedule, shared across a rotation, and never granted when the store
//! cannot be asked.

use std::num::NonZeroU32;

use keymint::ratelimit::{Policy, Refill};
use keymint::{
    IssueRequest, KeyFormat, Keyring, KeyringError, MemoryStore, Quota, TimeDelta, VerifyContext,
    VerifyError,
};

use crate::support::{ctx, fast_hashes, fixture};

#[tokio::test]
async fn a_peek_reports_exhausted_uses() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(1))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let peek = VerifyContext::new().cost(0);
    assert_eq!(
        f.keyring.verify(key, &peek).await.unwrap().remaining_uses(),
        Some(1)
    );
    f.keyring.verify(key, &ctx()).await.unwrap();
    let err = f.keyring.verify(key, &peek).await.unwrap_err();
    assert!(matches!(err, VerifyError::UsageExhausted { .. }), "{err:?}");
}

#[tokio::test]
async fn a_process_whose_cache_predates_a_rotation_still_draws_on_the_shared_balance() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(3))
        .await
        .unwrap();
    // Another process on the same store, whose cache holds the key from before the rotation.
    let other = Keyring::builder(KeyFormat::new("sk_test").unwrap(), f.store.clone())
        .hashes(fast_hashes())
        .clock(f.clock.clone())
        .build()
        .unwrap();
    let old = issued.key.expose_secret();
    assert_eq!(
        other.verify(old, &ctx()).await.unwrap().remaining_uses(),
        Some(2)
    );

    let successor = f.keyring.rotate(&issued.record.id, None).await.unwrap();
    assert_eq!(
        other.verify(old, &ctx()).await.unwrap().remaining_uses(),
        Some(1),
        "the old key's balance moved to the successor, and the stale copy follows it"
    );
    let new = successor.key.expose_secret();
    assert_eq!(
        f.keyring
            .verify(new, &ctx())
            .await
            .unwrap()
            .remaining_uses(),
        Some(0)
    );
    for keyring in [&f.keyring, &other] {
        for key in [old, new] {
            assert!(matches!(
                keyring.verify(key, &ctx()).await,
                Err(VerifyError::UsageExhausted { .. })
            ));
        }
    }
}

#[tokio::test]
async fn remaining_uses_are_taken_only_by_admitted_requests() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("a", "n")
                .remaining_uses(2)
                .allowed_networks(["10.0.0.0/8".parse().unwrap()]),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let inside = VerifyContext::new().client_ip("10.0.0.1".parse().unwrap());
    let outside = VerifyContext::new().client_ip("11.0.0.1".parse().unwrap());
    for _ in 0..3 {
        assert!(f.keyring.verify(key, &outside).await.is_err());
    }
    assert_eq!(
        f.keyring
            .verify(key, &inside)
            .await
            .unwrap()
            .remaining_uses(),
        Some(1)
    );
    assert_eq!(
        f.keyring
            .verify(key, &inside)
            .await
            .unwrap()
            .remaining_uses(),
        Some(0)
    );
    let err = f.keyring.verify(key, &inside).await.unwrap_err();
    assert!(matches!(err, VerifyError::UsageExhausted { .. }));
    assert_eq!(err.status_code(), 429);
}

#[tokio::test]
async fn weighted_requests_spend_their_weight_in_credits() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(10))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let v = f
        .keyring
        .verify(key, &VerifyContext::new().cost(7))
        .await
        .unwrap();
    assert_eq!(v.remaining_uses(), Some(3));
    let err = f
        .keyring
        .verify(key, &VerifyContext::new().cost(4))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::UsageExhausted { .. }));
    assert_eq!(
        f.keyring
            .verify(key, &VerifyContext::new().cost(3))
            .await
            .unwrap()
            .remaining_uses(),
        Some(0)
    );
}

#[tokio::test]
async fn a_peek_spends_no_credit_and_an_impossible_cost_is_a_server_error() {
    let policy = Policy::single("p", Quota::per_minute(NonZeroU32::new(5).unwrap())).unwrap();
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(fast_hashes())
        .policy(policy)
        .default_policy("p")
        .build()
        .unwrap();
    let issued = keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(3))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let peek = keyring
        .verify(key, &VerifyContext::new().cost(0))
        .await
        .unwrap();
    assert_eq!(peek.remaining_uses(), Some(3));
    assert_eq!(
        keyring.get(&issued.record.id).await.unwrap().remaining_uses,
        Some(3)
    );
    let err = keyring
        .verify(key, &VerifyContext::new().cost(6))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::InvalidCost(_)), "{err:?}");
    assert_eq!(err.status_code(), 500);
}

#[tokio::test]
async fn store_failure_fails_closed_even_when_cached() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(10))
        .await
        .unwrap();
    f.keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    f.store.set_down(true);
    assert!(matches!(
        f.keyring.verify(issued.key.expose_secret(), &ctx()).await,
        Err(VerifyError::StoreUnavailable(_))
    ));
}

#[tokio::test]
async fn rotation_hands_over_remaining_uses_instead_of_doubling_them() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(3))
        .await
        .unwrap();
    f.keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    let successor = f.keyring.rotate(&issued.record.id, None).await.unwrap();
    assert_eq!(successor.record.remaining_uses, Some(2));
    // During the grace period both keys work, drawing on one balance.
    let old = f
        .keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    assert_eq!(old.remaining_uses(), Some(1));
    let new = f
        .keyring
        .verify(successor.key.expose_secret(), &ctx())
        .await
        .unwrap();
    assert_eq!(new.remaining_uses(), Some(0));
    for key in [&issued.key, &successor.key] {
        assert!(matches!(
            f.keyring.verify(key.expose_secret(), &ctx()).await,
            Err(VerifyError::UsageExhausted { .. })
        ));
    }
}

#[tokio::test]
async fn uses_are_refilled_on_schedule_once_per_period() {
    let f = fixture();
    let monthly = Refill::new(3, TimeDelta::days(30), 3).unwrap();
    assert!(matches!(
        f.keyring
            .issue(IssueRequest::new("a", "n").refill(monthly))
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("a", "n")
                .remaining_uses(2)
                .refill(monthly),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    for left in [1, 0] {
        assert_eq!(
            f.keyring
                .verify(key, &ctx())
                .await
                .unwrap()
                .remaining_uses(),
            Some(left)
        );
    }
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::UsageExhausted { .. })
    ));

    f.clock.advance(TimeDelta::days(30));
    // Topped up to the max (3), not 2 + 3, and only once however many verify.
    for left in [2, 1, 0] {
        assert_eq!(
            f.keyring
                .verify(key, &ctx())
                .await
                .unwrap()
                .remaining_uses(),
            Some(left)
        );
    }
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::UsageExhausted { .. })
    ));
    let stored = f.keyring.get(&issued.record.id).await.unwrap();
    assert_eq!(
        stored.last_refill_at,
        Some(issued.record.created_at + TimeDelta::days(30))
    );

    // Two processes (keyrings) sharing the store refill a period once between them.
    let other = Keyring::builder(KeyFormat::new("sk_test").unwrap(), f.store.clone())
        .hashes(fast_hashes())
        .clock(f.clock.clone())
        .build()
        .unwrap();
    f.clock.advance(TimeDelta::days(30));
    other.verify(key, &ctx()).await.unwrap();
    f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(
        f.keyring
            .get(&issued.record.id)
            .await
            .unwrap()
            .remaining_uses,
        Some(1)
    );
}
