//! Hashing at rest: only a PHC string of each key's secret is stored.
//!
//! A [`SecretHasher`] writes and checks one algorithm. A [`HashPolicy`] holds the current
//! hasher plus any older ones still accepted: the PHC identifier in each stored hash picks
//! the verifier, so a store may hold a mix while migrating, and every successful check says
//! whether the record should be rehashed with the current hasher.
//!
//! [`HmacSha256Hasher`] gets its MAC from a [`PepperProvider`]: a [`Pepper`] in memory
//! (from a secrets manager, an environment variable or a file), or a key held in a hardware
//! module through `keymint::hash::pkcs11` (feature `pkcs11`).

mod argon2id;
mod error;
mod hmac_sha256;
mod pepper;
mod phc;
#[cfg(feature = "pkcs11")]
#[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
pub mod pkcs11;

use std::fmt;
use std::sync::{Arc, OnceLock};

pub use argon2id::{Argon2idBuilder, Argon2idHasher};
pub use error::HashError;
pub use hmac_sha256::HmacSha256Hasher;
pub use pepper::{Pepper, PepperProvider};
pub use phc::{MAX_PHC_LEN, Phc};

/// Bytes of salt in every hash this crate writes (128 bits, as RFC 9106 recommends).
pub(crate) const SALT_LEN: usize = 16;

/// A fresh salt from the operating system's CSPRNG: the one place every hasher gets one.
pub(crate) fn fresh_salt() -> Result<[u8; SALT_LEN], HashError> {
    let mut salt = [0u8; SALT_LEN];
    crate::random::fill(&mut salt)?;
    Ok(salt)
}

/// One hash algorithm: writes PHC strings and verifies them in constant time.
///
/// Implementations must verify with the parameters stored in the PHC string (not their
/// configured ones), compare in constant time, and return errors (never panic) for stored
/// strings they cannot read.
pub trait SecretHasher: Send + Sync + fmt::Debug + 'static {
    /// The PHC algorithm identifier this hasher writes and reads, such as `argon2id`.
    fn algorithm(&self) -> &'static str;

    /// Hashes `secret` with a fresh salt.
    ///
    /// # Errors
    /// [`HashError::Rng`] without randomness for the salt, [`HashError::Backend`] when the
    /// hash function fails.
    fn hash(&self, secret: &[u8]) -> Result<PhcHash, HashError>;

    /// Whether `secret` matches `stored`: `Ok(false)` for a wrong secret.
    ///
    /// # Errors
    /// When `stored` is of another algorithm, is malformed, or has unsupported parameters.
    fn verify(&self, secret: &[u8], stored: &Phc<'_>) -> Result<bool, HashError>;

    /// Whether `stored` was made with other parameters than this hasher's current ones.
    fn needs_rehash(&self, stored: &Phc<'_>) -> bool;

    /// Whether this hasher can check `stored`: by default, whether it is of this hasher's
    /// [`algorithm`](Self::algorithm). Hashers keyed by a secret they may not hold (an
    /// HMAC pepper by id) narrow it, so that a [`HashPolicy`] holding several hashers of
    /// one algorithm hands each stored hash to the one that has its key.
    fn accepts(&self, stored: &Phc<'_>) -> bool {
        stored.algorithm() == self.algorithm()
    }
}

/// A stored hash in PHC string format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
///
/// `Debug` shows the algorithm and parameters but not the salt or hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PhcHash(Box<str>);

impl PhcHash {
    /// Checks that `text` is a well-formed PHC string and wraps it.
    ///
    /// # Errors
    /// [`HashError::Malformed`] when it is not.
    pub fn new(text: &str) -> Result<Self, HashError> {
        Phc::parse(text)?;
        Ok(Self(text.into()))
    }

    pub(crate) fn from_trusted(text: String) -> Self {
        debug_assert!(Phc::parse(&text).is_ok());
        Self(text.into())
    }

    /// The string split into its fields.
    ///
    /// # Errors
    /// [`HashError::Malformed`] (only possible for values built before a parser change).
    pub fn phc(&self) -> Result<Phc<'_>, HashError> {
        Phc::parse(&self.0)
    }
}

impl fmt::Debug for PhcHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Algorithm, version and parameters only: every field after the id that is not
        // `name=value` (salt, output) is elided.
        f.write_str("PhcHash(")?;
        let mut fields = self.0.split('$').skip(1);
        if let Some(algorithm) = fields.next() {
            write!(f, "${algorithm}")?;
        }
        for field in fields.take_while(|field| field.contains('=')) {
            write!(f, "${field}")?;
        }
        f.write_str("$…)")
    }
}

text_newtype!(PhcHash, parse = PhcHash::new, error = HashError);

/// The outcome of checking a secret against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// The secret matches.
    Match {
        /// The hash was made by another algorithm or other parameters than the current
        /// hasher's: store a fresh [`HashPolicy::hash`] of the secret.
        needs_rehash: bool,
    },
    /// The secret does not match.
    Mismatch,
}

impl Verdict {
    /// Whether the secret matched.
    pub fn is_match(self) -> bool {
        matches!(self, Verdict::Match { .. })
    }
}

