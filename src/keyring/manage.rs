//! Lifecycle changes: revoke, disable, enable, update, rotate, and listings.

use chrono::{DateTime, TimeDelta, Utc};

use super::issue::{RecordTemplate, check_metadata, check_roles, check_text, parse_scopes};
use super::{AuditEvent, IssuedKey, Keyring};
use crate::cidr::Cidr;
use crate::error::{KeyringError, StoreError};
use crate::format::KeyId;
use crate::ratelimit::RateLimiter;
use crate::record::{KeyRecord, KeyStatus, Revocation};
use crate::scope::{Roles, Scope};
use crate::store::{KeyStore, Page, PageRequest};

/// Attempts of a read-modify-write before reporting [`KeyringError::Contention`].
const UPDATE_ATTEMPTS: usize = 8;

/// Changes to a key's attributes; fields left unset are kept.
///
/// ```
/// use keymint::KeyUpdate;
///
/// let change = KeyUpdate::new().name("renamed").scopes(["users:read"]).expires_at(None);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct KeyUpdate {
    name: Option<String>,
    description: Option<Option<String>>,
    scopes: Option<Vec<String>>,
    roles: Option<Vec<String>>,
    expires_at: Option<Option<DateTime<Utc>>>,
    not_before: Option<Option<DateTime<Utc>>>,
    remaining_uses: Option<Option<u64>>,
    rate_limit_policy: Option<Option<String>>,
    allowed_networks: Option<Vec<Cidr>>,
    metadata: Option<serde_json::Value>,
}

