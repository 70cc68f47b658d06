//! Token signing and verifying keys: Ed25519 key pairs with an id, persisted as PASERK
//! (`k4.secret.` / `k4.public.` with the key in unpadded base64url).

use std::fmt;
use std::sync::Arc;

use base64ct::{Base64UrlUnpadded, Encoding};
use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::version4::V4;
use zeroize::Zeroizing;

use super::TokenError;

const SECRET_PREFIX: &str = "k4.secret.";
const PUBLIC_PREFIX: &str = "k4.public.";
const SECRET_LEN: usize = 64;
const PUBLIC_LEN: usize = 32;

/// A key id: 1 to 64 of `A-Za-z0-9._-`, named in every token's footer.
fn check_kid(kid: &str) -> Result<(), TokenError> {
    let valid = (1..=64).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(TokenError::KeyId)
    }
}

/// The private key that signs tokens (Ed25519), with its id. Never printed: `Debug` shows
/// the id only; the secret bytes are zeroized when the last clone drops.
#[derive(Clone)]
pub struct TokenSigningKey {
    kid: Arc<str>,
    secret: Arc<AsymmetricSecretKey<V4>>,
    public: TokenVerifyingKey,
}

impl fmt::Debug for TokenSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigningKey")
            .field("kid", &self.kid)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

impl TokenSigningKey {
    /// A new key pair from the operating system's CSPRNG, named `kid`.
    ///
    /// # Errors
    /// [`TokenError::KeyId`] for an id that is not 1 to 64 of `A-Za-z0-9._-`;
    /// [`TokenError::Key`] when the random source fails.
    pub fn generate(kid: &str) -> Result<Self, TokenError> {
        check_kid(kid)?;
        let pair = AsymmetricKeyPair::<V4>::generate().map_err(|_| TokenError::Key)?;
        Ok(Self::from_parts(kid, pair.secret, pair.public))
    }

    /// The key stored as PASERK `k4.secret.<base64url>` (the 64-byte Ed25519 secret key:
    /// seed and public key), named `kid`.
    ///
    /// # Errors
    /// [`TokenError::KeyId`], or [`TokenError::Key`] for text that is not such a key
    /// (wrong prefix or length, an all-zero seed, a public half that does not match).
    pub fn from_paserk(kid: &str, paserk: &str) -> Result<Self, TokenError> {
        check_kid(kid)?;
        let encoded = paserk.strip_prefix(SECRET_PREFIX).ok_or(TokenError::Key)?;
        let bytes =
            Zeroizing::new(Base64UrlUnpadded::decode_vec(encoded).map_err(|_| TokenError::Key)?);
        // pasetors panics on an all-zero seed: refuse it here.
        if bytes.len() != SECRET_LEN || bytes[..32].iter().all(|b| *b == 0) {
            return Err(TokenError::Key);
        }
        let secret = AsymmetricSecretKey::<V4>::from(&bytes).map_err(|_| TokenError::Key)?;
        let public = AsymmetricPublicKey::<V4>::try_from(&secret).map_err(|_| TokenError::Key)?;
        Ok(Self::from_parts(kid, secret, public))
    }

    fn from_parts(
        kid: &str,
        secret: AsymmetricSecretKey<V4>,
        public: AsymmetricPublicKey<V4>,
    ) -> Self {
        let kid: Arc<str> = Arc::from(kid);
        Self {
            public: TokenVerifyingKey {
                kid: kid.clone(),
                public: Arc::new(public),
            },
            kid,
            secret: Arc::new(secret),
        }
    }

    /// The key as PASERK `k4.secret.<base64url>`, to keep in your secret manager (every
    /// process of a fleet signs and verifies with the same keys). Zeroized on drop.
    pub fn to_paserk(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{SECRET_PREFIX}{}",
            Base64UrlUnpadded::encode_string(self.secret.as_bytes())
        ))
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, to verify this key's tokens elsewhere or after rotation.
    pub fn verifying_key(&self) -> TokenVerifyingKey {
        self.public.clone()
    }

    pub(crate) fn secret(&self) -> &AsymmetricSecretKey<V4> {
        &self.secret
    }
}

/// A public key that verifies tokens (Ed25519), with its id.
#[derive(Clone)]
pub struct TokenVerifyingKey {
    kid: Arc<str>,
    public: Arc<AsymmetricPublicKey<V4>>,
}

impl fmt::Debug for TokenVerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifyingKey")
            .field("kid", &self.kid)
            .field("public", &self.to_paserk())
            .finish()
    }
}

impl TokenVerifyingKey {
    /// The key stored as PASERK `k4.public.<base64url>` (32 bytes), named `kid`.
    ///
    /// # Errors
    /// [`TokenError::KeyId`], or [`TokenError::Key`] for text that is not such a key.
    pub fn from_paserk(kid: &str, paserk: &str) -> Result<Self, TokenError> {
        check_kid(kid)?;
        let encoded = paserk.strip_prefix(PUBLIC_PREFIX).ok_or(TokenError::Key)?;
        let bytes = Base64UrlUnpadded::decode_vec(encoded).map_err(|_| TokenError::Key)?;
        if bytes.len() != PUBLIC_LEN {
            return Err(TokenError::Key);
        }
        let public = AsymmetricPublicKey::<V4>::from(&bytes).map_err(|_| TokenError::Key)?;
        Ok(Self {
            kid: Arc::from(kid),
            public: Arc::new(public),
        })
    }

    /// The key as PASERK `k4.public.<base64url>`.
    pub fn to_paserk(&self) -> String {
        format!(
            "{PUBLIC_PREFIX}{}",
            Base64UrlUnpadded::encode_string(self.public.as_bytes())
        )
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn public(&self) -> &AsymmetricPublicKey<V4> {
        &self.public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_paserk_and_never_print_the_secret() {
        let key = TokenSigningKey::generate("k1").unwrap();
        let text = key.to_paserk();
        assert!(text.starts_with("k4.secret."));
        let again = TokenSigningKey::from_paserk("k1", &text).unwrap();
        assert_eq!(
            again.verifying_key().to_paserk(),
            key.verifying_key().to_paserk()
        );
        let debug = format!("{key:?}");
        assert!(!debug.contains(&text[10..20]), "{debug}");
        let public =
            TokenVerifyingKey::from_paserk("k1", &key.verifying_key().to_paserk()).unwrap();
        assert_eq!(public.kid(), "k1");
    }

    #[test]
    fn bad_keys_and_ids_are_refused_without_panicking() {
        let zero_seed = format!("k4.secret.{}", Base64UrlUnpadded::encode_string(&[0u8; 64]));
        for text in [
            "",
            "k4.secret.",
            "k4.public.AAAA",
            &zero_seed,
            "k4.secret.!!!!",
        ] {
            assert!(TokenSigningKey::from_paserk("k", text).is_err(), "{text}");
        }
        let key = TokenSigningKey::generate("k").unwrap();
        // A secret whose public half is another key's.
        let mut mixed = Base64UrlUnpadded::decode_vec(&key.to_paserk()[10..]).unwrap();
        mixed[40] ^= 1;
        let mixed = format!("k4.secret.{}", Base64UrlUnpadded::encode_string(&mixed));
        assert!(TokenSigningKey::from_paserk("k", &mixed).is_err());
        for kid in ["", "a b", &"x".repeat(65), "é"] {
            assert!(
                matches!(TokenSigningKey::generate(kid), Err(TokenError::KeyId)),
                "{kid}"
            );
        }
    }
}
