use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::clock::Clock as _;
use crate::format::KeyId;
use crate::hash::{Argon2idHasher, HmacSha256Hasher, Pepper};
use crate::keyring::{KeyringError, VerifyError};
use crate::record::{KeyRecord, KeyStatus};
use crate::store::StoreError;
use crate::store::{Decrement, MemoryStore, Page, PageRequest};
use crate::{ManualClock, Verdict};

/// A memory store that counts reads and writes, can be switched off, and can hold its
/// next `get` (after reading) or `insert` (after writing) until the test lets it go: the
/// window in which a concurrent change can land.
#[derive(Clone, Debug)]
struct Probe {
    inner: MemoryStore,
    gets: Arc<AtomicUsize>,
    last_used_writes: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    pause_next_get: Arc<AtomicBool>,
    pause_next_insert: Arc<AtomicBool>,
    paused: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Semaphore>,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            inner: MemoryStore::new(),
            gets: Arc::default(),
            last_used_writes: Arc::default(),
            down: Arc::default(),
            pause_next_get: Arc::default(),
            pause_next_insert: Arc::default(),
            paused: Arc::default(),
            release: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("probe store is down")]
struct Down;

impl Probe {
    async fn maybe_pause(&self, flag: &AtomicBool) {
        if flag.swap(false, Ordering::SeqCst) {
            self.paused.notify_one();
            let _permit = self.release.acquire().await.expect("open");
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable(Down))
        } else {
            Ok(())
        }
    }
}

impl KeyStore for Probe {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.check()?;
        let done = self.inner.insert(record).await;
        self.maybe_pause(&self.pause_next_insert).await;
        done
    }
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.check()?;
        self.gets.fetch_add(1, Ordering::SeqCst);
        let read = self.inner.get(id).await;
        self.maybe_pause(&self.pause_next_get).await;
        read
    }
    async fn update(&self, record: &KeyRecord) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.update(record).await
    }
    async fn decrement_remaining(&self, id: &KeyId, uses: u64) -> Result<Decrement, StoreError> {
        self.check()?;
        self.inner.decrement_remaining(id, uses).await
    }
    async fn record_last_used(&self, batch: &[(KeyId, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.check()?;
        self.last_used_writes
            .fetch_add(batch.len(), Ordering::SeqCst);
        self.inner.record_last_used(batch).await
    }
    async fn list_by_owner(&self, owner: &str, page: &PageRequest) -> Result<Page, StoreError> {
        self.check()?;
        self.inner.list_by_owner(owner, page).await
    }
    async fn list_expiring(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        self.check()?;
        self.inner.list_expiring(from, to, page).await
    }
}

#[derive(Debug, Default, Clone)]
struct Recorder(Arc<Mutex<Vec<AuditEvent>>>);

impl AuditSink for Recorder {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn failures(&self) -> Vec<FailureReason> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                AuditEvent::VerificationFailed { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug)]
struct Channel(tokio::sync::mpsc::UnboundedSender<AuditEvent>);

impl AuditSink for Channel {
    fn record(&self, event: &AuditEvent) {
        let _ = self.0.send(event.clone());
    }
}

#[derive(Debug, Default, Clone)]
struct Bus(Arc<Mutex<Vec<KeyId>>>);

impl CacheInvalidation for Bus {
    fn publish(&self, id: &KeyId) {
        self.0.lock().unwrap().push(id.clone());
    }
}

fn fast_hashes() -> HashPolicy {
    HashPolicy::new(
        Argon2idHasher::builder()
            .m_cost(64)
            .t_cost(1)
            .build()
            .unwrap(),
    )
}

struct Fixture {
    keyring: Keyring<Probe>,
    store: Probe,
    clock: ManualClock,
    audit: Recorder,
    bus: Bus,
}

fn fixture() -> Fixture {
    fixture_with(|b| b)
}

fn fixture_with(configure: impl FnOnce(KeyringBuilder<Probe>) -> KeyringBuilder<Probe>) -> Fixture {
    let store = Probe::default();
    let clock = ManualClock::default();
    let audit = Recorder::default();
    let bus = Bus::default();
    let builder = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
        .hashes(fast_hashes())
        .clock(clock.clone())
        .audit(audit.clone())
        .invalidation(bus.clone());
    let keyring = configure(builder).build().unwrap();
    Fixture {
        keyring,
        store,
        clock,
        audit,
        bus,
    }
}

fn ctx() -> VerifyContext<'static> {
    VerifyContext::new()
}

/// The same id with another secret and a valid checksum: passes every offline check.
fn wrong_secret(key: &str) -> String {
    let body = &key[..key.len() - 6];
    let mut altered = body.to_owned();
    let last = altered.pop().unwrap();
    altered.push(if last == 'a' { 'b' } else { 'a' });
    crate::format::seal(&altered)
}

