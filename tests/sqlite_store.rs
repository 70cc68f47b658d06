//! `SqliteStore` on real SQLite (compiled in: no server, so these run in a plain
//! `cargo test --all-features`): the store kit in memory and on a file, many tasks and two
//! "processes" (pools) on one file, versioned migrations, and persistence across a restart.
#![cfg(all(feature = "sqlite", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::TimeDelta;
use keymint::store::SqliteStore;
use keymint::testing::sample_record;
use keymint::{
    Decrement, IssueRequest, KeyFormat, KeyRecord, KeyStore, Keyring, MemoryStore, StoreError,
    VerifyContext, VerifyError,
};

/// A directory of its own per test, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "keymint-sqlite-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn db(&self) -> PathBuf {
        self.0.join("keys.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn file_store(path: &Path) -> SqliteStore {
    let store = SqliteStore::open(path).await.unwrap();
    store.migrate().await.unwrap();
    store
}

mod kit_in_memory {
    keymint::store_conformance!(async { keymint::store::SqliteStore::in_memory().await.unwrap() });
}

mod kit_on_a_file {
    // Each test gets its own file; the directory is left for the OS to clean (the store
    // outlives the macro's scope).
    keymint::store_conformance!(async {
        let dir = std::env::temp_dir().join(format!(
            "keymint-sqlite-kit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", keymint::testing::sample_record("x").id));
        super::file_store(&path).await
    });
}

