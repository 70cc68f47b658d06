//! Short-lived, scope-reduced tokens derived from a verified key (feature `tokens`).
//!
//! A client that holds a long-lived secret key exchanges it for a token that can do less
//! and dies sooner, and hands the token to code it trusts less (a browser session, a batch
//! job, a third party): the key never leaves the server it lives on. A token
//!
//! * carries its parent key's id and lineage, key type and environment, a subset of the
//!   parent's scopes (never more: attenuation only), an expiry (default 15 minutes, never
//!   past the parent's own expiry), a random id (`jti`), and the id of the signing key;
//! * verifies offline: a signature and a few claims, no store lookup and no hash per
//!   token. The parent's state is read once per [`parent_check_interval`](Tokens::parent_check_interval)
//!   (default 30 s) and cached; revoking, disabling or rotating the parent (through this
//!   keyring, or any keyring of the fleet when a [`CacheInvalidation`](crate::CacheInvalidation)
//!   channel connects them) drops that cache entry at once, so its tokens are refused on
//!   their next use. Without a channel, another process's change reaches this one within
//!   the interval; and every token dies at its expiry regardless;
//! * draws on its parent's rate limits (the budget belongs to the key's lineage), and is
//!   checked like its parent for environment, allowed networks, origins and client
//!   certificate (a token of a certificate-bound key is bound to the same certificate);
//! * is accepted wherever a key is: [`Keyring::verify`](crate::Keyring::verify) (and so
//!   the HTTP layer) recognises the token form and reports it in
//!   [`VerifiedKey::token`](crate::VerifiedKey::token).
//!
//! # Format: PASETO v4.public
//!
//! Tokens are [PASETO](https://paseto.io) `v4.public` tokens (Ed25519 signatures, through
//! the `pasetors` crate): a versioned format with exactly one algorithm per version, so
//! there is no algorithm field to confuse (JWT's `alg: none` and HMAC/RSA mix-ups cannot
//! happen), and a public-key signature, so verifying processes hold no secret that could
//! mint tokens. The payload is JSON and readable by whoever holds the token (nothing in it
//! is secret: ids, scopes, times); the footer names the signing key (`{"kid": ..}`); an
//! implicit assertion (`keymint-token:v1`) binds every signature to this use, so a PASETO
//! signed with the same key for another purpose is never accepted as a token.
//!
//! ```
//! use keymint::token::{TokenRequest, TokenSigningKey, Tokens};
//! use keymint::{IssueRequest, KeyFormat, Keyring, MemoryStore, VerifyContext};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = Tokens::new(TokenSigningKey::generate("2026-12")?);
//! let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new())
//!     .tokens(tokens)
//!     .build()?;
//! let issued = keyring
//!     .issue(IssueRequest::new("acct_42", "backend").scopes(["users:read", "users:write"]))
//!     .await?;
//! let parent = keyring.verify(issued.key.expose_secret(), &VerifyContext::new()).await?;
//!
//! // A token that may only read, for 5 minutes.
//! let derived = keyring
//!     .derive_token(&parent, TokenRequest::new().scopes(["users:read"]).ttl_secs(300))
//!     .await?;
//! let verified = keyring.verify(derived.token.expose_secret(), &VerifyContext::new()).await?;
//! assert_eq!(verified.id(), parent.id());
//! assert!(verified.token().is_some());
//! # Ok(()) }
//! ```
//!
//! Signing keys rotate like peppers: sign with a new [`TokenSigningKey`], keep the old one's
//! [`TokenVerifyingKey`] accepted (`Tokens::accept`) until the tokens it signed have
//! expired (the longest token lifetime), then drop it. Every process of a fleet must hold
//! the same keys: persist them with [`TokenSigningKey::to_paserk`] in your secret manager.

mod claims;
mod error;
mod keys;

use chrono::TimeDelta;

pub use claims::{DerivedToken, TokenClaims, TokenRequest};
pub(crate) use claims::{TOKEN_HEADER, sign, verify_offline};
pub use error::TokenError;
pub use keys::{TokenSigningKey, TokenVerifyingKey};

/// Longest token keymint reads, in bytes: anything longer is refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 2048;