#[tokio::test]
async fn issued_key_verifies_and_repeat_verifications_hit_the_cache() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("acct_1", "ci"))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let verified = f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(verified.id(), &issued.record.id);
    assert_eq!(verified.owner(), "acct_1");
    assert_eq!(f.store.gets.load(Ordering::SeqCst), 1);
    for _ in 0..5 {
        f.keyring.verify(key, &ctx()).await.unwrap();
    }
    assert_eq!(
        f.store.gets.load(Ordering::SeqCst),
        1,
        "repeat verifications must be served by the cache"
    );
}

#[tokio::test]
async fn cache_expires_after_its_ttl() {
    let f = fixture_with(|b| b.cache(TimeDelta::seconds(30), 100));
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.clock.advance(TimeDelta::seconds(29));
    f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(f.store.gets.load(Ordering::SeqCst), 1);
    f.clock.advance(TimeDelta::seconds(1));
    f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(
        f.store.gets.load(Ordering::SeqCst),
        2,
        "an entry older than the TTL must not be served"
    );
}

#[tokio::test]
async fn cache_stays_within_capacity() {
    let f = fixture_with(|b| b.cache(TimeDelta::seconds(30), 2));
    let mut keys = Vec::new();
    for i in 0..4 {
        keys.push(
            f.keyring
                .issue(IssueRequest::new("a", format!("k{i}")))
                .await
                .unwrap(),
        );
    }
    for k in &keys {
        f.keyring
            .verify(k.key.expose_secret(), &ctx())
            .await
            .unwrap();
    }
    assert_eq!(f.keyring.inner.cache.as_ref().unwrap().len(), 2);
}

#[tokio::test]
async fn wrong_secret_and_unknown_id_are_the_same_error_to_callers() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    f.keyring.verify(key, &ctx()).await.unwrap(); // cached now: a wrong secret must still miss

    let wrong = wrong_secret(key);
    assert!(f.keyring.format().parse(&wrong).is_ok());
    let e1 = f.keyring.verify(&wrong, &ctx()).await.unwrap_err();
    let unknown = f.keyring.format().generate().unwrap();
    let e2 = f
        .keyring
        .verify(unknown.expose_secret(), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(e1, VerifyError::Invalid) && matches!(e2, VerifyError::Invalid));
    assert_eq!(e1.to_string(), e2.to_string());
    assert_eq!(e1.status_code(), 401);
    assert_eq!(
        f.audit.failures(),
        vec![FailureReason::WrongSecret, FailureReason::NotFound]
    );
}

#[tokio::test]
async fn garbage_never_reaches_the_store() {
    let f = fixture();
    let other_prefix = KeyFormat::new("pk_test").unwrap().generate().unwrap();
    let cases = [
        "",
        "hello",
        "sk_test_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB000000",
        other_prefix.expose_secret(),
    ];
    for presented in cases {
        let err = f.keyring.verify(presented, &ctx()).await.unwrap_err();
        assert_eq!(err.status_code(), 401);
    }
    assert!(matches!(
        f.keyring.verify(other_prefix.expose_secret(), &ctx()).await,
        Err(VerifyError::UnknownPrefix)
    ));
    assert_eq!(f.store.gets.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn revoked_key_never_verifies_again_even_from_cache() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    f.keyring.verify(key, &ctx()).await.unwrap();
    let revoked = f.keyring.revoke(&issued.record.id, "leaked").await.unwrap();
    assert_eq!(revoked.status, KeyStatus::Revoked);
    assert_eq!(revoked.revocation.as_ref().unwrap().reason, "leaked");
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::Revoked)
    ));
    assert!(matches!(
        f.keyring.enable(&issued.record.id).await,
        Err(KeyringError::InvalidState(_))
    ));
    assert!(matches!(
        f.keyring.rotate(&issued.record.id, None).await,
        Err(KeyringError::InvalidState(_))
    ));
    assert_eq!(
        f.bus.0.lock().unwrap().as_slice(),
        std::slice::from_ref(&issued.record.id),
        "revocation must be announced to the fleet"
    );
}

#[tokio::test]
async fn disable_and_enable() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    f.keyring.disable(&issued.record.id).await.unwrap();
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::Disabled)
    ));
    f.keyring.enable(&issued.record.id).await.unwrap();
    f.keyring.verify(key, &ctx()).await.unwrap();
}

#[tokio::test]
async fn expiry_and_not_before_follow_the_clock_on_every_hit() {
    let f = fixture();
    let start = f.clock.now();
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("a", "n")
                .not_before(start + TimeDelta::seconds(10))
                .expires_in(TimeDelta::seconds(20)),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::NotYetValid)
    ));
    f.clock.advance(TimeDelta::seconds(10));
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.clock.advance(TimeDelta::milliseconds(9_999));
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.clock.advance(TimeDelta::milliseconds(1));
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::Expired)
    ));
    assert_eq!(
        f.store.gets.load(Ordering::SeqCst),
        1,
        "one store read: every later verdict, expiry included, came from the cache"
    );
}

