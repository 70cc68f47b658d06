//! A key's lifecycle through the management API: issue, update, disable, revoke, rotate
//! (which must be all or nothing), list, and the last-used time.

use keymint::testing::{Fault, StoreOp};
use keymint::{
    Clock as _, IssueRequest, KeyFormat, KeyRecord, KeyStatus, KeyStore, KeyUpdate, Keyring,
    KeyringError, MemoryStore, PageRequest, Scope, TimeDelta, VerifyError, ratelimit::Refill,
};

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
        Err(VerifyError::UsageExhausted { .. })
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

#[tokio::test]
async fn issue_rejects_bad_requests() {
    let f = fixture();
    let now = f.clock.now();
    for request in [
        IssueRequest::new("", "n"),
        IssueRequest::new("a", "bad\nname"),
        IssueRequest::new("a", "n").expires_at(now),
        IssueRequest::new("a", "n").expires_in(TimeDelta::seconds(-1)),
        IssueRequest::new("a", "n")
            .not_before(now + TimeDelta::hours(2))
            .expires_in(TimeDelta::hours(1)),
        IssueRequest::new("a", "n").scopes([""]),
        IssueRequest::new("a", "n").metadata(serde_json::json!("x".repeat(20_000))),
    ] {
        assert!(matches!(
            f.keyring.issue(request).await,
            Err(KeyringError::InvalidRequest(_))
        ));
    }
    assert!(f.store.inner().is_empty());
}

#[tokio::test]
async fn invalid_scopes_and_unknown_roles_are_rejected_at_issue_and_update() {
    let f = fixture();
    for request in [
        IssueRequest::new("a", "n").scopes(["Users:Read"]),
        IssueRequest::new("a", "n").scopes(["users::read"]),
        IssueRequest::new("a", "n").roles(["no_such_role"]),
    ] {
        let err = f.keyring.issue(request).await.unwrap_err();
        assert!(matches!(err, KeyringError::InvalidRequest(_)), "{err:?}");
    }
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let err = f
        .keyring
        .update(&issued.record.id, KeyUpdate::new().roles(["ghost"]))
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::InvalidRequest(ref m) if m.contains("ghost")));
}

#[tokio::test]
async fn updates_apply_and_invalidate_the_cache() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    assert!(
        f.keyring
            .verify(key, &ctx())
            .await
            .unwrap()
            .record()
            .attributes
            .scopes
            .is_empty()
    );
    let updated = f
        .keyring
        .update(
            &issued.record.id,
            KeyUpdate::new().scopes(["users:read"]).name("renamed"),
        )
        .await
        .unwrap();
    assert_eq!(updated.attributes.name, "renamed");
    assert_eq!(
        f.keyring
            .verify(key, &ctx())
            .await
            .unwrap()
            .record()
            .attributes
            .scopes,
        vec!["users:read".parse::<Scope>().unwrap()]
    );
    assert!(matches!(
        f.keyring
            .update(&issued.record.id, KeyUpdate::new().scopes([" "]))
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
    let unknown = f.keyring.format().generate().unwrap();
    assert!(matches!(
        f.keyring.update(unknown.id(), KeyUpdate::new()).await,
        Err(KeyringError::NotFound)
    ));
}

#[tokio::test]
async fn disable_and_enable() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    f.keyring.disable(&issued.record.id).await.unwrap();
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::Disabled)
    ));
    f.keyring.enable(&issued.record.id).await.unwrap();
    f.keyring.verify(key, &ctx()).await.unwrap();
}

