//! GitHub's signing keys: where they come from ([`KeySource`]), how they are cached (by
//! identifier, with bounded refetching), and how a signature is checked against them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64ct::{Base64, Encoding as _};
use chrono::{DateTime, TimeDelta, Utc};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

/// Most bytes of a key identifier header (GitHub's are 64 hex digits).
pub(super) const MAX_IDENTIFIER_LEN: usize = 256;
/// Most bytes of a signature header (a DER P-256 signature is at most 72 bytes, 96 in
/// base64).
pub(super) const MAX_SIGNATURE_LEN: usize = 512;

/// One of GitHub's secret-scanning signing keys, as its meta endpoint lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitHubPublicKey {
    key_identifier: String,
    key: String,
    is_current: bool,
}

impl GitHubPublicKey {
    /// A key named `key_identifier` (the `Github-Public-Key-Identifier` header names it),
    /// given as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) block.
    pub fn new(
        key_identifier: impl Into<String>,
        pem: impl Into<String>,
        is_current: bool,
    ) -> Self {
        Self {
            key_identifier: key_identifier.into(),
            key: pem.into(),
            is_current,
        }
    }

    /// Parses the document GitHub serves at
    /// [`GITHUB_PUBLIC_KEYS_URL`](super::GITHUB_PUBLIC_KEYS_URL):
    /// `{"public_keys": [{"key_identifier", "key", "is_current"}, ..]}` (other members are
    /// ignored). For a [`KeySource`] over your own HTTP client.
    ///
    /// # Errors
    /// [`KeySourceError::Document`] when the document does not have that shape.
    pub fn parse_document(document: &[u8]) -> Result<Vec<Self>, KeySourceError> {
        #[derive(serde::Deserialize)]
        struct Document {
            public_keys: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            key_identifier: String,
            key: String,
            #[serde(default)]
            is_current: bool,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(KeySourceError::Document)?;
        Ok(document
            .public_keys
            .into_iter()
            .map(|e| Self::new(e.key_identifier, e.key, e.is_current))
            .collect())
    }

    /// The identifier.
    pub fn key_identifier(&self) -> &str {
        &self.key_identifier
    }

    /// The PEM text.
    pub fn pem(&self) -> &str {
        &self.key
    }

    /// Whether GitHub marks it as the key it signs with now. Every listed key is accepted
    /// (alerts signed just before a rotation carry the previous one).
    pub fn is_current(&self) -> bool {
        self.is_current
    }
}

/// Where the handler gets GitHub's public keys. [`HttpKeySource`](super::HttpKeySource)
/// fetches them from GitHub; implement it over your own HTTP client (and
/// [`GitHubPublicKey::parse_document`]) to use that instead.
///
/// The handler calls it rarely: on first use, when a request names an identifier it has
/// not seen (at most once per
/// [`key_refetch_interval`](super::LeakAlertsBuilder::key_refetch_interval)), and when the
/// keys it holds are older than [`key_max_age`](super::LeakAlertsBuilder::key_max_age).
/// Each call is bounded by
/// [`key_fetch_timeout`](super::LeakAlertsBuilder::key_fetch_timeout) and runs to its end
/// even when the request that caused it is cancelled.
pub trait KeySource: Send + Sync + 'static {
    /// Every key GitHub currently lists. Keys that are not P-256 PEM public keys are
    /// skipped (and logged); an empty list is valid and accepts no signature.
    fn fetch(&self) -> impl Future<Output = Result<Vec<GitHubPublicKey>, KeySourceError>> + Send;
}

