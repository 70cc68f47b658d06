//! [`PgStore`]: key records in PostgreSQL (feature `postgres`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row};

use super::sql::{
    self, InvalidTableName, MappingError, Migration, aggregate_usage, decode_record, fold_daily,
    fold_keys, json_time, latest_per_id, page_limit, page_of, parse_remaining, record_json,
    validate_table, version_param,
};
use super::usage::{DailyUsage, KeyUsage, UsageDelta, UsageStore};
use super::{Decrement, KeyStore, Page, PageRequest};
use crate::format::KeyId;
use crate::record::KeyRecord;
use crate::store::StoreError;

/// How often `decrement_remaining` retries when a concurrent write raised the remaining
/// uses between its update and its follow-up read.
const DECREMENT_ATTEMPTS: usize = 4;

/// Key records in a PostgreSQL table (feature `postgres`).
///
/// Clones share one connection pool. Call [`migrate`](Self::migrate) once (it is
/// idempotent) before use.
///
/// One table holds every record: the id, owner, expiry and version as columns (for the
/// primary key, the listings' indexes and compare-and-set) and the whole [`KeyRecord`] as
/// JSONB. Every guarantee of the [`KeyStore`] contract is one SQL statement (writes inside
/// a transaction of their own), so it holds across any number of processes sharing the
/// database:
///
/// | operation | statement |
/// |---|---|
/// | `insert` | `INSERT .. ON CONFLICT (id) DO NOTHING` (no row: `Conflict`) |
/// | `update` | `UPDATE .. WHERE id = $1 AND version = $2 RETURNING version`, with an existence check in the same statement (`Conflict` vs `NotFound`) |
/// | `decrement_remaining` | `UPDATE .. WHERE remaining_uses >= $uses` rewriting the JSON field with `jsonb_set` |
/// | `record_last_used` | one `UPDATE .. FROM UNNEST($ids, $times)` for the whole batch, only moving times forward |
/// | `list_by_owner`, `list_expiring` | keyset pagination: `WHERE .. AND id > $after ORDER BY id LIMIT n + 1` |
///
/// Ids and owners use the `"C"` collation, so pages come in the same byte order as
/// [`KeyId`]'s `Ord`. Timestamps compared by the database (`expires_at`, `last_used_at`) have
/// PostgreSQL's microsecond resolution; the record itself keeps chrono's nanoseconds.
///
/// ```no_run
/// use keymint::store::PgStore;
/// use keymint::{IssueRequest, KeyFormat, Keyring};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PgStore::connect("postgres://app@127.0.0.1/app").await?.table("api_keys")?;
/// store.migrate().await?; // applies the schema versions the table lacks
/// let keyring = Keyring::builder(KeyFormat::new("sk_live")?, store).build()?;
/// let issued = keyring.issue(IssueRequest::new("acct_42", "CI deploy")).await?;
/// # Ok(()) }
/// ```
///
/// The connection URL (which may hold a password) is never kept or printed: `PgStore`'s
/// `Debug` shows only the table name. TLS is not enabled in this build of sqlx (the
/// `postgres` feature pulls no TLS stack); reach remote servers through a TLS-terminating
/// proxy or build your own [`PgPool`] with sqlx's TLS features and pass it to
/// [`PgStore::from_pool`].
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    table: Arc<str>,
    sql: Arc<Statements>,
    timeout: Duration,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's options hold the connection URL's password: never print them.
        f.debug_struct("PgStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// The store's SQL, built once per table name.
struct Statements {
    insert: Arc<str>,
    get: Arc<str>,
    update: Arc<str>,
    decrement: Arc<str>,
    remaining: Arc<str>,
    last_used: Arc<str>,
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
                 VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (id) DO NOTHING"
            )),
            get: s(format!(
                "SELECT version, record::text FROM {table} WHERE id = $1"
            )),
            // One statement: the compare-and-set, and (from the same snapshot) whether the id
            // exists at all, to tell a stale version from an unknown id.
            update: s(format!(
                "WITH upd AS ( \
                   UPDATE {table} SET \
                     owner = $2, expires_at = $3, last_used_at = $4, version = version + 1, \
                     record = jsonb_set($6::jsonb, '{{version}}', to_jsonb(version + 1)) \
                   WHERE id = $1 AND version = $5 RETURNING version) \
                 SELECT (SELECT version FROM upd), EXISTS (SELECT 1 FROM {table} WHERE id = $1)"
            )),
            // Row locking re-checks the WHERE clause against the latest committed row, so
            // concurrent decrements never take more than there is.
            decrement: s(format!(
                "UPDATE {table} SET \
                   version = version + 1, \
                   record = jsonb_set(jsonb_set(record, '{{remaining_uses}}', \
                       to_jsonb((record->>'remaining_uses')::numeric - $2::numeric)), \
                     '{{version}}', to_jsonb(version + 1)) \
                 WHERE id = $1 AND jsonb_typeof(record->'remaining_uses') = 'number' \
                   AND (record->>'remaining_uses')::numeric >= $2::numeric \
                 RETURNING record->>'remaining_uses'"
            )),
            remaining: s(format!(
                "SELECT record->'remaining_uses' IS NULL OR record->'remaining_uses' = 'null'::jsonb, \
                   record->>'remaining_uses' FROM {table} WHERE id = $1"
            )),
            // `$3` holds each time as chrono serialises it, so the JSON keeps nanoseconds
            // while the column (and the comparison) has the timestamptz in `$2`.
            last_used: s(format!(
                "UPDATE {table} AS k SET \
                   version = k.version + 1, last_used_at = b.at, \
                   record = jsonb_set(jsonb_set(k.record, '{{last_used_at}}', to_jsonb(b.at_text)), \
                     '{{version}}', to_jsonb(k.version + 1)) \
                 FROM UNNEST($1::text[], $2::timestamptz[], $3::text[]) AS b(id, at, at_text) \
                 WHERE k.id = b.id AND (k.last_used_at IS NULL OR k.last_used_at < b.at)"
            )),
            by_owner: s(format!(
                "SELECT version, record::text FROM {table} \
                 WHERE owner = $1 AND id > $2 ORDER BY id LIMIT $3"
            )),
            expiring: s(format!(
                "SELECT version, record::text FROM {table} \
                 WHERE expires_at >= $1 AND expires_at < $2 AND id > $3 ORDER BY id LIMIT $4"
            )),
            unused: s(format!(
                "SELECT version, record::text FROM {table} \
                 WHERE (last_used_at < $1 OR (last_used_at IS NULL \
                        AND (record->>'created_at')::timestamptz < $1)) \
                   AND id > $2 ORDER BY id LIMIT $3"
            )),
            // One statement for the batch; rows were summed first, so none repeats.
            usage_add: s(format!(
                "INSERT INTO {table}_usage AS u (key_id, owner, day, outcome, count) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::date[], $4::text[], $5::bigint[]) \
                 ON CONFLICT (key_id, day, outcome) DO UPDATE SET count = u.count + EXCLUDED.count"
            )),
            usage_key: s(format!(
                "SELECT day, outcome, count FROM {table}_usage \
                 WHERE key_id = $1 AND day >= $2 AND day <= $3 ORDER BY day, outcome"
            )),
            usage_owner: s(format!(
                "SELECT key_id, outcome, sum(count)::bigint FROM {table}_usage \
                 WHERE owner = $1 AND day >= $2 AND day <= $3 \
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
           applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
}

fn record_version(table: &str, version: u32, description: &str) -> String {
    format!("INSERT INTO {table}_schema (version, description) VALUES ({version}, '{description}')")
}

/// The schema, step by step. Never edit a released step: add one.
fn migrations(table: &str) -> Vec<Migration> {
    let index_base = table.rsplit('.').next().unwrap_or(table);
    let v1 = "key table with owner and expiry indexes";
    let v2 = "last_used_at column (backfilled) and index, for usage queries";
    let v3 = "usage table: counts per key, UTC day and outcome";
    vec![
        Migration {
            version: 1,
            description: v1,
            statements: vec![
                version_table_sql(table),
                // IF NOT EXISTS: a table made by keymint before versioned migrations is
                // adopted as version 1.
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} ( \
                       id TEXT COLLATE \"C\" PRIMARY KEY, \
                       owner TEXT COLLATE \"C\" NOT NULL, \
                       expires_at TIMESTAMPTZ NULL, \
                       version BIGINT NOT NULL, \
                       record JSONB NOT NULL)"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {index_base}_owner_id_idx ON {table} (owner, id)"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {index_base}_expires_at_id_idx \
                     ON {table} (expires_at, id) WHERE expires_at IS NOT NULL"
                ),
                record_version(table, 1, v1),
            ],
        },
        Migration {
            version: 2,
            description: v2,
            statements: vec![
                format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS last_used_at TIMESTAMPTZ NULL"
                ),
                format!(
                    "UPDATE {table} SET last_used_at = (record->>'last_used_at')::timestamptz \
                     WHERE jsonb_typeof(record->'last_used_at') = 'string'"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {index_base}_last_used_at_id_idx \
                     ON {table} (last_used_at, id)"
                ),
                record_version(table, 2, v2),
            ],
        },
        Migration {
            version: 3,
            description: v3,
            statements: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {table}_usage ( \
                       key_id TEXT COLLATE \"C\" NOT NULL, \
                       owner TEXT COLLATE \"C\" NOT NULL, \
                       day DATE NOT NULL, \
                       outcome TEXT NOT NULL, \
                       count BIGINT NOT NULL, \
                       PRIMARY KEY (key_id, day, outcome))"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS {index_base}_u_owner_day \
                     ON {table}_usage (owner, day)"
                ),
                record_version(table, 3, v3),
            ],
        },
    ]
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::unavailable(e)
}

