//! Derived tokens: attenuation, expiry on a manual clock, tampering and signing keys,
//! the parent's revocation, disabling and rotation and how soon its tokens stop, and a
//! parent's rate limits shared with its tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use keymint::ratelimit::{MemoryLimiter, Policy, Quota};
use keymint::token::{TokenRequest, TokenSigningKey, Tokens};
use keymint::{
    Argon2idHasher, AuditEvent, AuditSink, CacheInvalidation, Environment, HashPolicy,
    IssueRequest, KeyId, KeyType, KeyTypes, Keyring, KeyringError, ManualClock, MemoryStore,
    Requirement, TimeDelta, VerifiedKey, VerifyContext, VerifyError,
};

type TestKeyring = Keyring<MemoryStore, MemoryLimiter<ManualClock>>;

fn fast() -> HashPolicy {
    HashPolicy::new(
        Argon2idHasher::builder()
            .m_cost(64)
            .t_cost(1)
            .build()
            .unwrap(),
    )
}

fn types() -> KeyTypes {
    KeyTypes::new(KeyType::secret("sk_live", Environment::live()).unwrap())
        .with(KeyType::secret("sk_test", Environment::test()).unwrap())
        .with(
            KeyType::publishable("pk_live", Environment::live())
                .unwrap()
                .allow_any_origin(true),
        )
}

#[derive(Debug, Default, Clone)]
struct Audit(Arc<Mutex<Vec<AuditEvent>>>);

impl AuditSink for Audit {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

/// A keyring on `store` with `tokens`, a manual clock, and a "three an hour" default policy.
fn keyring_on(
    store: MemoryStore,
    clock: &ManualClock,
    tokens: Tokens,
    audit: &Audit,
) -> TestKeyring {
    Keyring::builder(types(), store)
        .hashes(fast())
        .clock(clock.clone())
        .rate_limiter(MemoryLimiter::with_clock(clock.clone()))
        .policy(Policy::single("three", Quota::per_hour(NonZeroU32::new(3).unwrap())).unwrap())
        .policy(Policy::single("many", Quota::per_hour(NonZeroU32::new(1000).unwrap())).unwrap())
        .default_policy("many")
        .tokens(tokens)
        .audit(audit.clone())
        .build()
        .unwrap()
}

struct Fixture {
    keyring: TestKeyring,
    store: MemoryStore,
    clock: ManualClock,
    signer: TokenSigningKey,
    audit: Audit,
}

fn fixture() -> Fixture {
    let signer = TokenSigningKey::generate("k1").unwrap();
    let store = MemoryStore::new();
    let clock = ManualClock::default();
    let audit = Audit::default();
    let keyring = keyring_on(store.clone(), &clock, Tokens::new(signer.clone()), &audit);
    Fixture {
        keyring,
        store,
        clock,
        signer,
        audit,
    }
}

impl Fixture {
    async fn parent(&self, request: IssueRequest) -> (String, VerifiedKey) {
        let issued = self.keyring.issue(request).await.unwrap();
        let key = issued.key.expose_secret().to_owned();
        let verified = self
            .keyring
            .verify(&key, &VerifyContext::new())
            .await
            .unwrap();
        (key, verified)
    }

    async fn token(&self, parent: &VerifiedKey, request: TokenRequest) -> String {
        self.keyring
            .derive_token(parent, request)
            .await
            .unwrap()
            .token
            .expose_secret()
            .to_owned()
    }

