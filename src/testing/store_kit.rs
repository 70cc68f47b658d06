//! The [`KeyStore`] conformance kit.
//!
//! It panics with a message naming the broken guarantee. Give it an empty store (or a
//! fresh schema): it writes records with random ids and owners of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

use crate::format::{KeyFormat, KeyId};
use crate::hash::PhcHash;
use crate::record::{KeyAttributes, KeyRecord};
use crate::store::StoreError;
use crate::store::{Decrement, KeyStore, PageRequest};

/// A record that any store must accept, with a fresh random id and the given owner.
///
/// # Panics
/// When the operating system's random source fails.
pub fn sample_record(owner: &str) -> KeyRecord {
    #[allow(clippy::expect_used)]
    let key = KeyFormat::new("kit")
        .expect("valid format")
        .generate()
        .expect("randomness");
    let mut attributes = KeyAttributes::new("conformance");
    attributes.description = Some("written by keymint::testing".into());
    attributes.scopes = vec!["users:read".parse().expect("valid scope")];
    attributes.metadata = serde_json::json!({ "kit": true });
    KeyRecord::new(
        key.id().clone(),
        PhcHash::from_trusted(
            "$hmac-sha256$kid=kit$c2FsdHNhbHRzYWx0c2FsdA$Y2hlY2tzdW1jaGVja3N1bWNoZWNrc3VtY2hlY2tzdW0".into(),
        ),
        key.parsed().prefix().parse().expect("valid prefix"),
        key.hint(),
        owner,
        attributes,
        base_time(),
    )
}

/// A record with every optional field set, so that a store that maps fields to columns and
/// drops one (the lineage, say, which would reset a key's budgets on every rotation) fails
/// the kit.
pub fn full_record(owner: &str) -> KeyRecord {
    let mut r = sample_record(owner);
    let at = base_time();
    r.kind = Some(crate::record::KeyKind::Publishable);
    r.environment = Some(crate::record::Environment::test());
    r.status = crate::record::KeyStatus::Revoked;
    r.revocation = Some(crate::record::Revocation {
        at: at + TimeDelta::days(2),
        reason: "kit".into(),
    });
    r.successor = Some(sample_record(owner).id);
    r.lineage = Some(sample_record(owner).id);
    r.last_used_at = Some(at + TimeDelta::hours(5));
    r.remaining_uses = Some(41);
    r.last_refill_at = Some(at + TimeDelta::hours(1));
    let a = &mut r.attributes;
    a.roles = vec!["support".into()];
    a.not_before = Some(at);
    a.expires_at = Some(at + TimeDelta::days(90));
    a.credit_refill = crate::ratelimit::Refill::new(100, TimeDelta::days(30), 100);
    a.rate_limit_policy = Some("default".into());
    a.rate_limit = crate::ratelimit::KeyLimit::new(
        std::num::NonZeroU32::MIN,
        std::time::Duration::from_secs(60),
    );
    #[allow(clippy::expect_used)]
    {
        a.allowed_networks = vec!["10.0.0.0/8".parse().expect("valid network")];
        a.allowed_origins = vec!["https://app.example.com".parse().expect("valid origin")];
    }
    a.certificate_bindings = vec![
        crate::certificate::CertificateBinding::X5tS256([7; 32]),
        crate::certificate::CertificateBinding::SpkiS256([9; 32]),
    ];
    r
}

fn base_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}

