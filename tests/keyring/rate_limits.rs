//! Rate limits and quotas as the keyring applies them.

use std::num::NonZeroU32;

use keymint::ratelimit::{CalendarQuota, MemoryLimiter, Policy};
use keymint::testing::{FaultyStore, StoreOp};
use keymint::{
    IssueRequest, KeyFormat, KeyUpdate, Keyring, KeyringBuilder, KeyringError, ManualClock,
    MemoryStore, Quota, Requirement, TimeDelta, Utc, VerifyContext, VerifyError,
};

use crate::support::{Store, ctx, fast_hashes, wrong_secret};

type Limited = Keyring<Store, MemoryLimiter<ManualClock>>;

fn per_minute(name: &str, n: u32) -> Policy {
    Policy::single(name, Quota::per_minute(NonZeroU32::new(n).unwrap())).unwrap()
}

/// A keyring on a manual clock with two policies, `default` (2 a minute, the default) and
/// `generous` (100 a minute).
fn limited(
    configure: impl FnOnce(
        KeyringBuilder<Store, MemoryLimiter<ManualClock>>,
    ) -> KeyringBuilder<Store, MemoryLimiter<ManualClock>>,
) -> (Limited, Store, ManualClock) {
    let store = FaultyStore::new(MemoryStore::new());
    let clock = ManualClock::default();
    let builder = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
        .hashes(fast_hashes())
        .clock(clock.clone())
        .rate_limiter(MemoryLimiter::with_clock(clock.clone()))
        .policy(per_minute("default", 2))
        .policy(per_minute("generous", 100))
        .default_policy("default");
    (configure(builder).build().unwrap(), store, clock)
}

