//! Derived tokens on the keyring (feature `tokens`): making them from a verified key, and
//! verifying them offline against a short cache of their parent's state.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::cache::{Digest, VerifiedCache};
use super::refusal::Refusal;
use super::verify::Authenticated;
use super::{AuditEvent, Keyring, KeyringError, VerifiedKey, VerifyContext, VerifyError};
use crate::clock::Clock as _;
use crate::format::KeyId;
use crate::metrics::VerifyPath;
use crate::ratelimit::RateLimiter;
use crate::record::KeyKind;
use crate::scope::{Scope, ScopeSet};
use crate::store::KeyStore;
use crate::token::{DerivedToken, TokenClaims, TokenRequest, Tokens, sign, verify_offline};

/// Parents are cached by id alone: every lookup uses this one digest.
const PARENT: Digest = [0; 32];
/// A token's issue time may be this far ahead of this process's clock (clock skew across
/// a fleet) before it is refused as not yet valid.
const MAX_SKEW: TimeDelta = TimeDelta::minutes(1);

/// A keyring's token configuration and the cache of its tokens' parents.
#[derive(Debug)]
pub(crate) struct TokenState {
    pub(crate) config: Tokens,
    /// Parent keys as last read from the store, each trusted for the parent check
    /// interval; dropped on every invalidation of the parent (local or fleet-wide).
    pub(crate) parents: VerifiedCache,
}

impl TokenState {
    pub(crate) fn new(config: Tokens) -> Result<Self, crate::random::RngError> {
        let parents =
            VerifiedCache::new(config.parent_check_interval, config.parent_cache_capacity)?;
        Ok(Self { config, parents })
    }
}

impl<S: KeyStore, L: RateLimiter> Keyring<S, L> {
    /// Whether [`verify`](Self::verify) accepts derived tokens (a token configuration was
    /// given to the builder).
    pub fn accepts_tokens(&self) -> bool {
        self.inner.tokens.is_some()
    }

    /// Makes a short-lived token from `parent`, a key verified on this request: it may do
    /// at most what `parent` may (the requested scopes, each covered by the parent's; all
    /// of them by default), lives for the requested lifetime (the configured default when
    /// none; never past the parent's expiry), and draws on the parent's rate limits. See
    /// [`crate::token`].
    ///
    /// # Errors
    /// [`KeyringError::InvalidState`] when the keyring has no token configuration;
    /// [`KeyringError::InvalidRequest`] when `parent` is itself a token, a publishable
    /// key, or a key with a use limit (tokens spend nothing, so they would escape it), for
    /// a scope the parent does not hold, or a lifetime outside `1 s ..= max_ttl`;
    /// [`KeyringError::Token`] when signing fails.
    pub async fn derive_token(
        &self,
        parent: &VerifiedKey,
        request: TokenRequest,
    ) -> Result<DerivedToken, KeyringError> {
        let Some(tokens) = &self.inner.tokens else {
            return Err(KeyringError::InvalidState(
                "this keyring has no token configuration (KeyringBuilder::tokens)",
            ));
        };
        let config = &tokens.config;
        if parent.token().is_some() {
            return Err(KeyringError::InvalidRequest(
                "a token cannot derive tokens: derive from the key".into(),
            ));
        }
        if parent.kind() == KeyKind::Publishable {
            return Err(KeyringError::InvalidRequest(
                "publishable keys are not secret: derive tokens from a secret key".into(),
            ));
        }
        let record = parent.record();
        if record.successor.is_some() {
            return Err(KeyringError::InvalidRequest(
                "the key was rotated: derive tokens from its successor".into(),
            ));
        }
        if record.remaining_uses.is_some() {
            return Err(KeyringError::InvalidRequest(
                "a key with a use limit cannot derive tokens (tokens spend no uses)".into(),
            ));
        }
        let scopes: Vec<Scope> = match request.scopes {
            None => parent.scopes().iter().cloned().collect(),
            Some(wanted) => {
                let mut scopes = Vec::with_capacity(wanted.len());
                for text in wanted {
                    let scope = Scope::new(&text).map_err(|e| {
                        KeyringError::InvalidRequest(format!("scope {text:?}: {e}"))
                    })?;
                    if !parent.scopes().covers(&scope) {
                        return Err(KeyringError::InvalidRequest(format!(
                            "the key does not hold {scope}: a token may only narrow it"
                        )));
                    }
                    if !scopes.contains(&scope) {
                        scopes.push(scope);
                    }
                }
                scopes
            }
        };
        let ttl = request.ttl.unwrap_or(config.default_ttl);
        if ttl < TimeDelta::seconds(1) || ttl > config.max_ttl {
            return Err(KeyringError::InvalidRequest(format!(
                "a token lives between 1 s and {} s",
                config.max_ttl.num_seconds()
            )));
        }
        let now = self.inner.clock.now();
        let mut expires_at = now
            .checked_add_signed(ttl)
            .ok_or_else(|| KeyringError::InvalidRequest("token lifetime out of range".into()))?;
        if let Some(parent_expiry) = record.attributes.expires_at {
            expires_at = expires_at.min(parent_expiry);
        }
        let mut jti = [0u8; 16];
        crate::random::fill(&mut jti)?;
        let claims = TokenClaims::new(
            crate::hex::lower_hex(&jti),
            record.id.clone(),
            record.lineage().clone(),
            parent.key_type().name().to_string(),
            parent.environment().clone(),
            scopes,
            now,
            expires_at,
        );
        let token = sign(&claims, &config.signing)?;
        if token.expose_secret().len() > crate::token::MAX_TOKEN_LEN {
            return Err(KeyringError::InvalidRequest(format!(
                "a token of {} scopes is longer than the {} bytes a token may be: ask for fewer",
                claims.scopes().len(),
                crate::token::MAX_TOKEN_LEN
            )));
        }
        tracing::debug!(key_id = %record.id, token_id = claims.id(), "token derived");
        self.audit(|| AuditEvent::TokenDerived {
            parent: record.id.clone(),
            token_id: claims.id().to_owned(),
            scopes: claims.scopes().to_vec(),
            expires_at,
            at: now,
        });
        Ok(DerivedToken { token, claims })
    }