#[tokio::test]
async fn revoked_key_never_verifies_again_even_from_cache() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    f.keyring.verify(key, &ctx()).await.unwrap();
    let revoked = f.keyring.revoke(&issued.record.id, "leaked").await.unwrap();
    assert_eq!(revoked.status, KeyStatus::Revoked);
    assert_eq!(revoked.revocation.as_ref().unwrap().reason, "leaked");
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::Revoked)
    ));
    assert!(matches!(
        f.keyring.enable(&issued.record.id).await,
        Err(KeyringError::InvalidState(_))
    ));
    assert!(matches!(
        f.keyring.rotate(&issued.record.id, None).await,
        Err(KeyringError::InvalidState(_))
    ));
    assert_eq!(
        f.bus.published().as_slice(),
        std::slice::from_ref(&issued.record.id),
        "revocation must be announced to the fleet"
    );
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_the_grace_period() {
    let f = fixture();
    let old = f
        .keyring
        .issue(
            IssueRequest::new("acct", "deploy")
                .scopes(["a:b"])
                .metadata(serde_json::json!({"team": 7})),
        )
        .await
        .unwrap();
    let new = f
        .keyring
        .rotate(&old.record.id, Some(TimeDelta::hours(1)))
        .await
        .unwrap();
    assert_ne!(new.record.id, old.record.id);
    assert_eq!(
        (
            new.record.owner.as_str(),
            new.record.attributes.scopes.clone(),
            new.record.attributes.metadata.clone()
        ),
        (
            "acct",
            vec!["a:b".parse::<Scope>().unwrap()],
            serde_json::json!({"team": 7})
        )
    );
    f.keyring
        .verify(old.key.expose_secret(), &ctx())
        .await
        .unwrap();
    f.keyring
        .verify(new.key.expose_secret(), &ctx())
        .await
        .unwrap();
    assert!(matches!(
        f.keyring.rotate(&old.record.id, None).await,
        Err(KeyringError::InvalidState(_))
    ));
    f.clock.advance(TimeDelta::hours(1));
    assert!(matches!(
        f.keyring.verify(old.key.expose_secret(), &ctx()).await,
        Err(VerifyError::Expired)
    ));
    f.keyring
        .verify(new.key.expose_secret(), &ctx())
        .await
        .unwrap();
    assert_eq!(
        f.keyring.get(&old.record.id).await.unwrap().successor,
        Some(new.record.id.clone())
    );
}