impl KeyUpdate {
    /// No changes yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// New name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// New description (`None` removes it).
    pub fn description(mut self, text: Option<String>) -> Self {
        self.description = Some(text);
        self
    }
    /// Replaces the granted scopes.
    pub fn scopes<I: IntoIterator<Item = T>, T: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }
    /// Replaces the roles.
    pub fn roles<I: IntoIterator<Item = T>, T: Into<String>>(mut self, roles: I) -> Self {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }
    /// New expiry (`None`: never expires).
    pub fn expires_at(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.expires_at = Some(at);
        self
    }
    /// New start of validity (`None`: valid from issue).
    pub fn not_before(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.not_before = Some(at);
        self
    }
    /// New use limit (`None`: unlimited).
    pub fn remaining_uses(mut self, uses: Option<u64>) -> Self {
        self.remaining_uses = Some(uses);
        self
    }
    /// New rate-limit policy (`None`: the keyring's default).
    pub fn rate_limit_policy(mut self, name: Option<String>) -> Self {
        self.rate_limit_policy = Some(name);
        self
    }
    /// Replaces the allowed client networks (empty: anywhere).
    pub fn allowed_networks(mut self, networks: impl IntoIterator<Item = Cidr>) -> Self {
        self.allowed_networks = Some(networks.into_iter().collect());
        self
    }
    /// Replaces the metadata.
    pub fn metadata(mut self, value: serde_json::Value) -> Self {
        self.metadata = Some(value);
        self
    }

    /// Checks every field; returns the parsed scopes when they change.
    fn validate(&self, roles: &Roles) -> Result<Option<Vec<Scope>>, KeyringError> {
        if let Some(n) = &self.name {
            check_text("name", n, 256)?;
        }
        if let Some(Some(d)) = &self.description {
            check_text("description", d, 4096)?;
        }
        if let Some(Some(p)) = &self.rate_limit_policy {
            check_text("rate_limit_policy", p, 256)?;
        }
        let scopes = self.scopes.as_deref().map(parse_scopes).transpose()?;
        if let Some(r) = &self.roles {
            check_roles(roles, r)?;
        }
        if self
            .allowed_networks
            .as_ref()
            .is_some_and(|n| n.len() > 256)
        {
            return Err(KeyringError::InvalidRequest("at most 256 networks".into()));
        }
        if let Some(m) = &self.metadata {
            check_metadata(m)?;
        }
        Ok(scopes)
    }

    fn apply(&self, scopes: Option<&Vec<Scope>>, r: &mut KeyRecord) {
        let s = self.clone();
        if let Some(v) = scopes {
            r.scopes = v.clone();
        }
        if let Some(v) = s.name {
            r.name = v;
        }
        if let Some(v) = s.description {
            r.description = v;
        }
        if let Some(v) = s.roles {
            r.roles = v;
        }
        if let Some(v) = s.expires_at {
            r.expires_at = v;
        }
        if let Some(v) = s.not_before {
            r.not_before = v;
        }
        if let Some(v) = s.remaining_uses {
            r.remaining_uses = v;
        }
        if let Some(v) = s.rate_limit_policy {
            r.rate_limit_policy = v;
        }
        if let Some(v) = s.allowed_networks {
            r.allowed_networks = v;
        }
        if let Some(v) = s.metadata {
            r.metadata = v;
        }
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
            .ok_or(KeyringError::NotFound)
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
                Err(e) => return Err(e.into()),
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
        self.audit(|| AuditEvent::Revoked {
            id: id.clone(),
            reason: reason.to_owned(),
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
        let scopes = change.validate(&self.inner.roles)?;
        if let Some(policy) = &change.rate_limit_policy {
            self.check_policy(policy.as_deref())?;
        }
        let record = self
            .modify(id, |r| {
                change.apply(scopes.as_ref(), r);
                Ok(())
            })
            .await?;
        tracing::info!(key_id = %id, "api key updated");
        self.audit(|| AuditEvent::Updated {
            id: id.clone(),
            at: self.inner.clock.now(),
        });
        Ok(record)
    }

    /// Issues a successor with the same owner, name, scopes, roles, limits and metadata,
    /// and lets the old key work for `grace` more (the keyring's default when `None`),
    /// after which it verifies as expired. The successor keeps the old key's expiry.
    ///
    /// # Errors
    /// [`KeyringError::InvalidState`] for a revoked or already rotated key,
    /// [`KeyringError::NotFound`], [`KeyringError::InvalidRequest`] for a negative grace,
    /// or a store, hash or randomness failure.
    pub async fn rotate(
        &self,
        id: &KeyId,
        grace: Option<TimeDelta>,
    ) -> Result<IssuedKey, KeyringError> {
        let grace = grace.unwrap_or(self.inner.rotation_grace);
        if grace < TimeDelta::zero() {
            return Err(KeyringError::InvalidRequest(
                "grace must not be negative".into(),
            ));
        }
        let old = self.get(id).await?;
        if old.status == KeyStatus::Revoked {
            return Err(KeyringError::InvalidState(
                "a revoked key cannot be rotated",
            ));
        }
        if old.successor.is_some() {
            return Err(KeyringError::InvalidState("the key was already rotated"));
        }
        let issued = self
            .mint(RecordTemplate {
                owner: old.owner.clone(),
                name: old.name.clone(),
                description: old.description.clone(),
                environment: old.environment.clone(),
                scopes: old.scopes.clone(),
                roles: old.roles.clone(),
                not_before: None,
                expires_at: old.expires_at,
                remaining_uses: old.remaining_uses,
                rate_limit_policy: old.rate_limit_policy.clone(),
                allowed_networks: old.allowed_networks.clone(),
                metadata: old.metadata.clone(),
            })
            .await?;
        let cutoff = self.inner.clock.now() + grace;
        let new_id = issued.record.id.clone();
        let linked = self
            .modify(id, |r| {
                if r.successor.is_some() {
                    return Err(KeyringError::InvalidState("the key was already rotated"));
                }
                r.successor = Some(new_id.clone());
                r.expires_at = Some(r.expires_at.map_or(cutoff, |at| at.min(cutoff)));
                Ok(())
            })
            .await;
        match linked {
            Ok(old) => {
                let old_expires_at = old.expires_at.unwrap_or(cutoff);
                tracing::info!(key_id = %id, successor = %new_id, "api key rotated");
                self.audit(|| AuditEvent::Rotated {
                    old: id.clone(),
                    new: new_id.clone(),
                    old_expires_at,
                });
                Ok(issued)
            }
            Err(e) => {
                // Do not leave an unlinked successor usable.
                let _ = self
                    .revoke(&new_id, "rotation of its predecessor failed")
                    .await;
                Err(e)
            }
        }
    }

    /// Keys owned by `owner`, a page at a time.
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_by_owner(
        &self,
        owner: &str,
        page: &PageRequest,
    ) -> Result<Page, KeyringError> {
        Ok(self.inner.store.list_by_owner(owner, page).await?)
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
        Ok(self
            .inner
            .store
            .list_expiring(now, now + window, page)
            .await?)
    }
}
