//! What the SQL stores ([`PgStore`](super::PgStore), [`SqliteStore`](super::SqliteStore))
//! share: table names, the record mapping, paging, and versioned migrations.
//!
//! Both keep one row per key: the columns a query filters on (id, owner, expiry, last use,
//! version) and the whole [`KeyRecord`] as JSON, so a record field added later needs no
//! schema change.

use chrono::{DateTime, Utc};

use super::{MAX_PAGE_SIZE, Page, PageRequest, StoreError};
use crate::format::KeyId;
use crate::record::KeyRecord;

/// Longest accepted table name (without schema), leaving room for index-name suffixes
/// within PostgreSQL's 63-byte identifier limit.
pub(super) const MAX_TABLE_NAME: usize = 48;

/// A table name that a SQL store refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid table name: use 1 to 48 lowercase ascii letters, digits or underscores, not starting with a digit, optionally prefixed by `schema.`"
)]
pub struct InvalidTableName;

fn valid_identifier(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TABLE_NAME
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// Accepts `table` or `schema.table` made of characters that never need quoting: the name
/// is spliced into SQL.
pub(super) fn validate_table(name: &str) -> Result<(), InvalidTableName> {
    let mut parts = name.split('.');
    let ok = match (parts.next(), parts.next(), parts.next()) {
        (Some(table), None, None) => valid_identifier(table),
        (Some(schema), Some(table), None) => valid_identifier(schema) && valid_identifier(table),
        _ => false,
    };
    if ok { Ok(()) } else { Err(InvalidTableName) }
}

/// One step of a store's schema, applied once, in order, by the store's `migrate()`.
///
/// The SQL is exported (`PgStore::migrations`, `SqliteStore::migrations`) for hosts that
/// run their own migration tool: apply the steps in order, and record them in the
/// version table as `migrate()` would (the last statement of each step does), so that
/// `migrate()` finds nothing left to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// The schema version this step brings the table to (1, 2, ...).
    pub version: u32,
    /// What the step does.
    pub description: &'static str,
    /// The statements, in order; each is one SQL statement.
    pub statements: Vec<String>,
}

/// What a store's migrations may fail on.
#[derive(Debug, thiserror::Error)]
pub(super) enum MigrationError {
    #[error(
        "the table is at schema version {found}, newer than this keymint knows ({known}): upgrade keymint"
    )]
    TooNew { found: i64, known: u32 },
}

/// The versions a migration run still has to apply, refusing a database that is ahead.
pub(super) fn pending(
    migrations: &[Migration],
    current: Option<i64>,
) -> Result<&[Migration], StoreError> {
    let known = migrations.last().map_or(0, |m| m.version);
    let current = current.unwrap_or(0);
    if current > i64::from(known) {
        return Err(StoreError::unavailable(MigrationError::TooNew {
            found: current,
            known,
        }));
    }
    let done = migrations
        .iter()
        .take_while(|m| i64::from(m.version) <= current)
        .count();
    Ok(&migrations[done..])
}

/// A value a SQL store could not map between Rust and its database.
#[derive(Debug, thiserror::Error)]
pub(super) enum MappingError {
    #[error("record version does not fit in a signed 64-bit integer")]
    VersionRange,
    #[error("stored record is not valid json for a key record")]
    Record(#[source] serde_json::Error),
    #[cfg(feature = "postgres")]
    #[error("stored remaining_uses is not an unsigned 64-bit integer")]
    Remaining,
    #[cfg(feature = "postgres")]
    #[error("remaining uses kept rising during decrement")]
    Unsettled,
    #[error("the statement did not complete within the store's timeout")]
    Timeout,
    #[error("a usage row names an invalid key id")]
    UsageRow,
}

pub(super) fn version_param(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::unavailable(MappingError::VersionRange))
}

pub(super) fn record_json(record: &KeyRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|e| StoreError::unavailable(MappingError::Record(e)))
}

/// A record from its row: the version column is authoritative for compare-and-set.
pub(super) fn decode_record(version: i64, json: &str) -> Result<KeyRecord, StoreError> {
    let mut record: KeyRecord =
        serde_json::from_str(json).map_err(|e| StoreError::unavailable(MappingError::Record(e)))?;
    record.version =
        u64::try_from(version).map_err(|_| StoreError::unavailable(MappingError::VersionRange))?;
    Ok(record)
}

#[cfg(feature = "postgres")]
pub(super) fn parse_remaining(text: Option<&str>) -> Result<u64, StoreError> {
    text.and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| StoreError::unavailable(MappingError::Remaining))
}

/// The page size a store asks its database for (one more row tells whether a next page
/// exists).
pub(super) fn page_limit(page: &PageRequest) -> usize {
    page.limit.clamp(1, MAX_PAGE_SIZE)
}

