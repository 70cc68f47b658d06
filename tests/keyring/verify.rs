//! The verification pipeline: what is refused, how, and what it costs.

use std::sync::{Arc, Mutex};

use keymint::testing::StoreOp;
use keymint::{
    FailureReason, IssueRequest, KeyFormat, KeyStore, Keyring, KeyringError, ManualClock,
    MemoryStore, PhcHash, Requirement, Roles, Scope, VerifyContext, VerifyError,
};
use tracing::{Level, Metadata, Subscriber};

use crate::support::{
    Recorder, ctx, fast_hashes, fixture, fixture_with, with_prefix, wrong_secret,
};

#[tokio::test]
async fn a_key_moved_to_another_prefix_is_refused_like_a_wrong_secret() {
    // Two keyrings on one store, as on one shared database table.
    let store = MemoryStore::new();
    let clock = ManualClock::default();
    let test = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
        .hashes(fast_hashes())
        .clock(clock.clone())
        .build()
        .unwrap();
    let audit = Recorder::default();
    let live = Keyring::builder(KeyFormat::new("sk_live").unwrap(), store.clone())
        .hashes(fast_hashes())
        .clock(clock.clone())
        .audit(audit.clone())
        .build()
        .unwrap();
    let issued = test
        .issue(IssueRequest::new("acct", "test key"))
        .await
        .unwrap();
    test.verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();

    // The checksum is public, so anyone can move a test key to the live prefix.
    let moved = with_prefix(issued.key.expose_secret(), "sk_live");
    assert!(
        live.format().parse(&moved).is_ok(),
        "the moved key is well-formed"
    );
    for _ in 0..2 {
        // Twice: a refused key is never cached, so the second try takes the same path.
        let err = live.verify(&moved, &ctx()).await.unwrap_err();
        assert!(matches!(err, VerifyError::Invalid), "{err:?}");
        assert_eq!(err.status_code(), 401);
    }
    let wrong = with_prefix(&wrong_secret(issued.key.expose_secret()), "sk_live");
    let err = live.verify(&wrong, &ctx()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        VerifyError::Invalid.to_string(),
        "a moved key reads exactly like a wrong secret to the caller"
    );
    assert_eq!(
        audit.failures(),
        [
            FailureReason::WrongPrefix,
            FailureReason::WrongPrefix,
            FailureReason::WrongSecret
        ],
        "the audit sink keeps the precise reason"
    );
    // The original still works where it belongs.
    test.verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cached_id_with_another_secret_or_prefix_never_hits_the_cache() {
    // One keyring whose prefix the attacker cannot change: a key of another prefix is
    // refused before the cache (it does not parse for this keyring). The cache must also
    // never answer for a presented key whose digest differs from the cached one, which
    // covers every re-prefixed key.
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    f.keyring.verify(key, &ctx()).await.unwrap();
    let reads = f.store.calls(StoreOp::Get);
    f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(
        f.store.calls(StoreOp::Get),
        reads,
        "the second verification is a hit"
    );
    let moved = with_prefix(key, "sk_live");
    assert!(matches!(
        f.keyring.verify(&moved, &ctx()).await,
        Err(VerifyError::UnknownPrefix)
    ));
    let altered = wrong_secret(key);
    assert!(matches!(
        f.keyring.verify(&altered, &ctx()).await,
        Err(VerifyError::Invalid)
    ));
    assert_eq!(
        f.store.calls(StoreOp::Get),
        reads + 1,
        "a cached id with another secret misses the cache and reads the store"
    );
}

/// Records the level of every event, whatever its target.
#[derive(Clone, Default)]
struct Levels(Arc<Mutex<Vec<Level>>>);

impl Subscriber for Levels {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        self.0.lock().unwrap().push(*event.metadata().level());
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn a_flood_of_forged_keys_logs_nothing_above_debug() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let levels = Levels::default();
    let _guard = crate::listening::listen(levels.clone());
    for _ in 0..50 {
        let forged = f.keyring.format().generate().unwrap();
        let _ = f.keyring.verify(forged.expose_secret(), &ctx()).await;
        let _ = f
            .keyring
            .verify(&wrong_secret(issued.key.expose_secret()), &ctx())
            .await;
        let _ = f.keyring.verify("sk_test_garbage", &ctx()).await;
    }
    let levels = levels.0.lock().unwrap();
    assert!(!levels.is_empty(), "the refusals are logged at debug");
    assert_eq!(
        f.audit.failures().len(),
        150,
        "the audit sink still sees every refusal"
    );
    assert!(
        levels.iter().all(|l| *l == Level::DEBUG),
        "unauthenticated refusals must stay at debug: {levels:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn store_failures_warn_once_per_interval_not_once_per_request() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let levels = Levels::default();
    let _guard = crate::listening::listen(levels.clone());
    f.store.set_down(true);
    for _ in 0..100 {
        let err = f
            .keyring
            .verify(&wrong_secret(issued.key.expose_secret()), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::StoreUnavailable(_)), "{err:?}");
    }
    let warnings = levels
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| **l == Level::WARN)
        .count();
    assert_eq!(warnings, 1, "one warning for the burst, the rest counted");
}

