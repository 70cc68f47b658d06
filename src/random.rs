//! The one source of randomness: the operating system's CSPRNG, through `getrandom`.

use thiserror::Error;

/// The operating system's random source failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("operating system random source failed: {0}")]
pub struct RngError(#[from] getrandom::Error);

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), RngError> {
    getrandom::fill(buf).map_err(RngError)
}
