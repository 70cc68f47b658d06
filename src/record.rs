//! The stored form of a key: everything but its secret.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod kind;

pub use kind::{Environment, EnvironmentError, KeyKind};

use crate::certificate::CertificateBinding;
use crate::cidr::Cidr;
use crate::format::KeyHint;
use crate::format::{KeyId, Prefix};
use crate::hash::PhcHash;
use crate::origin::AllowedOrigin;
use crate::ratelimit::{KeyLimit, Refill};
use crate::scope::Scope;

/// Whether a key may be used, apart from its validity window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Switched off; may be enabled again.
    Disabled,
    /// Permanently withdrawn.
    Revoked,
}

/// When and why a key was revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When it was revoked.
    pub at: DateTime<Utc>,
    /// Free text from whoever revoked it ("leaked in a public repository").
    pub reason: String,
}

/// What the host says about a key: set at issue, changed by
/// [`Keyring::update`](crate::Keyring::update), inherited by a rotation successor.
///
/// One type for all three, so that a new attribute is one field here (and its validation
/// in the keyring), not a field in every request type. Serialised flat inside
/// [`KeyRecord`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyAttributes {
    /// Short human name ("CI deploy key").
    pub name: String,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Scopes granted directly.
    #[serde(default)]
    pub scopes: Vec<Scope>,
    /// Names of roles configured on the keyring whose scopes the key also gets, resolved at
    /// verify time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// It does not verify before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// It does not verify from this instant on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Periodic top-up of the record's remaining uses, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_refill: Option<Refill>,
    /// Name of the rate-limit policy to apply; `None` for the key type's or keyring's
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_policy: Option<String>,
    /// The key's own rate limit, applied instead of any named or default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<KeyLimit>,
    /// Client networks the key may be used from; empty for anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_networks: Vec<Cidr>,
    /// For publishable keys: the browser origins the key may be used from (empty: as its
    /// key type decides).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<AllowedOrigin>,
    /// Client certificates the key is bound to (mutual TLS, RFC 8705): it verifies only on
    /// a connection that presented a certificate matching one of them. Empty: unbound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_bindings: Vec<CertificateBinding>,
    /// Free-form data for the host.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
}

impl KeyAttributes {
    /// Attributes with only a name: no scopes, no expiry, any address, the default policy.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// A key as the store holds it: its public id, the PHC hash of its secret, its owner, its
/// [`KeyAttributes`] and its state. It never contains the secret, and its `Debug` hides
/// the hash's salt and output; its serde form does include the full hash (stores need it),
/// so keep that form inside your storage and show people [`KeyRecord::hint`] and the
/// attributes instead.
///
/// Stores persist it as one JSON document (serde) or map its fields to columns. That form is
/// pinned by a fixture test: a change to it is deliberate and comes with a migration.
/// [`version`](Self::version) drives optimistic concurrency (see
/// [`KeyStore::update`](crate::KeyStore::update)). Records are made by the keyring (or by
/// [`KeyRecord::new`] in store test kits) and read back through serde; the struct is
/// `#[non_exhaustive]` so that it can grow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyRecord {
    /// Public id, unique in the store.
    pub id: KeyId,
    /// PHC string of the key's secret segment.
    pub hash: PhcHash,
    /// The key's prefix.
    pub prefix: Prefix,
    /// What may be shown to people: prefix, id and the last four characters.
    pub hint: KeyHint,
    /// The host's tenant or user id that owns the key.
    pub owner: String,
    /// What kind of key it was issued as (`None` in records written before key types: they
    /// read as their type's kind). Verification refuses a record whose kind differs from
    /// its key type's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<KeyKind>,
    /// The environment it was issued in (`None`, or an old free-form label, in records
    /// written before environments were enforced: they read as their type's).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "kind::lenient_environment"
    )]
    pub environment: Option<Environment>,
    /// What the host set: name, scopes, limits, validity, metadata.
    #[serde(flatten)]
    pub attributes: KeyAttributes,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// Active, disabled or revoked.
    pub status: KeyStatus,
    /// Set when revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
    /// The key that replaced this one through rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<KeyId>,
    /// The id of the first key of this key's rotation chain, when it is a rotation
    /// successor (`None`: the key is the first, so its lineage is its own id). Rate limits
    /// and quotas are charged to the lineage, so rotating a key hands its budgets on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<KeyId>,
    /// Last successful verification, written with debouncing (so it may lag by the
    /// debounce interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Uses left; `None` for unlimited. Decremented atomically by the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_uses: Option<u64>,
    /// Phase of the refill schedule: when the uses were last topped up (or set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refill_at: Option<DateTime<Utc>>,
    /// Bumped by the store on every write; see [`KeyStore::update`](crate::KeyStore::update).
    pub version: u64,
}

impl KeyRecord {
    /// An active record at version 0, issued at `created_at`, with no use limit: for store
    /// test kits and migrations. The keyring makes its records itself.
    pub fn new(
        id: KeyId,
        hash: PhcHash,
        prefix: Prefix,
        hint: KeyHint,
        owner: impl Into<String>,
        attributes: KeyAttributes,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            hash,
            prefix,
            hint,
            owner: owner.into(),
            kind: None,
            environment: None,
            attributes,
            created_at,
            status: KeyStatus::Active,
            revocation: None,
            successor: None,
            lineage: None,
            last_used_at: None,
            remaining_uses: None,
            last_refill_at: None,
            version: 0,
        }
    }

    /// The lineage: the id of the first key of this key's rotation chain (its own id
    /// unless it was issued by a rotation).
    pub fn lineage(&self) -> &KeyId {
        self.lineage.as_ref().unwrap_or(&self.id)
    }

    /// Whether the key is past its expiry at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.attributes.expires_at.is_some_and(|at| now >= at)
    }
}
