//! Lifecycle changes: revoke, disable, enable, update, rotate, and listings.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::issue::{RecordTemplate, check_text, parse_scopes};
use super::{AuditEvent, IssuedKey, Keyring};
use crate::certificate::CertificateBinding;
use crate::cidr::Cidr;
use crate::clock::Clock as _;
use crate::format::KeyId;
use crate::keyring::KeyringError;
use crate::origin::AllowedOrigin;
use crate::ratelimit::RateLimiter;
use crate::ratelimit::{KeyLimit, Refill};
use crate::record::{Environment, KeyAttributes, KeyRecord, KeyStatus, Revocation};
use crate::store::StoreError;
use crate::store::{KeyStore, MAX_PAGE_SIZE, Page, PageRequest};

/// Attempts of a read-modify-write before reporting [`KeyringError::Contention`].
const UPDATE_ATTEMPTS: usize = 8;

/// The request with its size clamped to `1..=MAX_PAGE_SIZE`, whatever the caller set:
/// host stores then never see an unbounded page.
fn clamped(page: &PageRequest) -> PageRequest {
    PageRequest {
        limit: page.limit.clamp(1, MAX_PAGE_SIZE),
        after: page.after.clone(),
    }
}

/// Most records one [`Keyring::list_filtered`] call reads from the store.
pub const MAX_FILTER_SCAN: usize = 10_000;

/// Which keys [`Keyring::list_filtered`] returns; unset parts match every key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct KeyFilter {
    key_type: Option<String>,
    environment: Option<Environment>,
}

impl KeyFilter {
    /// Every key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys of one type (by its name, the prefix).
    pub fn key_type(mut self, name: impl Into<String>) -> Self {
        self.key_type = Some(name.into());
        self
    }

    /// Keys of one environment.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    fn matches<S: KeyStore, L: RateLimiter>(&self, keyring: &Keyring<S, L>, r: &KeyRecord) -> bool {
        let type_ok = self
            .key_type
            .as_deref()
            .is_none_or(|name| r.prefix.as_str() == name);
        let env_ok = self.environment.as_ref().is_none_or(|env| {
            keyring
                .inner
                .types
                .get(r.prefix.as_str())
                .is_some_and(|t| t.environment() == env)
        });
        type_ok && env_ok
    }
}

/// Longest rotation grace period accepted.
pub(super) const MAX_ROTATION_GRACE: TimeDelta = TimeDelta::days(366);

/// Only an active, not yet rotated key may be rotated: rotating a disabled key would
/// hand out an active one behind the back of whoever disabled it.
fn check_rotatable(r: &KeyRecord) -> Result<(), KeyringError> {
    match r.status {
        KeyStatus::Active if r.successor.is_none() => Ok(()),
        KeyStatus::Active => Err(KeyringError::InvalidState("the key was already rotated")),
        KeyStatus::Disabled => Err(KeyringError::InvalidState(
            "a disabled key cannot be rotated",
        )),
        KeyStatus::Revoked => Err(KeyringError::InvalidState(
            "a revoked key cannot be rotated",
        )),
    }
}

/// One change of a [`KeyUpdate`]: what it does to a key's attributes and balance.
type Change =
    Arc<dyn Fn(&mut KeyAttributes, &mut Option<u64>) -> Result<(), KeyringError> + Send + Sync>;

/// Changes to a key's attributes; fields left unset are kept.
///
/// ```
/// use keymint::KeyUpdate;
///
/// let change = KeyUpdate::new().name("renamed").scopes(["users:read"]).expires_at(None);
/// assert_eq!(change.fields(), ["name", "scopes", "expires_at"]);
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct KeyUpdate {
    /// In the order set; a field set twice is changed twice, the later value winning.
    changes: Vec<(&'static str, Change)>,
    restarts_refill: bool,
}

impl fmt::Debug for KeyUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyUpdate")
            .field("fields", &self.fields())
            .finish()
    }
}