/// The current hasher plus the older ones still accepted for verification.
///
/// ```
/// use keymint::{Argon2idHasher, HashPolicy, HmacSha256Hasher, Pepper, Verdict};
///
/// // Migrating from HMAC to Argon2id: new hashes are Argon2id, old ones still verify.
/// let hmac = HmacSha256Hasher::new("k1", Pepper::new([1u8; 32])?)?;
/// let old = HashPolicy::new(hmac.clone()).hash(b"secret")?;
///
/// let argon = Argon2idHasher::builder().m_cost(256).t_cost(1).build()?;
/// let policy = HashPolicy::new(argon).accept(hmac);
/// assert_eq!(policy.verify(b"secret", old.as_str())?, Verdict::Match { needs_rehash: true });
/// assert_eq!(policy.verify(b"wrong", old.as_str())?, Verdict::Mismatch);
/// # Ok::<(), keymint::HashError>(())
/// ```
#[derive(Clone, Debug)]
pub struct HashPolicy {
    current: Arc<dyn SecretHasher>,
    accepted: Vec<Arc<dyn SecretHasher>>,
    dummy: Arc<OnceLock<PhcHash>>,
}

impl Default for HashPolicy {
    /// Argon2id with OWASP parameters.
    fn default() -> Self {
        Self::new(Argon2idHasher::new())
    }
}

impl HashPolicy {
    /// A policy that hashes (and verifies) with `current`.
    pub fn new(current: impl SecretHasher) -> Self {
        Self {
            current: Arc::new(current),
            accepted: Vec::new(),
            dummy: Arc::default(),
        }
    }

    /// Also accepts hashes written by `older` (verification only).
    #[must_use]
    pub fn accept(mut self, older: impl SecretHasher) -> Self {
        self.accepted.push(Arc::new(older));
        self
    }

    /// The hasher that writes new hashes.
    pub fn current(&self) -> &dyn SecretHasher {
        &*self.current
    }

    /// Hashes `secret` with the current hasher.
    ///
    /// # Errors
    /// As [`SecretHasher::hash`].
    pub fn hash(&self, secret: &[u8]) -> Result<PhcHash, HashError> {
        self.current.hash(secret)
    }

    /// Checks `secret` against the PHC string `stored`, choosing the verifier by the
    /// string's algorithm identifier.
    ///
    /// # Errors
    /// [`HashError::Malformed`] for an unreadable string,
    /// [`HashError::UnsupportedAlgorithm`] when no accepted hasher knows its algorithm, and
    /// the verifier's own errors.
    pub fn verify(&self, secret: &[u8], stored: &str) -> Result<Verdict, HashError> {
        let phc = Phc::parse(stored)?;
        let mut hashers = std::iter::once(&self.current).chain(&self.accepted);
        // The first hasher that can check this hash (algorithm and, for peppered hashers,
        // key id); failing that, the first of its algorithm, whose error says what is
        // missing (an unknown pepper, say).
        let hasher = match hashers.clone().find(|h| h.accepts(&phc)) {
            Some(hasher) => hasher,
            None => hashers
                .find(|h| h.algorithm() == phc.algorithm())
                .ok_or_else(|| HashError::UnsupportedAlgorithm(phc.algorithm().to_owned()))?,
        };
        if hasher.verify(secret, &phc)? {
            let needs_rehash =
                !Arc::ptr_eq(hasher, &self.current) || self.current.needs_rehash(&phc);
            Ok(Verdict::Match { needs_rehash })
        } else {
            Ok(Verdict::Mismatch)
        }
    }

    /// Computes the throwaway hash that [`verify_dummy`](Self::verify_dummy) checks
    /// against, if not done yet. The keyring calls it when it is built.
    ///
    /// # Errors
    /// As [`SecretHasher::hash`].
    pub fn prepare_dummy(&self) -> Result<(), HashError> {
        if self.dummy.get().is_none() {
            let dummy = self.current.hash(b"keymint dummy secret")?;
            let _ = self.dummy.set(dummy);
        }
        Ok(())
    }

    /// Does the work of one verification against a throwaway hash of the current hasher,
    /// so that a lookup that found no record takes about as long as a wrong secret. The
    /// result is discarded. (While a store still holds hashes of an older algorithm, a
    /// wrong secret for those records costs what that algorithm costs.)
    pub fn verify_dummy(&self, secret: &[u8]) {
        let _ = self.verify_dummy_reachable(secret);
    }

    /// [`verify_dummy`](Self::verify_dummy), failing only when the current pepper is
    /// unavailable ([`HashError::is_unavailable`]): then an unknown key id must fail as a
    /// known one would, or an outage would tell which ids exist.
    pub(crate) fn verify_dummy_reachable(&self, secret: &[u8]) -> Result<(), HashError> {
        let outcome = match self.prepare_dummy() {
            // Without a dummy, hash instead: about the same work.
            Err(_) => self.current.hash(secret).map(drop),
            Ok(()) => match self.dummy.get() {
                Some(dummy) => self.verify(secret, dummy.as_str()).map(drop),
                None => Ok(()),
            },
        };
        match outcome {
            Err(e) if e.is_unavailable() => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phc_debug_shows_parameters_but_never_salt_or_output() {
        for (text, shown) in [
            (
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "PhcHash($argon2id$v=19$m=19456,t=2,p=1$…)",
            ),
            (
                "$hmac-sha256$kid=k1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "PhcHash($hmac-sha256$kid=k1$…)",
            ),
            (
                "$plain$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "PhcHash($plain$…)",
            ),
        ] {
            let debug = format!("{:?}", PhcHash::new(text).unwrap());
            assert_eq!(debug, shown);
            assert!(!debug.contains("c2FsdHNhbHQ") && !debug.contains("aGFzaGhh"));
        }
    }
}
