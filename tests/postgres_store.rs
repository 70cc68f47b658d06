//! `PgStore` against a real PostgreSQL server.
//!
//! The server tests are ignored by default and FAIL (not skip) when
//! `KEYMINT_TEST_DATABASE_URL` is missing: run them with
//! `bash .ci/services.sh cargo test --all-features -- --include-ignored`, which starts a
//! throwaway server and sets the variable.
#![cfg(all(feature = "postgres", feature = "testing"))]

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use keymint::store::PgStore;
use keymint::{
    IssueRequest, KeyFormat, KeyStatus, KeyStore, Keyring, KeyringError, ManualClock, StoreError,
    VerifyContext, VerifyError,
};
use sqlx::postgres::PgPoolOptions;

const NEEDS_DB: &str = "KEYMINT_TEST_DATABASE_URL must point at a PostgreSQL database \
    (run `bash .ci/services.sh cargo test --all-features -- --include-ignored`)";

fn database_url() -> String {
    match std::env::var("KEYMINT_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("{NEEDS_DB}"),
    }
}

/// A table name of its own per test and run, so reruns on one database never collide.
fn fresh_table(tag: &str) -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let random = RandomState::new().hash_one((std::process::id(), nanos, tag));
    format!("keymint_test_{tag}_{random:016x}")
}

async fn fresh_store(tag: &str) -> PgStore {
    let store = PgStore::connect(&database_url())
        .await
        .expect("connect to KEYMINT_TEST_DATABASE_URL")
        .table(&fresh_table(tag))
        .expect("valid table name");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrate is idempotent");
    store
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    port
}

