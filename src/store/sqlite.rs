//! [`SqliteStore`]: key records in SQLite (feature `sqlite`), a persistent embedded store.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};

use super::sql::{
    self, InvalidTableName, MappingError, Migration, aggregate_usage, decode_record, fold_daily,
    fold_keys, latest_per_id, page_limit, page_of, record_json, validate_table, version_param,
};
use super::usage::{DailyUsage, KeyUsage, UsageDelta, UsageStore};
use super::{Decrement, KeyStore, Page, PageRequest, StoreError};
use crate::format::KeyId;
use crate::record::KeyRecord;

/// Key records in a SQLite database (feature `sqlite`): a file, or memory for tests.
///
/// Clones share one connection pool. Call [`migrate`](Self::migrate) once per start (it
/// applies only what is missing) before use. SQLite is compiled in (sqlx's bundled
/// build), so nothing needs installing.
///
/// One table holds every record: id, owner, expiry (Unix microseconds), last use and
/// version as columns, and the whole [`KeyRecord`] as JSON text. The database never
/// rewrites the JSON (SQLite's JSON functions would turn integers above 2^63 into
/// floating point); every change to a record is computed here and written whole:
///
/// | operation | how |
/// |---|---|
/// | `insert` | `INSERT .. ON CONFLICT (id) DO NOTHING` (no row: `Conflict`) |
/// | `update` | `UPDATE .. WHERE id = ? AND version = ?` (no row: `Conflict` or `NotFound`) |
/// | `decrement_remaining`, `record_last_used` | read and write |
/// | `list_by_owner`, `list_expiring` | keyset pagination: `WHERE .. AND id > ? ORDER BY id LIMIT n + 1` |
///
/// Every write runs inside `BEGIN IMMEDIATE`, which takes the database's write lock first,
/// so concurrent writers (tasks or processes) queue instead of interleaving.
///
/// A file database runs in WAL mode (readers never wait for the writer) with
/// `synchronous = FULL`: a write the store reported done survives a power loss. Every call
/// is bounded by the store's timeout (5 s by default); SQLite's `busy_timeout`, which
/// bounds the wait for the write lock, is four fifths of it. A write whose call timed out,
/// or whose caller stopped waiting, before its `COMMIT` was sent is rolled back, never
/// landing later; only one cut off during the `COMMIT` itself may have landed, as with any
/// database (the keyring reads a rotation back after such an error).
///
/// ```
/// use keymint::store::SqliteStore;
/// use keymint::{IssueRequest, KeyFormat, Keyring, VerifyContext};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("keymint-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let path = dir.join("keys.db");
/// let store = SqliteStore::open(&path).await?; // created if missing
/// store.migrate().await?;
/// let keyring = Keyring::builder(KeyFormat::new("sk_live")?, store).build()?;
/// let issued = keyring.issue(IssueRequest::new("acct_42", "CI deploy")).await?;
/// keyring.verify(issued.key.expose_secret(), &VerifyContext::new()).await?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    table: Arc<str>,
    sql: Arc<Statements>,
    timeout: Duration,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// The store's SQL, built once per table name.
struct Statements {
    insert: Arc<str>,
    get: Arc<str>,
    update: Arc<str>,
    exists: Arc<str>,
    write_back: Arc<str>,
    by_owner: Arc<str>,
    expiring: Arc<str>,
    unused: Arc<str>,
    usage_add: Arc<str>,
    usage_key: Arc<str>,
    usage_owner: Arc<str>,
    version_table: Arc<str>,
    current_version: Arc<str>,
    migrations: Vec<Migration>,
}