    async fn verify(&self, token: &str) -> Result<VerifiedKey, VerifyError> {
        self.keyring.verify(token, &VerifyContext::new()).await
    }
}

fn rw() -> IssueRequest {
    IssueRequest::new("acct", "backend").scopes(["users:read", "users:write", "billing:read"])
}

#[tokio::test]
async fn a_token_may_do_at_most_what_it_was_given_and_its_parent_holds() {
    let f = fixture();
    let (_, parent) = f.parent(rw()).await;
    let token = f
        .token(&parent, TokenRequest::new().scopes(["users:read"]))
        .await;
    let verified = f.verify(&token).await.unwrap();
    assert_eq!(verified.id(), parent.id(), "the token acts for its parent");
    assert_eq!(verified.owner(), "acct");
    let claims = verified.token().expect("presented as a token");
    assert_eq!(claims.parent(), parent.id());
    assert_eq!(claims.scopes().len(), 1);

    let read: Requirement = "users:read".parse().unwrap();
    let write: Requirement = "users:write".parse().unwrap();
    f.keyring
        .verify(&token, &VerifyContext::new().require(&read))
        .await
        .unwrap();
    let err = f
        .keyring
        .verify(&token, &VerifyContext::new().require(&write))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::InsufficientScope(_)), "{err:?}");
    assert_eq!(err.status_code(), 403);

    // Never more than the parent: a scope it lacks, or a wildcard wider than its grant.
    for wider in [vec!["admin:keys"], vec!["users:*"], vec!["users:read", "*"]] {
        let err = f
            .keyring
            .derive_token(&parent, TokenRequest::new().scopes(wider.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, KeyringError::InvalidRequest(_)),
            "{wider:?}: {err:?}"
        );
    }
    // By default, all of the parent's.
    let all = f.token(&parent, TokenRequest::new()).await;
    assert_eq!(f.verify(&all).await.unwrap().scopes().len(), 3);

    // The parent loses a scope later: its tokens lose it too.
    f.keyring
        .update(
            parent.id(),
            keymint::KeyUpdate::new().scopes(["users:write", "billing:read"]),
        )
        .await
        .unwrap();
    let err = f
        .keyring
        .verify(&token, &VerifyContext::new().require(&read))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::InsufficientScope(_)), "{err:?}");
}

#[tokio::test]
async fn tokens_expire_on_time_and_never_outlive_their_parent() {
    let f = fixture();
    let (_, parent) = f.parent(rw()).await;
    let token = f.token(&parent, TokenRequest::new()).await;
    let claims = f.verify(&token).await.unwrap().token().unwrap().clone();
    assert_eq!(
        claims.expires_at() - claims.issued_at(),
        TimeDelta::minutes(15),
        "the default lifetime"
    );
    f.clock
        .advance(TimeDelta::minutes(15) - TimeDelta::seconds(1));
    f.verify(&token).await.unwrap();
    f.clock.advance(TimeDelta::seconds(1));
    assert!(matches!(f.verify(&token).await, Err(VerifyError::Expired)));

    // Capped by the parent's own expiry.
    let (_, short) = f
        .parent(IssueRequest::new("acct", "short").expires_in(TimeDelta::minutes(2)))
        .await;
    let derived = f
        .keyring
        .derive_token(&short, TokenRequest::new().ttl_secs(600))
        .await
        .unwrap();
    assert_eq!(
        derived.claims.expires_at(),
        short.record().attributes.expires_at.unwrap()
    );
    // Lifetimes outside 1 s ..= max_ttl are refused.
    for ttl in [
        TimeDelta::zero(),
        TimeDelta::hours(1) + TimeDelta::seconds(1),
    ] {
        assert!(matches!(
            f.keyring
                .derive_token(&parent, TokenRequest::new().ttl(ttl))
                .await,
            Err(KeyringError::InvalidRequest(_))
        ));
    }
}

#[tokio::test]
async fn a_tampered_token_or_a_foreign_signing_key_is_invalid() {
    let f = fixture();
    let (_, parent) = f.parent(rw()).await;
    let token = f
        .token(&parent, TokenRequest::new().scopes(["users:read"]))
        .await;

    // Flip one character of the payload, of the signature, of the footer.
    let body_start = "v4.public.".len();
    for at in [
        body_start + 5,
        token.rfind('.').unwrap() - 3,
        token.len() - 2,
    ] {
        let mut bytes = token.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(
            matches!(f.verify(&tampered).await, Err(VerifyError::Invalid)),
            "tampered at {at}"
        );
    }
    // Signed by a key this keyring does not accept (another issuer, same key id).
    let other = Fixture {
        keyring: keyring_on(
            f.store.clone(),
            &f.clock,
            Tokens::new(TokenSigningKey::generate("k1").unwrap()),
            &Audit::default(),
        ),
        ..fixture()
    };
    let foreign = other.token(&parent, TokenRequest::new()).await;
    assert!(matches!(
        f.verify(&foreign).await,
        Err(VerifyError::Invalid)
    ));
    // Garbage with the token header, and an over-long one, are refused before any work.
    for junk in [
        "v4.public.",
        "v4.public.AAAA",
        &format!("v4.public.{}", "A".repeat(5000)),
    ] {
        assert!(
            matches!(f.verify(junk).await, Err(VerifyError::Invalid)),
            "{junk:.20}"
        );
    }
    let failures = f
        .audit
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(e, AuditEvent::VerificationFailed { reason, .. }
                if *reason == keymint::FailureReason::InvalidToken)
        })
        .count();
    assert!(
        failures >= 7,
        "each refusal is audited precisely: {failures}"
    );
}