#[tokio::test]
async fn issue_rejects_bad_requests() {
    let f = fixture();
    let now = f.clock.now();
    for request in [
        IssueRequest::new("", "n"),
        IssueRequest::new("a", "bad\nname"),
        IssueRequest::new("a", "n").expires_at(now),
        IssueRequest::new("a", "n").expires_in(TimeDelta::seconds(-1)),
        IssueRequest::new("a", "n")
            .not_before(now + TimeDelta::hours(2))
            .expires_in(TimeDelta::hours(1)),
        IssueRequest::new("a", "n").scopes([""]),
        IssueRequest::new("a", "n").metadata(serde_json::json!("x".repeat(20_000))),
    ] {
        assert!(matches!(
            f.keyring.issue(request).await,
            Err(KeyringError::InvalidRequest(_))
        ));
    }
    assert!(f.store.inner.is_empty());
}

#[tokio::test]
async fn client_address_allowlist() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").allowed_networks([
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let from = |ip: &str| VerifyContext::new().client_ip(ip.parse().unwrap());
    f.keyring.verify(key, &from("10.1.2.3")).await.unwrap();
    f.keyring.verify(key, &from("2001:db8::5")).await.unwrap();
    let denied = f
        .keyring
        .verify(key, &from("192.168.1.1"))
        .await
        .unwrap_err();
    assert!(matches!(denied, VerifyError::ClientNotAllowed));
    assert_eq!(denied.status_code(), 403);
    assert!(
        matches!(
            f.keyring.verify(key, &ctx()).await,
            Err(VerifyError::ClientNotAllowed)
        ),
        "unknown client address must fail closed"
    );
}

#[tokio::test]
async fn remaining_uses_are_taken_only_by_admitted_requests() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("a", "n")
                .remaining_uses(2)
                .allowed_networks(["10.0.0.0/8".parse().unwrap()]),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let inside = VerifyContext::new().client_ip("10.0.0.1".parse().unwrap());
    let outside = VerifyContext::new().client_ip("11.0.0.1".parse().unwrap());
    for _ in 0..3 {
        assert!(f.keyring.verify(key, &outside).await.is_err());
    }
    assert_eq!(
        f.keyring
            .verify(key, &inside)
            .await
            .unwrap()
            .remaining_uses(),
        Some(1)
    );
    assert_eq!(
        f.keyring
            .verify(key, &inside)
            .await
            .unwrap()
            .remaining_uses(),
        Some(0)
    );
    let err = f.keyring.verify(key, &inside).await.unwrap_err();
    assert!(matches!(err, VerifyError::UsageExhausted));
    assert_eq!(err.status_code(), 429);
}

#[tokio::test]
async fn rotation_keeps_the_old_key_for_the_grace_period() {
    let f = fixture();
    let old = f
        .keyring
        .issue(
            IssueRequest::new("acct", "deploy")
                .scopes(["a:b"])
                .metadata(serde_json::json!({"team": 7})),
        )
        .await
        .unwrap();
    let new = f
        .keyring
        .rotate(&old.record.id, Some(TimeDelta::hours(1)))
        .await
        .unwrap();
    assert_ne!(new.record.id, old.record.id);
    assert_eq!(
        (
            new.record.owner.as_str(),
            new.record.attributes.scopes.clone(),
            new.record.attributes.metadata.clone()
        ),
        (
            "acct",
            vec!["a:b".parse::<crate::Scope>().unwrap()],
            serde_json::json!({"team": 7})
        )
    );
    f.keyring
        .verify(old.key.expose_secret(), &ctx())
        .await
        .unwrap();
    f.keyring
        .verify(new.key.expose_secret(), &ctx())
        .await
        .unwrap();
    assert!(matches!(
        f.keyring.rotate(&old.record.id, None).await,
        Err(KeyringError::InvalidState(_))
    ));
    f.clock.advance(TimeDelta::hours(1));
    assert!(matches!(
        f.keyring.verify(old.key.expose_secret(), &ctx()).await,
        Err(VerifyError::Expired)
    ));
    f.keyring
        .verify(new.key.expose_secret(), &ctx())
        .await
        .unwrap();
    assert_eq!(
        f.keyring.get(&old.record.id).await.unwrap().successor,
        Some(new.record.id.clone())
    );
}

