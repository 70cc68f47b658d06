//! The whole key lifecycle on the in-memory store: issue, verify, expire, rotate, revoke,
//! with live and test keys on one keyring.
//!
//! Run with `cargo run --example quickstart`. Nothing else needs to be installed.
//!
//! To keep the keys in a SQLite file instead (created if missing; run it again and the
//! listing at the end grows):
//! `cargo run --example quickstart --features sqlite -- --db keys.db`
//! (or set `KEYMINT_QUICKSTART_DB=keys.db`).

use std::num::NonZeroU32;

use chrono::TimeDelta;
use keymint::ratelimit::{Policy, Quota};
use keymint::{
    Clock, Environment, IssueRequest, KeyStatus, KeyStore, KeyType, KeyTypes, Keyring, ManualClock,
    MemoryStore, Requirement, VerifyContext,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = match (args.next().as_deref(), args.next()) {
        (Some("--db"), Some(path)) => Some(path),
        (None, _) => std::env::var("KEYMINT_QUICKSTART_DB").ok(),
        _ => return Err("usage: quickstart [--db PATH]".into()),
    };
    match db {
        None => run(MemoryStore::new()).await,
        Some(path) => with_sqlite(&path).await,
    }
}

#[cfg(feature = "sqlite")]
async fn with_sqlite(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = keymint::store::SqliteStore::open(path).await?;
    store.migrate().await?;
    println!("store    SQLite file {path}");
    run(store).await
}

#[cfg(not(feature = "sqlite"))]
async fn with_sqlite(_path: &str) -> Result<(), Box<dyn std::error::Error>> {
    Err("--db needs the sqlite feature: cargo run --example quickstart --features sqlite -- --db keys.db".into())
}

