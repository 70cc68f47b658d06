//! Changes that land while a verification or a rotation is in flight: the later change
//! wins, and nothing cached or written by the earlier operation undoes it.

use keymint::testing::{Fault, StoreOp};
use keymint::{IssueRequest, KeyStatus, KeyringError, PageRequest, VerifyContext, VerifyError};

use crate::support::{ctx, fixture};

#[tokio::test]
async fn a_revocation_during_a_verification_is_not_undone_by_the_cache() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret().to_owned();

    f.store.inject(StoreOp::Get, Fault::Pause);
    let racing = {
        let keyring = f.keyring.clone();
        let key = key.clone();
        tokio::spawn(async move {
            keyring
                .verify(&key, &VerifyContext::new())
                .await
                .map(|_| ())
        })
    };
    f.store.wait_paused().await; // the verification holds the pre-revocation record
    f.keyring.revoke(&issued.record.id, "leaked").await.unwrap();
    f.store.release();
    // The in-flight verification may succeed (it began before the revocation)...
    let _ = racing.await.unwrap();
    // ...but nothing it cached may outlive the revocation.
    assert!(matches!(
        f.keyring.verify(&key, &ctx()).await,
        Err(VerifyError::Revoked)
    ));
}

#[tokio::test]
async fn a_revocation_during_rotation_wins() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();

    f.store.inject(StoreOp::Insert, Fault::Pause);
    let rotation = {
        let keyring = f.keyring.clone();
        let id = issued.record.id.clone();
        tokio::spawn(async move { keyring.rotate(&id, None).await.map(|k| k.record.id) })
    };
    f.store.wait_paused().await; // the successor is stored, not yet linked
    f.keyring.revoke(&issued.record.id, "leaked").await.unwrap();
    f.store.release();
    let err = rotation.await.unwrap().unwrap_err();
    assert!(matches!(err, KeyringError::InvalidState(_)), "{err:?}");
    let page = f
        .keyring
        .list_by_owner("a", &PageRequest::new(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    for record in page.items {
        assert_eq!(
            record.status,
            KeyStatus::Revoked,
            "no key may survive: {record:?}"
        );
    }
}

#[tokio::test]
async fn a_full_flush_during_a_verification_is_not_undone_by_the_cache() {
    use keymint::KeyStore as _;
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret().to_owned();

    f.store.inject(StoreOp::Get, Fault::Pause);
    let racing = {
        let keyring = f.keyring.clone();
        let key = key.clone();
        tokio::spawn(async move {
            keyring
                .verify(&key, &VerifyContext::new())
                .await
                .map(|_| ())
        })
    };
    f.store.wait_paused().await; // the verification holds the pre-revocation record
    // Another process revokes the key (straight in the store: nothing here is told), and a
    // reconnecting invalidation listener flushes the whole cache.
    let inner = f.store.inner();
    let mut record = inner.get(&issued.record.id).await.unwrap().unwrap();
    record.status = KeyStatus::Revoked;
    inner.update(&record).await.unwrap();
    f.keyring.invalidate_all_cached();
    f.store.release();
    let _ = racing.await.unwrap();
    // What the in-flight verification read before the flush must not have been cached.
    assert!(matches!(
        f.keyring.verify(&key, &ctx()).await,
        Err(VerifyError::Revoked)
    ));
}

#[tokio::test]
async fn a_full_flush_drops_every_cached_key() {
    use keymint::KeyStore as _;
    let f = fixture();
    let mut keys = Vec::new();
    for i in 0..3 {
        let issued = f
            .keyring
            .issue(IssueRequest::new("a", format!("k{i}")))
            .await
            .unwrap();
        f.keyring
            .verify(issued.key.expose_secret(), &ctx())
            .await
            .unwrap();
        keys.push(issued);
    }
    let reads = f.store.calls(StoreOp::Get);
    for issued in &keys {
        f.keyring
            .verify(issued.key.expose_secret(), &ctx())
            .await
            .unwrap();
    }
    assert_eq!(f.store.calls(StoreOp::Get), reads, "all three cached");
    // Revoked behind the keyring's back: the cache keeps serving them until the flush.
    for issued in &keys {
        let inner = f.store.inner();
        let mut record = inner.get(&issued.record.id).await.unwrap().unwrap();
        record.status = KeyStatus::Revoked;
        inner.update(&record).await.unwrap();
        f.keyring
            .verify(issued.key.expose_secret(), &ctx())
            .await
            .unwrap();
    }
    f.keyring.invalidate_all_cached();
    for issued in &keys {
        assert!(matches!(
            f.keyring.verify(issued.key.expose_secret(), &ctx()).await,
            Err(VerifyError::Revoked)
        ));
    }
}

/// During an outage, verifications queued for the uncached path fail closed as soon as one
/// ahead of them failed, instead of each waiting out a store timeout of its own in turn.
// One thread: the queued verifications provably reach the queue before the outage starts
// (on several workers a late one would find the store down by itself and be counted).
#[tokio::test(flavor = "current_thread")]
async fn verifications_queued_behind_a_store_failure_fail_at_once() {
    let f = crate::support::fixture_with(|b| b.without_cache().uncached_concurrency(1, 16));
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret().to_owned();
    f.store.inject(StoreOp::Get, Fault::Pause);
    let first = {
        let (keyring, key) = (f.keyring.clone(), key.clone());
        tokio::spawn(async move { keyring.verify(&key, &ctx()).await })
    };
    f.store.wait_paused().await;
    // Five more queue behind the paused lookup; then the store goes down.
    let queued: Vec<_> = (0..5)
        .map(|_| {
            let (keyring, key) = (f.keyring.clone(), key.clone());
            tokio::spawn(async move { keyring.verify(&key, &ctx()).await })
        })
        .collect();
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
    f.store.set_down(true);
    f.store.release();
    assert!(
        first.await.unwrap().is_ok(),
        "its lookup had answered before the outage"
    );
    for waiting in queued {
        assert!(matches!(
            waiting.await.unwrap(),
            Err(VerifyError::StoreUnavailable(_))
        ));
    }
    // The first, and one queued lookup that found the store down: not one per verification.
    assert_eq!(f.store.calls(StoreOp::Get), 2);

    // Back up: a new verification tries the store again.
    f.store.set_down(false);
    f.keyring.verify(&key, &ctx()).await.unwrap();
}
