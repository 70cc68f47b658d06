//! HMAC-SHA-256 keyed by a server-side pepper: the fast hasher for high-entropy keys.

use std::fmt;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::pepper::PepperProvider;
use super::phc::{Phc, encode_b64};
use super::{PhcHash, SecretHasher};
use crate::hash::HashError;

/// HMAC-SHA-256 over `salt || secret`, keyed by a pepper, stored as
/// `$hmac-sha256$kid=<pepper id>$<salt>$<mac>`.
///
/// The MAC comes from a [`PepperProvider`]: a [`Pepper`](super::Pepper) in memory, or a
/// key that never leaves a hardware module (`Pkcs11Pepper`, feature `pkcs11`) or a cloud
/// KMS. When the provider cannot compute it, hashing and verification fail
/// ([`HashError::PepperUnavailable`]); nothing falls back to another pepper or to none.
///
/// When to choose it: keymint's secrets carry at least 131 bits of CSPRNG entropy, so a slow
/// hash adds nothing against brute force of the secret itself; what protects a leaked
/// database is the pepper, which lives outside it (GitHub and Unkey store a SHA-256 of their
/// tokens for the same reason). It costs about a microsecond instead of Argon2's tens of
/// milliseconds. Prefer Argon2id (the default) when you cannot keep a pepper out of the
/// database's blast radius, or when keys might be low-entropy.
///
/// Peppers rotate by id, without downtime: hash with the newest one, keep old ones for
/// verification, and [`needs_rehash`](SecretHasher::needs_rehash) reports hashes made with
/// an old one (the keyring then rewrites them on their next verification). Providers mix:
/// a store moving its pepper into a hardware module keeps the in-memory one as previous.
///
/// ```
/// use keymint::{HmacSha256Hasher, Pepper, SecretHasher};
///
/// let hasher = HmacSha256Hasher::new("k1", Pepper::new([7u8; 32])?)?;
/// let stored = hasher.hash(b"secret")?;
/// assert!(stored.as_str().starts_with("$hmac-sha256$kid=k1$"));
/// assert!(hasher.verify(b"secret", &stored.phc()?)?);
///
/// let rotated = HmacSha256Hasher::new("k2", Pepper::new([9u8; 32])?)?
///     .with_previous("k1", Pepper::new([7u8; 32])?)?;
/// assert!(rotated.verify(b"secret", &stored.phc()?)?);
/// assert!(rotated.needs_rehash(&stored.phc()?));
/// # Ok::<(), keymint::HashError>(())
/// ```
#[derive(Clone)]
pub struct HmacSha256Hasher {
    current: (Box<str>, Arc<dyn PepperProvider>),
    previous: Vec<(Box<str>, Arc<dyn PepperProvider>)>,
}

impl HmacSha256Hasher {
    /// PHC algorithm identifier.
    pub const ALGORITHM: &'static str = "hmac-sha256";

    /// A hasher that writes hashes with pepper `kid`, computed by `pepper` (a
    /// [`Pepper`](super::Pepper) or any other [`PepperProvider`]).
    ///
    /// # Errors
    /// [`HashError::InvalidConfig`] when `kid` is not 1..=16 characters of `a-z0-9-`.
    pub fn new(kid: &str, pepper: impl PepperProvider) -> Result<Self, HashError> {
        Ok(Self {
            current: (check_kid(kid)?, Arc::new(pepper)),
            previous: Vec::new(),
        })
    }

    /// Also verifies hashes made with an older pepper `kid`.
    ///
    /// # Errors
    /// [`HashError::InvalidConfig`] for an invalid or duplicate `kid`.
    pub fn with_previous(
        mut self,
        kid: &str,
        pepper: impl PepperProvider,
    ) -> Result<Self, HashError> {
        let kid = check_kid(kid)?;
        if *kid == *self.current.0 || self.previous.iter().any(|(k, _)| *k == kid) {
            return Err(HashError::InvalidConfig("duplicate pepper id"));
        }
        self.previous.push((kid, Arc::new(pepper)));
        Ok(self)
    }

    /// The id of the pepper new hashes are made with.
    pub fn current_kid(&self) -> &str {
        &self.current.0
    }

    /// `HMAC(pepper, salt || secret)`: the message is assembled in a buffer that is zeroized
    /// afterwards, since it holds the secret.
    fn mac(pepper: &dyn PepperProvider, salt: &[u8], secret: &[u8]) -> Result<[u8; 32], HashError> {
        let mut message = Zeroizing::new(Vec::with_capacity(salt.len() + secret.len()));
        message.extend_from_slice(salt);
        message.extend_from_slice(secret);
        pepper.hmac_sha256(&message)
    }

    fn pepper(&self, kid: &str) -> Option<&dyn PepperProvider> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|(k, p)| (**k == *kid).then_some(&**p))
    }
}

fn check_kid(kid: &str) -> Result<Box<str>, HashError> {
    let ok = (1..=16).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(kid.into())
    } else {
        Err(HashError::InvalidConfig(
            "pepper id must be 1..=16 of a-z0-9-",
        ))
    }
}

impl fmt::Debug for HmacSha256Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacSha256Hasher")
            .field("current", &self.current.0)
            .field(
                "previous",
                &self.previous.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SecretHasher for HmacSha256Hasher {
    fn algorithm(&self) -> &'static str {
        Self::ALGORITHM
    }

    fn hash(&self, secret: &[u8]) -> Result<PhcHash, HashError> {
        let salt = super::fresh_salt()?;
        let tag = Self::mac(&*self.current.1, &salt, secret)?;
        Ok(PhcHash::from_trusted(format!(
            "$hmac-sha256$kid={}${}${}",
            self.current.0,
            encode_b64(&salt),
            encode_b64(&tag)
        )))
    }

    fn verify(&self, secret: &[u8], stored: &Phc<'_>) -> Result<bool, HashError> {
        if stored.algorithm() != Self::ALGORITHM {
            return Err(HashError::UnsupportedAlgorithm(
                stored.algorithm().to_owned(),
            ));
        }
        let kid = stored
            .param("kid")
            .ok_or(HashError::Malformed("missing kid parameter"))?;
        let pepper = self
            .pepper(kid)
            .ok_or_else(|| HashError::UnknownPepper(kid.to_owned()))?;
        let salt = stored.salt()?;
        let expected = stored.hash()?;
        if expected.len() != 32 {
            return Err(HashError::Malformed("hmac-sha256 output must be 32 bytes"));
        }
        let tag = Self::mac(pepper, &salt, secret)?;
        Ok(bool::from(tag.ct_eq(&expected[..])))
    }

    fn needs_rehash(&self, stored: &Phc<'_>) -> bool {
        stored.algorithm() != Self::ALGORITHM || stored.param("kid") != Some(&*self.current.0)
    }

    fn accepts(&self, stored: &Phc<'_>) -> bool {
        stored.algorithm() == Self::ALGORITHM
            && stored
                .param("kid")
                .is_some_and(|kid| self.pepper(kid).is_some())
    }
}