impl KeyUpdate {
    /// No changes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The attributes this update changes, in the order set.
    pub fn fields(&self) -> Vec<&'static str> {
        self.changes.iter().map(|(field, _)| *field).collect()
    }

    fn set<T: Clone + Send + Sync + 'static>(
        mut self,
        field: &'static str,
        value: T,
        apply: fn(&mut KeyAttributes, &mut Option<u64>, T) -> Result<(), KeyringError>,
    ) -> Self {
        self.changes.push((
            field,
            Arc::new(move |attributes, uses| apply(attributes, uses, value.clone())),
        ));
        self
    }

    /// New name.
    pub fn name(self, name: impl Into<String>) -> Self {
        self.set("name", name.into(), |a, _, v| {
            a.name = v;
            Ok(())
        })
    }
    /// New description (`None` removes it).
    pub fn description(self, text: Option<String>) -> Self {
        self.set("description", text, |a, _, v| {
            a.description = v;
            Ok(())
        })
    }
    /// Replaces the granted scopes. Scope strings are parsed when the update is applied,
    /// so a bad one is reported with its position before anything is written.
    pub fn scopes<I: IntoIterator<Item = T>, T: Into<String>>(self, scopes: I) -> Self {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.set("scopes", scopes, |a, _, v| {
            a.scopes = parse_scopes(&v)?;
            Ok(())
        })
    }
    /// Replaces the roles.
    pub fn roles<I: IntoIterator<Item = T>, T: Into<String>>(self, roles: I) -> Self {
        let roles: Vec<String> = roles.into_iter().map(Into::into).collect();
        self.set("roles", roles, |a, _, v| {
            a.roles = v;
            Ok(())
        })
    }
    /// New expiry (`None`: never expires).
    pub fn expires_at(self, at: Option<DateTime<Utc>>) -> Self {
        self.set("expires_at", at, |a, _, v| {
            a.expires_at = v;
            Ok(())
        })
    }
    /// New start of validity (`None`: valid from issue).
    pub fn not_before(self, at: Option<DateTime<Utc>>) -> Self {
        self.set("not_before", at, |a, _, v| {
            a.not_before = v;
            Ok(())
        })
    }
    /// New use limit (`None`: unlimited).
    pub fn remaining_uses(self, uses: Option<u64>) -> Self {
        self.set("remaining_uses", uses, |_, remaining, v| {
            *remaining = v;
            Ok(())
        })
    }
    /// New refill schedule for the uses (`None`: no refill); its phase restarts now.
    pub fn refill(mut self, refill: Option<Refill>) -> Self {
        self.restarts_refill = refill.is_some();
        self.set("credit_refill", refill, |a, _, v| {
            a.credit_refill = v;
            Ok(())
        })
    }
    /// New rate-limit policy (`None`: the keyring's default).
    pub fn rate_limit_policy(self, name: Option<String>) -> Self {
        self.set("rate_limit_policy", name, |a, _, v| {
            a.rate_limit_policy = v;
            Ok(())
        })
    }
    /// New own rate limit of the key (`None`: its named or default policy).
    pub fn rate_limit(self, limit: Option<KeyLimit>) -> Self {
        self.set("rate_limit", limit, |a, _, v| {
            a.rate_limit = v;
            Ok(())
        })
    }
    /// Replaces the allowed client networks (empty: anywhere).
    pub fn allowed_networks(self, networks: impl IntoIterator<Item = Cidr>) -> Self {
        let networks: Vec<Cidr> = networks.into_iter().collect();
        self.set("allowed_networks", networks, |a, _, v| {
            a.allowed_networks = v;
            Ok(())
        })
    }
    /// Replaces the allowed origins of a publishable key (empty: as its type decides).
    pub fn allowed_origins(self, origins: impl IntoIterator<Item = AllowedOrigin>) -> Self {
        let origins: Vec<AllowedOrigin> = origins.into_iter().collect();
        self.set("allowed_origins", origins, |a, _, v| {
            a.allowed_origins = v;
            Ok(())
        })
    }
    /// Replaces the client certificates the key is bound to (empty: unbound). Binding a
    /// key that is in use refuses its callers until they present the certificate.
    pub fn certificate_bindings(
        self,
        bindings: impl IntoIterator<Item = CertificateBinding>,
    ) -> Self {
        let bindings: Vec<CertificateBinding> = bindings.into_iter().collect();
        self.set("certificate_bindings", bindings, |a, _, v| {
            a.certificate_bindings = v;
            Ok(())
        })
    }
    /// Replaces the metadata.
    pub fn metadata(self, value: serde_json::Value) -> Self {
        self.set("metadata", value, |a, _, v| {
            a.metadata = v;
            Ok(())
        })
    }

    /// Applies the changes, in order, to a key's attributes and balance.
    fn apply(
        &self,
        attributes: &mut KeyAttributes,
        remaining_uses: &mut Option<u64>,
    ) -> Result<(), KeyringError> {
        for (_, change) in &self.changes {
            change(attributes, remaining_uses)?;
        }
        Ok(())
    }
}