#[tokio::test]
async fn signing_keys_rotate_with_the_old_key_accepted_until_it_is_dropped() {
    let f = fixture();
    let (_, parent) = f.parent(rw()).await;
    let old_token = f.token(&parent, TokenRequest::new()).await;

    let new_signer = TokenSigningKey::generate("k2").unwrap();
    let rotated = keyring_on(
        f.store.clone(),
        &f.clock,
        Tokens::new(new_signer.clone()).accept(f.signer.verifying_key()),
        &Audit::default(),
    );
    let ctx = VerifyContext::new();
    rotated.verify(&old_token, &ctx).await.unwrap();
    let new_token = rotated
        .derive_token(&parent, TokenRequest::new())
        .await
        .unwrap();
    assert!(new_token.token.expose_secret().len() > 100);
    rotated
        .verify(new_token.token.expose_secret(), &ctx)
        .await
        .unwrap();

    // The old key dropped: its tokens are no longer believed.
    let retired = keyring_on(
        f.store.clone(),
        &f.clock,
        Tokens::new(new_signer),
        &Audit::default(),
    );
    assert!(matches!(
        retired.verify(&old_token, &ctx).await,
        Err(VerifyError::Invalid)
    ));
    // Keys survive a restart through their PASERK form.
    let restored = TokenSigningKey::from_paserk("k1", &f.signer.to_paserk()).unwrap();
    let restarted = keyring_on(
        f.store.clone(),
        &f.clock,
        Tokens::new(restored),
        &Audit::default(),
    );
    restarted.verify(&old_token, &ctx).await.unwrap();
}

#[tokio::test]
async fn revoking_disabling_or_rotating_the_parent_stops_its_tokens_at_once() {
    let f = fixture();
    for change in ["revoke", "disable", "rotate"] {
        let (key, parent) = f.parent(rw()).await;
        let token = f.token(&parent, TokenRequest::new()).await;
        f.verify(&token).await.unwrap(); // the parent is now cached for tokens
        let expected = match change {
            "revoke" => {
                f.keyring.revoke(parent.id(), "test").await.unwrap();
                "revoked"
            }
            "disable" => {
                f.keyring.disable(parent.id()).await.unwrap();
                "disabled"
            }
            _ => {
                f.keyring.rotate(parent.id(), None).await.unwrap();
                "expired"
            }
        };
        let err = f.verify(&token).await.unwrap_err();
        assert_eq!(err.code(), expected, "{change}");
        if change == "rotate" {
            // The old key keeps its grace period; only its tokens stop.
            f.keyring.verify(&key, &VerifyContext::new()).await.unwrap();
        }
    }
}

/// Delivers one keyring's changes to another, as a fleet channel would.
#[derive(Debug, Clone, Default)]
struct Bus(Arc<Mutex<Option<TestKeyring>>>);

impl CacheInvalidation for Bus {
    fn publish(&self, id: &KeyId) {
        if let Some(other) = &*self.0.lock().unwrap() {
            other.invalidate_cached(id);
        }
    }
}