/// The token configuration of a keyring: who signs, who else is believed, how long tokens
/// live and how often a parent's state is re-read. Give it to
/// [`KeyringBuilder::tokens`](crate::KeyringBuilder::tokens).
#[derive(Clone, Debug)]
#[must_use]
pub struct Tokens {
    pub(crate) signing: TokenSigningKey,
    pub(crate) accepted: Vec<TokenVerifyingKey>,
    pub(crate) default_ttl: TimeDelta,
    pub(crate) max_ttl: TimeDelta,
    pub(crate) parent_check_interval: TimeDelta,
    pub(crate) parent_cache_capacity: usize,
    pub(crate) allow_browsers: bool,
}

impl Tokens {
    /// Tokens live this long unless the request asks for less: 15 minutes.
    pub const DEFAULT_TTL: TimeDelta = TimeDelta::minutes(15);
    /// The longest lifetime a request may ask for, unless configured: 1 hour.
    pub const DEFAULT_MAX_TTL: TimeDelta = TimeDelta::hours(1);
    /// The longest configurable lifetime: 1 day.
    pub const MAX_MAX_TTL: TimeDelta = TimeDelta::days(1);
    /// How long a parent's state is trusted before it is read again: 30 seconds.
    pub const DEFAULT_PARENT_CHECK_INTERVAL: TimeDelta = TimeDelta::seconds(30);

    /// Tokens signed with `signing` (and verified with its public half).
    pub fn new(signing: TokenSigningKey) -> Self {
        Self {
            accepted: vec![signing.verifying_key()],
            signing,
            default_ttl: Self::DEFAULT_TTL,
            max_ttl: Self::DEFAULT_MAX_TTL,
            parent_check_interval: Self::DEFAULT_PARENT_CHECK_INTERVAL,
            parent_cache_capacity: 100_000,
            allow_browsers: false,
        }
    }

    /// Also believes tokens signed by `key` (a previous signing key, until its tokens have
    /// expired; or another issuer's).
    pub fn accept(mut self, key: TokenVerifyingKey) -> Self {
        if !self.accepted.iter().any(|k| k.kid() == key.kid()) {
            self.accepted.push(key);
        }
        self
    }

    /// Lifetime of tokens whose request names none (default 15 minutes).
    pub fn default_ttl(mut self, ttl: TimeDelta) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The longest lifetime a request may ask for (default 1 hour, at most 1 day).
    pub fn max_ttl(mut self, ttl: TimeDelta) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// How long a parent key's state (status, expiry, scopes, rotation) is trusted before
    /// it is read from the store again (default 30 s, at least 1 s): the bound on how long
    /// another process's change to the parent takes to stop its tokens here when no
    /// invalidation channel connects the processes.
    pub fn parent_check_interval(mut self, interval: TimeDelta) -> Self {
        self.parent_check_interval = interval;
        self
    }

    /// Whether tokens may be used from browsers (requests with an `Origin`), although their
    /// parents are secret keys, which are refused there (default `false`). Turn it on to
    /// hand short-lived tokens to browser sessions: the parent key itself stays refused
    /// from browsers.
    pub fn allow_browsers(mut self, allow: bool) -> Self {
        self.allow_browsers = allow;
        self
    }

    /// The signing key's id.
    pub fn signing_kid(&self) -> &str {
        self.signing.kid()
    }

    /// Checks the ranges; the keyring builder calls it.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.max_ttl <= TimeDelta::zero() || self.max_ttl > Self::MAX_MAX_TTL {
            return Err("token max_ttl must be positive and at most a day");
        }
        if self.default_ttl <= TimeDelta::zero() || self.default_ttl > self.max_ttl {
            return Err("token default_ttl must be positive and at most max_ttl");
        }
        if self.parent_check_interval < TimeDelta::seconds(1)
            || self.parent_check_interval > TimeDelta::hours(1)
        {
            return Err("token parent_check_interval must be between 1 s and 1 h");
        }
        Ok(())
    }

    pub(crate) fn verifying(&self, kid: &str) -> Option<&TokenVerifyingKey> {
        self.accepted.iter().find(|k| k.kid() == kid)
    }
}