#[tokio::test]
async fn rotation_with_default_grace_of_a_day() {
    let f = fixture();
    let old = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    f.keyring.rotate(&old.record.id, None).await.unwrap();
    f.clock
        .advance(TimeDelta::hours(24) - TimeDelta::seconds(1));
    f.keyring
        .verify(old.key.expose_secret(), &ctx())
        .await
        .unwrap();
    f.clock.advance(TimeDelta::seconds(1));
    assert!(
        f.keyring
            .verify(old.key.expose_secret(), &ctx())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn store_failure_fails_closed() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    f.store.down.store(true, Ordering::SeqCst);
    let err = f
        .keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::StoreUnavailable(_)));
    assert_eq!(err.status_code(), 503);
    assert!(matches!(
        f.keyring.issue(IssueRequest::new("a", "n")).await,
        Err(KeyringError::Store(_))
    ));
}

#[tokio::test]
async fn credit_store_failure_fails_closed_even_when_cached() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(10))
        .await
        .unwrap();
    f.keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    f.store.down.store(true, Ordering::SeqCst);
    assert!(matches!(
        f.keyring.verify(issued.key.expose_secret(), &ctx()).await,
        Err(VerifyError::StoreUnavailable(_))
    ));
}

#[tokio::test]
async fn corrupt_stored_hash_fails_closed() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let mut record = issued.record.clone();
    record.hash =
        crate::PhcHash::new("$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
            .unwrap();
    f.store.inner.update(&record).await.unwrap();
    let err = f
        .keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Internal(_)));
}

#[tokio::test]
async fn updates_apply_and_invalidate_the_cache() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    assert!(
        f.keyring
            .verify(key, &ctx())
            .await
            .unwrap()
            .record()
            .attributes
            .scopes
            .is_empty()
    );
    let updated = f
        .keyring
        .update(
            &issued.record.id,
            KeyUpdate::new().scopes(["users:read"]).name("renamed"),
        )
        .await
        .unwrap();
    assert_eq!(updated.attributes.name, "renamed");
    assert_eq!(
        f.keyring
            .verify(key, &ctx())
            .await
            .unwrap()
            .record()
            .attributes
            .scopes,
        vec!["users:read".parse::<crate::Scope>().unwrap()]
    );
    assert!(matches!(
        f.keyring
            .update(&issued.record.id, KeyUpdate::new().scopes([" "]))
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
    let unknown = f.keyring.format().generate().unwrap();
    assert!(matches!(
        f.keyring.update(unknown.id(), KeyUpdate::new()).await,
        Err(KeyringError::NotFound)
    ));
}

#[tokio::test]
async fn legacy_hashes_are_upgraded_on_verify() {
    let store = MemoryStore::new();
    let hmac = HmacSha256Hasher::new("k1", Pepper::new([3u8; 32]).unwrap()).unwrap();
    let format = KeyFormat::new("sk_test").unwrap();
    let old = Keyring::builder(format.clone(), store.clone())
        .hashes(HashPolicy::new(hmac.clone()))
        .build()
        .unwrap();
    let issued = old.issue(IssueRequest::new("a", "n")).await.unwrap();
    assert!(issued.record.hash.as_str().starts_with("$hmac-sha256$"));

    let argon = Argon2idHasher::builder()
        .m_cost(64)
        .t_cost(1)
        .build()
        .unwrap();
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let new = Keyring::builder(format, store.clone())
        .hashes(HashPolicy::new(argon).accept(hmac))
        .audit(Channel(tx))
        .build()
        .unwrap();
    new.verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    // The rehash runs as a background task: wait for its event.
    let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.recv())
        .await
        .expect("rehash finished");
    assert_eq!(
        event,
        Some(AuditEvent::Rehashed {
            id: issued.record.id.clone()
        })
    );
    let stored = store.get(&issued.record.id).await.unwrap().unwrap();
    assert!(
        stored.hash.as_str().starts_with("$argon2id$"),
        "hash must be upgraded: {:?}",
        stored.hash
    );
    let secret = issued.key.parsed().expose_secret().as_bytes().to_vec();
    assert_eq!(
        fast_hashes().verify(&secret, stored.hash.as_str()).unwrap(),
        Verdict::Match {
            needs_rehash: false
        }
    );
    new.invalidate_cached(&issued.record.id);
    new.verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn last_used_is_debounced_and_batched() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let key = issued.key.expose_secret();
    for _ in 0..5 {
        f.keyring.verify(key, &ctx()).await.unwrap();
    }
    f.keyring.flush_last_used().await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(f.store.last_used_writes.load(Ordering::SeqCst), 1);
    let first = f.clock.now();
    assert_eq!(
        f.keyring.get(&issued.record.id).await.unwrap().last_used_at,
        Some(first)
    );

    f.clock.advance(TimeDelta::seconds(59));
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.keyring.flush_last_used().await.unwrap();
    assert_eq!(
        f.store.last_used_writes.load(Ordering::SeqCst),
        1,
        "within the debounce interval: no write"
    );

    f.clock.advance(TimeDelta::seconds(1));
    f.keyring.verify(key, &ctx()).await.unwrap();
    f.keyring.flush_last_used().await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(f.store.last_used_writes.load(Ordering::SeqCst), 2);
    assert_eq!(
        f.keyring.get(&issued.record.id).await.unwrap().last_used_at,
        Some(f.clock.now())
    );
}