/// The public store kit, one test per guarantee, against the real server.
mod kit {
    keymint::store_conformance!(
        async { super::fresh_store("kit").await },
        #[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn last_used_batch_keeps_the_latest_time_per_id_with_nanoseconds() {
    let store = fresh_store("used").await;
    let record = keymint::testing::sample_record("owner-used");
    store.insert(&record).await.expect("insert");
    let base = DateTime::from_timestamp(1_800_000_000, 123_456_789).expect("valid time");
    let later = base + TimeDelta::seconds(30);
    // The same id twice in one batch, the later time first: the later one must win.
    store
        .record_last_used(&[(record.id.clone(), later), (record.id.clone(), base)])
        .await
        .expect("batch");
    let stored = store.get(&record.id).await.expect("get").expect("present");
    assert_eq!(stored.last_used_at, Some(later), "nanoseconds kept");
    assert_eq!(stored.version, record.version + 1, "one write, one bump");
    // An earlier time changes nothing, not even the version.
    store
        .record_last_used(&[(record.id.clone(), base)])
        .await
        .expect("batch");
    let again = store.get(&record.id).await.expect("get").expect("present");
    assert_eq!(again, stored);
    store.record_last_used(&[]).await.expect("empty batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn keyring_over_pg_store_issues_verifies_rotates_and_revokes() {
    let store = fresh_store("keyring").await;
    let clock = ManualClock::default();
    let keyring = Keyring::builder(KeyFormat::new("sk_test").expect("format"), store.clone())
        .clock(clock.clone())
        .without_cache()
        .build()
        .expect("keyring");
    let ctx = VerifyContext::new();

    let issued = keyring
        .issue(IssueRequest::new("acct_pg", "ci").scopes(["deploys:write"]))
        .await
        .expect("issue");
    let verified = keyring
        .verify(issued.key.expose_secret(), &ctx)
        .await
        .expect("verify the issued key");
    assert_eq!(verified.owner(), "acct_pg");
    assert_eq!(
        store
            .get(&issued.record.id)
            .await
            .expect("get")
            .map(|r| r.hash),
        Some(issued.record.hash.clone()),
        "the record is in PostgreSQL"
    );

    let successor = keyring
        .rotate(&issued.record.id, Some(TimeDelta::minutes(10)))
        .await
        .expect("rotate");
    keyring
        .verify(issued.key.expose_secret(), &ctx)
        .await
        .expect("old key works during the grace period");
    keyring
        .verify(successor.key.expose_secret(), &ctx)
        .await
        .expect("successor works");
    clock.advance(TimeDelta::minutes(11));
    assert!(matches!(
        keyring.verify(issued.key.expose_secret(), &ctx).await,
        Err(VerifyError::Expired)
    ));
    let old = store
        .get(&issued.record.id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(old.successor.as_ref(), Some(&successor.record.id));

    keyring
        .revoke(&successor.record.id, "laptop stolen")
        .await
        .expect("revoke");
    assert!(matches!(
        keyring.verify(successor.key.expose_secret(), &ctx).await,
        Err(VerifyError::Revoked)
    ));
    let revoked = store
        .get(&successor.record.id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(revoked.status, KeyStatus::Revoked);

    let listed = keyring
        .list_by_owner("acct_pg", &keymint::PageRequest::new(10))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn a_server_that_is_down_is_store_unavailable() {
    // Same requirement as the other server tests, so a missing setup is loud here too.
    let _ = database_url();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/keymint_test",
        closed_port()
    );

    // (`PgStore::connect` would retry for its 5 s acquire timeout; a short one suffices.)
    assert!(matches!(
        PgStore::connect("not a url").await,
        Err(StoreError::Unavailable(_))
    ));

    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(&url)
        .expect("lazy pool");
    let store = PgStore::from_pool(pool);
    let record = keymint::testing::sample_record("owner-down");
    assert!(matches!(
        store.get(&record.id).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.insert(&record).await,
        Err(StoreError::Unavailable(_))
    ));

    let keyring = Keyring::builder(KeyFormat::new("sk_test").expect("format"), store)
        .without_cache()
        .build()
        .expect("keyring");
    let key = KeyFormat::new("sk_test")
        .expect("format")
        .generate()
        .expect("randomness");
    assert!(
        matches!(
            keyring
                .verify(key.expose_secret(), &VerifyContext::new())
                .await,
            Err(VerifyError::StoreUnavailable(_))
        ),
        "verification must fail closed when the store is down"
    );
    assert!(matches!(
        keyring.issue(IssueRequest::new("acct", "down")).await,
        Err(KeyringError::Store(StoreError::Unavailable(_)))
    ));
}

#[tokio::test]
async fn debug_never_shows_the_connection_url() {
    let pool = PgPoolOptions::new()
        .connect_lazy("postgres://keymint:hunter2-secret@127.0.0.1:1/keys")
        .expect("lazy pool");
    let store = PgStore::from_pool(pool)
        .table("auth.api_keys")
        .expect("name");
    let shown = format!("{store:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("auth.api_keys"), "{shown}");
}

/// A store with a short bound, and a second pool for the transaction that holds locks.
async fn locked_fixture(tag: &str) -> (PgStore, sqlx::PgPool) {
    let store = PgStore::connect_with_timeout(&database_url(), Duration::from_secs(1))
        .await
        .expect("connect")
        .table(&fresh_table(tag))
        .expect("valid table name");
    store.migrate().await.expect("migrate");
    let admin = PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url())
        .await
        .expect("admin pool");
    (store, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn a_held_row_lock_fails_verification_closed_within_the_bound() {
    let (store, admin) = locked_fixture("rowlock").await;
    let table = store.table_name().to_owned();
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store)
        .hashes(keymint::HashPolicy::new(
            keymint::Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap();
    let issued = keyring
        .issue(IssueRequest::new("owner", "metered").remaining_uses(10))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    keyring.verify(key, &VerifyContext::new()).await.unwrap();

    // A long admin transaction holds the key's row lock: decrementing its uses must wait.
    let mut tx = admin.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE"
    )))
    .bind(issued.record.id.as_str())
    .execute(&mut *tx)
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let ctx = VerifyContext::new();
    let err = tokio::time::timeout(Duration::from_secs(10), keyring.verify(key, &ctx))
        .await
        .expect("the verification must not wait for the lock")
        .unwrap_err();
    assert!(matches!(err, VerifyError::StoreUnavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed closed only after {:?}",
        started.elapsed()
    );
    tx.rollback().await.unwrap();
    let after = keyring.verify(key, &VerifyContext::new()).await.unwrap();
    assert_eq!(
        after.remaining_uses(),
        Some(8),
        "the refused request took nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn a_held_table_lock_fails_lookups_closed_within_the_bound() {
    let (store, admin) = locked_fixture("tablelock").await;
    let table = store.table_name().to_owned();
    let record = keymint::testing::sample_record("owner-lock");
    store.insert(&record).await.unwrap();

    // What an ALTER TABLE or a schema migration on another node holds.
    let mut tx = admin.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), store.get(&record.id))
        .await
        .expect("the lookup must not wait for the lock")
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    tx.rollback().await.unwrap();
    assert_eq!(store.get(&record.id).await.unwrap(), Some(record));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn a_write_reported_failed_never_commits_later() {
    // The client's bound runs out while the statement still waits for a row lock (part of
    // the budget went to waiting for a connection): the write must be rolled back, not
    // committed once the lock is released.
    let (store, admin) = locked_fixture("latecommit").await;
    let table = store.table_name().to_owned();
    let mut record = keymint::testing::sample_record("owner-late");
    record.remaining_uses = Some(10);
    store.insert(&record).await.unwrap();

    let mut tx = admin.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE"
    )))
    .bind(record.id.as_str())
    .execute(&mut *tx)
    .await
    .unwrap();
    // Every connection of the store's pool busy for 400 ms.
    let mut held = Vec::new();
    while held.len() < 10 {
        match tokio::time::timeout(Duration::from_millis(200), store.pool().acquire()).await {
            Ok(Ok(conn)) => held.push(conn),
            _ => break,
        }
    }
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        drop(held);
    });
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        store.decrement_remaining(&record.id, 1),
    )
    .await
    .expect("bounded");
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    release.await.unwrap();
    tx.rollback().await.unwrap();
    // Whatever the abandoned statement did once the lock went, it did not commit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = store.get(&record.id).await.unwrap().unwrap();
    assert_eq!(
        stored.remaining_uses,
        Some(10),
        "a refused decrement spent a use later"
    );
}

