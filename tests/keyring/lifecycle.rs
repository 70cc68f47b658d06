//! Lifecycle changes: rotation in particular, which must be all or nothing.

use keymint::testing::{Fault, StoreOp};
use keymint::{IssueRequest, KeyRecord, KeyStore, TimeDelta, VerifyError, ratelimit::Refill};

use crate::support::{ctx, fixture};

#[tokio::test]
async fn a_failed_rotation_leaves_the_old_key_exactly_as_it_was() {
    // Fail each write a rotation makes in turn, before it lands and after (a lost reply).
    for (op, skip, fault) in [
        (StoreOp::Insert, 0, Fault::Fail),
        (StoreOp::Update, 0, Fault::Fail),
        (StoreOp::Update, 1, Fault::Fail),
        (StoreOp::Update, 0, Fault::FailAfter),
        (StoreOp::Update, 1, Fault::FailAfter),
    ] {
        let f = fixture();
        let issued = f
            .keyring
            .issue(
                IssueRequest::new("a", "metered")
                    .remaining_uses(5)
                    .refill(Refill::new(5, TimeDelta::days(30), 5).unwrap())
                    .expires_in(TimeDelta::days(90)),
            )
            .await
            .unwrap();
        let id = issued.record.id.clone();
        let before: KeyRecord = f.store.inner().get(&id).await.unwrap().unwrap();
        for _ in 0..skip {
            f.store.inject(op, Fault::Pass);
        }
        f.store.inject(op, fault);
        let case = format!("{fault:?} on {op:?} #{}", skip + 1);
        match f.keyring.rotate(&id, None).await {
            Err(_) => {
                let after = f.store.inner().get(&id).await.unwrap().unwrap();
                assert_eq!(
                    after, before,
                    "{case}: a failed rotation must change nothing"
                );
                // And the key can be rotated again.
                let retried = f.keyring.rotate(&id, None).await.unwrap();
                f.keyring
                    .verify(retried.key.expose_secret(), &ctx())
                    .await
                    .unwrap();
            }
            Ok(successor) => {
                // A rotation that reports success is complete: the old key is linked and
                // both keys work, drawing on the one balance.
                let old = f.store.inner().get(&id).await.unwrap().unwrap();
                assert_eq!(old.successor.as_ref(), Some(&successor.record.id), "{case}");
                f.keyring
                    .verify(issued.key.expose_secret(), &ctx())
                    .await
                    .unwrap();
                let new = f
                    .keyring
                    .verify(successor.key.expose_secret(), &ctx())
                    .await
                    .unwrap();
                assert_eq!(new.remaining_uses(), Some(3), "{case}");
            }
        }
    }
}

#[tokio::test]
async fn a_successor_continues_its_predecessors_refill_schedule() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("a", "monthly")
                .remaining_uses(2)
                .refill(Refill::new(2, TimeDelta::days(30), 2).unwrap()),
        )
        .await
        .unwrap();
    f.clock.advance(TimeDelta::days(20));
    let successor = f
        .keyring
        .rotate(&issued.record.id, Some(TimeDelta::zero()))
        .await
        .unwrap();
    let key = successor.key.expose_secret();
    for _ in 0..2 {
        f.keyring.verify(key, &ctx()).await.unwrap();
    }
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::UsageExhausted)
    ));
    // Day 30 of the original schedule, not day 30 after the rotation.
    f.clock.advance(TimeDelta::days(10));
    let refilled = f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(refilled.remaining_uses(), Some(1));
}

#[tokio::test]
async fn the_grace_period_never_outlives_the_old_keys_expiry() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "short").expires_in(TimeDelta::hours(1)))
        .await
        .unwrap();
    let successor = f
        .keyring
        .rotate(&issued.record.id, Some(TimeDelta::days(7)))
        .await
        .unwrap();
    assert_eq!(
        successor.record.attributes.expires_at,
        issued.record.attributes.expires_at
    );
    let old = f.keyring.get(&issued.record.id).await.unwrap();
    assert_eq!(
        old.attributes.expires_at,
        issued.record.attributes.expires_at
    );
    f.clock.advance(TimeDelta::hours(1));
    for key in [&issued.key, &successor.key] {
        assert!(matches!(
            f.keyring.verify(key.expose_secret(), &ctx()).await,
            Err(VerifyError::Expired)
        ));
    }
}
