//! Uses left (credits): spent by weight, reported by peeks, shared across a rotation.

use keymint::{IssueRequest, KeyFormat, Keyring, VerifyContext, VerifyError};

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
    assert!(matches!(err, VerifyError::UsageExhausted), "{err:?}");
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
                Err(VerifyError::UsageExhausted)
            ));
        }
    }
}