#[tokio::test]
async fn another_process_stops_the_token_within_the_parent_check_interval_or_at_once_with_a_channel()
 {
    let f = fixture();
    let (_, parent) = f.parent(rw()).await;
    let token = f.token(&parent, TokenRequest::new()).await;

    // Another process (its own caches, the same store and signing key).
    let other = keyring_on(
        f.store.clone(),
        &f.clock,
        Tokens::new(f.signer.clone()),
        &Audit::default(),
    );
    let ctx = VerifyContext::new();
    other.verify(&token, &ctx).await.unwrap();
    f.keyring.revoke(parent.id(), "leaked").await.unwrap();
    // Without a channel, `other` trusts what it read for the parent check interval...
    other.verify(&token, &ctx).await.unwrap();
    f.clock
        .advance(Tokens::DEFAULT_PARENT_CHECK_INTERVAL - TimeDelta::seconds(1));
    other.verify(&token, &ctx).await.unwrap();
    // ...and not a moment longer.
    f.clock.advance(TimeDelta::seconds(1));
    assert!(matches!(
        other.verify(&token, &ctx).await,
        Err(VerifyError::Revoked)
    ));

    // With a channel, at once.
    let bus = Bus::default();
    let publisher = Keyring::builder(types(), f.store.clone())
        .hashes(fast())
        .clock(f.clock.clone())
        .tokens(Tokens::new(f.signer.clone()))
        .invalidation(bus.clone())
        .build()
        .unwrap();
    let listener = keyring_on(
        f.store.clone(),
        &f.clock,
        Tokens::new(f.signer.clone()),
        &Audit::default(),
    );
    *bus.0.lock().unwrap() = Some(listener.clone());
    let (_, second) = f.parent(rw()).await;
    let token = f.token(&second, TokenRequest::new()).await;
    listener.verify(&token, &ctx).await.unwrap();
    publisher.revoke(second.id(), "leaked").await.unwrap();
    assert!(matches!(
        listener.verify(&token, &ctx).await,
        Err(VerifyError::Revoked)
    ));
}

#[tokio::test]
async fn a_token_draws_on_its_parents_rate_limit() {
    let f = fixture();
    let (key, parent) = f.parent(rw().rate_limit_policy("three")).await; // one of the three
    let token = f.token(&parent, TokenRequest::new()).await;
    f.verify(&token).await.unwrap();
    f.keyring.verify(&key, &VerifyContext::new()).await.unwrap();
    assert!(matches!(
        f.verify(&token).await,
        Err(VerifyError::RateLimited(_))
    ));
    assert!(matches!(
        f.keyring.verify(&key, &VerifyContext::new()).await,
        Err(VerifyError::RateLimited(_))
    ));
}

#[tokio::test]
async fn tokens_keep_their_parents_environment_and_network_rules() {
    let f = fixture();
    let issued = f.keyring.issue(rw().key_type("sk_test")).await.unwrap();
    let test_env = Environment::test();
    let in_test = VerifyContext::new().environment(&test_env);
    let parent = f
        .keyring
        .verify(issued.key.expose_secret(), &in_test)
        .await
        .unwrap();
    let token = f
        .keyring
        .derive_token(&parent, TokenRequest::new())
        .await
        .unwrap();
    let err = f.verify(token.token.expose_secret()).await.unwrap_err();
    assert_eq!(err.code(), "wrong_environment", "a test token in live mode");
    f.keyring
        .verify(token.token.expose_secret(), &in_test)
        .await
        .unwrap();

    let issued = f
        .keyring
        .issue(rw().allowed_networks(["10.0.0.0/8".parse().unwrap()]))
        .await
        .unwrap();
    let inside = VerifyContext::new().client_ip("10.1.2.3".parse().unwrap());
    let parent = f
        .keyring
        .verify(issued.key.expose_secret(), &inside)
        .await
        .unwrap();
    let token = f.token(&parent, TokenRequest::new()).await;
    f.keyring.verify(&token, &inside).await.unwrap();
    let outside = VerifyContext::new().client_ip("192.0.2.1".parse().unwrap());
    assert!(matches!(
        f.keyring.verify(&token, &outside).await,
        Err(VerifyError::ClientNotAllowed)
    ));
}