impl Statements {
    fn new(table: &str) -> Self {
        let s = |sql: String| -> Arc<str> { sql.into() };
        Self {
            insert: s(format!(
                "INSERT INTO {table} (id, owner, expires_at, last_used_at, version, record) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING"
            )),
            get: s(format!("SELECT version, record FROM {table} WHERE id = ?1")),
            update: s(format!(
                "UPDATE {table} SET owner = ?2, expires_at = ?3, last_used_at = ?4, \
                   version = ?5 + 1, record = ?6 \
                 WHERE id = ?1 AND version = ?5"
            )),
            exists: s(format!(
                "SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"
            )),
            // Inside BEGIN IMMEDIATE: the record was read under the same write lock.
            write_back: s(format!(
                "UPDATE {table} SET last_used_at = ?2, version = ?3, record = ?4 WHERE id = ?1"
            )),
            by_owner: s(format!(
                "SELECT version, record FROM {table} \
                 WHERE owner = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            )),
            expiring: s(format!(
                "SELECT version, record FROM {table} \
                 WHERE expires_at >= ?1 AND expires_at < ?2 AND id > ?3 ORDER BY id LIMIT ?4"
            )),
            // Creation times come from the record, read to the millisecond.
            unused: s(format!(
                "SELECT version, record FROM {table} \
                 WHERE (last_used_at < ?1 OR (last_used_at IS NULL AND \
                        unixepoch(json_extract(record, '$.created_at'), 'subsec') * 1000000 < ?1)) \
                   AND id > ?2 ORDER BY id LIMIT ?3"
            )),
            usage_add: s(format!(
                "INSERT INTO {table}_usage (key_id, owner, day, outcome, count) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (key_id, day, outcome) DO UPDATE SET count = count + excluded.count"
            )),
            usage_key: s(format!(
                "SELECT day, outcome, count FROM {table}_usage \
                 WHERE key_id = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day, outcome"
            )),
            usage_owner: s(format!(
                "SELECT key_id, outcome, sum(count) FROM {table}_usage \
                 WHERE owner = ?1 AND day >= ?2 AND day <= ?3 \
                 GROUP BY key_id, outcome ORDER BY key_id, outcome"
            )),
            version_table: s(version_table_sql(table)),
            current_version: s(format!("SELECT max(version) FROM {table}_schema")),
            migrations: migrations(table),
        }
    }
}

fn version_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table}_schema ( \
           version INTEGER PRIMARY KEY, \
           description TEXT NOT NULL, \
           applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))) STRICT"
    )
}

fn record_version(table: &str, version: u32, description: &str) -> String {
    format!("INSERT INTO {table}_schema (version, description) VALUES ({version}, '{description}')")
}

/// The schema, step by step. Never edit a released step: add one.
fn migrations(table: &str) -> Vec<Migration> {
    let v1 = "key table with owner and expiry indexes";
    let v2 = "last_used_at column (backfilled) and index, for usage queries";
    let v3 = "usage table: counts per key, UTC day and outcome";
    vec![
        Migration {
            version: 1,
            description: v1,
            statements: vec![
                version_table_sql(table),
                // SQLite compares TEXT bytewise (BINARY), the order of `KeyId`'s `Ord`.
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} ( \
                       id TEXT PRIMARY KEY NOT NULL, \
                       owner TEXT NOT NULL, \
                       expires_at INTEGER NULL, \
                       version INTEGER NOT NULL, \
                       record TEXT NOT NULL) STRICT"
                ),
                format!("CREATE INDEX IF NOT EXISTS {table}_owner_id_idx ON {table} (owner, id)"),
                format!(
                    "CREATE INDEX IF NOT EXISTS {table}_expires_at_id_idx \
                     ON {table} (expires_at, id) WHERE expires_at IS NOT NULL"
                ),
                record_version(table, 1, v1),
            ],
        },
        Migration {
            version: 2,
            description: v2,
            statements: vec![
                format!("ALTER TABLE {table} ADD COLUMN last_used_at INTEGER NULL"),
                // Microseconds; SQLite's date functions read the fraction to milliseconds,
                // so a backfilled time is rounded to the millisecond (it only orders later
                // writes of the same key, which carry microseconds again).
                format!(
                    "UPDATE {table} SET last_used_at = \
                       CAST(round(unixepoch(json_extract(record, '$.last_used_at'), 'subsec') * 1000000) AS INTEGER) \
                     WHERE json_type(record, '$.last_used_at') = 'text'"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {table}_last_used_at_id_idx \
                     ON {table} (last_used_at, id)"
                ),
                record_version(table, 2, v2),
            ],
        },
        Migration {
            version: 3,
            description: v3,
            statements: vec![
                // Days as YYYY-MM-DD text: they sort as dates.
                format!(
                    "CREATE TABLE IF NOT EXISTS {table}_usage ( \
                       key_id TEXT NOT NULL, \
                       owner TEXT NOT NULL, \
                       day TEXT NOT NULL, \
                       outcome TEXT NOT NULL, \
                       count INTEGER NOT NULL, \
                       PRIMARY KEY (key_id, day, outcome)) STRICT"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {table}_usage_owner_day_idx \
                     ON {table}_usage (owner, day)"
                ),
                record_version(table, 3, v3),
            ],
        },
    ]
}