/// A table created by the first schema version (from the exported SQL), holding a record
/// written the v1 way, is upgraded in place by `migrate()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn a_table_at_the_first_schema_version_is_upgraded_in_place() {
    let store = PgStore::connect(&database_url())
        .await
        .expect("connect")
        .table(&fresh_table("upgrade"))
        .expect("valid table name");
    assert_eq!(store.schema_version().await.expect("version"), None);
    let v1 = &store.migrations()[0];
    assert_eq!(v1.version, 1);
    for statement in &v1.statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(store.pool())
            .await
            .expect("v1 statement");
    }
    assert_eq!(store.schema_version().await.expect("version"), Some(1));

    let memory = Keyring::builder(
        KeyFormat::new("sk_test").expect("format"),
        keymint::MemoryStore::new(),
    )
    .build()
    .expect("keyring");
    let issued = memory
        .issue(IssueRequest::new("acct_v1", "old"))
        .await
        .expect("issue");
    let mut record = issued.record.clone();
    record.last_used_at = Some(record.created_at + TimeDelta::microseconds(1_234_567));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (id, owner, expires_at, version, record) VALUES ($1, $2, $3, $4, $5::jsonb)",
        store.table_name()
    )))
    .bind(record.id.as_str())
    .bind(&record.owner)
    .bind(record.attributes.expires_at)
    .bind(i64::try_from(record.version).expect("small"))
    .bind(serde_json::to_string(&record).expect("json"))
    .execute(store.pool())
    .await
    .expect("v1 row");

    store.migrate().await.expect("upgrade");
    assert_eq!(store.schema_version().await.expect("version"), Some(3));
    let column: Option<DateTime<Utc>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT last_used_at FROM {} WHERE id = $1",
        store.table_name()
    )))
    .bind(record.id.as_str())
    .fetch_one(store.pool())
    .await
    .expect("column");
    // PostgreSQL keeps microseconds (rounded, where chrono's accessor truncates).
    let exact = record.last_used_at.expect("set").timestamp_micros();
    let column = column
        .expect("backfilled from the record")
        .timestamp_micros();
    assert!((column - exact).abs() <= 1, "{column} vs {exact}");
    let keyring = Keyring::builder(KeyFormat::new("sk_test").expect("format"), store.clone())
        .without_cache()
        .build()
        .expect("keyring");
    keyring
        .verify(issued.key.expose_secret(), &VerifyContext::new())
        .await
        .expect("the v1 key verifies after the upgrade");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn two_processes_migrating_at_once_both_succeed_and_a_newer_schema_is_refused() {
    let table = fresh_table("migrate_race");
    let a = PgStore::connect(&database_url())
        .await
        .expect("connect")
        .table(&table)
        .expect("name");
    let b = PgStore::connect(&database_url())
        .await
        .expect("connect")
        .table(&table)
        .expect("name");
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.expect("first");
    rb.expect("second");
    assert_eq!(a.schema_version().await.expect("version"), Some(3));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table}_schema (version, description) VALUES (99, 'future')"
    )))
    .execute(a.pool())
    .await
    .expect("future version");
    assert!(matches!(a.migrate().await, Err(StoreError::Unavailable(_))));
    assert_eq!(a.schema_version().await.expect("version"), Some(99));
}

