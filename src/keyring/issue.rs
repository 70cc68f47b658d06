//! Minting a key and storing its record.

use chrono::{DateTime, TimeDelta, Utc};

use super::Keyring;
use super::hash_gate::run_blocking;
use super::key_type::KeyType;
use crate::certificate::{CertificateBinding, MAX_BINDINGS};
use crate::cidr::Cidr;
use crate::clock::Clock as _;
use crate::format::GeneratedKey;
use crate::format::KeyId;
use crate::keyring::KeyringError;
use crate::origin::AllowedOrigin;
use crate::ratelimit::RateLimiter;
use crate::ratelimit::{KeyLimit, Refill};
use crate::record::{KeyAttributes, KeyKind, KeyRecord};
use crate::scope::{Roles, Scope};
use crate::store::KeyStore;
use crate::store::StoreError;

/// Longest owner, name, environment, policy, scope or role string accepted.
const MAX_FIELD_LEN: usize = 256;
/// Longest description.
const MAX_DESCRIPTION_LEN: usize = 4096;
/// Most scopes, roles or networks on one key.
const MAX_LIST_LEN: usize = 256;
/// Largest metadata document, serialised.
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Attempts at a fresh id before giving up (a collision at 71 bits is astronomically rare).
const ID_ATTEMPTS: usize = 4;

/// What to issue. Only the owner and name are required; everything else defaults to the
/// least surprising value (no expiry, no scopes, unlimited uses, the default rate-limit
/// policy, any client address).
///
/// ```
/// use chrono::TimeDelta;
/// use keymint::IssueRequest;
///
/// let request = IssueRequest::new("acct_42", "reporting job")
///     .scopes(["reports:read"])
///     .expires_in(TimeDelta::days(90))
///     .remaining_uses(10_000)
///     .allowed_networks(["10.0.0.0/8".parse()?]);
/// # Ok::<(), keymint::CidrError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct IssueRequest {
    pub(super) owner: String,
    pub(super) key_type: Option<String>,
    /// A label given the old way; it must name the key type's environment.
    pub(super) environment: Option<String>,
    pub(super) attributes: KeyAttributes,
    /// Parsed at issue, so that a bad one is reported with its position.
    pub(super) scopes: Vec<String>,
    pub(super) expiry: Option<Expiry>,
    pub(super) remaining_uses: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Expiry {
    At(DateTime<Utc>),
    In(TimeDelta),
}

