//! Key types and environments: one keyring for `sk_live`, `sk_test`, `pk_live`, `pk_test`
//! and `rk_live` keys, each bound to its type and environment at verification.

#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;

use keymint::ratelimit::{Policy, Quota};
use keymint::{
    AllowedOrigin, Argon2idHasher, Environment, FailureReason, HashPolicy, IssueRequest, KeyFilter,
    KeyKind, KeyStore, KeyType, KeyTypes, Keyring, KeyringError, MemoryStore, PageRequest, Roles,
    Scope, TimeDelta, VerifyContext, VerifyError,
};

#[path = "keyring/support.rs"]
#[allow(dead_code, unreachable_pub)]
mod support;
use support::{Recorder, with_prefix};

const PREFIXES: [&str; 5] = ["sk_live", "sk_test", "pk_live", "pk_test", "rk_live"];

fn scope(s: &str) -> Scope {
    Scope::new(s).unwrap()
}

/// A Stripe-like set of types.
fn stripe_types() -> KeyTypes {
    let live = Environment::live;
    let test = Environment::test;
    KeyTypes::new(KeyType::secret("sk_live", live()).unwrap())
        .with(KeyType::secret("sk_test", test()).unwrap())
        .with(
            KeyType::publishable("pk_live", live())
                .unwrap()
                .allowed_scopes([scope("*:read")])
                .allow_any_origin(true),
        )
        .with(
            KeyType::publishable("pk_test", test())
                .unwrap()
                .allowed_scopes([scope("*:read")])
                .allow_any_origin(true),
        )
        .with(KeyType::restricted("rk_live", live()).unwrap())
}

fn fast() -> HashPolicy {
    HashPolicy::new(
        Argon2idHasher::builder()
            .m_cost(64)
            .t_cost(1)
            .build()
            .unwrap(),
    )
}

fn keyring_of(types: KeyTypes) -> Keyring<MemoryStore> {
    Keyring::builder(types, MemoryStore::new())
        .hashes(fast())
        .build()
        .unwrap()
}

fn request(key_type: &str) -> IssueRequest {
    let r = IssueRequest::new("acct_42", "key").key_type(key_type);
    if key_type.starts_with("rk") || key_type.starts_with("pk") {
        r.scopes(["users:read"])
    } else {
        r
    }
}

/// The environment a type's keys are verified in.
fn env_of(key_type: &str) -> Environment {
    if key_type.ends_with("test") {
        Environment::test()
    } else {
        Environment::live()
    }
}

#[tokio::test]
async fn every_key_moved_to_another_types_prefix_is_refused() {
    let audit = Recorder::default();
    let keyring = Keyring::builder(stripe_types(), MemoryStore::new())
        .hashes(fast())
        .audit(audit.clone())
        .build()
        .unwrap();
    for from in PREFIXES {
        let issued = keyring.issue(request(from)).await.unwrap();
        let key = issued.key.expose_secret();
        let env = env_of(from);
        // Verified once, so its id is in the cache too.
        let verified = keyring
            .verify(key, &VerifyContext::new().environment(&env))
            .await
            .unwrap();
        assert_eq!(verified.key_type().name().as_str(), from);
        for to in PREFIXES.into_iter().filter(|p| *p != from) {
            let moved = with_prefix(key, to);
            let env = env_of(to);
            let err = keyring
                .verify(&moved, &VerifyContext::new().environment(&env))
                .await
                .unwrap_err();
            assert!(
                matches!(err, VerifyError::Invalid),
                "{from} as {to}: {err:?}"
            );
        }
    }
    assert!(
        audit
            .failures()
            .iter()
            .all(|r| *r == FailureReason::WrongPrefix),
        "{:?}",
        audit.failures()
    );
}

