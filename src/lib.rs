//! # keymint
//!
//! API keys in the style of Stripe and GitHub for any Rust service: prefixed keys with a
//! checksum, hashed at rest, verified in constant time, scoped, rate-limited, expired,
//! revoked and rotated, behind a storage trait your application implements for its own
//! database.
//!
//! [`Keyring`] is the entry point: it issues keys, verifies them on every request and
//! manages their life.
//!
//! ```
//! use keymint::{IssueRequest, KeyFormat, Keyring, MemoryStore, VerifyContext};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new()).build()?;
//!
//! // Issue: hand `expose_secret()` to the owner once; only a hash is stored.
//! let issued = keyring.issue(IssueRequest::new("acct_42", "CI deploy").scopes(["deploys:write"])).await?;
//! let presented = issued.key.expose_secret();
//!
//! // Verify on every request: fixed order, constant-time, fails closed.
//! let verified = keyring.verify(presented, &VerifyContext::new()).await?;
//! assert_eq!(verified.owner(), "acct_42");
//!
//! // Revoke: it never verifies again.
//! keyring.revoke(verified.id(), "leaked").await?;
//! let refused = keyring.verify(presented, &VerifyContext::new()).await.unwrap_err();
//! assert_eq!(refused.status_code(), 401);
//! # Ok(())
//! # }
//! ```
//!
//! In a debug build of your service, add `[profile.dev.package.argon2] opt-level = 3` (and
//! the same for `blake2`) to your `Cargo.toml`: unoptimised Argon2 is about 13 times
//! slower, and keymint's own profile settings do not apply to its dependents.
//!
//! # The pieces
//!
//! | module | what it holds |
//! |---|---|
//! | [`mod@format`] | key format v1: [`KeyFormat`], [`parse_key`], the checksum, [`Scanner`] and regexes for secret scanners, [`GeneratedKey`] and [`KeyHint`] |
//! | [`hash`] | hashing at rest: [`SecretHasher`], [`HashPolicy`], [`Argon2idHasher`], [`HmacSha256Hasher`] and its [`PepperProvider`]s ([`Pepper`], PKCS#11 with feature `pkcs11`), PHC strings |
//! | [`scope`] | [`Scope`], [`ScopeSet`], [`Roles`] and the [`Requirement`] language |
//! | [`ratelimit`] | [`Quota`], [`Policy`](ratelimit::Policy), [`Decision`], the [`RateLimiter`] trait, the in-memory GCRA limiter, credits, `RateLimit` header values, Redis |
//! | [`record`] | [`KeyRecord`], what a store holds for each key |
//! | [`store`] | the [`KeyStore`] trait and its contract, [`MemoryStore`], `SqliteStore`, `PgStore` (features `sqlite`, `postgres`) |
//! | [`invalidation`] | fleet-wide cache invalidation: the [`CacheInvalidation`] hook, `PgInvalidation` (LISTEN/NOTIFY) and `RedisInvalidation` (pub/sub) |
//! | [`keyring`] | [`Keyring`]: key types and environments, issue, verify, revoke, rotate, update, list; cache, audit events, anomaly signals |
//! | [`usage`] | per-key usage counts by UTC day and outcome, written in batches |
//! | [`audit`] | a tamper-evident (hash-chained) audit trail and its verifier |
//! | [`metrics`] | the counters and histograms emitted through the `metrics` facade (feature `metrics`) |
//! | [`cidr`], [`origin`], [`certificate`] | client-network allowlists, publishable keys' allowed origins, keys bound to a client certificate (mutual TLS) |
//! | `token` | short-lived, scope-reduced tokens derived from a verified key (feature `tokens`) |
//! | `http` | the tower layer, axum extractors, the self-service portal and GitHub leak alerts (features `tower`, `axum`, `leak-alerts`) |
//! | [`clock`] | the [`Clock`] trait, the one source of time ([`ManualClock`] for tests) |
//! | `testing` | conformance kits and fault wrappers for your own backends (feature `testing`) |
//! | [`guide`] | long-form documentation: design notes, measurements, extending keymint |
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `tokio` | yes | hashing on tokio's blocking pool, background last-used and rehash writes |
//! | `cli` | no | the `keymint` command-line tool |
//! | `testing` | no | `keymint::testing`: conformance kits for stores, limiters and hashers, and `FaultyStore` |
//! | `redis` | no | `ratelimit::RedisLimiter`: fleet-wide rate limits (one server or a Redis Cluster); `invalidation::redis` |
//! | `postgres` | no | `store::PgStore`: key records in PostgreSQL; `invalidation::postgres` |
//! | `sqlite` | no | `store::SqliteStore`: key records in SQLite (compiled in) |
//! | `metrics` | no | counters and histograms through the `metrics` facade ([`metrics`]) |
//! | `tower` | no | `keymint::http`: the tower layer that authenticates requests |
//! | `axum` | no | `tower` plus the `VerifiedKey` extractors and the self-service portal router |
//! | `leak-alerts` | no | `axum` plus the handler for GitHub's secret-scanning partner alerts (`http::leak_alerts`) |
//! | `pkcs11` | no | `hash::pkcs11`: HMAC peppers held in a PKCS#11 hardware module, the MAC computed inside it |
//! | `tokens` | no | `token`: short-lived, scope-reduced tokens derived from a key (PASETO v4.public) |
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod text;
mod hex;

