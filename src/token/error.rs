//! Why a token could not be made, or a token key could not be read.

use thiserror::Error;

/// A token or token-key failure. Verification failures of presented tokens are
/// [`VerifyError`](crate::VerifyError)s, like those of keys.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// A key id must be 1 to 64 of `A-Za-z0-9._-`.
    #[error("token key id must be 1 to 64 of A-Za-z0-9._-")]
    KeyId,
    /// Not a usable key: wrong PASERK prefix or length, or an invalid key.
    #[error("not a valid token key")]
    Key,
    /// The token could not be signed.
    #[error("token signing failed")]
    Signing,
}