/// A listing's filter value.
enum Filter<'a> {
    Text(&'a str),
    Int(i64),
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::unavailable(e)
}

/// Unix microseconds, the columns' unit (the record keeps nanoseconds).
fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn decode_row(row: &SqliteRow) -> Result<KeyRecord, StoreError> {
    let version: i64 = row.try_get(0).map_err(unavailable)?;
    let json: &str = row.try_get(1).map_err(unavailable)?;
    decode_record(version, json)
}

fn page_of_rows(rows: &[SqliteRow], limit: usize) -> Result<Page, StoreError> {
    let records = rows.iter().map(decode_row).collect::<Result<Vec<_>, _>>()?;
    Ok(page_of(records, limit))
}

impl SqliteStore {
    /// The table name used unless [`SqliteStore::table`] sets another.
    pub const DEFAULT_TABLE: &'static str = "keymint_keys";

    /// Default bound on every store call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Opens (creating if missing) the database file at `path`, in WAL mode with
    /// `synchronous = FULL`, with [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened or created.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_timeout(path, Self::DEFAULT_TIMEOUT).await
    }

    /// [`open`](Self::open) with every call bounded by `timeout` instead.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened or created.
    pub async fn open_with_timeout(
        path: impl AsRef<Path>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(timeout * 4 / 5);
        let pool = SqlitePoolOptions::new()
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        Ok(Self::with_pool(pool, timeout))
    }

    /// A private database in memory, gone when the last clone is dropped: for tests and
    /// demos (the schema is migrated already).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if SQLite cannot start.
    pub async fn in_memory() -> Result<Self, StoreError> {
        // One connection, kept for the pool's life: each connection to `:memory:` is a
        // database of its own, and it ends with its connection.
        let options = SqliteConnectOptions::new().in_memory(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Self::DEFAULT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let store = Self::with_pool(pool, Self::DEFAULT_TIMEOUT);
        store.migrate().await?;
        Ok(store)
    }

    /// A store on an existing pool (your own options), using table
    /// [`Self::DEFAULT_TABLE`] and [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT). Give its
    /// connections a `busy_timeout` shorter than the timeout.
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self::with_pool(pool, Self::DEFAULT_TIMEOUT)
    }

    fn with_pool(pool: SqlitePool, timeout: Duration) -> Self {
        Self {
            pool,
            table: Self::DEFAULT_TABLE.into(),
            sql: Arc::new(Statements::new(Self::DEFAULT_TABLE)),
            timeout,
        }
    }

    /// Uses table `name` (lowercase ASCII letters, digits and underscores, at most 48
    /// bytes) instead of [`Self::DEFAULT_TABLE`].
    ///
    /// # Errors
    /// [`InvalidTableName`] for any other name, including `schema.table`.
    pub fn table(mut self, name: &str) -> Result<Self, InvalidTableName> {
        validate_table(name)?;
        if name.contains('.') {
            return Err(InvalidTableName);
        }
        self.table = name.into();
        self.sql = Arc::new(Statements::new(name));
        Ok(self)
    }

    /// The table this store uses.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The connection pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The schema's steps as SQL for this store's table, for hosts that apply migrations
    /// with their own tool.
    pub fn migrations(&self) -> &[Migration] {
        &self.sql.migrations
    }

    /// Brings the table to the latest schema version, applying the steps it lacks in one
    /// `BEGIN IMMEDIATE` transaction: safe on every start and from several processes at
    /// once (the second waits for the write lock, then finds nothing to do).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when SQLite fails, or when the table is at a version
    /// newer than this keymint knows (nothing is changed then).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let mut tx = self.begin_write().await?;
            sqlx::query(AssertSqlSafe(self.sql.version_table.clone()))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            let current: Option<i64> =
                sqlx::query_scalar(AssertSqlSafe(self.sql.current_version.clone()))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            for migration in sql::pending(&self.sql.migrations, current)? {
                for statement in &migration.statements {
                    sqlx::query(AssertSqlSafe(statement.clone()))
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                }
            }
            tx.commit().await.map_err(unavailable)
        })
        .await
    }

    /// The table's schema version: `None` before [`migrate`](Self::migrate) first ran.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when SQLite fails.
    pub async fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        )
        .bind(format!("{}_schema", self.table))
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        if !exists {
            return Ok(None);
        }
        let current: Option<i64> =
            sqlx::query_scalar(AssertSqlSafe(self.sql.current_version.clone()))
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(current.and_then(|v| u32::try_from(v).ok()))
    }

    /// A write transaction that holds the database's write lock from its start (`BEGIN
    /// IMMEDIATE`), so concurrent writers queue instead of failing at commit. Dropped
    /// unfinished (an error, a caller that stopped waiting), it rolls back: sqlx queues the
    /// rollback on the connection, behind whatever was already sent on it.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)
    }

    /// Runs one store call within the timeout.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| StoreError::unavailable(MappingError::Timeout))?
    }

    /// One page of a listing: `sql` takes the `filters` first, then the id to start
    /// after and the row limit (one more than the page, to tell whether another follows).
    async fn keyset_page(
        &self,
        sql: &Arc<str>,
        filters: &[Filter<'_>],
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        let limit = page_limit(page);
        self.bounded(async {
            let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
            for filter in filters {
                query = match *filter {
                    Filter::Text(text) => query.bind(text),
                    Filter::Int(n) => query.bind(n),
                };
            }
            let rows = query
                .bind(page.after.as_ref().map_or("", KeyId::as_str))
                .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            page_of_rows(&rows, limit)
        })
        .await
    }

    async fn read_in(
        &self,
        conn: &mut SqliteConnection,
        id: &KeyId,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(self.sql.get.clone()))
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(decode_row).transpose()
    }

    /// Writes `record` back with the next version (under the write lock already held).
    async fn write_back_in(
        &self,
        conn: &mut SqliteConnection,
        mut record: KeyRecord,
    ) -> Result<(), StoreError> {
        record.version = record
            .version
            .checked_add(1)
            .ok_or_else(|| StoreError::unavailable(MappingError::VersionRange))?;
        let version = version_param(record.version)?;
        sqlx::query(AssertSqlSafe(self.sql.write_back.clone()))
            .bind(record.id.as_str())
            .bind(record.last_used_at.map(micros))
            .bind(version)
            .bind(record_json(&record)?)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl KeyStore for SqliteStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let json = record_json(record)?;
        self.bounded(async {
            // In a transaction of its own, like every write: a caller that stops waiting
            // before the COMMIT is sent leaves a rollback behind, not a write that lands
            // after it was reported failed.
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(AssertSqlSafe(self.sql.insert.clone()))
                .bind(record.id.as_str())
                .bind(record.owner.as_str())
                .bind(record.attributes.expires_at.map(micros))
                .bind(record.last_used_at.map(micros))
                .bind(version_param(record.version)?)
                .bind(json)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict);
            }
            tx.commit().await.map_err(unavailable)
        })
        .await
    }

    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(AssertSqlSafe(self.sql.get.clone()))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
            row.as_ref().map(decode_row).transpose()
        })
        .await
    }

    async fn update(&self, record: &KeyRecord) -> Result<u64, StoreError> {
        let expected = version_param(record.version)?;
        let new_version = record
            .version
            .checked_add(1)
            .ok_or_else(|| StoreError::unavailable(MappingError::VersionRange))?;
        version_param(new_version)?;
        // The JSON carries the version it will have, so the database never edits it.
        let mut stored = record.clone();
        stored.version = new_version;
        let json = record_json(&stored)?;
        self.bounded(async {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(AssertSqlSafe(self.sql.update.clone()))
                .bind(record.id.as_str())
                .bind(record.owner.as_str())
                .bind(record.attributes.expires_at.map(micros))
                .bind(record.last_used_at.map(micros))
                .bind(expected)
                .bind(json)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            if done.rows_affected() == 1 {
                tx.commit().await.map_err(unavailable)?;
                return Ok(new_version);
            }
            // Records are never deleted: an id that exists now existed at the update.
            let exists: bool = sqlx::query_scalar(AssertSqlSafe(self.sql.exists.clone()))
                .bind(record.id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
            Err(if exists {
                StoreError::Conflict
            } else {
                StoreError::NotFound
            })
        })
        .await
    }

    async fn decrement_remaining(&self, id: &KeyId, uses: u64) -> Result<Decrement, StoreError> {
        self.bounded(async {
            let mut tx = self.begin_write().await?;
            let mut record = self
                .read_in(&mut tx, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            let Some(remaining) = record.remaining_uses else {
                return Ok(Decrement::Unlimited);
            };
            if remaining < uses {
                return Ok(Decrement::Exhausted { remaining });
            }
            let left = remaining - uses;
            record.remaining_uses = Some(left);
            self.write_back_in(&mut tx, record).await?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Decrement::Taken { remaining: left })
        })
        .await
    }

    async fn record_last_used(&self, batch: &[(KeyId, DateTime<Utc>)]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let latest = latest_per_id(batch);
        self.bounded(async {
            let mut tx = self.begin_write().await?;
            for (id, at) in latest {
                let Some(mut record) = self.read_in(&mut tx, id).await? else {
                    continue;
                };
                // Only forward: a delayed batch must not move a later time back.
                if record.last_used_at.is_some_and(|seen| seen >= at) {
                    continue;
                }
                record.last_used_at = Some(at);
                self.write_back_in(&mut tx, record).await?;
            }
            tx.commit().await.map_err(unavailable)
        })
        .await
    }

    async fn list_by_owner(&self, owner: &str, page: &PageRequest) -> Result<Page, StoreError> {
        self.keyset_page(&self.sql.by_owner, &[Filter::Text(owner)], page)
            .await
    }

    async fn list_expiring(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        let window = [Filter::Int(micros(from)), Filter::Int(micros(to))];
        self.keyset_page(&self.sql.expiring, &window, page).await
    }

    async fn list_unused_since(
        &self,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        self.keyset_page(&self.sql.unused, &[Filter::Int(micros(before))], page)
            .await
    }
}