#[tokio::test]
async fn only_secret_unmetered_keys_derive_and_tokens_print_nothing() {
    let f = fixture();
    let (_, parent) = f.parent(rw()).await;
    let derived = f
        .keyring
        .derive_token(&parent, TokenRequest::new())
        .await
        .unwrap();
    let text = derived.token.expose_secret().to_owned();
    let debug = format!("{derived:?}");
    assert!(!debug.contains(&text[10..40]), "{debug}");
    assert!(
        f.audit.0.lock().unwrap().iter().any(|e| matches!(
            e,
            AuditEvent::TokenDerived { parent: p, .. } if p == parent.id()
        )),
        "derivation is audited"
    );

    let token = f.verify(&text).await.unwrap();
    let err = f
        .keyring
        .derive_token(&token, TokenRequest::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, KeyringError::InvalidRequest(_)),
        "a token derives nothing"
    );

    let (_, metered) = f.parent(rw().remaining_uses(10)).await;
    assert!(matches!(
        f.keyring.derive_token(&metered, TokenRequest::new()).await,
        Err(KeyringError::InvalidRequest(_))
    ));
    let (_, publishable) = f
        .parent(IssueRequest::new("acct", "web").key_type("pk_live"))
        .await;
    assert!(matches!(
        f.keyring
            .derive_token(&publishable, TokenRequest::new())
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));

    // A keyring without tokens reads a token as a malformed key.
    let plain = Keyring::builder(types(), f.store.clone())
        .hashes(fast())
        .build()
        .unwrap();
    assert!(matches!(
        plain.verify(&text, &VerifyContext::new()).await,
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(
        plain.derive_token(&parent, TokenRequest::new()).await,
        Err(KeyringError::InvalidState(_))
    ));
}