impl IssueRequest {
    /// A request for a key owned by `owner` (your tenant or user id) named `name`.
    pub fn new(owner: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            key_type: None,
            environment: None,
            attributes: KeyAttributes::new(name),
            scopes: Vec::new(),
            expiry: None,
            remaining_uses: None,
        }
    }

    /// A longer description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.attributes.description = Some(text.into());
        self
    }

    /// The key type, by its name (its prefix, such as `sk_test`); the keyring's default
    /// (first) type when not given. The key type decides the key's kind and environment.
    pub fn key_type(mut self, name: impl Into<String>) -> Self {
        self.key_type = Some(name.into());
        self
    }

    /// The environment the key is meant for: it must be the key type's (the key type
    /// decides it; this only guards against issuing into the wrong one).
    pub fn environment(mut self, label: impl Into<String>) -> Self {
        self.environment = Some(label.into());
        self
    }

    /// For publishable keys: the browser origins the key may be used from (exact
    /// `scheme://host[:port]`, or `scheme://*.domain` for its subdomains).
    pub fn allowed_origins(mut self, origins: impl IntoIterator<Item = AllowedOrigin>) -> Self {
        self.attributes.allowed_origins = origins.into_iter().collect();
        self
    }

    /// Scopes granted to the key.
    pub fn scopes<I: IntoIterator<Item = T>, T: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Roles (configured on the keyring) whose scopes the key also gets.
    pub fn roles<I: IntoIterator<Item = T>, T: Into<String>>(mut self, roles: I) -> Self {
        self.attributes.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// The key does not verify before `at`.
    pub fn not_before(mut self, at: DateTime<Utc>) -> Self {
        self.attributes.not_before = Some(at);
        self
    }

    /// The key stops verifying at `at`.
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expiry = Some(Expiry::At(at));
        self
    }

    /// The key stops verifying `after` from now (the keyring's clock).
    pub fn expires_in(mut self, after: TimeDelta) -> Self {
        self.expiry = Some(Expiry::In(after));
        self
    }

    /// The key may be used this many times.
    pub fn remaining_uses(mut self, uses: u64) -> Self {
        self.remaining_uses = Some(uses);
        self
    }

    /// Tops the uses up on a schedule (needs [`remaining_uses`](Self::remaining_uses)):
    /// for example `Refill::new(1000, TimeDelta::days(30), 1000)` for a monthly allowance.
    pub fn refill(mut self, refill: Refill) -> Self {
        self.attributes.credit_refill = Some(refill);
        self
    }

    /// Name of the rate-limit policy to apply.
    pub fn rate_limit_policy(mut self, name: impl Into<String>) -> Self {
        self.attributes.rate_limit_policy = Some(name.into());
        self
    }

    /// The key's own rate limit (instead of a named or default policy).
    pub fn rate_limit(mut self, limit: KeyLimit) -> Self {
        self.attributes.rate_limit = Some(limit);
        self
    }

    /// Client networks the key may be used from (empty: anywhere).
    pub fn allowed_networks(mut self, networks: impl IntoIterator<Item = Cidr>) -> Self {
        self.attributes.allowed_networks = networks.into_iter().collect();
        self
    }

    /// Binds the key to client certificates (mutual TLS): it then verifies only on a
    /// connection that presented one of them (at most 16; empty: unbound). See
    /// [`CertificateBinding`] for binding a certificate or its public key.
    pub fn certificate_bindings(
        mut self,
        bindings: impl IntoIterator<Item = CertificateBinding>,
    ) -> Self {
        self.attributes.certificate_bindings = bindings.into_iter().collect();
        self
    }

    /// Free-form data stored with the key (at most 16 KiB serialised).
    pub fn metadata(mut self, value: serde_json::Value) -> Self {
        self.attributes.metadata = value;
        self
    }
}

/// A newly issued key: the plaintext (show it once) and the stored record.
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedKey {
    /// The plaintext key. Hand `key.expose_secret()` to the owner, then drop it.
    pub key: GeneratedKey,
    /// The record as stored.
    pub record: KeyRecord,
}

pub(super) fn check_text(field: &str, value: &str, max: usize) -> Result<(), KeyringError> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(KeyringError::InvalidRequest(format!(
            "{field} must be at most {max} bytes without control characters"
        )));
    }
    Ok(())
}

pub(super) fn check_list(field: &str, values: &[String]) -> Result<(), KeyringError> {
    if values.len() > MAX_LIST_LEN {
        return Err(KeyringError::InvalidRequest(format!(
            "at most {MAX_LIST_LEN} {field}"
        )));
    }
    for v in values {
        if v.is_empty() || v.len() > MAX_FIELD_LEN || !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyringError::InvalidRequest(format!(
                "each of {field} must be 1 to {MAX_FIELD_LEN} printable ASCII characters"
            )));
        }
    }
    Ok(())
}

/// Parses granted scopes, naming the first invalid one.
pub(super) fn parse_scopes(values: &[String]) -> Result<Vec<Scope>, KeyringError> {
    if values.len() > MAX_LIST_LEN {
        return Err(KeyringError::InvalidRequest(format!(
            "at most {MAX_LIST_LEN} scopes"
        )));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            Scope::new(v).map_err(|e| KeyringError::InvalidRequest(format!("scope {}: {e}", i + 1)))
        })
        .collect()
}