fn unique_owner(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut nonce = [0u8; 8];
    let _ = getrandom::fill(&mut nonce);
    format!(
        "kit-{tag}-{:x}-{}",
        u64::from_le_bytes(nonce),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs every check of the [`KeyStore`] contract against `store`, in one test. The
/// [`store_conformance!`](crate::store_conformance) macro makes one test per guarantee
/// instead, so that a failure names it.
///
/// Needs a multi-threaded tokio runtime for the concurrency checks.
///
/// # Panics
/// On the first broken guarantee, with a message naming it.
pub async fn run_store_conformance<S: KeyStore + Clone>(store: S) {
    insert_and_get(&store).await;
    duplicate_insert_conflicts(&store).await;
    update_is_compare_and_set(&store).await;
    decrement_never_below_zero(&store).await;
    concurrent_decrements_lose_nothing(&store).await;
    concurrent_updates_lose_nothing(&store).await;
    last_used_moves_forward(&store).await;
    list_by_owner_pages(&store).await;
    list_expiring_window(&store).await;
    list_unused_since_window(&store).await;
}

/// An inserted record reads back unchanged; a missing id reads as `None`.
pub async fn insert_and_get<S: KeyStore>(store: &S) {
    let record = sample_record(&unique_owner("get"));
    store
        .insert(&record)
        .await
        .expect("insert of a new id must succeed");
    let got = store.get(&record.id).await.expect("get must succeed");
    assert_eq!(
        got.as_ref(),
        Some(&record),
        "get must return the inserted record unchanged"
    );
    let full = full_record(&unique_owner("get-full"));
    store
        .insert(&full)
        .await
        .expect("insert of a record with every field set");
    assert_eq!(
        store
            .get(&full.id)
            .await
            .expect("get must succeed")
            .as_ref(),
        Some(&full),
        "get must return every field of the inserted record unchanged"
    );
    let missing = sample_record("nobody");
    assert_eq!(
        store
            .get(&missing.id)
            .await
            .expect("get of a missing id must succeed"),
        None
    );
}

/// Inserting an existing id fails with `Conflict` and changes nothing.
pub async fn duplicate_insert_conflicts<S: KeyStore>(store: &S) {
    let record = sample_record(&unique_owner("dup"));
    store.insert(&record).await.expect("insert");
    let mut other = record.clone();
    other.attributes.name = "other".into();
    assert!(
        matches!(store.insert(&other).await, Err(StoreError::Conflict)),
        "insert of an existing id must fail with Conflict"
    );
    assert_eq!(
        store
            .get(&record.id)
            .await
            .expect("get")
            .map(|r| r.attributes.name),
        Some(record.attributes.name),
        "a conflicting insert must change nothing"
    );
}

/// `update` writes only at the stored version, returns version + 1, and tells a stale version (`Conflict`) from an unknown id (`NotFound`).
pub async fn update_is_compare_and_set<S: KeyStore>(store: &S) {
    let record = sample_record(&unique_owner("cas"));
    store.insert(&record).await.expect("insert");
    let mut changed = record.clone();
    changed.attributes.name = "renamed".into();
    assert_eq!(
        store
            .update(&changed)
            .await
            .expect("update at the current version"),
        1,
        "update must return version + 1"
    );
    let stored = store.get(&record.id).await.expect("get").expect("present");
    assert_eq!(
        (stored.attributes.name.as_str(), stored.version),
        ("renamed", 1),
        "update must store the record with version + 1"
    );
    let mut stale = record.clone();
    stale.attributes.name = "stale".into();
    assert!(
        matches!(store.update(&stale).await, Err(StoreError::Conflict)),
        "update at an old version must fail with Conflict"
    );
    let unknown = sample_record("nobody");
    assert!(
        matches!(store.update(&unknown).await, Err(StoreError::NotFound)),
        "update of an unknown id must fail with NotFound"
    );
}

/// Decrements take exactly what is asked when enough is left, never go below zero, and report unlimited records and unknown ids.
pub async fn decrement_never_below_zero<S: KeyStore>(store: &S) {
    let mut record = sample_record(&unique_owner("dec"));
    record.remaining_uses = Some(3);
    store.insert(&record).await.expect("insert");
    assert_eq!(
        store
            .decrement_remaining(&record.id, 2)
            .await
            .expect("decrement"),
        Decrement::Taken { remaining: 1 }
    );
    assert_eq!(
        store
            .decrement_remaining(&record.id, 2)
            .await
            .expect("decrement"),
        Decrement::Exhausted { remaining: 1 }
    );
    assert_eq!(
        store
            .decrement_remaining(&record.id, 1)
            .await
            .expect("decrement"),
        Decrement::Taken { remaining: 0 }
    );
    assert_eq!(
        store
            .decrement_remaining(&record.id, 1)
            .await
            .expect("decrement"),
        Decrement::Exhausted { remaining: 0 }
    );
    let stored = store.get(&record.id).await.expect("get").expect("present");
    assert_eq!(stored.remaining_uses, Some(0));
    assert!(
        stored.version >= 2,
        "each successful decrement must bump the version"
    );

    let unlimited = sample_record(&unique_owner("dec"));
    store.insert(&unlimited).await.expect("insert");
    assert_eq!(
        store
            .decrement_remaining(&unlimited.id, 1)
            .await
            .expect("decrement"),
        Decrement::Unlimited
    );
    let unknown = sample_record("nobody");
    assert!(matches!(
        store.decrement_remaining(&unknown.id, 1).await,
        Err(StoreError::NotFound)
    ));
}

/// Concurrent decrements from many tasks take exactly the uses there were.
pub async fn concurrent_decrements_lose_nothing<S: KeyStore + Clone>(store: &S) {
    const USES: u64 = 50;
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 10;
    let mut record = sample_record(&unique_owner("race"));
    record.remaining_uses = Some(USES);
    store.insert(&record).await.expect("insert");
    let taken = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (store, id, taken) = (store.clone(), record.id.clone(), taken.clone());
        tasks.spawn(async move {
            for _ in 0..PER_TASK {
                if let Decrement::Taken { .. } =
                    store.decrement_remaining(&id, 1).await.expect("decrement")
                {
                    taken.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("decrement task panicked");
    }
    assert_eq!(
        taken.load(Ordering::Relaxed),
        USES,
        "concurrent decrements must take exactly the uses there were"
    );
    let stored = store.get(&record.id).await.expect("get").expect("present");
    assert_eq!(
        stored.remaining_uses,
        Some(0),
        "remaining uses must end at zero, never below"
    );
}

/// Concurrent compare-and-set updates lose no write, and each bumps the version by one.
pub async fn concurrent_updates_lose_nothing<S: KeyStore + Clone>(store: &S) {
    const TASKS: usize = 4;
    const PER_TASK: usize = 5;
    let record = sample_record(&unique_owner("upd"));
    store.insert(&record).await.expect("insert");
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (store, id) = (store.clone(), record.id.clone());
        tasks.spawn(async move {
            let mut done = 0;
            while done < PER_TASK {
                let mut r = store.get(&id).await.expect("get").expect("present");
                let mut scopes = r.attributes.scopes.clone();
                scopes.push(format!("task{t}:{done}").parse().expect("valid scope"));
                r.attributes.scopes = scopes;
                match store.update(&r).await {
                    Ok(_) => done += 1,
                    Err(StoreError::Conflict) => tokio::task::yield_now().await,
                    Err(e) => panic!("update failed: {e}"),
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("update task panicked");
    }
    let stored = store.get(&record.id).await.expect("get").expect("present");
    assert_eq!(
        stored.attributes.scopes.len(),
        1 + TASKS * PER_TASK,
        "compare-and-set updates must not lose writes"
    );
    assert_eq!(
        stored.version,
        (TASKS * PER_TASK) as u64,
        "each update must bump the version by one"
    );
}

/// Last-used batches keep the latest time, skip unknown ids, and bump the version.
pub async fn last_used_moves_forward<S: KeyStore>(store: &S) {
    let record = sample_record(&unique_owner("used"));
    store.insert(&record).await.expect("insert");
    let t1 = base_time() + TimeDelta::minutes(5);
    let t0 = base_time() + TimeDelta::minutes(1);
    let unknown = sample_record("nobody").id;
    store
        .record_last_used(&[(record.id.clone(), t1), (unknown, t1)])
        .await
        .expect("last-used batch with an unknown id");
    store
        .record_last_used(&[(record.id.clone(), t0)])
        .await
        .expect("last-used batch");
    let stored = store.get(&record.id).await.expect("get").expect("present");
    assert_eq!(
        stored.last_used_at,
        Some(t1),
        "last-used must keep the latest time"
    );
    assert!(
        stored.version >= 1,
        "a last-used write must bump the version"
    );
}

/// Pages list exactly an owner's records in ascending id order, at most `limit` each.
pub async fn list_by_owner_pages<S: KeyStore>(store: &S) {
    let owner = unique_owner("list");
    let mut ids: Vec<KeyId> = Vec::new();
    for _ in 0..5 {
        let record = sample_record(&owner);
        store.insert(&record).await.expect("insert");
        ids.push(record.id);
    }
    store
        .insert(&sample_record(&unique_owner("list-other")))
        .await
        .expect("insert");
    ids.sort();
    let mut seen = Vec::new();
    let mut page = PageRequest::new(2);
    loop {
        let got = store.list_by_owner(&owner, &page).await.expect("list");
        assert!(
            got.items.len() <= 2,
            "a page must hold at most `limit` records"
        );
        seen.extend(got.items.iter().map(|r| r.id.clone()));
        match got.next_after {
            Some(after) => page = PageRequest::new(2).after(after),
            None => break,
        }
    }
    assert_eq!(
        seen, ids,
        "pages must list exactly the owner's records in ascending id order"
    );
    let none = store
        .list_by_owner(&unique_owner("empty"), &PageRequest::new(10))
        .await
        .expect("list");
    assert!(none.items.is_empty() && none.next_after.is_none());
}

/// `list_expiring` returns the records whose expiry lies in `[from, to)`.
pub async fn list_expiring_window<S: KeyStore>(store: &S) {
    let owner = unique_owner("exp");
    // A window of its own per run, so a persistent store's earlier runs stay out of it.
    let mut nonce = [0u8; 4];
    let _ = getrandom::fill(&mut nonce);
    let offset = i64::from(u32::from_le_bytes(nonce) % 50_000_000);
    let far = base_time() + TimeDelta::days(3650) + TimeDelta::minutes(offset);
    let mut inside = Vec::new();
    for (i, offset) in [0i64, 1, 2, 3].into_iter().enumerate() {
        let mut record = sample_record(&owner);
        record.attributes.expires_at = Some(far + TimeDelta::hours(offset));
        store.insert(&record).await.expect("insert");
        if (1..=2).contains(&i) {
            inside.push(record.id);
        }
    }
    inside.sort();
    let got = store
        .list_expiring(
            far + TimeDelta::hours(1),
            far + TimeDelta::hours(3),
            &PageRequest::new(100),
        )
        .await
        .expect("list expiring");
    let ids: Vec<KeyId> = got
        .items
        .into_iter()
        .filter(|r| r.owner == owner)
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids, inside,
        "list_expiring must return records with expires_at in [from, to)"
    );
}

/// `list_unused_since` returns the records last used before the cutoff, and those never
/// used and created before it, in id order; a store that answers
/// [`StoreError::Unsupported`] (the trait's default) passes, as the method is optional.
pub async fn list_unused_since_window<S: KeyStore>(store: &S) {
    let owner = unique_owner("idle");
    let cutoff = base_time() + TimeDelta::days(30);
    let cases = [
        // (last used, created, dormant?)
        (
            Some(cutoff - TimeDelta::days(1)),
            cutoff - TimeDelta::days(400),
            true,
        ),
        (
            Some(cutoff + TimeDelta::hours(1)),
            cutoff - TimeDelta::days(400),
            false,
        ),
        (None, cutoff - TimeDelta::days(1), true),
        (None, cutoff + TimeDelta::days(1), false),
        // Used after the cutoff, though created long before: not dormant.
        (
            Some(cutoff + TimeDelta::days(2)),
            cutoff - TimeDelta::days(3),
            false,
        ),
    ];
    let mut dormant = Vec::new();
    for (last_used, created, idle) in cases {
        let mut record = sample_record(&owner);
        record.created_at = created;
        record.last_used_at = last_used;
        store.insert(&record).await.expect("insert");
        if idle {
            dormant.push(record.id);
        }
    }
    dormant.sort();
    let mut page = PageRequest::new(2);
    let mut found = Vec::new();
    loop {
        let got = match store.list_unused_since(cutoff, &page).await {
            Err(StoreError::Unsupported(_)) => return,
            other => other.expect("list unused since"),
        };
        let ids: Vec<&KeyId> = got.items.iter().map(|r| &r.id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "list_unused_since must return pages in ascending id order"
        );
        found.extend(
            got.items
                .into_iter()
                .filter(|r| r.owner == owner)
                .map(|r| r.id),
        );
        match got.next_after {
            Some(after) => page = PageRequest::new(2).after(after),
            None => break,
        }
    }
    assert_eq!(
        found, dormant,
        "list_unused_since must return records last used (or, never used, created) before the cutoff"
    );
}