#[tokio::test]
async fn a_paseto_signed_by_the_same_key_for_another_purpose_is_no_token() {
    use base64ct::{Base64UrlUnpadded, Encoding};
    use pasetors::keys::AsymmetricSecretKey;
    use pasetors::version4::{PublicToken, V4};

    let f = fixture();
    let (_, parent) = f.parent(rw()).await;
    let genuine = f
        .keyring
        .derive_token(&parent, TokenRequest::new())
        .await
        .unwrap();
    // The same claims and footer, signed by the same key, without keymint's implicit
    // assertion: what another system sharing the key could produce.
    let paserk = f.signer.to_paserk();
    let secret_bytes = Base64UrlUnpadded::decode_vec(&paserk["k4.secret.".len()..]).unwrap();
    let secret = AsymmetricSecretKey::<V4>::from(&secret_bytes).unwrap();
    let payload = serde_json::to_vec(&genuine.claims).unwrap();
    let unbound = PublicToken::sign(&secret, &payload, Some(br#"{"kid":"k1"}"#), None).unwrap();
    assert!(matches!(
        f.verify(&unbound).await,
        Err(VerifyError::Invalid)
    ));
    // With the assertion it would be accepted: the test signs what keymint signs.
    let bound = PublicToken::sign(
        &secret,
        &payload,
        Some(br#"{"kid":"k1"}"#),
        Some(b"keymint-token:v1"),
    )
    .unwrap();
    f.verify(&bound).await.unwrap();
}

#[tokio::test]
async fn a_token_of_a_certificate_bound_key_is_bound_to_the_same_certificate() {
    use keymint::{CertificateBinding, ClientCertificate};

    let f = fixture();
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let der = rcgen::CertificateParams::new(["alice".to_owned()])
        .unwrap()
        .self_signed(&key_pair)
        .unwrap()
        .der()
        .to_vec();
    let alice = ClientCertificate::from_der(&der).unwrap();
    let stranger_pair = rcgen::KeyPair::generate().unwrap();
    let stranger_der = rcgen::CertificateParams::new(["mallory".to_owned()])
        .unwrap()
        .self_signed(&stranger_pair)
        .unwrap()
        .der()
        .to_vec();
    let stranger = ClientCertificate::from_der(&stranger_der).unwrap();

    let issued = f
        .keyring
        .issue(rw().certificate_bindings([CertificateBinding::certificate(&der).unwrap()]))
        .await
        .unwrap();
    let with_alice = VerifyContext::new().client_certificate(&alice);
    let parent = f
        .keyring
        .verify(issued.key.expose_secret(), &with_alice)
        .await
        .unwrap();
    let token = f.token(&parent, TokenRequest::new()).await;
    // A stolen token is as useless as a stolen key without the certificate.
    f.keyring.verify(&token, &with_alice).await.unwrap();
    assert_eq!(
        f.verify(&token).await.unwrap_err().code(),
        "certificate_required"
    );
    let with_stranger = VerifyContext::new().client_certificate(&stranger);
    assert_eq!(
        f.keyring
            .verify(&token, &with_stranger)
            .await
            .unwrap_err()
            .code(),
        "certificate_mismatch"
    );
}

#[tokio::test]
async fn a_token_cannot_pass_a_not_requirement_its_parent_fails() {
    let f = fixture();
    let (_, parent) = f
        .parent(IssueRequest::new("acct", "k").scopes(["users:read", "admin:users"]))
        .await;
    let no_admins: Requirement = "users:read and not admin:*".parse().unwrap();
    let ctx = VerifyContext::new().require(&no_admins);
    // Dropping the marker scope from a token does not shed what the parent holds.
    let token = f
        .token(&parent, TokenRequest::new().scopes(["users:read"]))
        .await;
    let err = f.keyring.verify(&token, &ctx).await.unwrap_err();
    assert!(matches!(err, VerifyError::InsufficientScope(_)), "{err:?}");
}

#[tokio::test]
async fn a_token_never_rewrites_its_parents_cached_grant() {
    let f = fixture();
    let issued = f.keyring.issue(rw()).await.unwrap();
    let key = issued.key.expose_secret().to_owned();
    let parent = f.keyring.verify(&key, &VerifyContext::new()).await.unwrap();
    let token = f
        .token(&parent, TokenRequest::new().scopes(["users:read"]))
        .await;
    // The key is metered after the token was made, with a refill every 10 minutes.
    let refill = keymint::ratelimit::Refill::new(5, TimeDelta::minutes(10), 5).unwrap();
    f.keyring
        .update(
            &issued.record.id,
            keymint::KeyUpdate::new()
                .remaining_uses(Some(5))
                .refill(Some(refill)),
        )
        .await
        .unwrap();
    let write: Requirement = "users:write".parse().unwrap();
    f.keyring
        .verify(&key, &VerifyContext::new().require(&write))
        .await
        .unwrap(); // the key's own cache entry, with its full grant
    f.clock.advance(TimeDelta::minutes(11)); // a refill is due
    f.verify(&token).await.unwrap(); // the token's use refills the shared balance
    f.keyring
        .verify(&key, &VerifyContext::new().require(&write))
        .await
        .expect("the key keeps its own grant");
}

#[tokio::test]
async fn rotated_parents_and_oversized_tokens_are_refused_at_derivation() {
    let f = fixture();
    let (key, parent) = f.parent(rw()).await;
    f.keyring.rotate(parent.id(), None).await.unwrap();
    // The old key still works for its grace period, but derives nothing.
    let old = f.keyring.verify(&key, &VerifyContext::new()).await.unwrap();
    let err = f
        .keyring
        .derive_token(&old, TokenRequest::new())
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::InvalidRequest(_)), "{err:?}");

    let many: Vec<String> = (0..80)
        .map(|i| format!("reporting_area_number_{i:03}:read_everything"))
        .collect();
    let (_, wide) = f
        .parent(IssueRequest::new("acct", "wide").scopes(many.clone()))
        .await;
    let err = f
        .keyring
        .derive_token(&wide, TokenRequest::new())
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::InvalidRequest(_)), "{err:?}");
    // A narrower request still works, and its token verifies.
    let narrow = f
        .keyring
        .derive_token(&wide, TokenRequest::new().scopes(&many[..5]))
        .await
        .unwrap();
    f.verify(narrow.token.expose_secret()).await.unwrap();
}

#[tokio::test]
async fn tokens_work_from_browsers_only_when_allowed_and_their_parents_never_do() {
    let signer = TokenSigningKey::generate("k1").unwrap();
    let clock = ManualClock::default();
    let store = MemoryStore::new();
    for allow in [false, true] {
        let keyring = keyring_on(
            store.clone(),
            &clock,
            Tokens::new(signer.clone()).allow_browsers(allow),
            &Audit::default(),
        );
        let issued = keyring.issue(rw()).await.unwrap();
        let parent = keyring
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
            .unwrap();
        let token = keyring
            .derive_token(&parent, TokenRequest::new())
            .await
            .unwrap();
        let browser = VerifyContext::new().origin("https://app.example.com");
        let from_browser = keyring.verify(token.token.expose_secret(), &browser).await;
        assert_eq!(from_browser.is_ok(), allow, "allow_browsers({allow})");
        assert!(matches!(
            keyring.verify(issued.key.expose_secret(), &browser).await,
            Err(VerifyError::SecretKeyInBrowser)
        ));
    }
}