/// Keys issued, rotated, disabled and revoked before a restart (a new pool) verify or
/// fail exactly the same after it, and every stored record is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn keys_verify_exactly_the_same_after_a_restart() {
    let table = fresh_table("restart");
    let ctx = VerifyContext::new();
    let open = || async {
        let store = PgStore::connect(&database_url())
            .await
            .expect("connect")
            .table(&table)
            .expect("name");
        store.migrate().await.expect("migrate");
        let keyring = Keyring::builder(KeyFormat::new("sk_test").expect("format"), store.clone())
            .without_cache()
            .build()
            .expect("keyring");
        (store, keyring)
    };
    let outcome = |keyring: Keyring<PgStore>, key: String| async move {
        keyring
            .verify(&key, &VerifyContext::new())
            .await
            .map(drop)
            .map_err(|e| format!("{e:?}"))
    };
    let (keys, before, records) = {
        let (store, keyring) = open().await;
        let issue = |name: &'static str| keyring.issue(IssueRequest::new("acct_restart", name));
        let active = issue("active").await.expect("issue");
        let rotated = issue("rotated").await.expect("issue");
        let disabled = issue("disabled").await.expect("issue");
        let revoked = issue("revoked").await.expect("issue");
        let metered = keyring
            .issue(IssueRequest::new("acct_restart", "metered").remaining_uses(2))
            .await
            .expect("issue");
        let successor = keyring
            .rotate(&rotated.record.id, Some(TimeDelta::zero()))
            .await
            .expect("rotate");
        keyring.disable(&disabled.record.id).await.expect("disable");
        keyring
            .revoke(&revoked.record.id, "test")
            .await
            .expect("revoke");
        keyring
            .verify(metered.key.expose_secret(), &ctx)
            .await
            .expect("one use");
        let keys: Vec<String> = [&active, &rotated, &disabled, &revoked, &successor]
            .iter()
            .map(|k| k.key.expose_secret().to_owned())
            .collect();
        let mut before = Vec::new();
        for key in &keys {
            before.push(outcome(keyring.clone(), key.clone()).await);
        }
        keyring.flush_last_used().await.expect("flush");
        let records = keyring
            .list_by_owner("acct_restart", &keymint::PageRequest::new(100))
            .await
            .expect("list")
            .items;
        store.pool().close().await;
        (
            (keys, metered.key.expose_secret().to_owned()),
            before,
            records,
        )
    };
    assert_eq!(before[0], Ok(()));
    assert_eq!(before[4], Ok(()));
    assert!(before[1].is_err() && before[2].is_err() && before[3].is_err());

    let (_store, keyring) = open().await;
    let listed = keyring
        .list_by_owner("acct_restart", &keymint::PageRequest::new(100))
        .await
        .expect("list")
        .items;
    assert_eq!(listed, records, "nothing lost or changed");
    let mut after = Vec::new();
    for key in &keys.0 {
        after.push(outcome(keyring.clone(), key.clone()).await);
    }
    assert_eq!(after, before);
    // The metered key kept its count: one use of two left.
    assert_eq!(outcome(keyring.clone(), keys.1.clone()).await, Ok(()));
    assert!(outcome(keyring, keys.1).await.is_err());
}