async fn run<S: KeyStore>(store: S) -> Result<(), Box<dyn std::error::Error>> {
    // A manual clock lets the example jump forward in time; production uses the default
    // system clock.
    let clock = ManualClock::default();
    // Every key gets 3 requests per minute unless it names another policy.
    let three_per_minute = Policy::single(
        "default",
        Quota::per_minute(NonZeroU32::new(3).expect("3 is not zero")),
    )?;
    // Live and test keys from one keyring, as Stripe has: requests are served in live mode
    // unless they say otherwise, and a key of the other mode is refused.
    let types = KeyTypes::new(KeyType::secret("sk_live", Environment::live())?)
        .with(KeyType::secret("sk_test", Environment::test())?);
    let keyring = Keyring::builder(types, store)
        .clock(clock.clone())
        .policy(three_per_minute)
        .default_policy("default")
        .build()?;
    let ctx = VerifyContext::new();

    // Issue two keys. The plaintext is shown once; only an Argon2id hash is stored.
    let ci = keyring
        .issue(IssueRequest::new("acct_42", "CI deploy").scopes(["deploys:write"]))
        .await?;
    let trial = keyring
        .issue(IssueRequest::new("acct_42", "trial").expires_in(TimeDelta::hours(1)))
        .await?;
    println!(
        "issued   {}  (give this to the owner once: {})",
        ci.record.hint,
        ci.key.expose_secret()
    );
    println!("issued   {}  (expires in 1 h)", trial.record.hint);
    println!("stored   {:?}", ci.record.hash);

    // Verify both.
    for (name, key) in [("ci", &ci.key), ("trial", &trial.key)] {
        let verified = keyring.verify(key.expose_secret(), &ctx).await?;
        println!("verify   {name:<6} -> ok, owner {}", verified.owner());
    }

    // A test key is refused in live mode, and works in test mode.
    let sandbox = keyring
        .issue(IssueRequest::new("acct_42", "sandbox").key_type("sk_test"))
        .await?;
    let err = keyring
        .verify(sandbox.key.expose_secret(), &ctx)
        .await
        .expect_err("refused");
    println!(
        "verify   test   -> {err} (HTTP {}, {})",
        err.status_code(),
        err.code()
    );
    let test_mode = Environment::test();
    let verified = keyring
        .verify(
            sandbox.key.expose_secret(),
            &VerifyContext::new().environment(&test_mode),
        )
        .await?;
    println!("verify   test   -> ok in {} mode", verified.environment());

    // A typo is caught by the checksum, before any storage or hashing work.
    let mut typo = ci.key.expose_secret().to_owned();
    typo.replace_range(30..31, if &typo[30..31] == "x" { "y" } else { "x" });
    let err = keyring.verify(&typo, &ctx).await.expect_err("refused");
    println!("verify   typo   -> {err} (HTTP {})", err.status_code());

    // Scopes: the CI key may deploy, not read billing.
    let deploy: Requirement = "deploys:write".parse()?;
    let billing: Requirement = "billing:read or admin:*".parse()?;
    keyring
        .verify(
            ci.key.expose_secret(),
            &VerifyContext::new().require(&deploy),
        )
        .await?;
    println!("verify   ci     -> ok for `{deploy}`");
    let err = keyring
        .verify(
            ci.key.expose_secret(),
            &VerifyContext::new().require(&billing),
        )
        .await
        .expect_err("refused");
    println!("verify   ci     -> {err} (HTTP {})", err.status_code());

    // Rate limit: the CI key has used 2 of its 3 requests this minute (the refused one
    // above was charged nothing).
    let third = keyring.verify(ci.key.expose_secret(), &ctx).await?;
    if let Some(headers) = third.rate_limit_headers() {
        println!("verify   ci     -> ok, RateLimit: {}", headers.ratelimit);
    }
    let err = keyring
        .verify(ci.key.expose_secret(), &ctx)
        .await
        .expect_err("refused");
    let retry = err
        .rate_limit_headers()
        .and_then(|h| h.retry_after)
        .unwrap_or_default();
    println!(
        "verify   ci     -> {err} (HTTP {}, Retry-After: {retry})",
        err.status_code()
    );

    // Two hours later the trial key has expired.
    clock.advance(TimeDelta::hours(2));
    let err = keyring
        .verify(trial.key.expose_secret(), &ctx)
        .await
        .expect_err("refused");
    println!("verify   trial  -> {err} (HTTP {})", err.status_code());

    // Rotate the CI key: the successor works at once, the old key for a 10-minute grace.
    let successor = keyring
        .rotate(&ci.record.id, Some(TimeDelta::minutes(10)))
        .await?;
    println!("rotated  {} -> {}", ci.record.hint, successor.record.hint);
    keyring.verify(ci.key.expose_secret(), &ctx).await?;
    println!("verify   old    -> ok (grace period)");
    clock.advance(TimeDelta::minutes(10));
    let err = keyring
        .verify(ci.key.expose_secret(), &ctx)
        .await
        .expect_err("refused");
    println!("verify   old    -> {err} (grace over)");
    keyring.verify(successor.key.expose_secret(), &ctx).await?;
    println!("verify   new    -> ok");

    // Revoke the successor: it never verifies again.
    keyring
        .revoke(&successor.record.id, "laptop stolen")
        .await?;
    let err = keyring
        .verify(successor.key.expose_secret(), &ctx)
        .await
        .expect_err("refused");
    println!("verify   new    -> {err} (HTTP {})", err.status_code());

    let listed = keyring
        .list_by_owner("acct_42", &Default::default())
        .await?;
    println!("acct_42 has {} keys:", listed.items.len());
    // `status` is what was set (active, disabled, revoked); expiry and rotation are dates
    // and links, so what a key can do now is read from all three.
    let now = clock.now();
    for record in listed.items {
        let state = match record.status {
            KeyStatus::Active if record.is_expired_at(now) => "expired",
            KeyStatus::Active if record.successor.is_some() => "rotated, in its grace period",
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
            _ => "revoked",
        };
        println!("  {}  {:<9}  {state}", record.hint, record.attributes.name);
    }
    Ok(())
}