#[tokio::test]
async fn listings() {
    let f = fixture();
    for i in 0..3 {
        f.keyring
            .issue(IssueRequest::new("owner_x", format!("k{i}")).expires_in(TimeDelta::days(i + 1)))
            .await
            .unwrap();
    }
    f.keyring
        .issue(IssueRequest::new("owner_y", "other"))
        .await
        .unwrap();
    let page = f
        .keyring
        .list_by_owner("owner_x", &PageRequest::new(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    let soon = f
        .keyring
        .expiring_within(TimeDelta::hours(36), &PageRequest::new(10))
        .await
        .unwrap();
    assert_eq!(
        soon.items
            .iter()
            .map(|r| r.attributes.name.as_str())
            .collect::<Vec<_>>(),
        vec!["k0"]
    );
}

#[tokio::test]
async fn nothing_printable_contains_the_secret() {
    let f = fixture();
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let secret = issued.key.parsed().expose_secret().to_owned();
    let verified = f
        .keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();
    let wrong = wrong_secret(issued.key.expose_secret());
    let err = f.keyring.verify(&wrong, &ctx()).await.unwrap_err();
    let shown = [
        format!("{issued:?}"),
        format!("{verified:?}"),
        format!("{err} {err:?}"),
        format!("{:?}", f.keyring),
        format!("{:?}", f.audit.0.lock().unwrap()),
        serde_json::to_string(&issued.record).unwrap(),
    ];
    for s in shown {
        assert!(!s.contains(&secret), "{s}");
    }
}

#[tokio::test]
async fn builder_rejects_bad_configuration() {
    let mk = || Keyring::builder(KeyFormat::new("a").unwrap(), MemoryStore::new());
    assert!(matches!(
        mk().cache(TimeDelta::zero(), 10).build(),
        Err(KeyringError::Config(_))
    ));
    assert!(matches!(
        mk().cache(TimeDelta::hours(1), 10).build(),
        Err(KeyringError::Config(_))
    ));
    assert!(matches!(
        mk().cache(TimeDelta::seconds(1), 0).build(),
        Err(KeyringError::Config(_))
    ));
    assert!(matches!(
        mk().rotation_grace(TimeDelta::seconds(-1)).build(),
        Err(KeyringError::Config(_))
    ));
    assert!(mk().without_cache().build().is_ok());
}

#[tokio::test]
async fn scopes_and_roles_are_enforced_after_authentication() {
    use crate::{Requirement, Roles, Scope};
    let roles = Roles::new()
        .with_role("billing_admin", ["billing:*".parse::<Scope>().unwrap()])
        .unwrap();
    let f = fixture_with(|b| b.roles(roles));
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("a", "n")
                .scopes(["users:read"])
                .roles(["billing_admin"])
                .remaining_uses(5),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();

    let ok: Requirement = "users:read and billing:refunds:write".parse().unwrap();
    let verified = f
        .keyring
        .verify(key, &VerifyContext::new().require(&ok))
        .await
        .unwrap();
    assert!(
        verified
            .scopes()
            .covers(&"billing:invoices:read".parse().unwrap())
    );
    assert_eq!(verified.remaining_uses(), Some(4));

    let needs_admin: Requirement = "users:read and admin:*".parse().unwrap();
    let err = f
        .keyring
        .verify(key, &VerifyContext::new().require(&needs_admin))
        .await
        .unwrap_err();
    match &err {
        VerifyError::InsufficientScope(missing) => {
            assert_eq!(missing.missing(), &["admin:*".parse::<Scope>().unwrap()]);
        }
        other => panic!("expected insufficient scope, got {other:?}"),
    }
    assert_eq!(err.status_code(), 403);
    assert_eq!(
        f.keyring
            .get(&issued.record.id)
            .await
            .unwrap()
            .remaining_uses,
        Some(4),
        "a request denied for scope must not spend a use"
    );
}

#[tokio::test]
async fn invalid_scopes_and_unknown_roles_are_rejected_at_issue_and_update() {
    let f = fixture();
    for request in [
        IssueRequest::new("a", "n").scopes(["Users:Read"]),
        IssueRequest::new("a", "n").scopes(["users::read"]),
        IssueRequest::new("a", "n").roles(["no_such_role"]),
    ] {
        let err = f.keyring.issue(request).await.unwrap_err();
        assert!(matches!(err, KeyringError::InvalidRequest(_)), "{err:?}");
    }
    let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    let err = f
        .keyring
        .update(&issued.record.id, KeyUpdate::new().roles(["ghost"]))
        .await
        .unwrap_err();
    assert!(matches!(err, KeyringError::InvalidRequest(ref m) if m.contains("ghost")));
}

mod rate_limits {
    use std::num::NonZeroU32;

    use super::*;
    use crate::ratelimit::{MemoryLimiter, Policy, Quota};

    type Limited = Keyring<Probe, MemoryLimiter<ManualClock>>;

    fn per_minute(name: &str, n: u32) -> Policy {
        Policy::single(name, Quota::per_minute(NonZeroU32::new(n).unwrap())).unwrap()
    }

    fn limited(
        configure: impl FnOnce(
            KeyringBuilder<Probe, MemoryLimiter<ManualClock>>,
        ) -> KeyringBuilder<Probe, MemoryLimiter<ManualClock>>,
    ) -> (Limited, Probe, ManualClock) {
        let store = Probe::default();
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
        let admin: crate::Requirement = "admin:*".parse().unwrap();
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
        let (keyring, store, clock) =
            limited(|b| b.failed_attempt_throttle(per_minute("failures", 3)));
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
        let reads = store.gets.load(Ordering::SeqCst);
        let err = keyring
            .verify(uncached.key.expose_secret(), &attacker)
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::Throttled(_)), "{err:?}");
        assert_eq!(err.status_code(), 429);
        assert_eq!(
            store.gets.load(Ordering::SeqCst),
            reads,
            "a throttled client must not reach the store"
        );
        // A key already in the cache costs no lookup and no hash: it passes the throttle,
        // so one attacker behind a shared address cannot lock verified keys out.
        keyring.verify(key, &attacker).await.unwrap();
        assert_eq!(store.gets.load(Ordering::SeqCst), reads);
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
}

mod review_fixes {
    use super::*;

    #[tokio::test]
    async fn a_revocation_during_a_verification_is_not_undone_by_the_cache() {
        let store = Probe::default();
        let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
            .hashes(fast_hashes())
            .build()
            .unwrap();
        let issued = keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
        let key = issued.key.expose_secret().to_owned();

        store.pause_next_get.store(true, Ordering::SeqCst);
        let racing = {
            let keyring = keyring.clone();
            let key = key.clone();
            tokio::spawn(async move {
                keyring
                    .verify(&key, &VerifyContext::new())
                    .await
                    .map(|_| ())
            })
        };
        store.paused.notified().await; // the verification holds the pre-revocation record
        keyring.revoke(&issued.record.id, "leaked").await.unwrap();
        store.release.add_permits(1);
        // The in-flight verification may succeed (it began before the revocation)...
        let _ = racing.await.unwrap();
        // ...but nothing it cached may outlive the revocation.
        assert!(matches!(
            keyring.verify(&key, &ctx()).await,
            Err(VerifyError::Revoked)
        ));
    }

    #[tokio::test]
    async fn disabled_keys_cannot_be_rotated_into_active_ones() {
        let f = fixture();
        let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
        f.keyring.disable(&issued.record.id).await.unwrap();
        let err = f.keyring.rotate(&issued.record.id, None).await.unwrap_err();
        assert!(matches!(err, KeyringError::InvalidState(_)), "{err:?}");
        assert_eq!(
            f.keyring
                .list_by_owner("a", &PageRequest::new(10))
                .await
                .unwrap()
                .items
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_revocation_during_rotation_wins() {
        let store = Probe::default();
        let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), store.clone())
            .hashes(fast_hashes())
            .build()
            .unwrap();
        let issued = keyring.issue(IssueRequest::new("a", "n")).await.unwrap();

        store.pause_next_insert.store(true, Ordering::SeqCst);
        let rotation = {
            let keyring = keyring.clone();
            let id = issued.record.id.clone();
            tokio::spawn(async move { keyring.rotate(&id, None).await.map(|k| k.record.id) })
        };
        store.paused.notified().await; // the successor is stored, not yet linked
        keyring.revoke(&issued.record.id, "leaked").await.unwrap();
        store.release.add_permits(1);
        let err = rotation.await.unwrap().unwrap_err();
        assert!(matches!(err, KeyringError::InvalidState(_)), "{err:?}");
        let page = keyring
            .list_by_owner("a", &PageRequest::new(10))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 2);
        for record in page.items {
            assert_eq!(
                record.status,
                KeyStatus::Revoked,
                "no key may survive: {record:?}"
            );
        }
    }

    #[tokio::test]
    async fn rotation_hands_over_remaining_uses_instead_of_doubling_them() {
        let f = fixture();
        let issued = f
            .keyring
            .issue(IssueRequest::new("a", "n").remaining_uses(3))
            .await
            .unwrap();
        f.keyring
            .verify(issued.key.expose_secret(), &ctx())
            .await
            .unwrap();
        let successor = f.keyring.rotate(&issued.record.id, None).await.unwrap();
        assert_eq!(successor.record.remaining_uses, Some(2));
        // During the grace period both keys work, drawing on one balance.
        let old = f
            .keyring
            .verify(issued.key.expose_secret(), &ctx())
            .await
            .unwrap();
        assert_eq!(old.remaining_uses(), Some(1));
        let new = f
            .keyring
            .verify(successor.key.expose_secret(), &ctx())
            .await
            .unwrap();
        assert_eq!(new.remaining_uses(), Some(0));
        for key in [&issued.key, &successor.key] {
            assert!(matches!(
                f.keyring.verify(key.expose_secret(), &ctx()).await,
                Err(VerifyError::UsageExhausted)
            ));
        }
    }

    #[tokio::test]
    async fn extreme_durations_are_errors_not_panics() {
        let f = fixture();
        let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
        assert!(matches!(
            f.keyring
                .rotate(&issued.record.id, Some(TimeDelta::MAX))
                .await,
            Err(KeyringError::InvalidRequest(_))
        ));
        f.keyring
            .expiring_within(TimeDelta::MAX, &PageRequest::new(10))
            .await
            .unwrap();
        assert!(matches!(
            f.keyring
                .issue(IssueRequest::new("a", "n").expires_in(TimeDelta::MAX))
                .await,
            Err(KeyringError::InvalidRequest(_))
        ));
        let build = Keyring::builder(KeyFormat::new("a").unwrap(), MemoryStore::new())
            .rotation_grace(TimeDelta::MAX)
            .build();
        assert!(matches!(build, Err(KeyringError::Config(_))));
    }

    #[tokio::test]
    async fn a_rotated_keys_grace_cannot_be_extended() {
        let f = fixture();
        let issued = f.keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
        f.keyring
            .rotate(&issued.record.id, Some(TimeDelta::hours(1)))
            .await
            .unwrap();
        for change in [
            KeyUpdate::new().expires_at(None),
            KeyUpdate::new().expires_at(Some(f.clock.now() + TimeDelta::days(9))),
        ] {
            assert!(matches!(
                f.keyring.update(&issued.record.id, change).await,
                Err(KeyringError::InvalidState(_))
            ));
        }
        f.keyring
            .update(
                &issued.record.id,
                KeyUpdate::new().expires_at(Some(f.clock.now() + TimeDelta::minutes(5))),
            )
            .await
            .unwrap();
        let err = f
            .keyring
            .update(
                &issued.record.id,
                KeyUpdate::new().not_before(Some(f.clock.now() + TimeDelta::hours(2))),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, KeyringError::InvalidRequest(_)));
    }

    #[tokio::test]
    async fn a_peek_spends_no_credit_and_an_impossible_cost_is_a_server_error() {
        use std::num::NonZeroU32;

        use crate::ratelimit::{Policy, Quota};
        let policy = Policy::single("p", Quota::per_minute(NonZeroU32::new(5).unwrap())).unwrap();
        let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
            .hashes(fast_hashes())
            .policy(policy)
            .default_policy("p")
            .build()
            .unwrap();
        let issued = keyring
            .issue(IssueRequest::new("a", "n").remaining_uses(3))
            .await
            .unwrap();
        let key = issued.key.expose_secret();
        let peek = keyring
            .verify(key, &VerifyContext::new().cost(0))
            .await
            .unwrap();
        assert_eq!(peek.remaining_uses(), Some(3));
        assert_eq!(
            keyring.get(&issued.record.id).await.unwrap().remaining_uses,
            Some(3)
        );
        let err = keyring
            .verify(key, &VerifyContext::new().cost(6))
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::InvalidCost(_)), "{err:?}");
        assert_eq!(err.status_code(), 500);
    }

    #[test]
    fn last_used_flush_flag_is_released_by_a_panicking_flush() {
        let tracker = super::super::last_used::LastUsed::new(TimeDelta::minutes(1));
        assert!(tracker.try_start_flush());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = super::super::last_used::FlushGuard(&tracker);
            panic!("store exploded");
        }));
        assert!(result.is_err());
        assert!(
            tracker.try_start_flush(),
            "a panicking flush must not block later flushes"
        );
    }
}