impl<S: KeyStore, L: RateLimiter> Keyring<S, L> {
    /// The record of `id`.
    ///
    /// # Errors
    /// [`KeyringError::NotFound`] or a store failure.
    pub async fn get(&self, id: &KeyId) -> Result<KeyRecord, KeyringError> {
        self.inner
            .store
            .get(id)
            .await?
            // A record of none of this keyring's types (another keyring's, on a shared
            // table) is not this keyring's to show or manage.
            .filter(|r| self.inner.types.get(r.prefix.as_str()).is_some())
            .ok_or(KeyringError::NotFound)
    }

    /// Settles a rotation that ended in [`KeyringError::RotationUnconfirmed`]: reads the
    /// old key and answers `true` if `successor` is linked to it (hand its key out), or
    /// `false` after revoking `successor` if it is not (the old key is untouched; rotate
    /// again).
    ///
    /// # Errors
    /// A store failure (the outcome is still unknown: try again later).
    pub async fn confirm_rotation(
        &self,
        old: &KeyId,
        successor: &IssuedKey,
    ) -> Result<bool, KeyringError> {
        let stored = self.get(old).await?;
        if stored.successor.as_ref() == Some(&successor.record.id) {
            self.rotated(&stored, &successor.record.id);
            return Ok(true);
        }
        self.revoke(
            &successor.record.id,
            "rotation of its predecessor did not complete",
        )
        .await?;
        Ok(false)
    }