#[tokio::test]
async fn rotation_with_default_grace_of_a_day() {
    let f = fixture();
    let old = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    f.keyring.rotate(&old.record.id, None).await.unwrap();
    f.clock
        .advance(TimeDelta::hours(24) - TimeDelta::seconds(1));
    f.keyring
        .verify(old.key.expose_secret(), &ctx())
        .await
        .unwrap();
    f.clock.advance(TimeDelta::seconds(1));
    assert!(
        f.keyring
            .verify(old.key.expose_secret(), &ctx())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn disabled_keys_cannot_be_rotated_into_active_ones() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    f.keyring.disable(&issued.record.id).await.unwrap();
    let err = f.keyring.rotate(&issued.record.id, None).await.unwrap_err();
    assert!(matches!(err, KeyringError::InvalidState(_)), "{err:?}");
    assert_eq!(
        f.keyring
            .list_by_owner("a", &PageRequest::new(10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rotated_keys_grace_cannot_be_extended() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    f.keyring
        .rotate(&issued.record.id, Some(TimeDelta::hours(1)))
        .await
        .unwrap();
    for change in [
        KeyUpdate::new().expires_at(None),
        KeyUpdate::new().expires_at(Some(f.clock.now() + TimeDelta::days(9))),
    ] {
        assert!(matches!(
            f.keyring.update(&issued.record.id, change).await,
            Err(KeyringError::InvalidState(_))
        ));
    }
    f.keyring
        .update(
            &issued.record.id,
            KeyUpdate::new().expires_at(Some(f.clock.now() + TimeDelta::minutes(5))),
        )
        .await
        .unwrap();
    let err = f
        .keyring
        .update(
            &issued.record.id,
            KeyUpdate::new().not_before(Some(f.clock.now() + TimeDelta::hours(2))),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::InvalidRequest(_)));
}

#[tokio::test]
async fn extreme_durations_are_errors_not_panics() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    assert!(matches!(
        f.keyring
            .rotate(&issued.record.id, Some(TimeDelta::MAX))
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
    f.keyring
        .expiring_within(TimeDelta::MAX, &PageRequest::new(10))
        .await
        .unwrap();
    assert!(matches!(
        f.keyring
            .issue(IssueRequest::new("a", "n").expires_in(TimeDelta::MAX))
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
    let build = Keyring::builder(KeyFormat::new("a").unwrap(), MemoryStore::new())
        .rotation_grace(TimeDelta::MAX)
        .build();
    assert!(matches!(build, Err(KeyringError::Config(_))));
}

#[tokio::test]
async fn listings() {
    let f = fixture();
    for i in 0..3 {
        f.keyring
            .issue(IssueRequest::new("owner_x", format!("k{i}")).expires_in(TimeDelta::days(i + 1)))
            .await
            .unwrap();
    }
    f.keyring
        .issue(IssueRequest::new("owner_y", "other"))
        .await
        .unwrap();
    let page = f
        .keyring
        .list_by_owner("owner_x", &PageRequest::new(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    let soon = f
        .keyring
        .expiring_within(TimeDelta::hours(36), &PageRequest::new(10))
        .await
        .unwrap();
    assert_eq!(
        soon.items
            .iter()
            .map(|r| r.attributes.name.as_str())
            .collect::<Vec<_>>(),
        vec!["k0"]
    );
}

#[tokio::test]
async fn last_used_is_debounced_and_batched() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    for _ in 0..5 {
        f.keyring.verify(key, &ctx()).await.unwrap();
    }
    f.keyring.flush_last_used().await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(f.store.calls(StoreOp::RecordLastUsed), 1);
    let first = f.clock.now();
    assert_eq!(
        f.keyring.get(&issued.record.id).await.unwrap().last_used_at,
        Some(first)
    );

    f.clock.advance(TimeDelta::seconds(59));
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.keyring.flush_last_used().await.unwrap();
    assert_eq!(
        f.store.calls(StoreOp::RecordLastUsed),
        1,
        "within the debounce interval: no write"
    );

    f.clock.advance(TimeDelta::seconds(1));
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.keyring.flush_last_used().await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(f.store.calls(StoreOp::RecordLastUsed), 2);
    assert_eq!(
        f.keyring.get(&issued.record.id).await.unwrap().last_used_at,
        Some(f.clock.now())
    );
}

/// On shutdown `flush_last_used` must not return while a write the keyring started in the
/// background is still on its way.
#[tokio::test(flavor = "current_thread")]
async fn flush_last_used_waits_for_a_background_write_under_way() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    f.store.inject(StoreOp::RecordLastUsed, Fault::Pause);
    f.keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    f.store.wait_paused().await;
    let shutdown = {
        let keyring = f.keyring.clone();
        tokio::spawn(async move { keyring.flush_last_used().await })
    };
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
    assert!(
        !shutdown.is_finished(),
        "flush_last_used returned while the background write was under way"
    );
    f.store.release();
    shutdown.await.unwrap().unwrap();
    assert_eq!(
        f.store.calls(StoreOp::RecordLastUsed),
        1,
        "nothing left to write"
    );
}

/// A caller that stops waiting for `flush_last_used` (a shutdown deadline) loses nothing:
/// the batch goes back and the next flush writes it.
#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_last_used_flush_puts_its_batch_back() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    // The background write fails, leaving the use queued.
    f.store.inject(StoreOp::RecordLastUsed, Fault::Fail);
    f.keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
    assert_eq!(f.store.calls(StoreOp::RecordLastUsed), 1);

    f.store.inject(StoreOp::RecordLastUsed, Fault::Pause);
    let cancelled = {
        let keyring = f.keyring.clone();
        tokio::spawn(async move { keyring.flush_last_used().await })
    };
    f.store.wait_paused().await;
    cancelled.abort();
    assert!(cancelled.await.unwrap_err().is_cancelled());
    assert_eq!(f.store.calls(StoreOp::RecordLastUsed), 2);

    f.keyring.flush_last_used().await.unwrap();
    assert_eq!(
        f.store.calls(StoreOp::RecordLastUsed),
        3,
        "the cancelled flush's batch was put back and written again"
    );
}

#[tokio::test]
async fn a_rotation_whose_outcome_is_unknown_returns_the_successor_instead_of_losing_it() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(5))
        .await
        .unwrap();
    // The link lands but its reply is lost, and the read that would confirm it fails too.
    f.store.inject(StoreOp::Update, Fault::FailAfter);
    f.store.inject(StoreOp::Get, Fault::Pass); // the rotation's first read of the old key
    f.store.inject(StoreOp::Get, Fault::Fail); // the confirming read
    let err = f.keyring.rotate(&issued.record.id, None).await.unwrap_err();
    let KeyringError::RotationUnconfirmed(successor) = err else {
        panic!("expected RotationUnconfirmed, got {err:?}");
    };
    // The successor was not revoked: once the store answers, the rotation is confirmed
    // and its key works.
    assert!(
        f.keyring
            .confirm_rotation(&issued.record.id, &successor)
            .await
            .unwrap()
    );
    let verified = f
        .keyring
        .verify(successor.key.expose_secret(), &ctx())
        .await
        .unwrap();
    assert_eq!(verified.remaining_uses(), Some(4));
}

#[tokio::test]
async fn confirming_a_rotation_that_did_not_land_revokes_the_successor() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    // The link never lands, and the read that would tell fails.
    f.store.inject(StoreOp::Update, Fault::Fail);
    f.store.inject(StoreOp::Get, Fault::Pass);
    f.store.inject(StoreOp::Get, Fault::Fail);
    let KeyringError::RotationUnconfirmed(successor) =
        f.keyring.rotate(&issued.record.id, None).await.unwrap_err()
    else {
        panic!("expected RotationUnconfirmed");
    };
    assert!(
        !f.keyring
            .confirm_rotation(&issued.record.id, &successor)
            .await
            .unwrap()
    );
    assert!(matches!(
        f.keyring
            .verify(successor.key.expose_secret(), &ctx())
            .await,
        Err(VerifyError::Revoked)
    ));
    // The old key is untouched and can be rotated again.
    f.keyring.rotate(&issued.record.id, None).await.unwrap();
}

#[tokio::test]
async fn another_keyrings_keys_on_a_shared_store_are_not_this_keyrings_to_manage() {
    let store = MemoryStore::new();
    let test = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
        .hashes(crate::support::fast_hashes())
        .build()
        .unwrap();
    let live = Keyring::builder(KeyFormat::new("sk_live").unwrap(), store)
        .hashes(crate::support::fast_hashes())
        .build()
        .unwrap();
    let test_key = test
        .issue(IssueRequest::new("acct", "test key"))
        .await
        .unwrap();
    let id = &test_key.record.id;
    // Rotating it through the live keyring would have minted a live successor.
    assert!(matches!(
        live.rotate(id, None).await,
        Err(KeyringError::NotFound)
    ));
    assert!(matches!(
        live.revoke(id, "x").await,
        Err(KeyringError::NotFound)
    ));
    assert!(matches!(live.get(id).await, Err(KeyringError::NotFound)));
    assert!(matches!(
        live.update(id, KeyUpdate::new().name("x")).await,
        Err(KeyringError::NotFound)
    ));
    let listed = live
        .list_by_owner("acct", &PageRequest::new(10))
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    // The test keyring still manages it.
    test.rotate(id, None).await.unwrap();
}

/// The rotations recorded by the audit sink, as (old, new) pairs.
fn audited_rotations(f: &crate::support::Fixture) -> Vec<(keymint::KeyId, keymint::KeyId)> {
    f.audit
        .events()
        .into_iter()
        .filter_map(|e| match e {
            keymint::AuditEvent::Rotated { old, new, .. } => Some((old, new)),
            _ => None,
        })
        .collect()
}

/// Verifies `key` once, so this keyring's cache holds it, and waits for the last-used write
/// that the first use queues, so that it cannot race the faults a test plans next.
async fn warm(f: &crate::support::Fixture, key: &str) {
    f.keyring.verify(key, &ctx()).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while f.store.calls(StoreOp::RecordLastUsed) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first use is written");
}

#[tokio::test]
async fn a_rotation_confirmed_after_a_lost_reply_stops_the_cached_old_key_and_is_audited() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let old_key = issued.key.expose_secret();
    let id = issued.record.id.clone();
    warm(&f, old_key).await;

    // A leaked key rolled with no grace; the link lands but its reply is lost, and the
    // read-back confirms it.
    f.store.inject(StoreOp::Update, Fault::FailAfter);
    let successor = f
        .keyring
        .rotate(&id, Some(TimeDelta::zero()))
        .await
        .unwrap();

    assert!(
        f.bus.published().contains(&id),
        "the fleet must hear that the old record changed"
    );
    assert_eq!(
        audited_rotations(&f),
        vec![(id.clone(), successor.record.id.clone())]
    );
    f.clock.advance(TimeDelta::seconds(1));
    assert!(matches!(
        f.keyring.verify(old_key, &ctx()).await,
        Err(VerifyError::Expired)
    ));
}

#[tokio::test]
async fn a_rotation_settled_by_confirm_rotation_stops_the_cached_old_key_and_is_audited() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let old_key = issued.key.expose_secret();
    let id = issued.record.id.clone();
    warm(&f, old_key).await;

    f.store.inject(StoreOp::Update, Fault::FailAfter);
    f.store.inject(StoreOp::Get, Fault::Pass);
    f.store.inject(StoreOp::Get, Fault::Fail);
    let KeyringError::RotationUnconfirmed(successor) = f
        .keyring
        .rotate(&id, Some(TimeDelta::zero()))
        .await
        .unwrap_err()
    else {
        panic!("expected RotationUnconfirmed");
    };
    assert!(
        f.bus.published().contains(&id),
        "an unknown outcome drops the cached record too"
    );
    assert!(f.keyring.confirm_rotation(&id, &successor).await.unwrap());
    assert_eq!(
        audited_rotations(&f),
        vec![(id.clone(), successor.record.id.clone())]
    );
    f.clock.advance(TimeDelta::seconds(1));
    assert!(matches!(
        f.keyring.verify(old_key, &ctx()).await,
        Err(VerifyError::Expired)
    ));
}