fn decode_row(row: &PgRow) -> Result<KeyRecord, StoreError> {
    let version: i64 = row.try_get(0).map_err(unavailable)?;
    let json: &str = row.try_get(1).map_err(unavailable)?;
    decode_record(version, json)
}

fn page_of_rows(rows: &[PgRow], limit: usize) -> Result<Page, StoreError> {
    let records = rows.iter().map(decode_row).collect::<Result<Vec<_>, _>>()?;
    Ok(page_of(records, limit))
}

impl PgStore {
    /// The table name used unless [`PgStore::table`] sets another.
    pub const DEFAULT_TABLE: &'static str = "keymint_keys";

    /// Default bound on every store call, from asking for a connection to the last row
    /// (see [`connect_with_timeout`](Self::connect_with_timeout)).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Connects a pool to `url` (`postgres://user:password@host:port/database`), using table
    /// [`Self::DEFAULT_TABLE`] and [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT): the same as
    /// [`connect_with_timeout`](Self::connect_with_timeout)`(url, DEFAULT_TIMEOUT)`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL is invalid or no connection could be opened
    /// within the timeout.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_timeout(url, Self::DEFAULT_TIMEOUT).await
    }

    /// Connects a pool to `url` whose every store call fails closed with
    /// [`StoreError::Unavailable`] within `timeout`, whatever holds it up: no free
    /// connection, a row or table lock held by another transaction (a long admin
    /// transaction, a schema change elsewhere), or a connection that silently stopped
    /// answering.
    ///
    /// Writes run inside a transaction, so a write the store reports as failed never
    /// commits later, when the lock it waited for is released (a refused verification must
    /// not spend a use after the fact): the transaction is rolled back when the call gives
    /// up. Only a `COMMIT` whose reply is lost stays ambiguous, as with any database (the
    /// keyring handles that case for rotations). Each connection also carries a
    /// `statement_timeout` of four fifths of `timeout`, so the server abandons work the
    /// client no longer waits for. For other pool settings build
    /// a pool with `sqlx::postgres::PgPoolOptions` and use [`from_pool`](Self::from_pool).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the URL is invalid or no connection could be opened
    /// within the timeout.
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let server_ms = (timeout.as_millis() * 4 / 5).max(1);
        let options = PgConnectOptions::from_str(url)
            .map_err(unavailable)?
            .options([("statement_timeout", format!("{server_ms}ms"))]);
        let pool = PgPoolOptions::new()
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let mut store = Self::from_pool(pool);
        store.timeout = timeout;
        Ok(store)
    }

    /// A store on an existing pool (for your own pool options or TLS), using table
    /// [`Self::DEFAULT_TABLE`]. Calls are bounded by
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT) on the client side; give the pool's
    /// connections a shorter server-side `statement_timeout`
    /// (`PgConnectOptions::options([("statement_timeout", "4s")])`), so that the server
    /// cancels what the client gave up on.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            table: Self::DEFAULT_TABLE.into(),
            sql: Arc::new(Statements::new(Self::DEFAULT_TABLE)),
            timeout: Self::DEFAULT_TIMEOUT,
        }
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

    /// Uses table `name` (`table` or `schema.table`; lowercase ASCII letters, digits and
    /// underscores, at most 48 bytes each part) instead of [`Self::DEFAULT_TABLE`].
    ///
    /// # Errors
    /// [`InvalidTableName`] for any other name: it is spliced into SQL, so nothing that
    /// would need quoting is accepted.
    pub fn table(mut self, name: &str) -> Result<Self, InvalidTableName> {
        validate_table(name)?;
        self.table = name.into();
        self.sql = Arc::new(Statements::new(name));
        Ok(self)
    }

    /// The table this store uses.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Brings the table to the latest schema version, applying the
    /// [`migrations`](Self::migrations) it lacks, in one transaction. Safe to run on every start and from
    /// several processes at once: it holds a transaction-scoped advisory lock, so one
    /// process applies the steps and the others then find nothing to do. A table made by
    /// keymint before versioned migrations is adopted as version 1 and upgraded.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server fails or refuses (for example, missing
    /// privileges), or when the table is at a version newer than this keymint knows
    /// (nothing is changed then).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('keymint.migrate'))")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(AssertSqlSafe(self.sql.version_table.clone()))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let current: Option<i32> =
            sqlx::query_scalar(AssertSqlSafe(self.sql.current_version.clone()))
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
        for migration in sql::pending(&self.sql.migrations, current.map(i64::from))? {
            for statement in &migration.statements {
                sqlx::query(AssertSqlSafe(statement.clone()))
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
        }
        tx.commit().await.map_err(unavailable)
    }

    /// The table's schema version: `None` before [`migrate`](Self::migrate) first ran.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the server fails.
    pub async fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("{}_schema", self.table))
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        if !exists {
            return Ok(None);
        }
        let current: Option<i32> =
            sqlx::query_scalar(AssertSqlSafe(self.sql.current_version.clone()))
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(current.and_then(|v| u32::try_from(v).ok()))
    }

    /// The schema's steps as SQL for this store's table, for hosts that apply migrations
    /// with their own tool (then skip [`migrate`](Self::migrate), or keep calling it: it
    /// finds the recorded versions and does nothing).
    pub fn migrations(&self) -> &[Migration] {
        &self.sql.migrations
    }

    async fn try_decrement(
        &self,
        conn: &mut PgConnection,
        id: &KeyId,
        uses: &str,
    ) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(self.sql.decrement.clone()))
            .bind(id.as_str())
            .bind(uses)
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
        match row {
            None => Ok(None),
            Some(row) => {
                let text: Option<&str> = row.try_get(0).map_err(unavailable)?;
                parse_remaining(text).map(Some)
            }
        }
    }
}