fn parse_day(text: &str) -> Result<chrono::NaiveDate, StoreError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| StoreError::unavailable(MappingError::UsageRow))
}

/// Usage counts in the `<table>_usage` table (schema version 3).
impl UsageStore for SqliteStore {
    async fn add(&self, batch: &[UsageDelta]) -> Result<(), StoreError> {
        let rows = aggregate_usage(batch);
        if rows.is_empty() {
            return Ok(());
        }
        self.bounded(async {
            let mut tx = self.begin_write().await?;
            for (key, owner, day, outcome, count) in rows {
                sqlx::query(AssertSqlSafe(self.sql.usage_add.clone()))
                    .bind(key.as_str())
                    .bind(owner)
                    .bind(day.to_string())
                    .bind(outcome)
                    .bind(count)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            tx.commit().await.map_err(unavailable)
        })
        .await
    }

    async fn key_usage(
        &self,
        key_id: &KeyId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        self.bounded(async {
            let rows: Vec<(String, String, i64)> =
                sqlx::query_as(AssertSqlSafe(self.sql.usage_key.clone()))
                    .bind(key_id.as_str())
                    .bind(from.to_string())
                    .bind(to.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
            let rows = rows
                .into_iter()
                .map(|(day, outcome, count)| Ok((parse_day(&day)?, outcome, count)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(fold_daily(rows))
        })
        .await
    }

    async fn owner_usage(
        &self,
        owner: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<KeyUsage>, StoreError> {
        self.bounded(async {
            let rows: Vec<(String, String, i64)> =
                sqlx::query_as(AssertSqlSafe(self.sql.usage_owner.clone()))
                    .bind(owner)
                    .bind(from.to_string())
                    .bind(to.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
            fold_keys(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_records_its_own_version_last() {
        for (i, step) in migrations("keymint_keys").iter().enumerate() {
            assert_eq!(step.version as usize, i + 1);
            let last = step.statements.last().unwrap();
            assert!(
                last.starts_with("INSERT INTO keymint_keys_schema")
                    && last.contains(&format!("VALUES ({},", step.version)),
                "{last}"
            );
        }
    }
}