pub mod audit;
pub mod certificate;
pub mod cidr;
pub mod clock;
pub mod format;
pub mod guide;
pub mod hash;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod http;
pub mod invalidation;
pub mod keyring;
pub mod metrics;
pub mod origin;
pub mod random;
pub mod ratelimit;
pub mod record;
pub mod scope;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "tokens")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokens")))]
pub mod token;
pub mod usage;

pub use certificate::{CertificateBinding, CertificateError, ClientCertificate};
pub use chrono::{self, DateTime, TimeDelta, Utc};
pub use cidr::{Cidr, CidrError};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use format::{
    Finding, FormatError, GeneratedKey, KeyFormat, KeyFormatBuilder, KeyHint, KeyId, ParseError,
    ParsedKey, Prefix, Scanner, parse_key,
};
pub use hash::{
    Argon2idHasher, HashError, HashPolicy, HmacSha256Hasher, Pepper, PepperProvider, PhcHash,
    SecretHasher, Verdict,
};
pub use invalidation::CacheInvalidation;
pub use keyring::{
    Anomaly, AnomalyConfig, AuditEvent, AuditSink, FailureReason, IssueRequest, IssuedKey,
    KeyFilter, KeyType, KeyTypes, KeyUpdate, Keyring, KeyringBuilder, KeyringError, MemoryKeyring,
    SelfServiceAction, VerifiedKey, VerifyContext, VerifyError,
};
pub use origin::{AllowedOrigin, OriginError};
pub use random::RngError;
pub use ratelimit::{Decision, MemoryLimiter, Quota, RateLimitDenial, RateLimitError, RateLimiter};
pub use record::{
    Environment, EnvironmentError, KeyAttributes, KeyKind, KeyRecord, KeyStatus, Revocation,
};
pub use scope::{
    MissingScopes, Requirement, RequirementError, RoleError, Roles, Scope, ScopeError, ScopeSet,
};
pub use store::{Decrement, KeyStore, MemoryStore, Page, PageRequest, StoreError};

/// The old root name of [`ratelimit::Policy`], ambiguous beside [`HashPolicy`] and the
/// Redis limiter's failure policy.
#[deprecated(since = "0.1.0", note = "use `keymint::ratelimit::Policy`")]
pub type Policy = ratelimit::Policy;

/// Every Rust snippet of README.md, compiled and run as doctests (with all features, as the
/// README's test command runs them), so a snippet that drifts from the API fails the build.
#[cfg(all(
    doctest,
    feature = "testing",
    feature = "postgres",
    feature = "redis",
    feature = "sqlite",
    feature = "axum",
    feature = "metrics",
    feature = "leak-alerts",
    feature = "pkcs11",
    feature = "tokens"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