/// A clock that moves a millisecond forward every time it is read.
#[derive(Debug, Clone, Default)]
struct TickingClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl keymint::Clock for TickingClock {
    fn now(&self) -> keymint::DateTime<keymint::Utc> {
        let ms = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        keymint::DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
    }
}

#[tokio::test]
async fn a_key_is_minted_on_one_clock_reading() {
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(crate::support::fast_hashes())
        .clock(TickingClock::default())
        .build()
        .unwrap();
    let issued = keyring
        .issue(IssueRequest::new("a", "n").expires_in(TimeDelta::hours(1)))
        .await
        .unwrap();
    let record = &issued.record;
    assert_eq!(
        record.attributes.expires_at,
        Some(record.created_at + TimeDelta::hours(1)),
        "expiry and creation come from the same reading"
    );
    let successor = keyring
        .rotate(&record.id, Some(TimeDelta::minutes(5)))
        .await
        .unwrap();
    let old = keyring.get(&record.id).await.unwrap();
    assert_eq!(
        old.attributes.expires_at,
        Some(successor.record.created_at + TimeDelta::minutes(5)),
        "the grace period starts when the successor is created"
    );
}

#[tokio::test]
async fn a_key_ended_before_it_began_by_a_rotation_can_still_be_updated() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "later").not_before(f.clock.now() + TimeDelta::days(2)))
        .await
        .unwrap();
    // A one-hour grace ends the old key long before its start.
    f.keyring
        .rotate(&issued.record.id, Some(TimeDelta::hours(1)))
        .await
        .unwrap();
    let renamed = f
        .keyring
        .update(&issued.record.id, KeyUpdate::new().name("old, never valid"))
        .await
        .unwrap();
    assert_eq!(renamed.attributes.name, "old, never valid");
    // A change to its window is still checked.
    assert!(matches!(
        f.keyring
            .update(
                &issued.record.id,
                KeyUpdate::new().not_before(Some(f.clock.now() + TimeDelta::days(3)))
            )
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
}
