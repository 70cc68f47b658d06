//! What a token says, how it is signed, and how a presented one is checked offline.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use pasetors::Public;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{MAX_TOKEN_LEN, TokenError, TokenSigningKey, Tokens};
use crate::format::KeyId;
use crate::record::Environment;
use crate::scope::Scope;

/// Every token starts with this.
pub(crate) const TOKEN_HEADER: &str = PublicToken::HEADER;
/// Bound into every signature: a PASETO signed with the same key for another purpose is
/// never a keymint token.
const IMPLICIT_ASSERTION: &[u8] = b"keymint-token:v1";
/// The footer names the signing key; nothing else, so it stays small.
const MAX_FOOTER_LEN: usize = 128;
const FORMAT_VERSION: u8 = 1;

/// The claims of a token: its payload, readable by whoever holds it (nothing in it is
/// secret). Times are RFC 3339, as in PASETO's registered claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenClaims {
    v: u8,
    jti: String,
    sub: KeyId,
    lin: KeyId,
    typ: String,
    env: Environment,
    scp: Vec<Scope>,
    iat: DateTime<Utc>,
    exp: DateTime<Utc>,
}

impl TokenClaims {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        jti: String,
        parent: KeyId,
        lineage: KeyId,
        key_type: String,
        environment: Environment,
        scopes: Vec<Scope>,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            v: FORMAT_VERSION,
            jti,
            sub: parent,
            lin: lineage,
            typ: key_type,
            env: environment,
            scp: scopes,
            iat: issued_at,
            exp: expires_at,
        }
    }

    /// The token's own random id (`jti`), for logs and audit trails.
    pub fn id(&self) -> &str {
        &self.jti
    }

    /// The key it was derived from (`sub`).
    pub fn parent(&self) -> &KeyId {
        &self.sub
    }

    /// The parent's lineage, whose rate limits the token draws on (`lin`).
    pub fn lineage(&self) -> &KeyId {
        &self.lin
    }

    /// The parent's key type (`typ`, the type's prefix).
    pub fn key_type(&self) -> &str {
        &self.typ
    }

    /// The parent's environment (`env`).
    pub fn environment(&self) -> &Environment {
        &self.env
    }

    /// What the token may do (`scp`): a subset of what its parent held when it was made.
    pub fn scopes(&self) -> &[Scope] {
        &self.scp
    }

    /// When it was made (`iat`).
    pub fn issued_at(&self) -> DateTime<Utc> {
        self.iat
    }

    /// When it stops working (`exp`).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.exp
    }
}

/// The token text, a bearer credential: `Debug` prints `[REDACTED]`, and it is zeroized on
/// drop. Read it with [`expose_secret`](Self::expose_secret) to hand it to its holder.
pub struct BearerToken(Zeroizing<String>);

impl BearerToken {
    /// The token, to give to whoever will present it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken([REDACTED])")
    }
}

/// A token just made by [`Keyring::derive_token`](crate::Keyring::derive_token).
#[derive(Debug)]
#[non_exhaustive]
pub struct DerivedToken {
    /// The token: hand it out, it is not stored anywhere.
    pub token: BearerToken,
    /// What it says.
    pub claims: TokenClaims,
}

/// What a derived token may do and for how long. Unset scopes mean all of the parent's;
/// an unset lifetime means the keyring's default.
///
/// ```
/// use keymint::token::TokenRequest;
///
/// let request = TokenRequest::new().scopes(["users:read"]).ttl_secs(300);
/// # let _ = request;
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct TokenRequest {
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) ttl: Option<TimeDelta>,
}

impl TokenRequest {
    /// All of the parent's scopes, for the default lifetime.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these scopes; each must be covered by the parent's.
    pub fn scopes<I: IntoIterator<Item = T>, T: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Lifetime (positive, at most the keyring's maximum; capped at the parent's expiry).
    pub fn ttl(mut self, ttl: TimeDelta) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Lifetime in seconds.
    pub fn ttl_secs(self, secs: u64) -> Self {
        self.ttl(
            TimeDelta::try_seconds(i64::try_from(secs).unwrap_or(i64::MAX))
                .unwrap_or(TimeDelta::MAX),
        )
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Footer<'a> {
    kid: &'a str,
}

/// Signs `claims` with `key`.
pub(crate) fn sign(claims: &TokenClaims, key: &TokenSigningKey) -> Result<BearerToken, TokenError> {
    let payload = serde_json::to_vec(claims).map_err(|_| TokenError::Signing)?;
    let footer = serde_json::to_vec(&Footer { kid: key.kid() }).map_err(|_| TokenError::Signing)?;
    let token = PublicToken::sign(
        key.secret(),
        &payload,
        Some(&footer),
        Some(IMPLICIT_ASSERTION),
    )
    .map_err(|_| TokenError::Signing)?;
    Ok(BearerToken(Zeroizing::new(token)))
}

/// Why a presented token is not believed (before any time or parent check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unbelieved {
    /// Too long, or not a PASETO v4.public token at all.
    Malformed,
    /// Unknown signing key, bad signature, or claims that are not ours.
    Invalid,
}

/// The claims of `token` when one of `tokens`' keys signed it: the signature, the footer
/// and the claims' shape; no time, no parent, no I/O.
pub(crate) fn verify_offline(token: &str, tokens: &Tokens) -> Result<TokenClaims, Unbelieved> {
    if token.len() > MAX_TOKEN_LEN || !token.starts_with(TOKEN_HEADER) {
        return Err(Unbelieved::Malformed);
    }
    let untrusted =
        UntrustedToken::<Public, V4>::try_from(token).map_err(|_| Unbelieved::Malformed)?;
    let footer = untrusted.untrusted_footer();
    if footer.len() > MAX_FOOTER_LEN {
        return Err(Unbelieved::Invalid);
    }
    let kid = serde_json::from_slice::<Footer<'_>>(footer)
        .map_err(|_| Unbelieved::Invalid)?
        .kid;
    let key = tokens.verifying(kid).ok_or(Unbelieved::Invalid)?;
    let trusted = PublicToken::verify(key.public(), &untrusted, None, Some(IMPLICIT_ASSERTION))
        .map_err(|_| Unbelieved::Invalid)?;
    let claims: TokenClaims =
        serde_json::from_str(trusted.payload()).map_err(|_| Unbelieved::Invalid)?;
    if claims.v != FORMAT_VERSION {
        return Err(Unbelieved::Invalid);
    }
    Ok(claims)
}