/// Role names must be defined on the keyring: a typo would otherwise grant nothing, silently.
pub(super) fn check_roles(roles: &Roles, names: &[String]) -> Result<(), KeyringError> {
    check_list("roles", names)?;
    if let Some(unknown) = roles.unknown(names).next() {
        return Err(KeyringError::InvalidRequest(format!(
            "unknown role {unknown:?}"
        )));
    }
    Ok(())
}

pub(super) fn check_metadata(value: &serde_json::Value) -> Result<(), KeyringError> {
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(KeyringError::InvalidRequest(format!(
            "metadata must serialise to at most {MAX_METADATA_BYTES} bytes"
        )));
    }
    Ok(())
}

impl<S: KeyStore, L: RateLimiter> Keyring<S, L> {
    /// Mints a key, hashes its secret (off the async executor) and stores the record.
    ///
    /// # Errors
    /// [`KeyringError::InvalidRequest`] naming the offending field (empty owner, expiry not
    /// in the future, oversized metadata, ...), or a store, hash or randomness failure.
    pub async fn issue(&self, request: IssueRequest) -> Result<IssuedKey, KeyringError> {
        let now = self.inner.clock.now();
        if request.owner.is_empty() {
            return Err(KeyringError::InvalidRequest(
                "owner must not be empty".into(),
            ));
        }
        check_text("owner", &request.owner, MAX_FIELD_LEN)?;
        let key_type = match &request.key_type {
            None => self.inner.types.default_type(),
            Some(name) => self.inner.types.get(name).ok_or_else(|| {
                KeyringError::InvalidRequest(format!("unknown key type {name:?}"))
            })?,
        };
        if let Some(label) = &request.environment
            && label != key_type.environment().as_str()
        {
            return Err(KeyringError::InvalidRequest(format!(
                "keys of type {} belong to the {} environment, not {label:?}",
                key_type.name(),
                key_type.environment()
            )));
        }
        let mut attributes = request.attributes;
        attributes.scopes = parse_scopes(&request.scopes)?;
        attributes.expires_at = match request.expiry {
            None => key_type
                .lifetimes()
                .0
                .or(key_type.lifetimes().1)
                .map(|lifetime| {
                    now.checked_add_signed(lifetime)
                        .ok_or_else(|| KeyringError::InvalidRequest("expiry out of range".into()))
                })
                .transpose()?,
            Some(Expiry::At(at)) => Some(at),
            Some(Expiry::In(after)) => Some(
                now.checked_add_signed(after)
                    .ok_or_else(|| KeyringError::InvalidRequest("expiry out of range".into()))?,
            ),
        };
        if attributes.expires_at.is_some_and(|at| at <= now) {
            return Err(KeyringError::InvalidRequest(
                "expiry must be in the future".into(),
            ));
        }
        self.check_attributes(&attributes, None, request.remaining_uses)?;
        self.check_key_type(key_type, &attributes, now)?;
        self.mint(
            RecordTemplate {
                key_type: key_type.clone(),
                owner: request.owner,
                attributes,
                remaining_uses: request.remaining_uses,
                lineage: None,
                last_refill_at: None,
            },
            now,
        )
        .await
    }