fn keyring(store: SqliteStore) -> Keyring<SqliteStore> {
    Keyring::builder(KeyFormat::new("sk_live").unwrap(), store)
        .hashes(keymint::HashPolicy::new(
            keymint::Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .without_cache()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pools_on_one_file_take_exactly_the_uses_there_were() {
    let dir = TempDir::new("race");
    let first = file_store(&dir.db()).await;
    let second = file_store(&dir.db()).await; // another "process": its own pool
    let mut record = sample_record("racer");
    record.remaining_uses = Some(40);
    first.insert(&record).await.unwrap();

    let taken = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16 {
        let store = if task % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let (id, taken) = (record.id.clone(), taken.clone());
        tasks.spawn(async move {
            for _ in 0..5 {
                if let Decrement::Taken { .. } = store.decrement_remaining(&id, 1).await.unwrap() {
                    taken.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(taken.load(Ordering::Relaxed), 40);
    let stored = second.get(&record.id).await.unwrap().unwrap();
    assert_eq!(stored.remaining_uses, Some(0));
    // Each decrement bumped the version once.
    assert_eq!(stored.version, record.version + 40);
}

#[tokio::test]
async fn integers_beyond_what_sqlite_json_holds_round_trip_exactly() {
    let store = SqliteStore::in_memory().await.unwrap();
    let mut record = sample_record("big");
    record.remaining_uses = Some(u64::MAX - 1);
    store.insert(&record).await.unwrap();
    assert_eq!(
        store.decrement_remaining(&record.id, 1).await.unwrap(),
        Decrement::Taken {
            remaining: u64::MAX - 2
        }
    );
    let stored = store.get(&record.id).await.unwrap().unwrap();
    assert_eq!(stored.remaining_uses, Some(u64::MAX - 2));
}

/// A record as a v1 database holds it: issued by a keyring, then used once.
async fn v1_record() -> (KeyRecord, String) {
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .build()
        .unwrap();
    let issued = keyring
        .issue(IssueRequest::new("acct_1", "old").expires_in(TimeDelta::days(30)))
        .await
        .unwrap();
    let mut record = issued.record.clone();
    record.last_used_at = Some(record.created_at + TimeDelta::milliseconds(1500));
    (record, issued.key.expose_secret().to_owned())
}

#[tokio::test]
async fn a_database_at_the_first_schema_version_is_upgraded_in_place() {
    let dir = TempDir::new("upgrade");
    let store = SqliteStore::open(dir.db()).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), None);

    // Build version 1 by hand from the exported SQL, and store a record the v1 way.
    let v1 = &store.migrations()[0];
    assert_eq!(v1.version, 1);
    for statement in &v1.statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .execute(store.pool())
            .await
            .unwrap();
    }
    assert_eq!(store.schema_version().await.unwrap(), Some(1));
    let (record, key) = v1_record().await;
    sqlx::query(
        "INSERT INTO keymint_keys (id, owner, expires_at, version, record) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .bind(record.id.as_str())
    .bind(&record.owner)
    .bind(record.attributes.expires_at.map(|at| at.timestamp_micros()))
    .bind(i64::try_from(record.version).unwrap())
    .bind(serde_json::to_string(&record).unwrap())
    .execute(store.pool())
    .await
    .unwrap();

    store.migrate().await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), Some(3));
    store.migrate().await.unwrap(); // and again: nothing to do
    assert_eq!(store.schema_version().await.unwrap(), Some(3));

    // The new column was backfilled from the record (to the millisecond).
    let column: Option<i64> =
        sqlx::query_scalar("SELECT last_used_at FROM keymint_keys WHERE id = ?1")
            .bind(record.id.as_str())
            .fetch_one(store.pool())
            .await
            .unwrap();
    let exact = record.last_used_at.unwrap().timestamp_micros();
    assert!(
        (column.unwrap() - exact).abs() < 1000,
        "{column:?} vs {exact}"
    );
    // The old key verifies through the upgraded store, and the store keeps working.
    let keyring = keyring(store.clone());
    keyring.verify(&key, &VerifyContext::new()).await.unwrap();
    assert_eq!(
        store.get(&record.id).await.unwrap().unwrap().owner,
        "acct_1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_migrating_at_once_both_succeed() {
    let dir = TempDir::new("migrate-race");
    let a = SqliteStore::open(dir.db()).await.unwrap();
    let b = SqliteStore::open(dir.db()).await.unwrap();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    assert_eq!(a.schema_version().await.unwrap(), Some(3));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM keymint_keys_schema")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(rows, 3, "each version recorded once");
}

#[tokio::test]
async fn a_database_from_a_newer_keymint_is_refused_and_left_alone() {
    let dir = TempDir::new("too-new");
    let store = file_store(&dir.db()).await;
    sqlx::query("INSERT INTO keymint_keys_schema (version, description) VALUES (99, 'future')")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(matches!(
        store.migrate().await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(store.schema_version().await.unwrap(), Some(99));
}

#[tokio::test]
async fn table_names_are_validated() {
    let store = SqliteStore::in_memory().await.unwrap();
    assert!(store.clone().table("api_keys").is_ok());
    for bad in ["main.api_keys", "Keys", "k;drop table x", ""] {
        assert!(store.clone().table(bad).is_err(), "{bad}");
    }
}

/// What a key does now, reduced to what a restart must not change.
async fn outcome(keyring: &Keyring<SqliteStore>, key: &str) -> Result<(), String> {
    keyring
        .verify(key, &VerifyContext::new())
        .await
        .map(drop)
        .map_err(|e: VerifyError| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_verify_exactly_the_same_after_a_restart() {
    let dir = TempDir::new("restart");
    let (keys, before, records) = {
        let store = file_store(&dir.db()).await;
        let keyring = keyring(store.clone());
        let issue = |name: &str| keyring.issue(IssueRequest::new("acct_7", name));
        let active = issue("active").await.unwrap();
        let rotated = issue("rotated").await.unwrap();
        let disabled = issue("disabled").await.unwrap();
        let revoked = issue("revoked").await.unwrap();
        let metered = keyring
            .issue(IssueRequest::new("acct_7", "metered").remaining_uses(3))
            .await
            .unwrap();
        let successor = keyring
            .rotate(&rotated.record.id, Some(TimeDelta::zero()))
            .await
            .unwrap();
        keyring.disable(&disabled.record.id).await.unwrap();
        keyring.revoke(&revoked.record.id, "test").await.unwrap();
        let metered_key = metered.key.expose_secret().to_owned();
        keyring
            .verify(&metered_key, &VerifyContext::new())
            .await
            .unwrap();
        let keys: Vec<String> = [&active, &rotated, &disabled, &revoked, &metered, &successor]
            .iter()
            .map(|k| k.key.expose_secret().to_owned())
            .collect();
        let mut before = Vec::new();
        for key in &keys[..5] {
            before.push(outcome(&keyring, key).await);
        }
        keyring.flush_last_used().await.unwrap();
        let records = all_records(&store).await;
        store.pool().close().await;
        (keys, before, records)
    };
    assert_eq!(before[0], Ok(()));
    assert!(before[1].is_err() && before[2].is_err() && before[3].is_err());

    // A new process: a new pool on the same file.
    let store = file_store(&dir.db()).await;
    assert_eq!(
        all_records(&store).await,
        records,
        "nothing lost or changed"
    );
    let keyring = keyring(store);
    let mut after = Vec::new();
    for key in &keys[..5] {
        after.push(outcome(&keyring, key).await);
    }
    assert_eq!(after, before);
    // The metered key kept its count: of 3 uses, 2 before the restart and 1 after.
    assert!(
        outcome(&keyring, &keys[4]).await.is_err(),
        "all 3 uses spent"
    );
    assert_eq!(outcome(&keyring, &keys[5]).await, Ok(()));
}

async fn all_records(store: &SqliteStore) -> Vec<KeyRecord> {
    let mut page = keymint::store::PageRequest::new(1000);
    let mut out = Vec::new();
    loop {
        let got = store.list_by_owner("acct_7", &page).await.unwrap();
        out.extend(got.items);
        match got.next_after {
            Some(after) => page = keymint::store::PageRequest::new(1000).after(after),
            None => return out,
        }
    }
}

/// A store on a one-connection pool over `path`, whose statements wait up to 10 s for the
/// write lock: a store call that stopped waiting hands the connection back only once
/// SQLite has finished with what was sent on it, so a read after it sees the outcome.
async fn one_connection_store(path: &Path) -> SqliteStore {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(10)),
        )
        .await
        .unwrap();
    let store = SqliteStore::from_pool(pool);
    store.migrate().await.unwrap();
    store
}

/// Another process holding the database's write lock until the returned transaction ends.
async fn write_lock(path: &Path) -> sqlx::Transaction<'static, sqlx::Sqlite> {
    let other =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
            .await
            .unwrap();
    other.begin_with("BEGIN IMMEDIATE").await.unwrap()
}

/// A caller that stops waiting for a write (a request timeout, a dropped future) while it
/// queues for the write lock must not have the write land later: the caller (and, for a
/// rotation, the keyring, which then undoes its other half) was told it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_stopped_waiting_never_lands_later() {
    let dir = TempDir::new("cancelled-write");
    let store = one_connection_store(&dir.db()).await;
    let record = sample_record("acct_1");
    store.insert(&record).await.unwrap();
    let mut changed = record.clone();
    changed.attributes.name = "changed".into();
    let added = sample_record("acct_1");

    // Each sent at once (the pool's connection is idle), then waiting for the lock.
    let wait = std::time::Duration::from_millis(300);
    let lock = write_lock(&dir.db()).await;
    assert!(
        tokio::time::timeout(wait, store.update(&changed))
            .await
            .is_err()
    );
    lock.rollback().await.unwrap();
    let stored = store.get(&record.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.attributes.name.as_str(), stored.version),
        (record.attributes.name.as_str(), record.version),
        "the update its caller gave up on landed"
    );

    let lock = write_lock(&dir.db()).await;
    assert!(
        tokio::time::timeout(wait, store.insert(&added))
            .await
            .is_err()
    );
    lock.rollback().await.unwrap();
    assert_eq!(
        store.get(&added.id).await.unwrap(),
        None,
        "the insert its caller gave up on landed"
    );

    // The store still writes.
    assert_eq!(store.update(&changed).await.unwrap(), record.version + 1);
}