mod hash_gate {
    use std::sync::mpsc;

    use super::*;
    use crate::hash::{Phc, PhcHash, SecretHasher};

    /// A hasher whose verifications block until the test lets them go.
    #[derive(Debug)]
    struct Held {
        inner: HmacSha256Hasher,
        entered: Mutex<mpsc::Sender<()>>,
        release: Mutex<mpsc::Receiver<()>>,
    }

    impl SecretHasher for Held {
        fn algorithm(&self) -> &'static str {
            self.inner.algorithm()
        }
        fn hash(&self, secret: &[u8]) -> Result<PhcHash, crate::HashError> {
            self.inner.hash(secret)
        }
        fn verify(&self, secret: &[u8], stored: &Phc<'_>) -> Result<bool, crate::HashError> {
            let _ = self.entered.lock().unwrap().send(());
            let _ = self.release.lock().unwrap().recv();
            self.inner.verify(secret, stored)
        }
        fn needs_rehash(&self, stored: &Phc<'_>) -> bool {
            self.inner.needs_rehash(stored)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_hash_queue_refuses_instead_of_waiting() {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let hmac = HmacSha256Hasher::new("k1", Pepper::new([5u8; 32]).unwrap()).unwrap();
        let store = MemoryStore::new();
        let format = KeyFormat::new("sk_test").unwrap();
        let issuer = Keyring::builder(format.clone(), store.clone())
            .hashes(HashPolicy::new(hmac.clone()))
            .build()
            .unwrap();
        let issued = issuer.issue(IssueRequest::new("a", "n")).await.unwrap();
        let held = Held {
            inner: hmac,
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        };
        // prepare_dummy() hashes, which does not block; verifications do.
        let keyring = Keyring::builder(format, store)
            .hashes(HashPolicy::new(held))
            .uncached_concurrency(1, 0)
            .without_cache()
            .build()
            .unwrap();

        let first = {
            let keyring = keyring.clone();
            let key = issued.key.expose_secret().to_owned();
            tokio::spawn(async move {
                keyring
                    .verify(&key, &VerifyContext::new())
                    .await
                    .map(|_| ())
            })
        };
        tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
            .await
            .unwrap();
        // The only slot is busy and no one may wait: refused at once, with 503.
        let err = keyring
            .verify(issued.key.expose_secret(), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::Overloaded), "{err:?}");
        assert_eq!(err.status_code(), 503);
        release_tx.send(()).unwrap();
        first.await.unwrap().unwrap();
        // The slot is free again.
        release_tx.send(()).unwrap();
        keyring
            .verify(issued.key.expose_secret(), &ctx())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn weighted_requests_spend_their_weight_in_credits() {
    let f = fixture();
    let issued = f
        .keyring
        .issue(IssueRequest::new("a", "n").remaining_uses(10))
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    let v = f
        .keyring
        .verify(key, &VerifyContext::new().cost(7))
        .await
        .unwrap();
    assert_eq!(v.remaining_uses(), Some(3));
    let err = f
        .keyring
        .verify(key, &VerifyContext::new().cost(4))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::UsageExhausted));
    assert_eq!(
        f.keyring
            .verify(key, &VerifyContext::new().cost(3))
            .await
            .unwrap()
            .remaining_uses(),
        Some(0)
    );
}

