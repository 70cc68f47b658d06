//! Dormant-key reports: which keys count as dormant, per owner and for all owners, and what
//! a store without the optional listing answers.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, Utc};
use keymint::{
    Argon2idHasher, HashPolicy, IssueRequest, KeyFormat, KeyId, KeyRecord, KeyStore, Keyring,
    KeyringError, ManualClock, MemoryStore, Page, PageRequest, StoreError, VerifyContext,
};

fn keyring<S: KeyStore>(store: S, clock: &ManualClock) -> Keyring<S> {
    Keyring::builder(KeyFormat::new("sk_live").unwrap(), store)
        .hashes(HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn ids(page: &Page) -> Vec<KeyId> {
    let mut ids: Vec<KeyId> = page.items.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn only_working_keys_unused_for_the_period_are_dormant() {
    let clock = ManualClock::default();
    let store = MemoryStore::new();
    let keyring = keyring(store.clone(), &clock);
    let issue =
        |owner: &'static str, name: &'static str| keyring.issue(IssueRequest::new(owner, name));

    let never_used = issue("acct_a", "never used").await.unwrap();
    let used_long_ago = issue("acct_a", "used long ago").await.unwrap();
    let used_lately = issue("acct_a", "used lately").await.unwrap();
    let revoked = issue("acct_a", "revoked").await.unwrap();
    let rolled = issue("acct_a", "rolled").await.unwrap();
    let other_owner = issue("acct_b", "b's").await.unwrap();
    let expiring = keyring
        .issue(IssueRequest::new("acct_a", "expires").expires_in(TimeDelta::days(50)))
        .await
        .unwrap();
    let ctx = VerifyContext::new();
    keyring
        .verify(used_long_ago.key.expose_secret(), &ctx)
        .await
        .unwrap();
    keyring.flush_last_used().await.unwrap();

    clock.advance(TimeDelta::days(80));
    keyring
        .verify(used_lately.key.expose_secret(), &ctx)
        .await
        .unwrap();
    keyring.flush_last_used().await.unwrap();
    keyring.revoke(&revoked.record.id, "gone").await.unwrap();
    let successor = keyring
        .rotate(&rolled.record.id, Some(TimeDelta::zero()))
        .await
        .unwrap();
    clock.advance(TimeDelta::days(11));

    // 91 days after issue; the successor is 11 days old.
    let all = keyring
        .dormant_keys(TimeDelta::days(90), None, &PageRequest::new(100))
        .await
        .unwrap();
    let mut expected = vec![
        never_used.record.id.clone(),
        used_long_ago.record.id.clone(),
        other_owner.record.id.clone(),
    ];
    expected.sort();
    assert_eq!(ids(&all), expected);
    let mine = keyring
        .dormant_keys(TimeDelta::days(90), Some("acct_a"), &PageRequest::new(100))
        .await
        .unwrap();
    let mut expected = vec![
        never_used.record.id.clone(),
        used_long_ago.record.id.clone(),
    ];
    expected.sort();
    assert_eq!(ids(&mine), expected);

    // The successor and the key used on day 80 are 11 days idle: dormant for a 10-day
    // period, not for a 12-day one. The expired key is never reported.
    let ten = keyring
        .dormant_keys(TimeDelta::days(10), Some("acct_a"), &PageRequest::new(100))
        .await
        .unwrap();
    assert!(ids(&ten).contains(&successor.record.id));
    assert!(ids(&ten).contains(&used_lately.record.id));
    assert!(
        !ids(&ten).contains(&expiring.record.id),
        "expired keys are not reported"
    );
    let twelve = keyring
        .dormant_keys(TimeDelta::days(12), Some("acct_a"), &PageRequest::new(100))
        .await
        .unwrap();
    assert!(!ids(&twelve).contains(&successor.record.id));
    assert!(!ids(&twelve).contains(&used_lately.record.id));

    assert!(matches!(
        keyring
            .dormant_keys(TimeDelta::days(-1), None, &PageRequest::new(10))
            .await,
        Err(KeyringError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn reports_page_through_every_owner() {
    let clock = ManualClock::default();
    let keyring = keyring(MemoryStore::new(), &clock);
    let mut issued = Vec::new();
    for i in 0..7 {
        issued.push(
            keyring
                .issue(IssueRequest::new(format!("acct_{i}"), "k"))
                .await
                .unwrap()
                .record
                .id,
        );
    }
    clock.advance(TimeDelta::days(31));
    let mut seen = Vec::new();
    let mut page = PageRequest::new(3);
    loop {
        let got = keyring
            .dormant_keys(TimeDelta::days(30), None, &page)
            .await
            .unwrap();
        assert!(got.items.len() <= 3);
        seen.extend(got.items.iter().map(|r| r.id.clone()));
        match got.next_after {
            Some(after) => page = PageRequest::new(3).after(after),
            None => break,
        }
    }
    issued.sort();
    assert_eq!(seen, issued);
}

/// A store written before `list_unused_since` existed: only the required methods.
#[derive(Clone, Default)]
struct OldStore(MemoryStore);

impl KeyStore for OldStore {
    async fn insert(&self, r: &KeyRecord) -> Result<(), StoreError> {
        self.0.insert(r).await
    }
    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.get(id).await
    }
    async fn update(&self, r: &KeyRecord) -> Result<u64, StoreError> {
        self.0.update(r).await
    }
    async fn decrement_remaining(
        &self,
        id: &KeyId,
        uses: u64,
    ) -> Result<keymint::Decrement, StoreError> {
        self.0.decrement_remaining(id, uses).await
    }
    async fn record_last_used(&self, batch: &[(KeyId, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.0.record_last_used(batch).await
    }
    async fn list_by_owner(&self, owner: &str, page: &PageRequest) -> Result<Page, StoreError> {
        self.0.list_by_owner(owner, page).await
    }
    async fn list_expiring(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        self.0.list_expiring(from, to, page).await
    }
}

#[tokio::test]
async fn a_store_without_the_listing_reports_per_owner_and_says_so_for_all() {
    let clock = ManualClock::default();
    let keyring = keyring(OldStore::default(), &clock);
    let old = keyring
        .issue(IssueRequest::new("acct_a", "k"))
        .await
        .unwrap();
    clock.advance(TimeDelta::days(100));
    let mine = keyring
        .dormant_keys(TimeDelta::days(90), Some("acct_a"), &PageRequest::new(10))
        .await
        .unwrap();
    assert_eq!(ids(&mine), [old.record.id]);
    assert!(matches!(
        keyring
            .dormant_keys(TimeDelta::days(90), None, &PageRequest::new(10))
            .await,
        Err(KeyringError::Store(StoreError::Unsupported(_)))
    ));
}