/// The statements behind each [`KeyStore`] method, unbounded; the trait methods below run
/// them within the store's timeout.
impl PgStore {
    async fn insert_unbounded(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let json = record_json(record)?;
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let done = sqlx::query(AssertSqlSafe(self.sql.insert.clone()))
            .bind(record.id.as_str())
            .bind(record.owner.as_str())
            .bind(record.attributes.expires_at)
            .bind(record.last_used_at)
            .bind(version_param(record.version)?)
            .bind(json)
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
                _ => unavailable(e),
            })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn get_unbounded(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(self.sql.get.clone()))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.as_ref().map(decode_row).transpose()
    }

    async fn update_unbounded(&self, record: &KeyRecord) -> Result<u64, StoreError> {
        let json = record_json(record)?;
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let row = sqlx::query(AssertSqlSafe(self.sql.update.clone()))
            .bind(record.id.as_str())
            .bind(record.owner.as_str())
            .bind(record.attributes.expires_at)
            .bind(record.last_used_at)
            .bind(version_param(record.version)?)
            .bind(json)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        let new_version: Option<i64> = row.try_get(0).map_err(unavailable)?;
        let exists: bool = row.try_get(1).map_err(unavailable)?;
        match (new_version, exists) {
            (Some(v), _) => {
                u64::try_from(v).map_err(|_| StoreError::unavailable(MappingError::VersionRange))
            }
            (None, true) => Err(StoreError::Conflict),
            (None, false) => Err(StoreError::NotFound),
        }
    }

    async fn decrement_remaining_unbounded(
        &self,
        id: &KeyId,
        uses: u64,
    ) -> Result<Decrement, StoreError> {
        let uses_text = uses.to_string();
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let outcome = self.decrement_in(&mut tx, id, uses, &uses_text).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(outcome)
    }

    async fn decrement_in(
        &self,
        conn: &mut PgConnection,
        id: &KeyId,
        uses: u64,
        uses_text: &str,
    ) -> Result<Decrement, StoreError> {
        for _ in 0..DECREMENT_ATTEMPTS {
            if let Some(remaining) = self.try_decrement(conn, id, uses_text).await? {
                return Ok(Decrement::Taken { remaining });
            }
            // Nothing taken: unknown id, unlimited, or too few uses. Decrements only lower
            // the count, so a later read showing too few is a definite answer.
            let row = sqlx::query(AssertSqlSafe(self.sql.remaining.clone()))
                .bind(id.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(unavailable)?
                .ok_or(StoreError::NotFound)?;
            let unlimited: bool = row.try_get(0).map_err(unavailable)?;
            if unlimited {
                return Ok(Decrement::Unlimited);
            }
            let text: Option<&str> = row.try_get(1).map_err(unavailable)?;
            let remaining = parse_remaining(text)?;
            if remaining < uses {
                return Ok(Decrement::Exhausted { remaining });
            }
            // An update raised the count between the two statements: try again.
        }
        Err(StoreError::unavailable(MappingError::Unsettled))
    }

    async fn record_last_used_unbounded(
        &self,
        batch: &[(KeyId, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let latest = latest_per_id(batch);
        let mut ids = Vec::with_capacity(latest.len());
        let mut ats = Vec::with_capacity(latest.len());
        let mut texts = Vec::with_capacity(latest.len());
        for (id, at) in latest {
            ids.push(id.as_str().to_owned());
            ats.push(at);
            texts.push(json_time(at)?);
        }
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(AssertSqlSafe(self.sql.last_used.clone()))
            .bind(ids)
            .bind(ats)
            .bind(texts)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn list_by_owner_unbounded(
        &self,
        owner: &str,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        let limit = page_limit(page);
        let rows = sqlx::query(AssertSqlSafe(self.sql.by_owner.clone()))
            .bind(owner)
            .bind(page.after.as_ref().map_or("", KeyId::as_str))
            .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        page_of_rows(&rows, limit)
    }

    async fn list_expiring_unbounded(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        let limit = page_limit(page);
        let rows = sqlx::query(AssertSqlSafe(self.sql.expiring.clone()))
            .bind(from)
            .bind(to)
            .bind(page.after.as_ref().map_or("", KeyId::as_str))
            .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        page_of_rows(&rows, limit)
    }
}

impl KeyStore for PgStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.bounded(self.insert_unbounded(record)).await
    }

    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.bounded(self.get_unbounded(id)).await
    }

    async fn update(&self, record: &KeyRecord) -> Result<u64, StoreError> {
        self.bounded(self.update_unbounded(record)).await
    }

    async fn decrement_remaining(&self, id: &KeyId, uses: u64) -> Result<Decrement, StoreError> {
        self.bounded(self.decrement_remaining_unbounded(id, uses))
            .await
    }

    async fn record_last_used(&self, batch: &[(KeyId, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.bounded(self.record_last_used_unbounded(batch)).await
    }

    async fn list_by_owner(&self, owner: &str, page: &PageRequest) -> Result<Page, StoreError> {
        self.bounded(self.list_by_owner_unbounded(owner, page))
            .await
    }

    async fn list_expiring(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        self.bounded(self.list_expiring_unbounded(from, to, page))
            .await
    }

    async fn list_unused_since(
        &self,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        let limit = page_limit(page);
        self.bounded(async {
            let rows = sqlx::query(AssertSqlSafe(self.sql.unused.clone()))
                .bind(before)
                .bind(page.after.as_ref().map_or("", KeyId::as_str))
                .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
            page_of_rows(&rows, limit)
        })
        .await
    }
}

/// Usage counts in the `<table>_usage` table (schema version 3).
impl UsageStore for PgStore {
    async fn add(&self, batch: &[UsageDelta]) -> Result<(), StoreError> {
        let rows = aggregate_usage(batch);
        if rows.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(rows.len());
        let mut owners = Vec::with_capacity(rows.len());
        let mut days = Vec::with_capacity(rows.len());
        let mut outcomes = Vec::with_capacity(rows.len());
        let mut counts = Vec::with_capacity(rows.len());
        for (key, owner, day, outcome, count) in rows {
            keys.push(key.as_str().to_owned());
            owners.push(owner.to_owned());
            days.push(day);
            outcomes.push(outcome.to_owned());
            counts.push(count);
        }
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            sqlx::query(AssertSqlSafe(self.sql.usage_add.clone()))
                .bind(keys)
                .bind(owners)
                .bind(days)
                .bind(outcomes)
                .bind(counts)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
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
            let rows: Vec<(chrono::NaiveDate, String, i64)> =
                sqlx::query_as(AssertSqlSafe(self.sql.usage_key.clone()))
                    .bind(key_id.as_str())
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
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
                    .bind(from)
                    .bind(to)
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
    fn statements_use_the_validated_table_name() {
        let sql = Statements::new("auth.api_keys");
        assert!(sql.insert.contains("INSERT INTO auth.api_keys "));
        let v1 = &sql.migrations[0].statements;
        assert!(v1[0].contains("auth.api_keys_schema"));
        assert!(
            v1[2].contains("api_keys_owner_id_idx ON auth.api_keys"),
            "index names are unqualified: {}",
            v1[2]
        );
    }

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