#[tokio::test]
async fn uses_are_refilled_on_schedule_once_per_period() {
    use crate::ratelimit::Refill;
    let f = fixture();
    let monthly = Refill::new(3, TimeDelta::days(30), 3).unwrap();
    assert!(matches!(
        f.keyring
            .issue(IssueRequest::new("a", "n").refill(monthly))
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
    let issued = f
        .keyring
        .issue(
            IssueRequest::new("a", "n")
                .remaining_uses(2)
                .refill(monthly),
        )
        .await
        .unwrap();
    let key = issued.key.expose_secret();
    for left in [1, 0] {
        assert_eq!(
            f.keyring
                .verify(key, &ctx())
                .await
                .unwrap()
                .remaining_uses(),
            Some(left)
        );
    }
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::UsageExhausted)
    ));

    f.clock.advance(TimeDelta::days(30));
    // Topped up to the max (3), not 2 + 3, and only once however many verify.
    for left in [2, 1, 0] {
        assert_eq!(
            f.keyring
                .verify(key, &ctx())
                .await
                .unwrap()
                .remaining_uses(),
            Some(left)
        );
    }
    assert!(matches!(
        f.keyring.verify(key, &ctx()).await,
        Err(VerifyError::UsageExhausted)
    ));
    let stored = f.keyring.get(&issued.record.id).await.unwrap();
    assert_eq!(
        stored.last_refill_at,
        Some(issued.record.created_at + TimeDelta::days(30))
    );

    // Two processes (keyrings) sharing the store refill a period once between them.
    let other = Keyring::builder(KeyFormat::new("sk_test").unwrap(), f.store.clone())
        .hashes(fast_hashes())
        .clock(f.clock.clone())
        .build()
        .unwrap();
    f.clock.advance(TimeDelta::days(30));
    other.verify(key, &ctx()).await.unwrap();
    f.keyring.verify(key, &ctx()).await.unwrap();
    assert_eq!(
        f.keyring
            .get(&issued.record.id)
            .await
            .unwrap()
            .remaining_uses,
        Some(1)
    );
}