#[tokio::test]
async fn a_key_of_another_environment_is_refused_with_its_own_error_and_charged_nothing() {
    let policy = Policy::single("one", Quota::per_hour(NonZeroU32::MIN)).unwrap();
    let keyring = Keyring::builder(stripe_types(), MemoryStore::new())
        .hashes(fast())
        .policy(policy)
        .default_policy("one")
        .build()
        .unwrap();
    let test_key = keyring
        .issue(
            IssueRequest::new("acct_42", "ci")
                .key_type("sk_test")
                .remaining_uses(1),
        )
        .await
        .unwrap()
        .key;
    // No environment stated: served in the default one, live.
    for ctx in [
        VerifyContext::new(),
        VerifyContext::new().environment(&Environment::live()),
    ] {
        let err = keyring
            .verify(test_key.expose_secret(), &ctx)
            .await
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::WrongEnvironment { .. }),
            "{err:?}"
        );
        assert_eq!((err.status_code(), err.code()), (401, "wrong_environment"));
        assert_eq!(
            err.to_string(),
            "this is a test key, but the request was made in live mode: use a live key"
        );
    }
    // Nothing was charged: its one use and its one request an hour are still there.
    let test = Environment::test();
    let ok = keyring
        .verify(
            test_key.expose_secret(),
            &VerifyContext::new().environment(&test),
        )
        .await
        .unwrap();
    assert_eq!(ok.remaining_uses(), Some(0));
    assert_eq!(ok.environment(), &Environment::test());
    assert_eq!(ok.kind(), KeyKind::Secret);
}

#[tokio::test]
async fn publishable_keys_hold_only_publishable_scopes_at_issue_and_update() {
    let roles = Roles::new()
        .with_role("writer", [scope("users:write")])
        .unwrap()
        .with_role("reader", [scope("users:read")])
        .unwrap();
    let keyring = Keyring::builder(stripe_types(), MemoryStore::new())
        .hashes(fast())
        .roles(roles)
        .build()
        .unwrap();
    let refused = |e: KeyringError| match e {
        KeyringError::InvalidRequest(message) => message,
        other => panic!("expected InvalidRequest, got {other:?}"),
    };
    for scopes in [
        vec!["users:write"],
        vec!["users:*"],
        vec!["*"],
        vec!["users:read", "a:b"],
    ] {
        let err = keyring
            .issue(
                IssueRequest::new("a", "pk")
                    .key_type("pk_live")
                    .scopes(scopes.clone()),
            )
            .await
            .unwrap_err();
        let message = refused(err);
        assert!(
            message.contains("is not allowed on publishable keys of type pk_live"),
            "{message}"
        );
        assert!(message.contains("allowed: *:read"), "{message}");
    }
    let err = keyring
        .issue(
            IssueRequest::new("a", "pk")
                .key_type("pk_live")
                .roles(["writer"]),
        )
        .await
        .unwrap_err();
    assert!(
        refused(err).contains("users:write"),
        "a role's scopes count too"
    );

    let ok = keyring
        .issue(
            IssueRequest::new("a", "pk")
                .key_type("pk_live")
                .scopes(["users:read", "billing:read"])
                .roles(["reader"]),
        )
        .await
        .unwrap();
    let err = keyring
        .update(
            &ok.record.id,
            keymint::KeyUpdate::new().scopes(["users:write"]),
        )
        .await
        .unwrap_err();
    assert!(refused(err).contains("users:write"));
    let err = keyring
        .update_attributes(&ok.record.id, |a| a.roles = vec!["writer".into()])
        .await
        .unwrap_err();
    assert!(refused(err).contains("users:write"));

    // A publishable type that marks no scope publishable allows none.
    let bare = keyring_of(KeyTypes::new(
        KeyType::publishable("pk_live", Environment::live()).unwrap(),
    ));
    let err = bare
        .issue(IssueRequest::new("a", "pk").scopes(["users:read"]))
        .await
        .unwrap_err();
    assert!(refused(err).contains("(allowed: none)"));
    bare.issue(IssueRequest::new("a", "pk")).await.unwrap();
}

