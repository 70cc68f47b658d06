//! Peppers held in a PKCS#11 token (SoftHSM2 in CI): hashing and verifying through the
//! token with a real keyring, the key's value never readable, rotation, a token that is
//! unavailable or refuses the PIN (verification fails closed), and many concurrent
//! verifications sharing the session pool.
//!
//! Needs `KEYMINT_TEST_PKCS11_MODULE`, `KEYMINT_TEST_PKCS11_TOKEN_LABEL` and
//! `KEYMINT_TEST_PKCS11_PIN` (and `SOFTHSM2_CONF` for SoftHSM2), which `.ci/services.sh`
//! exports after initialising a private token. The tests change the token's login state
//! (and once its PIN), so they run one at a time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use keymint::hash::PepperProvider;
use keymint::hash::pkcs11::{Pkcs11Config, Pkcs11Pepper, Pkcs11Token};
use keymint::{
    HashError, HashPolicy, HmacSha256Hasher, IssueRequest, KeyFormat, KeyStore, Keyring,
    KeyringError, MemoryStore, Pepper, SecretHasher, Verdict, VerifyContext, VerifyError,
};

#[path = "support/format_reference.rs"]
#[allow(dead_code)]
mod format_reference;

/// The token set up for the tests.
struct Hsm {
    module: String,
    token: String,
    pin: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through .ci/services.sh, which initialises a SoftHSM2 token")
    })
}

fn hsm() -> Hsm {
    Hsm {
        module: var("KEYMINT_TEST_PKCS11_MODULE"),
        token: var("KEYMINT_TEST_PKCS11_TOKEN_LABEL"),
        pin: var("KEYMINT_TEST_PKCS11_PIN"),
    }
}

impl Hsm {
    fn config(&self) -> Pkcs11Config {
        Pkcs11Config::new(&self.module, &self.token, &self.pin)
    }

    fn open(&self) -> Pkcs11Token {
        Pkcs11Token::open(self.config()).expect("the test token opens")
    }
}