    /// Read-modify-write with optimistic concurrency, retried on version conflicts.
    pub(super) async fn modify(
        &self,
        id: &KeyId,
        change: impl Fn(&mut KeyRecord) -> Result<(), KeyringError>,
    ) -> Result<KeyRecord, KeyringError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let mut record = self.get(id).await?;
            change(&mut record)?;
            match self.inner.store.update(&record).await {
                Ok(version) => {
                    record.version = version;
                    self.changed(id);
                    return Ok(record);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => {
                    crate::metrics::store_error(crate::metrics::StoreOp::Manage);
                    return Err(e.into());
                }
            }
        }
        Err(KeyringError::Contention)
    }

    /// Revokes `id` at once and for good: it never verifies again (in other processes,
    /// within the cache staleness bound; see [`CacheInvalidation`](super::CacheInvalidation)).
    /// Revoking a revoked key keeps the first revocation.
    ///
    /// # Errors
    /// [`KeyringError::NotFound`], [`KeyringError::InvalidRequest`] for an oversized
    /// reason, or a store failure.
    pub async fn revoke(&self, id: &KeyId, reason: &str) -> Result<KeyRecord, KeyringError> {
        check_text("reason", reason, 1024)?;
        let now = self.inner.clock.now();
        let record = self
            .modify(id, |r| {
                if r.status != KeyStatus::Revoked {
                    r.status = KeyStatus::Revoked;
                    r.revocation = Some(Revocation {
                        at: now,
                        reason: reason.to_owned(),
                    });
                }
                Ok(())
            })
            .await?;
        tracing::info!(key_id = %id, "api key revoked");
        crate::metrics::key_event("revoked");
        self.audit(|| AuditEvent::Revoked {
            id: id.clone(),
            reason: reason.to_owned(),
            actor: self.actor_name(),
            at: now,
        });
        Ok(record)
    }

    /// Disables `id` until [`enable`](Self::enable)d.
    ///
    /// # Errors
    /// [`KeyringError::InvalidState`] for a revoked key, [`KeyringError::NotFound`], or a
    /// store failure.
    pub async fn disable(&self, id: &KeyId) -> Result<KeyRecord, KeyringError> {
        let record = self.set_status(id, KeyStatus::Disabled).await?;
        self.audit(|| AuditEvent::Disabled {
            id: id.clone(),
            actor: self.actor_name(),
            at: self.inner.clock.now(),
        });
        Ok(record)
    }

    /// Enables a disabled key.
    ///
    /// # Errors
    /// [`KeyringError::InvalidState`] for a revoked key, [`KeyringError::NotFound`], or a
    /// store failure.
    pub async fn enable(&self, id: &KeyId) -> Result<KeyRecord, KeyringError> {
        let record = self.set_status(id, KeyStatus::Active).await?;
        self.audit(|| AuditEvent::Enabled {
            id: id.clone(),
            actor: self.actor_name(),
            at: self.inner.clock.now(),
        });
        Ok(record)
    }

    async fn set_status(&self, id: &KeyId, status: KeyStatus) -> Result<KeyRecord, KeyringError> {
        let record = self
            .modify(id, |r| {
                if r.status == KeyStatus::Revoked {
                    return Err(KeyringError::InvalidState(
                        "a revoked key cannot change status",
                    ));
                }
                r.status = status;
                Ok(())
            })
            .await?;
        tracing::info!(key_id = %id, status = ?status, "api key status changed");
        Ok(record)
    }

    /// Changes a key's attributes (optimistic, retried on concurrent writes).
    ///
    /// # Errors
    /// [`KeyringError::InvalidRequest`] for an invalid field, [`KeyringError::NotFound`],
    /// [`KeyringError::Contention`], or a store failure.
    pub async fn update(&self, id: &KeyId, change: KeyUpdate) -> Result<KeyRecord, KeyringError> {
        let new_refill = change.restarts_refill;
        self.update_with(
            id,
            |attributes, remaining_uses| change.apply(attributes, remaining_uses),
            new_refill,
        )
        .await
    }

    /// Changes a key's attributes with `change`, which may touch any of them (including
    /// ones [`KeyUpdate`] has no setter for); it may run more than once when concurrent
    /// writes force a retry. The result is checked like [`update`](Self::update)'s.
    ///
    /// ```
    /// # use keymint::{IssueRequest, KeyFormat, Keyring, MemoryStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let keyring = Keyring::builder(KeyFormat::new("sk_test")?, MemoryStore::new()).build()?;
    /// # let id = keyring.issue(IssueRequest::new("acct_42", "ci")).await?.record.id;
    /// let record = keyring
    ///     .update_attributes(&id, |a| a.metadata = serde_json::json!({ "team": "infra" }))
    ///     .await?;
    /// assert_eq!(record.attributes.metadata["team"], "infra");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`update`](Self::update).
    pub async fn update_attributes(
        &self,
        id: &KeyId,
        change: impl Fn(&mut KeyAttributes),
    ) -> Result<KeyRecord, KeyringError> {
        self.update_with(
            id,
            |attributes, _| {
                change(attributes);
                Ok(())
            },
            false,
        )
        .await
    }

    /// The read-modify-write behind both updates: applies `change`, checks the result
    /// against the stored record (what changed, and the rules that tie fields together),
    /// and writes it under compare-and-set.
    async fn update_with(
        &self,
        id: &KeyId,
        change: impl Fn(&mut KeyAttributes, &mut Option<u64>) -> Result<(), KeyringError>,
        restarts_refill: bool,
    ) -> Result<KeyRecord, KeyringError> {
        let now = self.inner.clock.now();
        let record = self
            .modify(id, |r| {
                let before = r.attributes.clone();
                let cutoff = r.successor.as_ref().and(r.attributes.expires_at);
                change(&mut r.attributes, &mut r.remaining_uses)?;
                self.check_attributes(&r.attributes, Some(&before), r.remaining_uses)?;
                self.check_key_type(self.key_type_of(r)?, &r.attributes, r.created_at)?;
                if restarts_refill
                    || (before.credit_refill.is_none() && r.attributes.credit_refill.is_some())
                {
                    r.last_refill_at = Some(now);
                }
                if let Some(cutoff) = cutoff
                    && r.attributes.expires_at.is_none_or(|at| at > cutoff)
                {
                    return Err(KeyringError::InvalidState(
                        "a rotated key's grace period cannot be extended",
                    ));
                }
                Ok(())
            })
            .await?;
        tracing::info!(key_id = %id, "api key updated");
        self.audit(|| AuditEvent::Updated {
            id: id.clone(),
            actor: self.actor_name(),
            at: self.inner.clock.now(),
        });
        Ok(record)
    }

    /// Issues a successor with the same owner, name, scopes, roles, limits and metadata,
    /// and lets the old key work for `grace` more (the keyring's default when `None`),
    /// after which it verifies as expired. The grace period never outlives the old key's
    /// own expiry, and the successor keeps that expiry.
    ///
    /// Budgets belong to the key's lineage, not to one record: the successor is charged
    /// against the same rate limits and quotas as its predecessor, and a metered key's
    /// remaining uses move to the successor, which both keys then draw on during the grace
    /// period (together never more than were left); its refill schedule keeps its phase.
    ///
    /// All or nothing: the successor is stored first, and the old record changes in one
    /// compare-and-set at the end. If anything fails before that write, the old key is left
    /// exactly as it was (the unlinked successor, whose secret nobody has seen, is revoked)
    /// and the rotation can simply be tried again.
    ///
    /// # Errors
    /// [`KeyringError::InvalidState`] for a revoked, disabled or already rotated key,
    /// [`KeyringError::NotFound`], [`KeyringError::InvalidRequest`] for a grace outside
    /// 0..=366 days, [`KeyringError::Contention`] when the old key kept changing, or a
    /// store, hash or randomness failure.
    pub async fn rotate(
        &self,
        id: &KeyId,
        grace: Option<TimeDelta>,
    ) -> Result<IssuedKey, KeyringError> {
        let grace = grace.unwrap_or(self.inner.rotation_grace);
        if grace < TimeDelta::zero() || grace > MAX_ROTATION_GRACE {
            return Err(KeyringError::InvalidRequest(
                "grace must be between 0 and 366 days".into(),
            ));
        }
        let now = self.inner.clock.now();
        let cutoff = now
            .checked_add_signed(grace)
            .ok_or_else(|| KeyringError::InvalidRequest("grace out of range".into()))?;
        let mut old = self.get(id).await?;
        check_rotatable(&old)?;
        let key_type = self.key_type_of(&old)?.clone();
        let mut template = RecordTemplate::successor_of(&old, &key_type);
        let mut issued = self.mint(template.clone(), now).await?;
        let new_id = issued.record.id.clone();

        for _ in 0..UPDATE_ATTEMPTS {
            let mut linked = old.clone();
            linked.successor = Some(new_id.clone());
            linked.attributes.expires_at = Some(
                linked
                    .attributes
                    .expires_at
                    .map_or(cutoff, |at| at.min(cutoff)),
            );
            if linked.remaining_uses.is_some() {
                // The balance now lives in the successor.
                linked.remaining_uses = Some(0);
                linked.attributes.credit_refill = None;
                linked.last_refill_at = None;
            }
            match self.inner.store.update(&linked).await {
                Ok(_) => {
                    self.rotated(&linked, &new_id);
                    return Ok(issued);
                }
                Err(StoreError::Conflict) => {}
                Err(e) => {
                    // The write may have landed before the error (a lost reply). A read
                    // that shows the old record linked means it did; one that shows it
                    // linked to nothing (or another key) means it did not, and the
                    // successor goes. Without an answer the outcome is unknown, and the
                    // successor's key is handed back rather than lost.
                    return match self.inner.store.get(id).await {
                        Ok(Some(stored)) if stored.successor.as_ref() == Some(&new_id) => {
                            self.rotated(&stored, &new_id);
                            Ok(issued)
                        }
                        Ok(_) => {
                            self.abandon_successor(&new_id).await;
                            Err(e.into())
                        }
                        Err(_) => {
                            // It may have landed: no cache anywhere may keep the old
                            // record's unlimited life meanwhile.
                            self.changed(id);
                            Err(KeyringError::RotationUnconfirmed(Arc::new(issued)))
                        }
                    };
                }
            }
            // The old key changed meanwhile (a use, a last-used write, an update): re-check
            // it and bring the successor up to date before trying again.
            old = match self.get(id).await {
                Ok(old) => old,
                Err(e) => {
                    self.abandon_successor(&new_id).await;
                    return Err(e);
                }
            };
            if let Err(e) = check_rotatable(&old) {
                self.abandon_successor(&new_id).await;
                return Err(e);
            }
            let current = RecordTemplate::successor_of(&old, &key_type);
            if current != template {
                let mut successor = issued.record.clone();
                current.apply_to(&mut successor);
                match self.inner.store.update(&successor).await {
                    Ok(version) => {
                        successor.version = version;
                        issued.record = successor;
                        template = current;
                    }
                    Err(e) => {
                        self.abandon_successor(&new_id).await;
                        return Err(e.into());
                    }
                }
            }
        }
        self.abandon_successor(&new_id).await;
        Err(KeyringError::Contention)
    }

    /// What follows a rotation that landed (`linked` is the old record as stored, pointing
    /// at `new_id`), however the keyring learned that it did: caches drop the old record,
    /// and the rotation is logged, counted and audited.
    fn rotated(&self, linked: &KeyRecord, new_id: &KeyId) {
        let id = &linked.id;
        self.changed(id);
        tracing::info!(key_id = %id, successor = %new_id, "api key rotated");
        crate::metrics::key_event("rotated");
        self.audit(|| AuditEvent::Rotated {
            old: id.clone(),
            new: new_id.clone(),
            old_expires_at: linked.attributes.expires_at.unwrap_or(linked.created_at),
            actor: self.actor_name(),
        });
    }

    /// Revokes a successor that was never linked to its predecessor. Nobody holds its
    /// secret, so if even this fails the record is inert; it is revoked for tidiness.
    async fn abandon_successor(&self, id: &KeyId) {
        if let Err(e) = self
            .revoke(id, "rotation of its predecessor did not complete")
            .await
        {
            tracing::warn!(key_id = %id, error = %e, "unlinked rotation successor not revoked");
        }
    }

    /// Keys owned by `owner`, a page at a time (only keys of this keyring's types: a page
    /// of a table shared with another keyring may come back short).
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_by_owner(
        &self,
        owner: &str,
        page: &PageRequest,
    ) -> Result<Page, KeyringError> {
        let mut page = self
            .inner
            .store
            .list_by_owner(owner, &clamped(page))
            .await?;
        page.items
            .retain(|r| self.inner.types.get(r.prefix.as_str()).is_some());
        Ok(page)
    }

    /// Dormant keys: keys that still work but were not used for `idle` (last used before
    /// now minus `idle`, or never used and issued before it), of `owner` or of every owner
    /// (`None`), a page at a time in id order. For finding keys to revoke: revoked,
    /// disabled, expired and rolled keys are left out, so a page may come back short (or
    /// empty) with a `next_after` to continue from.
    ///
    /// Last-used times are written in batches ([`flush_last_used`](Self::flush_last_used)),
    /// so a key used within the last debounce interval may still read as unused.
    ///
    /// ```
    /// use keymint::{IssueRequest, KeyFormat, Keyring, ManualClock, MemoryStore, PageRequest, TimeDelta};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let clock = ManualClock::default();
    /// let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new())
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let forgotten = keyring.issue(IssueRequest::new("acct_42", "old CI")).await?;
    /// clock.advance(TimeDelta::days(91));
    /// let report = keyring.dormant_keys(TimeDelta::days(90), None, &PageRequest::new(100)).await?;
    /// assert_eq!(report.items[0].id, forgotten.record.id);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`KeyringError::InvalidRequest`] for a negative `idle`; a store failure, including
    /// [`StoreError::Unsupported`] for an all-owners report
    /// on a store without [`KeyStore::list_unused_since`].
    pub async fn dormant_keys(
        &self,
        idle: TimeDelta,
        owner: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page, KeyringError> {
        if idle < TimeDelta::zero() {
            return Err(KeyringError::InvalidRequest(
                "idle must not be negative".into(),
            ));
        }
        let now = self.inner.clock.now();
        let cutoff = now
            .checked_sub_signed(idle)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut page = match owner {
            Some(owner) => {
                self.inner
                    .store
                    .list_by_owner(owner, &clamped(page))
                    .await?
            }
            None => {
                self.inner
                    .store
                    .list_unused_since(cutoff, &clamped(page))
                    .await?
            }
        };
        page.items.retain(|r| {
            self.inner.types.get(r.prefix.as_str()).is_some()
                && r.last_used_at.unwrap_or(r.created_at) < cutoff
                && r.status == crate::record::KeyStatus::Active
                && r.successor.is_none()
                && r.attributes.expires_at.is_none_or(|at| at > now)
        });
        Ok(page)
    }

    /// Keys owned by `owner` of one key type and/or environment, a page at a time.
    ///
    /// The store lists by owner; the filter is applied here, reading at most
    /// [`MAX_FILTER_SCAN`] records per call, so a page may come back short (or empty) with
    /// a `next_after` to continue from.
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_filtered(
        &self,
        owner: &str,
        filter: &KeyFilter,
        page: &PageRequest,
    ) -> Result<Page, KeyringError> {
        let limit = page.limit.clamp(1, MAX_PAGE_SIZE);
        let mut items = Vec::new();
        let mut cursor = page.after.clone();
        let mut scanned = 0;
        loop {
            let request = PageRequest {
                limit: MAX_PAGE_SIZE.min(MAX_FILTER_SCAN - scanned).max(1),
                after: cursor.clone(),
            };
            let got = self.inner.store.list_by_owner(owner, &request).await?;
            for record in got.items {
                scanned += 1;
                cursor = Some(record.id.clone());
                if filter.matches(self, &record) {
                    items.push(record);
                    if items.len() == limit {
                        return Ok(Page {
                            items,
                            next_after: cursor,
                        });
                    }
                }
            }
            if got.next_after.is_none() {
                return Ok(Page {
                    items,
                    next_after: None,
                });
            }
            if scanned >= MAX_FILTER_SCAN {
                return Ok(Page {
                    items,
                    next_after: cursor,
                });
            }
        }
    }

    /// Keys that expire within `window` from now (for warning their owners).
    ///
    /// # Errors
    /// [`KeyringError::InvalidRequest`] for a negative window, or a store failure.
    pub async fn expiring_within(
        &self,
        window: TimeDelta,
        page: &PageRequest,
    ) -> Result<Page, KeyringError> {
        if window < TimeDelta::zero() {
            return Err(KeyringError::InvalidRequest(
                "window must not be negative".into(),
            ));
        }
        let now = self.inner.clock.now();
        let to = now
            .checked_add_signed(window)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Ok(self
            .inner
            .store
            .list_expiring(now, to, &clamped(page))
            .await?)
    }
}