/// Why GitHub's public keys could not be fetched, or a key source not built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySourceError {
    /// The URL is not an absolute `http`/`https` URL.
    #[error("invalid key source url: {0}")]
    InvalidUrl(&'static str),
    /// A plain `http` URL to a host other than a loopback address: the keys that decide
    /// which alerts to trust must come over an authenticated channel.
    #[error("the key source must use https (plain http only to a loopback address)")]
    PlainHttp,
    /// The system's root certificates could not be loaded.
    #[error("no root certificates for https")]
    Tls(#[source] std::io::Error),
    /// A header value (the bearer token) is not a valid HTTP header value.
    #[error("invalid header value for the key source")]
    InvalidHeader,
    /// The request failed (connection, TLS, protocol).
    #[error("key source request failed")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The source answered with another status than 200.
    #[error("key source answered with http status {0}")]
    Status(u16),
    /// The document was larger than the limit.
    #[error("key source document larger than {0} bytes")]
    TooLarge(usize),
    /// No answer within the fetch timeout.
    #[error("key source timed out")]
    Timeout,
    /// The document is not GitHub's public-key format.
    #[error("key source document is not in github's public key format")]
    Document(#[source] serde_json::Error),
    /// Another failure of a host's own [`KeySource`].
    #[error("key source failed")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What the cache knows about a key identifier.
pub(super) enum Lookup {
    Found(VerifyingKey),
    /// The latest fetch succeeded and does not list it.
    Unknown,
    /// No fetch succeeded, or the latest one failed: the identifier may be a new key.
    Unavailable,
}

#[derive(Default)]
struct State {
    keys: Arc<HashMap<String, VerifyingKey>>,
    /// The last fetch attempt, successful or not: refetching is bounded by it.
    attempted_at: Option<DateTime<Utc>>,
    /// The last successful fetch (the age of `keys`).
    fetched_at: Option<DateTime<Utc>>,
    latest_failed: bool,
}

/// GitHub's keys by identifier, fetched on demand with at most one fetch per interval.
pub(super) struct KeyCache<K> {
    source: K,
    state: RwLock<State>,
    /// Held while fetching: concurrent requests wait for one fetch instead of each
    /// starting their own.
    fetching: Arc<tokio::sync::Mutex<()>>,
    pub(super) refetch_interval: TimeDelta,
    pub(super) max_age: TimeDelta,
    pub(super) fetch_timeout: Duration,
}

impl<K: KeySource> KeyCache<K> {
    pub(super) fn new(source: K) -> Self {
        Self {
            source,
            state: RwLock::new(State::default()),
            fetching: Arc::new(tokio::sync::Mutex::new(())),
            refetch_interval: super::DEFAULT_KEY_REFETCH_INTERVAL,
            max_age: super::DEFAULT_KEY_MAX_AGE,
            fetch_timeout: super::DEFAULT_KEY_FETCH_TIMEOUT,
        }
    }

    /// The key named `identifier`, fetching the list first when allowed and needed: the
    /// identifier is unknown, or the keys held are older than the maximum age.
    pub(super) async fn get(self: &Arc<Self>, identifier: &str, now: DateTime<Utc>) -> Lookup {
        let needs_fetch = |state: &State| {
            let may_fetch = state
                .attempted_at
                .is_none_or(|at| now - at >= self.refetch_interval);
            let stale = state.fetched_at.is_none_or(|at| now - at >= self.max_age);
            may_fetch && (stale || !state.keys.contains_key(identifier))
        };
        if !needs_fetch(&self.read()) {
            return self.lookup(identifier);
        }
        let guard = self.fetching.clone().lock_owned().await;
        // Another request may have fetched while this one waited.
        if !needs_fetch(&self.read()) {
            drop(guard);
            return self.lookup(identifier);
        }
        self.write().attempted_at = Some(now);
        let cache = self.clone();
        // A task of its own, so a cancelled request cannot leave a fetch half done (and
        // the interval spent without keys to show for it).
        let fetch = tokio::spawn(async move {
            let _guard = guard;
            let fetched = tokio::time::timeout(cache.fetch_timeout, cache.source.fetch()).await;
            cache.store(fetched.unwrap_or(Err(KeySourceError::Timeout)), now);
        });
        if fetch.await.is_err() {
            self.write().latest_failed = true;
        }
        self.lookup(identifier)
    }

    fn lookup(&self, identifier: &str) -> Lookup {
        let state = self.read();
        match state.keys.get(identifier) {
            Some(key) => Lookup::Found(*key),
            None if state.fetched_at.is_some() && !state.latest_failed => Lookup::Unknown,
            None => Lookup::Unavailable,
        }
    }

    fn store(&self, fetched: Result<Vec<GitHubPublicKey>, KeySourceError>, now: DateTime<Utc>) {
        match fetched {
            Ok(listed) => {
                let mut keys = HashMap::with_capacity(listed.len());
                for entry in listed {
                    match VerifyingKey::from_public_key_pem(entry.pem()) {
                        Ok(key) => {
                            keys.insert(entry.key_identifier, key);
                        }
                        Err(e) => tracing::warn!(
                            key_identifier = %entry.key_identifier,
                            error = %e,
                            "github public key skipped: not a p-256 pem public key"
                        ),
                    }
                }
                tracing::debug!(keys = keys.len(), "github secret-scanning keys fetched");
                let mut state = self.write();
                state.keys = Arc::new(keys);
                state.fetched_at = Some(now);
                state.latest_failed = false;
            }
            Err(error) => {
                // Bounded by the refetch interval, so at most one line per interval.
                tracing::warn!(%error, "github secret-scanning keys could not be fetched; keeping the previous ones");
                self.write().latest_failed = true;
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) is `key`'s signature of
/// `body` with SHA-256.
pub(super) fn signature_valid(key: &VerifyingKey, body: &[u8], signature: &str) -> bool {
    let Ok(der) = Base64::decode_vec(signature) else {
        return false;
    };
    let Ok(signature) = Signature::from_der(&der) else {
        return false;
    };
    key.verify(body, &signature).is_ok()
}