    /// [`verify`](Self::verify) for a presented derived token.
    pub(super) async fn verify_token(
        &self,
        tokens: &TokenState,
        presented: &str,
        ctx: &VerifyContext<'_>,
        began: i64,
        now: DateTime<Utc>,
    ) -> Result<VerifiedKey, VerifyError> {
        let (parent, outcome) = match self.check_token(tokens, presented, ctx, now).await {
            Ok((parent, outcome)) => (Some(parent), outcome),
            Err(refusal) => (None, Err(refusal)),
        };
        let ended = self.inner.clock.now_unix_nanos();
        match outcome {
            Ok(verified) => {
                self.inner
                    .metrics
                    .verification("ok", VerifyPath::Token, began, ended);
                Ok(verified)
            }
            Err(refusal) => {
                let id = parent.as_ref().map(KeyId::as_str);
                let error = self.refuse(id, refusal, ctx, now);
                self.inner
                    .metrics
                    .verification(error.code(), VerifyPath::Token, began, ended);
                Err(error)
            }
        }
    }

    /// The token's signature and claims, its parent's current state, then every check a
    /// key gets after authentication. Answers the parent's id once the token is believed.
    async fn check_token(
        &self,
        tokens: &TokenState,
        presented: &str,
        ctx: &VerifyContext<'_>,
        now: DateTime<Utc>,
    ) -> Result<(KeyId, Result<VerifiedKey, Refusal>), Refusal> {
        // A token is cheap to check (a signature, no hash), so the failed-attempt throttle
        // does not refuse it, like a cached key: a neighbour's failures behind a shared
        // address must not lock valid tokens out. A forged token is counted against the
        // client all the same (in `refuse`), so its key attempts are throttled.
        let claims = verify_offline(presented, &tokens.config).map_err(|_| Refusal::BadToken)?;
        let parent_id = claims.parent().clone();
        if now >= claims.expires_at() {
            return Ok((parent_id, Err(Refusal::Expired)));
        }
        if claims.issued_at() > now + MAX_SKEW {
            return Ok((parent_id, Err(Refusal::NotYetValid)));
        }
        let parent = self.token_parent(tokens, &claims, now).await?;
        // Rotation hands the key on: the old key's tokens stop at once (the old key itself
        // keeps its grace period; derive new tokens from the successor).
        if parent.record.successor.is_some() {
            return Ok((parent_id, Err(Refusal::Expired)));
        }
        let key_type = parent.key_type.clone();
        // What the token may do: its scopes, as far as the parent still holds them.
        let granted = ScopeSet::new(
            claims
                .scopes()
                .iter()
                .filter(|scope| parent.granted.covers(scope))
                .cloned(),
        );
        let key = Arc::new(Authenticated::derived(
            parent,
            granted,
            tokens.config.allow_browsers,
        ));
        let mut outcome = self.check_authenticated(&key, &key_type, ctx, now).await;
        self.count_usage(&key, &outcome, now).await;
        if let Ok(verified) = &mut outcome {
            verified.token = Some(Arc::new(claims));
        }
        Ok((parent_id, outcome))
    }

    /// The token's parent as this process last read it (at most the parent check interval
    /// ago), or read now. A parent that does not match the token's claims (another key
    /// type, environment or lineage) means the token is not believed.
    async fn token_parent(
        &self,
        tokens: &TokenState,
        claims: &TokenClaims,
        now: DateTime<Utc>,
    ) -> Result<Arc<Authenticated>, Refusal> {
        let parent_id = claims.parent();
        let parent = match tokens.parents.get(parent_id.as_str(), &PARENT, now) {
            Some(parent) => parent,
            None => {
                let read_at = tokens.parents.generation();
                let record = match self.inner.store.get(parent_id).await {
                    Ok(Some(record)) => record,
                    Ok(None) => return Err(Refusal::BadToken),
                    Err(e) => return Err(Refusal::StoreUnavailable(e)),
                };
                let key_type = self
                    .inner
                    .types
                    .get_shared(record.prefix.as_str())
                    .ok_or(Refusal::BadToken)?
                    .clone();
                let parent = Arc::new(self.authenticated(record, key_type));
                tokens.parents.insert(read_at, PARENT, parent.clone(), now);
                parent
            }
        };
        let matches = parent.key_type.name().as_str() == claims.key_type()
            && parent.key_type.environment() == claims.environment()
            && parent.record.lineage() == claims.lineage();
        if matches {
            Ok(parent)
        } else {
            Err(Refusal::BadToken)
        }
    }
}