/// Hosts run verifications inside spawned tasks (every axum handler is one), so the futures
/// must be `Send`, also when the context is a temporary; rustc loses that proof easily
/// (a `dyn` clock behind a generic parameter once did it), so it is pinned here.
#[tokio::test]
async fn verify_and_management_futures_can_be_spawned() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret().to_owned();
    let keyring = f.keyring.clone();
    let id = issued.record.id.clone();
    tokio::spawn(async move {
        keyring
            .verify(&key, &keymint::VerifyContext::new())
            .await
            .unwrap();
        let needs = keymint::Requirement::parse("a").unwrap();
        let _ = keyring
            .verify(&key, &keymint::VerifyContext::new().require(&needs))
            .await;
        keyring.rotate(&id, None).await.unwrap();
    })
    .await
    .unwrap();
    let default = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(fast_hashes())
        .build()
        .unwrap();
    tokio::spawn(async move {
        default
            .verify("x", &keymint::VerifyContext::new())
            .await
            .is_err()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn wrong_secret_and_unknown_id_are_the_same_error_to_callers() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    f.keyring.verify(key, &ctx()).await.unwrap(); // cached now: a wrong secret must still miss

    let wrong = wrong_secret(key);
    assert!(f.keyring.format().parse(&wrong).is_ok());
    let e1 = f.keyring.verify(&wrong, &ctx()).await.unwrap_err();
    let unknown = f.keyring.format().generate().unwrap();
    let e2 = f
        .keyring
        .verify(unknown.expose_secret(), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(e1, VerifyError::Invalid) && matches!(e2, VerifyError::Invalid));
    assert_eq!(e1.to_string(), e2.to_string());
    assert_eq!(e1.status_code(), 401);
    assert_eq!(
        f.audit.failures(),
        vec![FailureReason::WrongSecret, FailureReason::NotFound]
    );
}

#[tokio::test]
async fn garbage_never_reaches_the_store() {
    let f = fixture();
    let other_prefix = KeyFormat::new("pk_test").unwrap().generate().unwrap();
    let cases = [
        "",
        "hello",
        "sk_test_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB000000",
        other_prefix.expose_secret(),
    ];
    for presented in cases {
        let err = f.keyring.verify(presented, &ctx()).await.unwrap_err();
        assert_eq!(err.status_code(), 401);
    }
    assert!(matches!(
        f.keyring.verify(other_prefix.expose_secret(), &ctx()).await,
        Err(VerifyError::UnknownPrefix)
    ));
    assert_eq!(f.store.calls(StoreOp::Get), 0);
}

#[tokio::test]
async fn client_address_allowlist() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").allowed_networks([
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let from = |ip: &str| VerifyContext::new().client_ip(ip.parse().unwrap());
    f.keyring.verify(key, &from("10.1.2.3")).await.unwrap();
    f.keyring.verify(key, &from("2001:db8::5")).await.unwrap();
    let denied = f
        .keyring
        .verify(key, &from("192.168.1.1"))
        .await
        .unwrap_err();
    assert!(matches!(denied, VerifyError::ClientNotAllowed));
    assert_eq!(denied.status_code(), 403);
    assert!(
        matches!(
            f.keyring.verify(key, &ctx()).await,
            Err(VerifyError::ClientNotAllowed)
        ),
        "unknown client address must fail closed"
    );
}

#[tokio::test]
async fn store_failure_fails_closed() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    f.store.set_down(true);
    let err = f
        .keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::StoreUnavailable(_)));
    assert_eq!(err.status_code(), 503);
    assert!(matches!(
        f.keyring.issue(IssueRequest::new("a", "n")).await,
        Err(KeyringError::Store(_))
    ));
}

#[tokio::test]
async fn corrupt_stored_hash_fails_closed() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let mut record = issued.record.clone();
    record.hash =
        PhcHash::new("$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
            .unwrap();
    f.store.inner().update(&record).await.unwrap();
    let err = f
        .keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Internal(_)));
}

#[tokio::test]
async fn nothing_printable_contains_the_secret() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let secret = issued.key.parsed().expose_secret().to_owned();
    let verified = f
        .keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    let wrong = wrong_secret(issued.key.expose_secret());
    let err = f.keyring.verify(&wrong, &ctx()).await.unwrap_err();
    let shown = [
        format!("{issued:?}"),
        format!("{verified:?}"),
        format!("{err} {err:?}"),
        format!("{:?}", f.keyring),
        format!("{:?}", f.audit.events()),
        serde_json::to_string(&issued.record).unwrap(),
    ];
    for s in shown {
        assert!(!s.contains(&secret), "{s}");
    }
}

#[tokio::test]
async fn scopes_and_roles_are_enforced_after_authentication() {
    let roles = Roles::new()
        .with_role("billing_admin", ["billing:*".parse::<Scope>().unwrap()])
        .unwrap();
    let f = fixture_with(|b| b.roles(roles));
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("a", "n")
                .scopes(["users:read"])
                .roles(["billing_admin"])
                .remaining_uses(5),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();

    let ok: Requirement = "users:read and billing:refunds:write".parse().unwrap();
    let verified = f
        .keyring
        .verify(key, &VerifyContext::new().require(&ok))
        .await
        .unwrap();
    assert!(
        verified
            .scopes()
            .covers(&"billing:invoices:read".parse().unwrap())
    );
    assert_eq!(verified.remaining_uses(), Some(4));

    let needs_admin: Requirement = "users:read and admin:*".parse().unwrap();
    let err = f
        .keyring
        .verify(key, &VerifyContext::new().require(&needs_admin))
        .await
        .unwrap_err();
    match &err {
        VerifyError::InsufficientScope(missing) => {
            assert_eq!(missing.missing(), &["admin:*".parse::<Scope>().unwrap()]);
        }
        other => panic!("expected insufficient scope, got {other:?}"),
    }
    assert_eq!(err.status_code(), 403);
    assert_eq!(
        f.keyring
            .get(&issued.record.id)
            .await
            .unwrap()
            .remaining_uses,
        Some(4),
        "a request denied for scope must not spend a use"
    );
}
