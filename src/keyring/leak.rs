//! Leak reports: is a token someone found in public really one of our keys?
//!
//! A secret scanner (GitHub's partner program, say) reports strings that look like our
//! keys. The prefix, the id and the checksum of a key are public — anyone can build a
//! string that passes them — so acting on a report needs the same proof as a request does:
//! the secret must match the stored hash.

use super::Keyring;
use super::refusal::Refusal;
use crate::keyring::VerifyError;
use crate::ratelimit::RateLimiter;
use crate::record::KeyRecord;
use crate::store::KeyStore;

impl<S: KeyStore, L: RateLimiter> Keyring<S, L> {
    /// Whether `presented` is, secret and all, a key of this keyring: its record when it
    /// is, `None` when it is not. For acting on a leak report before revoking anything.
    ///
    /// The check is [`verify`](Self::verify)'s authentication and nothing else: format,
    /// checksum and key type without I/O, then the store lookup and the constant-time
    /// secret check on the bounded uncached path (never the cache; an unknown id costs a
    /// dummy hash like a wrong secret). The key's status, expiry, environment, networks,
    /// scopes, rate limit and uses are not looked at — a revoked or expired key whose
    /// secret leaked is still a real key — and nothing is charged, counted, cached,
    /// rehashed or audited. A secret found under another of the keyring's prefixes than
    /// its key's (a key re-prefixed with a recomputed checksum) is that key's secret, so
    /// it counts: whoever holds it can rebuild the real key.
    ///
    /// ```
    /// use keymint::{IssueRequest, KeyFormat, Keyring, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new()).build()?;
    /// let issued = keyring.issue(IssueRequest::new("acct_42", "CI deploy")).await?;
    ///
    /// let found = keyring.confirm_secret(issued.key.expose_secret()).await?;
    /// assert_eq!(found.map(|record| record.id), Some(issued.record.id));
    ///
    /// // Well-formed, valid checksum, but not a key we issued.
    /// let forged = keyring.format().generate()?;
    /// assert!(keyring.confirm_secret(forged.expose_secret()).await?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// It waits for a place on the uncached path even when the waiting room is full (a
    /// flood of forged keys must not hold off a leak's revocation), in turn behind those
    /// already waiting; bound it with a timeout of your own if you need an answer sooner.
    ///
    /// # Errors
    /// When the answer is unknown: [`VerifyError::StoreUnavailable`] or
    /// [`VerifyError::Internal`] (an unreadable stored hash). Ask again later; never treat
    /// these as "not a key".
    pub async fn confirm_secret(&self, presented: &str) -> Result<Option<KeyRecord>, VerifyError> {
        let Ok((parsed, _key_type)) = self.inner.types.parse_shared(presented) else {
            return Ok(None);
        };
        // No client to throttle: the caller authenticated the report itself.
        // A flood of forged keys must not hold off a leak's revocation: this waits for a
        // hashing slot however full the waiting room is (it still runs only in a free slot).
        match self.lookup_and_check(&parsed, None, None, true).await {
            Ok((record, _secret, _needs_rehash)) => Ok(Some(record)),
            Err(refusal) if refusal.is_authentication_failure() => Ok(None),
            Err(
                refusal @ (Refusal::Overloaded
                | Refusal::StoreUnavailable(_)
                | Refusal::Internal(_)),
            ) => Err(refusal.into_error()),
            Err(other) => {
                // The lookup raises nothing else; fail closed if it ever does.
                tracing::debug!(reason = other.code(), "leak check ended unexpectedly");
                Err(VerifyError::Internal(crate::hash::HashError::Backend(
                    "unexpected refusal while checking a reported key",
                )))
            }
        }
    }
}