    /// What the key type allows: the scopes it may hold (its own and its roles'), the rules
    /// of restricted keys, origins only on publishable keys, and the longest lifetime
    /// (counted from `issued_at`).
    pub(super) fn check_key_type(
        &self,
        key_type: &KeyType,
        a: &KeyAttributes,
        issued_at: DateTime<Utc>,
    ) -> Result<(), KeyringError> {
        let name = key_type.name();
        let kind = key_type.kind();
        let granted = self.inner.roles.resolve(&a.scopes, &a.roles);
        if let Some(allowed) = key_type.scope_allowance()
            && let Some(grant) = granted
                .iter()
                .find(|grant| !allowed.iter().any(|pattern| pattern.covers(grant)))
        {
            let allowed: Vec<&str> = allowed.iter().map(Scope::as_str).collect();
            return Err(KeyringError::InvalidRequest(format!(
                "scope {grant} is not allowed on {kind} keys of type {name} (allowed: {})",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        if kind == KeyKind::Restricted {
            if a.scopes.is_empty() {
                return Err(KeyringError::InvalidRequest(format!(
                    "restricted keys of type {name} need an explicit, non-empty list of scopes"
                )));
            }
            if let Some(grant) = granted
                .iter()
                .find(|grant| grant.segments().all(|s| s == "*"))
            {
                return Err(KeyringError::InvalidRequest(format!(
                    "restricted keys of type {name} may not hold {grant}, which grants everything (directly or through a role)"
                )));
            }
        }
        if kind != KeyKind::Publishable && !a.allowed_origins.is_empty() {
            return Err(KeyringError::InvalidRequest(format!(
                "allowed_origins apply only to publishable keys; {name} keys are {kind}"
            )));
        }
        if let (_, Some(max)) = key_type.lifetimes() {
            let latest = issued_at.checked_add_signed(max);
            if a.expires_at
                .is_none_or(|at| latest.is_some_and(|latest| at > latest))
            {
                return Err(KeyringError::InvalidRequest(format!(
                    "keys of type {name} expire at most {} days after issue",
                    max.num_days()
                )));
            }
        }
        Ok(())
    }

    /// Checks attributes against the keyring's rules and configuration: text sizes, list
    /// lengths, defined roles and policies, metadata size, and the rules that tie fields
    /// together. Issue checks everything; an update (`before` is the stored attributes)
    /// checks what it changes and the cross-field rules, so that a key whose stored role
    /// was since removed from the configuration can still be renamed.
    pub(super) fn check_attributes(
        &self,
        a: &KeyAttributes,
        before: Option<&KeyAttributes>,
        remaining_uses: Option<u64>,
    ) -> Result<(), KeyringError> {
        macro_rules! changed {
            ($field:ident) => {
                before.is_none_or(|b| b.$field != a.$field)
            };
        }
        if changed!(name) {
            check_text("name", &a.name, MAX_FIELD_LEN)?;
        }
        if changed!(description)
            && let Some(d) = &a.description
        {
            check_text("description", d, MAX_DESCRIPTION_LEN)?;
        }
        if changed!(allowed_origins) && a.allowed_origins.len() > MAX_LIST_LEN {
            return Err(KeyringError::InvalidRequest(format!(
                "at most {MAX_LIST_LEN} origins"
            )));
        }
        if changed!(scopes) && a.scopes.len() > MAX_LIST_LEN {
            return Err(KeyringError::InvalidRequest(format!(
                "at most {MAX_LIST_LEN} scopes"
            )));
        }
        if changed!(roles) {
            check_roles(&self.inner.roles, &a.roles)?;
        }
        if changed!(rate_limit_policy) {
            if let Some(p) = &a.rate_limit_policy {
                check_text("rate_limit_policy", p, MAX_FIELD_LEN)?;
            }
            self.check_policy(a.rate_limit_policy.as_deref())?;
        }
        if changed!(allowed_networks) && a.allowed_networks.len() > MAX_LIST_LEN {
            return Err(KeyringError::InvalidRequest(format!(
                "at most {MAX_LIST_LEN} networks"
            )));
        }
        if changed!(certificate_bindings) && a.certificate_bindings.len() > MAX_BINDINGS {
            return Err(KeyringError::InvalidRequest(format!(
                "at most {MAX_BINDINGS} certificate bindings"
            )));
        }
        if changed!(metadata) {
            check_metadata(&a.metadata)?;
        }
        if a.credit_refill.is_some() && remaining_uses.is_none() {
            return Err(KeyringError::InvalidRequest(
                "a refill needs remaining_uses".into(),
            ));
        }
        // Only when the window changes: a rotation with a grace shorter than a key's wait
        // for its start ends it before it begins, and that key must still be renameable.
        if (changed!(not_before) || changed!(expires_at))
            && let (Some(nb), Some(exp)) = (a.not_before, a.expires_at)
            && nb >= exp
        {
            return Err(KeyringError::InvalidRequest(
                "not_before must precede expiry".into(),
            ));
        }
        Ok(())
    }

    /// A key may only name a policy the keyring defines: an unknown name would refuse every
    /// request made with it.
    pub(super) fn check_policy(&self, name: Option<&str>) -> Result<(), KeyringError> {
        match name {
            Some(name) if !self.inner.policies.contains_key(name) => Err(
                KeyringError::InvalidRequest(format!("unknown rate-limit policy {name:?}")),
            ),
            _ => Ok(()),
        }
    }

    /// Generates, hashes and inserts a key created at `created_at` (the one clock reading
    /// its caller also derived the key's times from), retrying on an id collision.
    pub(super) async fn mint(
        &self,
        t: RecordTemplate,
        created_at: DateTime<Utc>,
    ) -> Result<IssuedKey, KeyringError> {
        for _ in 0..ID_ATTEMPTS {
            let key = t.key_type.format().generate()?;
            let secret = zeroize::Zeroizing::new(key.parsed().expose_secret().to_owned());
            let hashes = self.inner.hashes.clone();
            let hash = run_blocking(move || hashes.hash(secret.as_bytes())).await??;
            let mut record = KeyRecord::new(
                key.id().clone(),
                hash,
                t.key_type.name().clone(),
                key.hint(),
                t.owner.clone(),
                t.attributes.clone(),
                created_at,
            );
            record.kind = Some(t.key_type.kind());
            record.environment = Some(t.key_type.environment().clone());
            record.lineage.clone_from(&t.lineage);
            record.remaining_uses = t.remaining_uses;
            // A successor continues its predecessor's refill schedule.
            record.last_refill_at = t
                .attributes
                .credit_refill
                .map(|_| t.last_refill_at.unwrap_or(created_at));
            match self.inner.store.insert(&record).await {
                Ok(()) => {
                    tracing::info!(key_id = %record.id, hint = %record.hint, owner = %record.owner, "api key issued");
                    crate::metrics::key_event("issued");
                    self.audit(|| super::AuditEvent::Issued {
                        id: record.id.clone(),
                        hint: record.hint.clone(),
                        owner: record.owner.clone(),
                        actor: self.actor_name(),
                        at: record.created_at,
                    });
                    return Ok(IssuedKey { key, record });
                }
                Err(StoreError::Conflict) => {
                    tracing::warn!(key_id = %record.id, "key id collision, retrying with a new id");
                }
                Err(e) => {
                    crate::metrics::store_error(crate::metrics::StoreOp::Issue);
                    return Err(KeyringError::Store(e));
                }
            }
        }
        Err(KeyringError::Contention)
    }
}

impl RecordTemplate {
    /// What a rotation successor inherits from `old`: its attributes, balance, lineage and
    /// refill phase; not its identity, status or history.
    pub(super) fn successor_of(old: &KeyRecord, key_type: &KeyType) -> Self {
        Self {
            key_type: key_type.clone(),
            owner: old.owner.clone(),
            attributes: old.attributes.clone(),
            remaining_uses: old.remaining_uses,
            lineage: Some(old.lineage().clone()),
            last_refill_at: old.last_refill_at.or(Some(old.created_at)),
        }
    }

    /// Overwrites `r`'s inherited state with this template's (its owner never changes).
    pub(super) fn apply_to(&self, r: &mut KeyRecord) {
        r.attributes.clone_from(&self.attributes);
        r.remaining_uses = self.remaining_uses;
        if self.attributes.credit_refill.is_some() {
            r.last_refill_at = self.last_refill_at;
        }
    }
}

/// A record to mint (shared by issue and rotate).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RecordTemplate {
    pub(super) key_type: KeyType,
    pub(super) owner: String,
    pub(super) attributes: KeyAttributes,
    pub(super) remaining_uses: Option<u64>,
    /// The predecessor's lineage, for a rotation successor.
    pub(super) lineage: Option<KeyId>,
    /// The predecessor's refill phase, for a rotation successor.
    pub(super) last_refill_at: Option<DateTime<Utc>>,
}