#[tokio::test]
async fn publishable_keys_are_checked_against_their_allowed_origins() {
    let types = KeyTypes::new(KeyType::publishable("pk_live", Environment::live()).unwrap());
    let keyring = keyring_of(types);
    let listed = keyring
        .issue(IssueRequest::new("a", "web").allowed_origins([
            "https://app.example.com".parse::<AllowedOrigin>().unwrap(),
            "https://*.example.org".parse().unwrap(),
        ]))
        .await
        .unwrap()
        .key;
    let key = listed.expose_secret();
    for ok in [
        "https://app.example.com",
        "https://a.example.org",
        "https://a.b.example.org",
    ] {
        keyring
            .verify(key, &VerifyContext::new().origin(ok))
            .await
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for refused in [
        Some("https://example.org"),
        Some("https://evil.example"),
        Some("http://app.example.com"),
        Some("null"),
        None,
    ] {
        let ctx = match refused {
            Some(origin) => VerifyContext::new().origin(origin),
            None => VerifyContext::new(),
        };
        let err = keyring.verify(key, &ctx).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::OriginNotAllowed),
            "{refused:?}: {err:?}"
        );
        assert_eq!((err.status_code(), err.code()), (403, "origin_not_allowed"));
    }
    // No origins listed: refused unless the type allows any origin.
    let unlisted = keyring
        .issue(IssueRequest::new("a", "web"))
        .await
        .unwrap()
        .key;
    assert!(matches!(
        keyring
            .verify(unlisted.expose_secret(), &VerifyContext::new())
            .await,
        Err(VerifyError::OriginNotAllowed)
    ));
    let open = keyring_of(KeyTypes::new(
        KeyType::publishable("pk_live", Environment::live())
            .unwrap()
            .allow_any_origin(true),
    ));
    let key = open.issue(IssueRequest::new("a", "web")).await.unwrap().key;
    for ctx in [
        VerifyContext::new(),
        VerifyContext::new().origin("https://anywhere.example"),
    ] {
        open.verify(key.expose_secret(), &ctx).await.unwrap();
    }
    // Origins belong on publishable keys only.
    let secret = keyring_of(stripe_types());
    let err = secret
        .issue(
            IssueRequest::new("a", "srv")
                .allowed_origins(["https://app.example.com".parse().unwrap()]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::InvalidRequest(m) if m.contains("only to publishable")));
}

