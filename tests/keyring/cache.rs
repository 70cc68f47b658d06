//! The verified-key cache: what it serves, for how long, how much it holds, and how it is
//! configured.

use keymint::testing::StoreOp;
use keymint::{
    Clock as _, IssueRequest, KeyFormat, Keyring, KeyringError, MemoryStore, TimeDelta, VerifyError,
};

use crate::support::{ctx, fixture, fixture_with};

#[tokio::test]
async fn issued_key_verifies_and_repeat_verifications_hit_the_cache() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("acct_1", "ci"))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let verified = f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(verified.id(), &issued.record.id);
    assert_eq!(verified.owner(), "acct_1");
    assert_eq!(f.store.calls(StoreOp::Get), 1);
    for _ in 0..5 {
        f.keyring.verify(key, &ctx()).await.unwrap();
    }
    assert_eq!(
        f.store.calls(StoreOp::Get),
        1,
        "repeat verifications must be served by the cache"
    );
}

#[tokio::test]
async fn expires_after_its_ttl() {
    let f = fixture_with(|b| b.cache(TimeDelta::seconds(30), 100));
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.clock.advance(TimeDelta::seconds(29));
    f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(f.store.calls(StoreOp::Get), 1);
    f.clock.advance(TimeDelta::seconds(1));
    f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(
        f.store.calls(StoreOp::Get),
        2,
        "an entry older than the TTL must not be served"
    );
}

#[tokio::test]
async fn stays_within_capacity() {
    let f = fixture_with(|b| b.cache(TimeDelta::seconds(30), 2));
    let mut keys = Vec::new();
    for i in 0..4 {
        keys.push(
            f.keyring
                .issue(IssueRequest::new("a", format!("k{i}")))
                .await
                .unwrap(),
        );
    }
    for k in &keys {
        f.keyring
            .verify(k.key.expose_secret(), &ctx())
            .await
            .unwrap();
    }
    // How many keys the cache holds, seen from outside: with the store down only a cached
    // key still verifies, and a refused one is not cached.
    f.store.set_down(true);
    let mut cached = 0;
    for k in &keys {
        match f.keyring.verify(k.key.expose_secret(), &ctx()).await {
            Ok(_) => cached += 1,
            Err(e) => assert!(matches!(e, VerifyError::StoreUnavailable(_)), "{e:?}"),
        }
    }
    assert_eq!(cached, 2);
}

#[tokio::test]
async fn expiry_and_not_before_follow_the_clock_on_every_hit() {
    let f = fixture();
    let start = f.clock.now();
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("a", "n")
                .not_before(start + TimeDelta::seconds(10))
                .expires_in(TimeDelta::seconds(20)),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::NotYetValid)
    ));
    f.clock.advance(TimeDelta::seconds(10));
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.clock.advance(TimeDelta::milliseconds(9_999));
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.clock.advance(TimeDelta::milliseconds(1));
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::Expired)
    ));
    assert_eq!(
        f.store.calls(StoreOp::Get),
        1,
        "one store read: every later verdict, expiry included, came from the cache"
    );
}

#[tokio::test]
async fn builder_rejects_bad_configuration() {
    let mk = || Keyring::builder(KeyFormat::new("a").unwrap(), MemoryStore::new());
    assert!(matches!(
        mk().cache(TimeDelta::zero(), 10).build(),
        Err(KeyringError::Config(_))
    ));
    assert!(matches!(
        mk().cache(TimeDelta::hours(1), 10).build(),
        Err(KeyringError::Config(_))
    ));
    assert!(matches!(
        mk().cache(TimeDelta::seconds(1), 0).build(),
        Err(KeyringError::Config(_))
    ));
    assert!(matches!(
        mk().rotation_grace(TimeDelta::seconds(-1)).build(),
        Err(KeyringError::Config(_))
    ));
    assert!(mk().without_cache().build().is_ok());
}