/// A page from up to `limit + 1` rows already decoded.
pub(super) fn page_of(mut records: Vec<KeyRecord>, limit: usize) -> Page {
    let more = records.len() > limit;
    records.truncate(limit);
    let next_after = if more {
        records.last().map(|r| r.id.clone())
    } else {
        None
    };
    Page {
        items: records,
        next_after,
    }
}

/// One entry per id, its latest time: a batch may name an id twice, and an `UPDATE` from a
/// batch applies one source row per target row (which one would be unspecified).
pub(super) fn latest_per_id(batch: &[(KeyId, DateTime<Utc>)]) -> Vec<(&KeyId, DateTime<Utc>)> {
    let mut latest: Vec<(&KeyId, DateTime<Utc>)> = batch.iter().map(|(id, at)| (id, *at)).collect();
    latest.sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
    latest.dedup_by(|later, first| later.0 == first.0);
    latest
}

/// A usage batch summed per (key, day, outcome): callers may repeat a row, and a single
/// upsert statement may touch each row once only.
pub(super) fn aggregate_usage(
    batch: &[super::usage::UsageDelta],
) -> Vec<(&KeyId, &str, chrono::NaiveDate, &'static str, i64)> {
    let mut sums: std::collections::BTreeMap<
        (&KeyId, chrono::NaiveDate, &'static str),
        (&str, i64),
    > = std::collections::BTreeMap::new();
    for delta in batch {
        let entry = sums
            .entry((&delta.key_id, delta.day, delta.outcome))
            .or_insert((delta.owner.as_str(), 0));
        entry.1 = entry
            .1
            .saturating_add(i64::try_from(delta.count).unwrap_or(i64::MAX));
    }
    sums.into_iter()
        .map(|((key, day, outcome), (owner, count))| (key, owner, day, outcome, count))
        .collect()
}

/// Usage rows `(key or day, outcome, count)` folded into the query answers.
pub(super) fn fold_daily(
    rows: Vec<(chrono::NaiveDate, String, i64)>,
) -> Vec<super::usage::DailyUsage> {
    let mut days: Vec<super::usage::DailyUsage> = Vec::new();
    for (day, outcome, count) in rows {
        if days.last().is_none_or(|d| d.day != day) {
            days.push(super::usage::DailyUsage {
                day,
                ..super::usage::DailyUsage::default()
            });
        }
        if let Some(current) = days.last_mut() {
            current.add(&outcome, u64::try_from(count).unwrap_or(0));
        }
    }
    days
}

pub(super) fn fold_keys(
    rows: Vec<(String, String, i64)>,
) -> Result<Vec<super::usage::KeyUsage>, StoreError> {
    let mut keys: Vec<super::usage::KeyUsage> = Vec::new();
    for (key, outcome, count) in rows {
        if keys.last().is_none_or(|k| k.key_id.as_str() != key) {
            let id =
                KeyId::new(&key).map_err(|_| StoreError::unavailable(MappingError::UsageRow))?;
            keys.push(super::usage::KeyUsage::new(id));
        }
        if let Some(current) = keys.last_mut() {
            current.add(&outcome, u64::try_from(count).unwrap_or(0));
        }
    }
    Ok(keys)
}

/// A time as [`KeyRecord`] stores it in JSON (chrono's RFC 3339, nanoseconds kept).
#[cfg(feature = "postgres")]
pub(super) fn json_time(at: DateTime<Utc>) -> Result<String, StoreError> {
    let quoted =
        serde_json::to_string(&at).map_err(|e| StoreError::unavailable(MappingError::Record(e)))?;
    Ok(quoted.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_that_need_no_quoting_are_accepted() {
        for name in ["keymint_keys", "_k", "api_keys2", "auth.api_keys"] {
            assert_eq!(validate_table(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn table_names_that_could_inject_or_need_quoting_are_refused() {
        let long = "a".repeat(MAX_TABLE_NAME + 1);
        for name in [
            "",
            "1keys",
            "Keys",
            "keys;drop table x",
            "keys\"",
            "a.b.c",
            ".keys",
            "keys.",
            "ключи",
            long.as_str(),
        ] {
            assert_eq!(validate_table(name), Err(InvalidTableName), "{name:?}");
        }
    }

    fn steps(versions: &[u32]) -> Vec<Migration> {
        versions
            .iter()
            .map(|&version| Migration {
                version,
                description: "step",
                statements: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn pending_migrations_are_those_after_the_current_version() {
        let all = steps(&[1, 2, 3]);
        let versions = |current| {
            pending(&all, current)
                .unwrap()
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(None), [1, 2, 3]);
        assert_eq!(versions(Some(1)), [2, 3]);
        assert_eq!(versions(Some(3)), Vec::<u32>::new());
        assert!(matches!(
            pending(&all, Some(4)),
            Err(StoreError::Unavailable(_))
        ));
    }
}