#[tokio::test]
async fn secret_keys_are_refused_from_browsers_unless_their_type_allows_it() {
    let keyring = keyring_of(stripe_types());
    for key_type in ["sk_live", "rk_live"] {
        let key = keyring.issue(request(key_type)).await.unwrap().key;
        let err = keyring
            .verify(
                key.expose_secret(),
                &VerifyContext::new().origin("https://app.example.com"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::SecretKeyInBrowser), "{err:?}");
        assert_eq!(
            (err.status_code(), err.code()),
            (403, "secret_key_in_browser")
        );
        assert!(err.to_string().contains("secret keys belong on servers"));
        keyring
            .verify(key.expose_secret(), &VerifyContext::new())
            .await
            .unwrap();
    }
    let lenient = keyring_of(KeyTypes::new(
        KeyType::secret("sk_live", Environment::live())
            .unwrap()
            .allow_browsers(true),
    ));
    let key = lenient
        .issue(IssueRequest::new("a", "n"))
        .await
        .unwrap()
        .key;
    lenient
        .verify(
            key.expose_secret(),
            &VerifyContext::new().origin("https://app.example.com"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn restricted_keys_need_explicit_scopes_and_no_grant_of_everything() {
    let roles = Roles::new().with_role("admin", [scope("*")]).unwrap();
    let keyring = Keyring::builder(stripe_types(), MemoryStore::new())
        .hashes(fast())
        .roles(roles)
        .build()
        .unwrap();
    let issue = |r: IssueRequest| keyring.issue(r.key_type("rk_live"));
    for request in [
        IssueRequest::new("a", "none"),
        IssueRequest::new("a", "star").scopes(["*"]),
        IssueRequest::new("a", "star-star").scopes(["*:*"]),
        IssueRequest::new("a", "role")
            .scopes(["users:read"])
            .roles(["admin"]),
    ] {
        assert!(
            matches!(issue(request).await, Err(KeyringError::InvalidRequest(_))),
            "refused"
        );
    }
    let ok = issue(IssueRequest::new("a", "ok").scopes(["users:read", "billing:*"]))
        .await
        .unwrap();
    assert_eq!(ok.record.kind, Some(KeyKind::Restricted));
    let err = keyring
        .update(
            &ok.record.id,
            keymint::KeyUpdate::new().scopes(Vec::<String>::new()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::InvalidRequest(m) if m.contains("non-empty")));
}

#[tokio::test]
async fn records_written_before_key_types_read_as_the_keyrings_type() {
    let store = MemoryStore::new();
    let keyring = Keyring::builder(keymint::KeyFormat::new("sk_live").unwrap(), store.clone())
        .hashes(fast())
        .without_cache()
        .build()
        .unwrap();
    let issued = keyring.issue(IssueRequest::new("a", "old")).await.unwrap();
    // As an earlier version stored it: no kind, and a free environment label.
    let mut json =
        serde_json::to_value(store.get(&issued.record.id).await.unwrap().unwrap()).unwrap();
    let object = json.as_object_mut().unwrap();
    object.remove("kind");
    object.insert("environment".into(), "Old Free Label".into());
    let old: keymint::KeyRecord = serde_json::from_value(json).unwrap();
    assert_eq!((old.kind, old.environment.as_ref()), (None, None));
    store.update(&old).await.unwrap();

    let verified = keyring
        .verify(issued.key.expose_secret(), &VerifyContext::new())
        .await
        .unwrap();
    assert_eq!(verified.key_type().name().as_str(), "sk_live");
    assert_eq!(verified.kind(), KeyKind::Secret);
    assert_eq!(verified.environment(), &Environment::live());
}

#[tokio::test]
async fn a_record_issued_as_another_kind_than_its_type_says_now_is_refused() {
    // The configuration changed under stored keys: sk_live used to be publishable.
    let store = MemoryStore::new();
    let before = Keyring::builder(
        KeyTypes::new(
            KeyType::publishable("sk_live", Environment::live())
                .unwrap()
                .allow_any_origin(true),
        ),
        store.clone(),
    )
    .hashes(fast())
    .build()
    .unwrap();
    let issued = before.issue(IssueRequest::new("a", "n")).await.unwrap();
    let after = Keyring::builder(keymint::KeyFormat::new("sk_live").unwrap(), store)
        .hashes(fast())
        .build()
        .unwrap();
    assert!(matches!(
        after
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await,
        Err(VerifyError::Invalid)
    ));
}

#[tokio::test]
async fn lifetimes_and_default_policies_come_from_the_type() {
    let policy = Policy::single("pk-limit", Quota::per_hour(NonZeroU32::MIN)).unwrap();
    let types = KeyTypes::new(
        KeyType::publishable("pk_live", Environment::live())
            .unwrap()
            .allow_any_origin(true)
            .default_lifetime(TimeDelta::days(30))
            .max_lifetime(TimeDelta::days(90))
            .default_policy("pk-limit"),
    );
    let clock = keymint::ManualClock::default();
    let keyring = Keyring::builder(types, MemoryStore::new())
        .hashes(fast())
        .clock(clock.clone())
        .policy(policy)
        .build()
        .unwrap();
    let issued = keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    assert_eq!(
        issued.record.attributes.expires_at,
        Some(keymint::Clock::now(&clock) + TimeDelta::days(30))
    );
    assert!(matches!(
        keyring
            .issue(IssueRequest::new("a", "n").expires_in(TimeDelta::days(91)))
            .await,
        Err(KeyringError::InvalidRequest(m)) if m.contains("at most 90 days")
    ));
    let err = keyring
        .update(
            &issued.record.id,
            keymint::KeyUpdate::new().expires_at(None),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::InvalidRequest(_)), "{err:?}");
    // The type's policy applies: one request an hour.
    keyring
        .verify(issued.key.expose_secret(), &VerifyContext::new())
        .await
        .unwrap();
    assert!(matches!(
        keyring
            .verify(issued.key.expose_secret(), &VerifyContext::new())
            .await,
        Err(VerifyError::RateLimited(_))
    ));
}

#[tokio::test]
async fn rotation_keeps_the_type_and_listings_filter_by_type_and_environment() {
    let keyring = keyring_of(stripe_types());
    let mut ids = Vec::new();
    for key_type in PREFIXES {
        ids.push(keyring.issue(request(key_type)).await.unwrap().record.id);
    }
    let pk = keyring.get(&ids[2]).await.unwrap();
    let rotated = keyring.rotate(&pk.id, None).await.unwrap();
    assert_eq!(rotated.record.prefix.as_str(), "pk_live");
    assert_eq!(rotated.record.kind, Some(KeyKind::Publishable));
    assert!(rotated.key.expose_secret().starts_with("pk_live_"));

    let page = PageRequest::new(100);
    let names = |items: Vec<keymint::KeyRecord>| -> Vec<String> {
        let mut v: Vec<String> = items.into_iter().map(|r| r.prefix.to_string()).collect();
        v.sort();
        v
    };
    let test_keys = keyring
        .list_filtered(
            "acct_42",
            &KeyFilter::new().environment(Environment::test()),
            &page,
        )
        .await
        .unwrap();
    assert_eq!(names(test_keys.items), ["pk_test", "sk_test"]);
    let pks = keyring
        .list_filtered("acct_42", &KeyFilter::new().key_type("pk_live"), &page)
        .await
        .unwrap();
    assert_eq!(names(pks.items), ["pk_live", "pk_live"]);
    let small = keyring
        .list_filtered("acct_42", &KeyFilter::new(), &PageRequest::new(2))
        .await
        .unwrap();
    assert_eq!(small.items.len(), 2);
    assert!(small.next_after.is_some());
}

#[test]
fn scanners_and_regexes_know_every_prefix() {
    let types = stripe_types();
    let regex = regex::Regex::new(&types.regex()).unwrap();
    let text: String = PREFIXES
        .iter()
        .map(|p| {
            let key = keymint::KeyFormat::new(p).unwrap().generate().unwrap();
            format!("token = \"{}\"\n", key.expose_secret())
        })
        .collect();
    assert_eq!(regex.find_iter(&text).count(), 5);
    assert_eq!(types.scanner().scan(text.as_bytes()).count(), 5);
    let other = keymint::KeyFormat::new("xk_live")
        .unwrap()
        .generate()
        .unwrap();
    assert!(!regex.is_match(other.expose_secret()));
    assert_eq!(
        types
            .scanner()
            .scan(other.expose_secret().as_bytes())
            .count(),
        0
    );
}

#[test]
fn key_type_configuration_errors_are_typed() {
    use keymint::keyring::ConfigError;
    let build = |types: KeyTypes| {
        Keyring::builder(types, MemoryStore::new())
            .hashes(fast())
            .build()
            .map(|_| ())
    };
    let sk = || KeyType::secret("sk_live", Environment::live()).unwrap();
    assert!(matches!(
        build(KeyTypes::new(sk()).with(sk())),
        Err(KeyringError::Config(ConfigError::DuplicateKeyType(p))) if p == "sk_live"
    ));
    assert!(matches!(
        build(KeyTypes::new(sk().default_policy("nope"))),
        Err(KeyringError::Config(
            ConfigError::UndefinedKeyTypePolicy { .. }
        ))
    ));
    assert!(matches!(
        build(KeyTypes::new(
            sk().default_lifetime(TimeDelta::days(10))
                .max_lifetime(TimeDelta::days(5))
        )),
        Err(KeyringError::Config(ConfigError::KeyTypeLifetime(_)))
    ));
}