/// One test at a time: login state and the PIN are shared by the whole process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A key label no other test (or earlier run on the same token) uses.
fn fresh_label(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t-{what}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Destroys the test's keys when the test ends, however it ends.
struct Cleanup<'a> {
    hsm: &'a Hsm,
    labels: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Ok(token) = Pkcs11Token::open(self.hsm.config()) {
            for label in &self.labels {
                let _ = token.destroy_key(label);
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

fn keyring(policy: HashPolicy, store: MemoryStore) -> Keyring<MemoryStore> {
    Keyring::builder(KeyFormat::new("sk_test").expect("format"), store)
        .hashes(policy)
        .without_cache()
        .uncached_concurrency(16, 1024)
        .build()
        .expect("keyring")
}

/// Direct access to the token, beside the provider (the same library, so the same login).
struct Raw {
    _ctx: Pkcs11,
    session: Session,
}

fn raw(hsm: &Hsm) -> Raw {
    let ctx = Pkcs11::new(&hsm.module).expect("module loads");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("initialise: {e}"),
    }
    let slot: Slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|slot| {
            ctx.get_token_info(*slot)
                .is_ok_and(|info| info.label().trim_end() == hsm.token)
        })
        .expect("the test token");
    let session = ctx.open_rw_session(slot).expect("session");
    Raw { _ctx: ctx, session }
}

impl Raw {
    fn login(&self, pin: &str) {
        match self
            .session
            .login(UserType::User, Some(&AuthPin::from(pin)))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => panic!("login: {e}"),
        }
    }

    fn key(&self, label: &str) -> ObjectHandle {
        let found = self
            .session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .expect("search");
        assert_eq!(found.len(), 1, "one key labelled {label}");
        found[0]
    }
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn keys_are_hashed_and_verified_through_the_token() {
    let _serial = serial();
    let hsm = hsm();
    let label = fresh_label("basic");
    let _cleanup = Cleanup {
        hsm: &hsm,
        labels: vec![label.clone()],
    };
    let token = hsm.open();
    let hasher = HmacSha256Hasher::new("h1", token.generate_key(&label).expect("key")).unwrap();
    runtime().block_on(async {
        let store = MemoryStore::new();
        let keyring = keyring(HashPolicy::new(hasher), store.clone());
        let issued = keyring
            .issue(IssueRequest::new("acct_1", "through the token"))
            .await
            .expect("issued");
        assert!(
            issued
                .record
                .hash
                .as_str()
                .starts_with("$hmac-sha256$kid=h1$"),
            "{:?}",
            issued.record.hash
        );
        let verified = keyring
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
            .expect("verifies");
        assert_eq!(verified.owner(), "acct_1");

        // Another secret for the same id, with a valid checksum: the token's MAC differs.
        let presented = issued.key.expose_secret();
        let body = &presented[..presented.len() - 6];
        let last = body.len() - 1;
        let other = if body.ends_with('A') { "B" } else { "A" };
        let forged = format_reference::seal(&format!("{}{other}", &body[..last]));
        let refused = keyring
            .verify(&forged, &VerifyContext::new())
            .await
            .unwrap_err();
        assert!(matches!(refused, VerifyError::Invalid), "{refused:?}");
    });
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn an_imported_pepper_computes_the_same_macs_as_in_memory() {
    // Moving an existing pepper into the module keeps every stored hash verifiable.
    let _serial = serial();
    let hsm = hsm();
    let label = fresh_label("import");
    let _cleanup = Cleanup {
        hsm: &hsm,
        labels: vec![label.clone()],
    };
    let pepper = Pepper::new(*b"an existing pepper of 32+ bytes!").unwrap();
    let in_memory = HmacSha256Hasher::new("k1", pepper.clone()).unwrap();
    let stored = in_memory.hash(b"the secret").unwrap();

    let token = hsm.open();
    let imported = token.import_pepper(&label, &pepper).expect("imported");
    assert_eq!(
        imported.hmac_sha256(b"message").unwrap(),
        pepper.hmac_sha256(b"message").unwrap()
    );
    let on_token = HmacSha256Hasher::new("k1", imported).unwrap();
    assert!(
        on_token
            .verify(b"the secret", &stored.phc().unwrap())
            .unwrap()
    );
    assert!(!on_token.verify(b"another", &stored.phc().unwrap()).unwrap());
    // A second key of the same label is refused: labels name one key.
    let again = token.import_pepper(&label, &pepper).unwrap_err();
    assert!(again.to_string().contains("exists already"), "{again}");
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn the_key_value_cannot_be_read_from_the_token() {
    let _serial = serial();
    let hsm = hsm();
    let label = fresh_label("sealed");
    let loose = fresh_label("loose");
    let _cleanup = Cleanup {
        hsm: &hsm,
        labels: vec![label.clone(), loose.clone()],
    };
    let token = hsm.open();
    token.generate_key(&label).expect("key");

    let raw = raw(&hsm);
    raw.login(&hsm.pin);
    let key = raw.key(&label);
    let read = raw
        .session
        .get_attributes(
            key,
            &[
                AttributeType::Value,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
            ],
        )
        .expect("attributes");
    // cryptoki drops what the module refuses (CKR_ATTRIBUTE_SENSITIVE): no value came back.
    assert!(
        !read.iter().any(|a| matches!(a, Attribute::Value(_))),
        "the module revealed the key's value"
    );
    for expected in [
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::AlwaysSensitive(true),
        Attribute::NeverExtractable(true),
    ] {
        assert!(read.contains(&expected), "{expected:?} in {read:?}");
    }
    // Asking for the value alone is refused the same way.
    let value_only = raw
        .session
        .get_attributes(key, &[AttributeType::Value])
        .expect("the call itself succeeds");
    assert!(value_only.is_empty(), "{value_only:?}");

    // A key that could leave the module is not used as a pepper.
    raw.session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Label(loose.as_bytes().to_vec()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Sign(true),
            Attribute::Value(vec![7u8; 32]),
        ])
        .expect("created");
    let refused = token.pepper(&loose).unwrap_err();
    assert!(refused.is_unavailable(), "{refused:?}");
    assert!(
        refused.to_string().contains("could leave the module"),
        "{refused}"
    );
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn pepper_rotation_verifies_old_hashes_and_the_keyring_rehashes_them() {
    let _serial = serial();
    let hsm = hsm();
    let (old_label, new_label) = (fresh_label("p1"), fresh_label("p2"));
    let _cleanup = Cleanup {
        hsm: &hsm,
        labels: vec![old_label.clone(), new_label.clone()],
    };
    let token = hsm.open();
    token.generate_key(&old_label).expect("p1");
    token.generate_key(&new_label).expect("p2");
    let before = HmacSha256Hasher::new("p1", token.pepper(&old_label).unwrap()).unwrap();
    let after = HmacSha256Hasher::new("p2", token.pepper(&new_label).unwrap())
        .unwrap()
        .with_previous("p1", token.pepper(&old_label).unwrap())
        .unwrap();
    let only_new = HmacSha256Hasher::new("p2", token.pepper(&new_label).unwrap()).unwrap();

    runtime().block_on(async {
        let store = MemoryStore::new();
        let issued = keyring(HashPolicy::new(before), store.clone())
            .issue(IssueRequest::new("acct_r", "before rotation"))
            .await
            .expect("issued");
        let old_hash = issued.record.hash.clone();
        assert!(old_hash.as_str().starts_with("$hmac-sha256$kid=p1$"));

        let policy = HashPolicy::new(after);
        assert_eq!(
            policy
                .verify(
                    issued.key.parsed().expose_secret().as_bytes(),
                    old_hash.as_str()
                )
                .unwrap(),
            Verdict::Match { needs_rehash: true }
        );

        // The rotated keyring still accepts the key, and rewrites its hash with p2.
        let rotated = keyring(policy, store.clone());
        rotated
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
            .expect("an old hash still verifies");
        let rehashed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let record = store.get(&issued.record.id).await.unwrap().unwrap();
                if record.hash != old_hash {
                    return record.hash;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the keyring rehashed the record");
        assert!(
            rehashed.as_str().starts_with("$hmac-sha256$kid=p2$"),
            "{rehashed:?}"
        );
        // Now p1 can be retired: the key verifies with p2 alone.
        keyring(HashPolicy::new(only_new), store.clone())
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
            .expect("verifies without the old pepper");
    });
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn an_unopenable_token_is_refused_with_a_clear_error() {
    let _serial = serial();
    let hsm = hsm();
    let cases = [
        (
            Pkcs11Config::new("/nonexistent/libmissing-pkcs11.so", &hsm.token, &hsm.pin),
            "cannot load",
        ),
        (
            Pkcs11Config::new(&hsm.module, "no-such-token-label", &hsm.pin),
            "no token labelled",
        ),
        (
            Pkcs11Config::new(&hsm.module, &hsm.token, "wrong-pin-0000"),
            "CKR_PIN_INCORRECT",
        ),
    ];
    for (config, says) in cases {
        let error = Pkcs11Token::open(config).unwrap_err();
        assert!(error.is_unavailable(), "{error:?}");
        let text = error.to_string();
        assert!(text.contains(says), "{text}");
        assert!(
            !text.contains(&hsm.pin) && !text.contains("wrong-pin"),
            "{text}"
        );
    }
    // An absent label is refused when the pepper is made.
    let error = hsm.open().pepper("no-such-key-label").unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("no key labelled \"no-such-key-label\""),
        "{error}"
    );
}

/// Issues a key on a fresh store through `pepper`, and a key of the same format that the
/// store does not hold.
async fn issued_and_unknown(
    policy: &HashPolicy,
    store: &MemoryStore,
) -> (keymint::IssuedKey, keymint::IssuedKey) {
    let issued = keyring(policy.clone(), store.clone())
        .issue(IssueRequest::new("acct_f", "fail closed"))
        .await
        .expect("issued");
    let unknown = keyring(policy.clone(), MemoryStore::new())
        .issue(IssueRequest::new("acct_f", "elsewhere"))
        .await
        .expect("issued elsewhere");
    (issued, unknown)
}

fn assert_unavailable(result: Result<keymint::VerifiedKey, VerifyError>) {
    match result {
        Err(error @ VerifyError::PepperUnavailable(_)) => {
            assert_eq!(error.status_code(), 503);
            assert_eq!(error.code(), "pepper_unavailable");
        }
        Err(other) => panic!("expected pepper_unavailable, got {other:?}"),
        Ok(_) => panic!("verified without the pepper"),
    }
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn a_key_deleted_from_the_token_fails_verification_closed() {
    let _serial = serial();
    let hsm = hsm();
    let label = fresh_label("deleted");
    let _cleanup = Cleanup {
        hsm: &hsm,
        labels: vec![label.clone()],
    };
    let token = hsm.open();
    let pepper = token.generate_key(&label).expect("key");
    let policy = HashPolicy::new(HmacSha256Hasher::new("d1", pepper).unwrap());
    runtime().block_on(async {
        let store = MemoryStore::new();
        let (issued, unknown) = issued_and_unknown(&policy, &store).await;
        let keyring = keyring(policy.clone(), store.clone());
        keyring
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
            .expect("verifies while the key exists");

        assert!(token.destroy_key(&label).unwrap());
        assert_unavailable(
            keyring
                .verify(issued.key.expose_secret(), &VerifyContext::new())
                .await,
        );
        // An unknown id answers the same, so an outage does not tell which ids exist.
        assert_unavailable(
            keyring
                .verify(unknown.key.expose_secret(), &VerifyContext::new())
                .await,
        );
        // Nothing is issued without the pepper either.
        let refused = keyring
            .issue(IssueRequest::new("acct_f", "during the outage"))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, KeyringError::Hash(e) if e.is_unavailable()),
            "{refused:?}"
        );
    });
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn a_finalised_library_fails_verification_closed_until_the_token_is_opened_again() {
    let _serial = serial();
    let hsm = hsm();
    let label = fresh_label("gone");
    let _cleanup = Cleanup {
        hsm: &hsm,
        labels: vec![label.clone()],
    };
    let token = hsm.open();
    let policy = HashPolicy::new(
        HmacSha256Hasher::new("g1", token.generate_key(&label).expect("key")).unwrap(),
    );
    runtime().block_on(async {
        let store = MemoryStore::new();
        let (issued, unknown) = issued_and_unknown(&policy, &store).await;
        let keyring = keyring(policy, store.clone());
        keyring
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
            .expect("verifies");

        // The module goes away under the provider (as when the token is pulled or the
        // library is shut down): every session and the login are gone.
        let raw = raw(&hsm);
        drop(raw.session);
        raw._ctx.finalize().expect("finalised");
        for _ in 0..3 {
            assert_unavailable(
                keyring
                    .verify(issued.key.expose_secret(), &VerifyContext::new())
                    .await,
            );
            assert_unavailable(
                keyring
                    .verify(unknown.key.expose_secret(), &VerifyContext::new())
                    .await,
            );
        }

        // Opening the token again (what a restart does) brings it back.
        let reopened = HashPolicy::new(
            HmacSha256Hasher::new("g1", hsm.open().pepper(&label).expect("key")).unwrap(),
        );
        keyring_verify(reopened, &store, &issued).await;
    });
}

async fn keyring_verify(policy: HashPolicy, store: &MemoryStore, issued: &keymint::IssuedKey) {
    keyring(policy, store.clone())
        .verify(issued.key.expose_secret(), &VerifyContext::new())
        .await
        .expect("verifies");
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn a_lost_login_is_repaired_on_the_next_verification() {
    let _serial = serial();
    let hsm = hsm();
    let label = fresh_label("relogin");
    let _cleanup = Cleanup {
        hsm: &hsm,
        labels: vec![label.clone()],
    };
    let token = hsm.open();
    let policy = HashPolicy::new(
        HmacSha256Hasher::new("l1", token.generate_key(&label).expect("key")).unwrap(),
    );
    runtime().block_on(async {
        let store = MemoryStore::new();
        let (issued, _) = issued_and_unknown(&policy, &store).await;
        let keyring = keyring(policy, store.clone());
        keyring
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
            .expect("verifies");
        // Logging out one session logs out the whole process.
        let raw = raw(&hsm);
        raw.session.logout().expect("logged out");
        keyring
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
            .expect("the provider logged in again");
    });
}

/// Puts the test PIN back however the test ends.
struct RestorePin<'a> {
    hsm: &'a Hsm,
    changed_to: &'a str,
}

impl Drop for RestorePin<'_> {
    fn drop(&mut self) {
        let raw = raw(self.hsm);
        let _ = raw
            .session
            .login(UserType::User, Some(&AuthPin::from(self.changed_to)));
        let _ = raw.session.set_pin(
            &AuthPin::from(self.changed_to),
            &AuthPin::from(self.hsm.pin.as_str()),
        );
        let _ = raw.session.logout();
    }
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn a_refused_pin_fails_verification_closed_and_is_not_tried_again() {
    let _serial = serial();
    let hsm = hsm();
    let label = fresh_label("pin");
    let _cleanup = Cleanup {
        hsm: &hsm,
        labels: vec![label.clone()],
    };
    let token = hsm.open();
    let pepper: Pkcs11Pepper = token.generate_key(&label).expect("key");
    let policy = HashPolicy::new(HmacSha256Hasher::new("n1", pepper).unwrap());
    let changed = "changed-pin-4321";
    runtime().block_on(async {
        let store = MemoryStore::new();
        let (issued, _) = issued_and_unknown(&policy, &store).await;
        let keyring = keyring(policy, store.clone());
        keyring
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
            .expect("verifies");

        // The PIN changes on the token and the process is logged out: the provider's
        // login is refused.
        let _restore = RestorePin {
            hsm: &hsm,
            changed_to: changed,
        };
        {
            let raw = raw(&hsm);
            raw.session
                .set_pin(&AuthPin::from(hsm.pin.as_str()), &AuthPin::from(changed))
                .expect("PIN changed");
            raw.session.logout().expect("logged out");
        }
        match keyring
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await
        {
            Err(VerifyError::PepperUnavailable(HashError::PepperUnavailable(reason))) => {
                assert!(reason.contains("CKR_PIN_INCORRECT"), "{reason}");
                assert!(
                    !reason.contains(&hsm.pin) && !reason.contains(changed),
                    "{reason}"
                );
            }
            other => panic!("expected a refused PIN, got {other:?}"),
        }

        // Logged in again by someone else: the provider still does not try its PIN, so
        // retries can never lock the token's PIN; it answers unavailable until reopened.
        let raw = raw(&hsm);
        raw.login(changed);
        for _ in 0..5 {
            assert_unavailable(
                keyring
                    .verify(issued.key.expose_secret(), &VerifyContext::new())
                    .await,
            );
        }
        raw.session.logout().expect("logged out");
    });
}

#[test]
#[ignore = "needs KEYMINT_TEST_PKCS11_MODULE"]
fn many_tasks_verify_concurrently_through_a_small_session_pool() {
    let _serial = serial();
    let hsm = hsm();
    let label = fresh_label("many");
    let _cleanup = Cleanup {
        hsm: &hsm,
        labels: vec![label.clone()],
    };
    let token = Pkcs11Token::open(hsm.config().max_sessions(3)).expect("token");
    let policy = HashPolicy::new(
        HmacSha256Hasher::new("c1", token.generate_key(&label).expect("key")).unwrap(),
    );
    runtime().block_on(async {
        let store = MemoryStore::new();
        let keyring = keyring(policy, store.clone());
        let mut keys = Vec::new();
        for i in 0..8 {
            let issued = keyring
                .issue(IssueRequest::new(format!("acct_{i}"), "concurrent"))
                .await
                .expect("issued");
            keys.push((format!("acct_{i}"), issued.key.expose_secret().to_owned()));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..64 {
            let keyring = keyring.clone();
            let (owner, key) = keys[task % keys.len()].clone();
            tasks.spawn(async move {
                for _ in 0..5 {
                    let verified = keyring
                        .verify(&key, &VerifyContext::new())
                        .await
                        .expect("verifies under contention");
                    assert_eq!(verified.owner(), owner);
                }
            });
        }
        let finished = tokio::time::timeout(Duration::from_secs(120), async {
            let mut done = 0;
            while let Some(joined) = tasks.join_next().await {
                joined.expect("task");
                done += 1;
            }
            done
        })
        .await
        .expect("all verifications finish");
        assert_eq!(finished, 64);
    });
}