#[tokio::test]
async fn rotation_hands_the_rate_limit_budget_on_instead_of_resetting_it() {
    let clock = ManualClock::new(
        "2026-03-10T12:00:00Z"
            .parse::<keymint::DateTime<Utc>>()
            .unwrap(),
    );
    let monthly = Policy::single("monthly", CalendarQuota::per_utc_month(NonZeroU32::MIN)).unwrap();
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(fast_hashes())
        .clock(clock.clone())
        .rate_limiter(MemoryLimiter::with_clock(clock.clone()))
        .policy(monthly)
        .default_policy("monthly")
        .build()
        .unwrap();
    let issued = keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();

    let successor = keyring.rotate(&issued.record.id, None).await.unwrap();
    // The month's one request is spent: neither the new key nor the old one (in its grace
    // period) gets a fresh budget.
    for key in [&successor.key, &issued.key] {
        let err = keyring
            .verify(key.expose_secret(), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::RateLimited(_)), "{err:?}");
    }
    assert_eq!(successor.record.lineage(), &issued.record.id);

    clock.advance(TimeDelta::days(25)); // into April
    keyring
        .verify(successor.key.expose_secret(), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_default_limiter_follows_the_keyrings_clock() {
    let clock = ManualClock::default();
    let policy = Policy::single(
        "minute",
        keymint::Quota::per_minute(NonZeroU32::new(1).unwrap()),
    )
    .unwrap();
    // No `rate_limiter(..)`: the in-memory default must run on the manual clock too.
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(fast_hashes())
        .clock(clock.clone())
        .policy(policy)
        .default_policy("minute")
        .build()
        .unwrap();
    let key = keyring
        .issue(IssueRequest::new("a", "n"))
        .await
        .unwrap()
        .key;
    keyring.verify(key.expose_secret(), &ctx()).await.unwrap();
    assert!(matches!(
        keyring.verify(key.expose_secret(), &ctx()).await,
        Err(VerifyError::RateLimited(_))
    ));
    clock.advance(TimeDelta::minutes(1));
    keyring.verify(key.expose_secret(), &ctx()).await.unwrap();
}

#[test]
fn configuration_errors_name_the_setting() {
    use keymint::keyring::ConfigError;
    type Builder = keymint::KeyringBuilder<MemoryStore>;
    type Case = (fn(Builder) -> Builder, ConfigError);
    let build = |configure: fn(Builder) -> Builder| {
        configure(
            Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
                .hashes(fast_hashes()),
        )
        .build()
        .map(|_| ())
    };
    let cases: [Case; 5] = [
        (
            |b| b.default_policy("nope"),
            ConfigError::UndefinedDefaultPolicy("nope".into()),
        ),
        (|b| b.cache(TimeDelta::zero(), 10), ConfigError::CacheTtl),
        (
            |b| b.cache(TimeDelta::seconds(1), 0),
            ConfigError::CacheCapacity,
        ),
        (
            |b| b.rotation_grace(TimeDelta::days(400)),
            ConfigError::RotationGrace,
        ),
        (
            |b| b.uncached_concurrency(0, 1),
            ConfigError::UncachedConcurrency,
        ),
    ];
    for (configure, expected) in cases {
        match build(configure) {
            Err(KeyringError::Config(found)) => assert_eq!(found, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn default_policy_limits_keys_and_reports_retry_after() {
    let (keyring, _, clock) = limited(|b| b);
    let issued = keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(10))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let first = keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(first.rate_limit().map(|d| d.remaining), Some(1));
    let headers = first.rate_limit_headers().unwrap();
    assert_eq!(headers.policy, r#""default";q=2;w=60"#);
    keyring.verify(key, &ctx()).await.unwrap();

    let err = keyring.verify(key, &ctx()).await.unwrap_err();
    let VerifyError::RateLimited(denial) = &err else {
        panic!("expected rate limited, got {err:?}")
    };
    assert_eq!(err.status_code(), 429);
    assert_eq!(
        denial.retry_after(),
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(
        err.rate_limit_headers().unwrap().retry_after.as_deref(),
        Some("30")
    );
    assert_eq!(
        keyring.get(&issued.record.id).await.unwrap().remaining_uses,
        Some(8),
        "a rate-limited request must not spend a use"
    );

    clock.advance(TimeDelta::seconds(30));
    keyring.verify(key, &ctx()).await.unwrap();
}

#[tokio::test]
async fn keys_may_name_their_own_policy_and_cost() {
    let (keyring, _, _) = limited(|b| b);
    let issued = keyring
        .issue(IssueRequest::new("a", "n").rate_limit_policy("generous"))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let d = keyring
        .verify(key, &VerifyContext::new().cost(10))
        .await
        .unwrap();
    assert_eq!(d.rate_limit().map(|d| d.remaining), Some(90));
    let peek = keyring
        .verify(key, &VerifyContext::new().cost(0))
        .await
        .unwrap();
    assert_eq!(
        peek.rate_limit().map(|d| d.remaining),
        Some(90),
        "cost 0 must not charge"
    );
    assert!(matches!(
        keyring
            .issue(IssueRequest::new("a", "n").rate_limit_policy("nope"))
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
    assert!(matches!(
        keyring
            .update(
                &issued.record.id,
                KeyUpdate::new().rate_limit_policy(Some("nope".into()))
            )
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn a_request_denied_for_scope_is_not_charged_to_the_rate_limit() {
    let (keyring, _, _) = limited(|b| b);
    let issued = keyring
        .issue(IssueRequest::new("a", "n").scopes(["users:read"]))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let admin: Requirement = "admin:*".parse().unwrap();
    for _ in 0..5 {
        let err = keyring
            .verify(key, &VerifyContext::new().require(&admin))
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::InsufficientScope(_)));
    }
    keyring.verify(key, &ctx()).await.unwrap();
    keyring.verify(key, &ctx()).await.unwrap();
}

#[tokio::test]
async fn failed_attempts_are_throttled_per_client_before_any_lookup() {
    let (keyring, store, clock) = limited(|b| b.failed_attempt_throttle(per_minute("failures", 3)));
    let issued = keyring
        .issue(IssueRequest::new("a", "n").rate_limit_policy("generous"))
        .await
        .unwrap();
    let uncached = keyring
        .issue(IssueRequest::new("a", "second").rate_limit_policy("generous"))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let attacker = VerifyContext::new().client_ip("198.51.100.7".parse().unwrap());
    let neighbour = VerifyContext::new().client_ip("198.51.100.8".parse().unwrap());

    let wrong = wrong_secret(key);
    assert!(matches!(
        keyring.verify(&wrong, &attacker).await,
        Err(VerifyError::Invalid)
    ));
    assert!(matches!(
        keyring.verify("garbage", &attacker).await,
        Err(VerifyError::Malformed(_))
    ));
    // Successful verifications from the same address are not failures.
    keyring.verify(key, &attacker).await.unwrap();

    let unknown = keyring.format().generate().unwrap();
    assert!(matches!(
        keyring.verify(unknown.expose_secret(), &attacker).await,
        Err(VerifyError::Invalid)
    ));
    let reads = store.calls(StoreOp::Get);
    let err = keyring
        .verify(uncached.key.expose_secret(), &attacker)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Throttled(_)), "{err:?}");
    assert_eq!(err.status_code(), 429);
    assert_eq!(
        store.calls(StoreOp::Get),
        reads,
        "a throttled client must not reach the store"
    );
    // A key already in the cache costs no lookup and no hash: it passes the throttle,
    // so one attacker behind a shared address cannot lock verified keys out.
    keyring.verify(key, &attacker).await.unwrap();
    assert_eq!(store.calls(StoreOp::Get), reads);
    keyring
        .verify(uncached.key.expose_secret(), &neighbour)
        .await
        .unwrap();

    clock.advance(TimeDelta::seconds(20));
    keyring.verify(key, &attacker).await.unwrap();
}

#[tokio::test]
async fn an_undefined_default_policy_is_a_configuration_error() {
    let result = Keyring::builder(KeyFormat::new("a").unwrap(), MemoryStore::new())
        .default_policy("missing")
        .build();
    assert!(matches!(result, Err(KeyringError::Config(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_burst_cannot_pass_the_failed_attempt_throttle_together() {
    use keymint::testing::Fault;
    let store = FaultyStore::new(MemoryStore::new());
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
        .hashes(fast_hashes())
        .uncached_concurrency(1, 1000)
        .failed_attempt_throttle(
            Policy::single("fails", Quota::per_minute(NonZeroU32::new(3).unwrap())).unwrap(),
        )
        .build()
        .unwrap();
    // The first lookup holds, so every other attempt is in flight at the same time.
    store.inject(StoreOp::Get, Fault::Pause);
    let attacker: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let keyring = keyring.clone();
        let forged = keyring.format().generate().unwrap();
        attempts.spawn(async move {
            let ctx = VerifyContext::new().client_ip(attacker);
            keyring
                .verify(forged.expose_secret(), &ctx)
                .await
                .map(|_| ())
        });
    }
    store.wait_paused().await;
    store.release();
    let mut throttled = 0;
    while let Some(result) = attempts.join_next().await {
        if matches!(result.unwrap(), Err(VerifyError::Throttled(_))) {
            throttled += 1;
        }
    }
    assert_eq!(throttled, 47, "only the budget of 3 may reach the store");
    assert_eq!(store.calls(StoreOp::Get), 3);
}

/// Starts `verify` on `key`, drops it while its store read is paused (a caller that gave up:
/// an HTTP timeout, a disconnect), then lets the detached work finish and waits for it by
/// queueing a verification from another client behind it on the one uncached slot.
async fn verify_cancelled_mid_lookup(
    keyring: &Limited,
    store: &Store,
    key: &str,
    client: &VerifyContext<'_>,
    bystander_key: &str,
) {
    store.inject(StoreOp::Get, keymint::testing::Fault::Pause);
    tokio::select! {
        result = keyring.verify(key, client) => panic!("the paused lookup finished: {result:?}"),
        () = store.wait_paused() => {}
    }
    store.release();
    let bystander = VerifyContext::new().client_ip("192.0.2.200".parse().unwrap());
    keyring.verify(bystander_key, &bystander).await.unwrap();
}

#[tokio::test]
async fn a_cancelled_verification_is_charged_to_the_throttle_by_its_outcome() {
    let (keyring, store, _clock) = limited(|b| {
        b.failed_attempt_throttle(per_minute("failures", 1))
            .uncached_concurrency(1, 8)
            .without_cache()
    });
    let issue = |name: &'static str| {
        let keyring = keyring.clone();
        async move {
            keyring
                .issue(IssueRequest::new("a", name).rate_limit_policy("generous"))
                .await
                .unwrap()
        }
    };
    let valid = issue("valid").await;
    let bystander = issue("bystander").await;
    let client = VerifyContext::new().client_ip("198.51.100.7".parse().unwrap());

    // A valid key whose caller gave up still authenticated: no failed attempt is kept.
    verify_cancelled_mid_lookup(
        &keyring,
        &store,
        valid.key.expose_secret(),
        &client,
        bystander.key.expose_secret(),
    )
    .await;
    let wrong = wrong_secret(valid.key.expose_secret());
    assert!(
        matches!(
            keyring.verify(&wrong, &client).await,
            Err(VerifyError::Invalid)
        ),
        "the one failed attempt allowed is still there"
    );
    assert!(matches!(
        keyring.verify(&wrong, &client).await,
        Err(VerifyError::Throttled(_))
    ));
}

#[tokio::test]
async fn a_forged_key_cannot_escape_the_throttle_by_cancelling() {
    let (keyring, store, _clock) = limited(|b| {
        b.failed_attempt_throttle(per_minute("failures", 1))
            .uncached_concurrency(1, 8)
            .without_cache()
    });
    let valid = keyring
        .issue(IssueRequest::new("a", "valid").rate_limit_policy("generous"))
        .await
        .unwrap();
    let bystander = keyring
        .issue(IssueRequest::new("a", "bystander").rate_limit_policy("generous"))
        .await
        .unwrap();
    let client = VerifyContext::new().client_ip("198.51.100.7".parse().unwrap());

    // The forged attempt's caller gave up, but its hash ran and failed: it counts.
    let wrong = wrong_secret(valid.key.expose_secret());
    verify_cancelled_mid_lookup(
        &keyring,
        &store,
        &wrong,
        &client,
        bystander.key.expose_secret(),
    )
    .await;
    let err = keyring
        .verify(valid.key.expose_secret(), &client)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Throttled(_)), "{err:?}");
}
