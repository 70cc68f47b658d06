//! # keymint
//!
//! API keys in the style of Stripe and GitHub for any Rust service: prefixed keys with a
//! checksum, hashed at rest, verified in constant time.
//!
//! ```
//! use keymint::{HashPolicy, KeyFormat, Verdict};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let format = KeyFormat::new("sk_live")?;
//!
//! // Mint a key: show `key.expose_secret()` to its owner once, store only the hash.
//! let key = format.generate()?;
//! let hashes = HashPolicy::default(); // Argon2id, OWASP parameters
//! let stored = hashes.hash(key.parsed().expose_secret().as_bytes())?;
//!
//! // Later, a request presents the key: parse (no I/O), find the record by id, verify.
//! let presented = format.parse(key.expose_secret())?;
//! assert_eq!(presented.id(), key.id().as_str());
//! let verdict = hashes.verify(presented.expose_secret().as_bytes(), stored.as_str())?;
//! assert!(verdict.is_match());
//!
//! // People only ever see the hint.
//! println!("verified {}", presented.hint()); // sk_live_AbC123xyZ789_…k2Qz
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cidr;
pub mod clock;
pub mod error;
pub mod format;
pub mod hash;
pub mod keyring;
pub mod ratelimit;
pub mod record;
pub mod scope;
pub mod secret;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use chrono::{self, DateTime, TimeDelta, Utc};
pub use cidr::{Cidr, CidrError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{
    FormatError, HashError, KeyringError, ParseError, RngError, StoreError, VerifyError,
};
pub use format::{
    Finding, KeyFormat, KeyFormatBuilder, KeyId, ParsedKey, Prefix, Scanner, parse_key,
};
pub use hash::{
    Argon2idHasher, HashPolicy, HmacSha256Hasher, Pepper, PhcHash, SecretHasher, Verdict,
};
pub use keyring::{
    AuditEvent, AuditSink, CacheInvalidation, FailureReason, IssueRequest, IssuedKey, KeyUpdate,
    Keyring, KeyringBuilder, VerifiedKey, VerifyContext,
};
pub use ratelimit::{Decision, MemoryLimiter, Policy, Quota, RateLimitError, RateLimiter};
pub use record::{KeyRecord, KeyStatus, Revocation};
pub use scope::{
    MissingScopes, Requirement, RequirementError, RoleError, Roles, Scope, ScopeError, ScopeSet,
};
pub use secret::{GeneratedKey, KeyHint};
pub use store::{Decrement, KeyStore, MemoryStore, Page, PageRequest};
