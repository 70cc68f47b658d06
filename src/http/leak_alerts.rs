//! Leak response (feature `leak-alerts`): a handler for GitHub's secret-scanning partner
//! alerts, which revokes (or only flags) the keys GitHub found in public.
//!
//! When GitHub's secret scanning finds strings matching a provider's registered pattern
//! in a public repository, gist, issue or npm package, it POSTs them to the provider:
//! a JSON array of `{"token", "type", "url", "source"}`, signed with ECDSA P-256 / SHA-256
//! over the raw body (headers `Github-Public-Key-Identifier` and
//! `Github-Public-Key-Signature`, the signature in base64 DER). This router, for each
//! request:
//!
//! 1. refuses it unless both headers are there, and reads at most
//!    [`max_body`](LeakAlertsBuilder::max_body) bytes;
//! 2. looks the key identifier up among GitHub's public keys (a [`KeySource`], cached by
//!    identifier; an unknown identifier refetches at most once per
//!    [`key_refetch_interval`](LeakAlertsBuilder::key_refetch_interval), so a flood of
//!    made-up identifiers cannot hammer GitHub's API);
//! 3. checks the signature over the raw body — before parsing anything;
//! 4. confirms each reported token with [`Keyring::confirm_secret`]: format, checksum,
//!    store lookup and the constant-time secret check on the keyring's bounded uncached
//!    path, one token at a time, each distinct token once. A token's prefix, id and
//!    checksum are public, so a report that gets only those right is a false positive and
//!    touches nothing;
//! 5. revokes each key that is real (unless [`flag_only`](LeakAlertsBuilder::flag_only)),
//!    with the reason [`REVOCATION_REASON`], and records an
//!    [`AuditEvent::LeakReported`] with the reported URL
//!    and source (a revocation is audited as `Revoked` as well) and a warning in the log;
//! 6. answers with GitHub's feedback format: per reported token, in order,
//!    `{"token_hash", "token_type", "label"}`, where `token_hash` is the lowercase hex
//!    SHA-256 of the token and `label` is `true_positive` or `false_positive`. The raw
//!    token is never sent back, logged or audited.
//!
//! Once the signature has checked out, the work runs to its end even if GitHub hangs up.
//!
//! | status | `code` | when |
//! |---|---|---|
//! | 200 | | the feedback array |
//! | 400 | `invalid_payload` | signed, but not a JSON array of reports |
//! | 400 | `unreadable_body` | the body could not be read |
//! | 401 | `missing_signature` | a header is missing, repeated, or too long |
//! | 401 | `unknown_key` | GitHub does not list the key identifier |
//! | 401 | `bad_signature` | the signature is malformed or does not match the body |
//! | 413 | `body_too_large` | the body is over [`max_body`](LeakAlertsBuilder::max_body) (checked before the signature) |
//! | 413 | `too_many_tokens` | over [`max_tokens`](LeakAlertsBuilder::max_tokens) reports |
//! | 503 | `keys_unavailable` | GitHub's keys could not be fetched (`Retry-After`) |
//! | 503 | `unavailable` | a token could not be confirmed or a key not revoked (store down, uncached path full); the others were handled (`Retry-After`) |
//!
//! Error bodies are `application/problem+json` with the `code`; none says more than the
//! table. Refusals are logged at `debug` (anyone can send them); confirmed leaks at
//! `warn`, with the key id, the source and the URL.
//!
//! ```
//! use axum::Router;
//! use keymint::http::leak_alerts::{HttpKeySource, LeakAlerts};
//! use keymint::{KeyFormat, Keyring, MemoryStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new()).build()?;
//! // In tests, `HttpKeySource::new("http://127.0.0.1:<port>/keys")` serves your own keys.
//! # let github = HttpKeySource::new("http://127.0.0.1:9/keys")?;
//! # #[cfg(any())]
//! let github = HttpKeySource::github()?;
//! let alerts = LeakAlerts::builder(keyring, github).build()?;
//! let app: Router = Router::new().nest("/github/secret-scanning", alerts.router());
//! # Ok(())
//! # }
//! ```

mod fetch;
mod keys;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::TimeDelta;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize as _, Zeroizing};

use crate::format::KeyId;
use crate::hex::lower_hex;
use crate::keyring::{AuditEvent, Keyring};
use crate::ratelimit::RateLimiter;
use crate::record::{KeyRecord, KeyStatus};
use crate::store::KeyStore;

pub use fetch::{HttpKeySource, MAX_KEY_DOCUMENT};
pub use keys::{GitHubPublicKey, KeySource, KeySourceError};
use keys::{KeyCache, Lookup};

/// GitHub's list of secret-scanning signing keys.
pub const GITHUB_PUBLIC_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";
/// The header naming the key that signed an alert.
pub const KEY_IDENTIFIER_HEADER: HeaderName =
    HeaderName::from_static("github-public-key-identifier");
/// The header carrying the signature (base64 of an ASN.1 DER ECDSA signature).
pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("github-public-key-signature");
/// The default [`LeakAlertsBuilder::max_body`]: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// The default [`LeakAlertsBuilder::max_tokens`].
pub const DEFAULT_MAX_TOKENS: usize = 1000;
/// The default [`LeakAlertsBuilder::key_refetch_interval`]: 5 minutes.
pub const DEFAULT_KEY_REFETCH_INTERVAL: TimeDelta = TimeDelta::minutes(5);
/// The default [`LeakAlertsBuilder::key_max_age`]: a day.
pub const DEFAULT_KEY_MAX_AGE: TimeDelta = TimeDelta::days(1);
/// The default [`LeakAlertsBuilder::key_fetch_timeout`]: 10 s.
pub const DEFAULT_KEY_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The reason a leaked key is revoked with.
pub const REVOCATION_REASON: &str = "leaked: reported by GitHub secret scanning";

/// Longest reported URL kept in the audit event (longer ones are cut).
const MAX_URL_LEN: usize = 2048;
/// Longest reported source kept in the audit event.
const MAX_SOURCE_LEN: usize = 64;
/// `Retry-After` on a 503.
const RETRY_AFTER_SECS: u64 = 60;

/// Invalid configuration given to [`LeakAlertsBuilder`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit or interval is out of range; the message says which.
    #[error("invalid leak alert configuration: {0}")]
    Invalid(&'static str),
}

/// The handler for GitHub's secret-scanning alerts over a keyring: see the
/// [module docs](self). Cheap to clone.
pub struct LeakAlerts<S, L, K> {
    inner: Arc<Alerts<S, L, K>>,
}

impl<S, L, K> Clone for LeakAlerts<S, L, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S, L, K> fmt::Debug for LeakAlerts<S, L, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeakAlerts")
            .field("revoke", &self.inner.revoke)
            .field("max_body", &self.inner.max_body)
            .field("max_tokens", &self.inner.max_tokens)
            .finish_non_exhaustive()
    }
}

struct Alerts<S, L, K> {
    keyring: Keyring<S, L>,
    keys: Arc<KeyCache<K>>,
    revoke: bool,
    max_body: usize,
    max_tokens: usize,
}

/// Configures [`LeakAlerts`]. Defaults: revoke confirmed keys, a 1 MiB body, 1000 tokens
/// a request, GitHub's keys refetched for an unknown identifier at most every 5 minutes
/// and at least daily, each fetch bounded by 10 s.
#[must_use]
pub struct LeakAlertsBuilder<S, L, K> {
    keyring: Keyring<S, L>,
    source: K,
    revoke: bool,
    max_body: usize,
    max_tokens: usize,
    refetch_interval: TimeDelta,
    max_age: TimeDelta,
    fetch_timeout: Duration,
}

impl<S, L, K> fmt::Debug for LeakAlertsBuilder<S, L, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeakAlertsBuilder")
            .field("revoke", &self.revoke)
            .field("max_body", &self.max_body)
            .field("max_tokens", &self.max_tokens)
            .field("refetch_interval", &self.refetch_interval)
            .field("max_age", &self.max_age)
            .field("fetch_timeout", &self.fetch_timeout)
            .finish_non_exhaustive()
    }
}

impl<S: KeyStore, L: RateLimiter, K: KeySource> LeakAlerts<S, L, K> {
    /// A builder for alerts about `keyring`'s keys, trusting the signing keys `source`
    /// gives.
    pub fn builder(keyring: Keyring<S, L>, source: K) -> LeakAlertsBuilder<S, L, K> {
        LeakAlertsBuilder {
            keyring,
            source,
            revoke: true,
            max_body: DEFAULT_MAX_BODY,
            max_tokens: DEFAULT_MAX_TOKENS,
            refetch_interval: DEFAULT_KEY_REFETCH_INTERVAL,
            max_age: DEFAULT_KEY_MAX_AGE,
            fetch_timeout: DEFAULT_KEY_FETCH_TIMEOUT,
        }
    }

    /// The router: `POST /` receives alerts. Nest it at the URL you register with GitHub.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(receive::<S, L, K>))
            .with_state(self.inner.clone())
    }
}

impl<S: KeyStore, L: RateLimiter, K: KeySource> LeakAlertsBuilder<S, L, K> {
    /// Only flag confirmed leaks (a warning and an
    /// [`AuditEvent::LeakReported`] with
    /// `revoked: false`), never revoke: for a trial period, or when a person decides.
    pub fn flag_only(mut self) -> Self {
        self.revoke = false;
        self
    }

    /// Largest body read, in bytes (1 KiB to 64 MiB); a larger one is refused with 413
    /// before its signature is checked.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Most reports in one alert (1 to 100 000); more are refused with 413. Each
    /// checksum-valid token costs one store read and one hash on the uncached path.
    pub fn max_tokens(mut self, tokens: usize) -> Self {
        self.max_tokens = tokens;
        self
    }

    /// The least time between two fetches of GitHub's keys (at least a second): an alert
    /// naming an identifier not seen yet fetches them again only this long after the last
    /// attempt, and is otherwise refused (401 if the last fetch succeeded, 503 if it
    /// failed).
    pub fn key_refetch_interval(mut self, interval: TimeDelta) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// How long fetched keys are trusted without asking again (at least the refetch
    /// interval): older ones are refetched on the next alert, and kept if that fails.
    pub fn key_max_age(mut self, age: TimeDelta) -> Self {
        self.max_age = age;
        self
    }

    /// The longest a fetch of GitHub's keys may take (1 ms to 5 minutes).
    pub fn key_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// The handler.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a value out of its documented range.
    pub fn build(self) -> Result<LeakAlerts<S, L, K>, ConfigError> {
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body) {
            return Err(ConfigError::Invalid("max_body must be 1 KiB to 64 MiB"));
        }
        if !(1..=100_000).contains(&self.max_tokens) {
            return Err(ConfigError::Invalid("max_tokens must be 1 to 100 000"));
        }
        if self.refetch_interval < TimeDelta::seconds(1) {
            return Err(ConfigError::Invalid(
                "key_refetch_interval must be at least a second",
            ));
        }
        if self.max_age < self.refetch_interval {
            return Err(ConfigError::Invalid(
                "key_max_age must be at least the refetch interval",
            ));
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(300)).contains(&self.fetch_timeout) {
            return Err(ConfigError::Invalid(
                "key_fetch_timeout must be 1 ms to 5 minutes",
            ));
        }
        let mut keys = KeyCache::new(self.source);
        keys.refetch_interval = self.refetch_interval;
        keys.max_age = self.max_age;
        keys.fetch_timeout = self.fetch_timeout;
        Ok(LeakAlerts {
            inner: Arc::new(Alerts {
                keyring: self.keyring,
                keys: Arc::new(keys),
                revoke: self.revoke,
                max_body: self.max_body,
                max_tokens: self.max_tokens,
            }),
        })
    }
}

/// Why an alert was not answered with feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    MissingSignature,
    UnknownKey,
    BadSignature,
    BodyTooLarge,
    UnreadableBody,
    InvalidPayload,
    TooManyTokens,
    KeysUnavailable,
    Unavailable,
}

impl Refused {
    fn status_and_code(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::MissingSignature => (
                StatusCode::UNAUTHORIZED,
                "missing_signature",
                "Github-Public-Key-Identifier and Github-Public-Key-Signature are required",
            ),
            Self::UnknownKey => (
                StatusCode::UNAUTHORIZED,
                "unknown_key",
                "the key identifier is not one of GitHub's secret-scanning keys",
            ),
            Self::BadSignature => (
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                "the signature does not match the body",
            ),
            Self::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the body is larger than this endpoint accepts",
            ),
            Self::UnreadableBody => (
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the body could not be read",
            ),
            Self::InvalidPayload => (
                StatusCode::BAD_REQUEST,
                "invalid_payload",
                "the body is not a JSON array of secret-scanning reports",
            ),
            Self::TooManyTokens => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_tokens",
                "more reports than this endpoint accepts in one request",
            ),
            Self::KeysUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "keys_unavailable",
                "GitHub's signing keys could not be fetched; try again later",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "some reports could not be handled now; try again later",
            ),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, code, detail) = self.status_and_code();
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("error"),
            "status": status.as_u16(),
            "detail": detail,
            "code": code,
        });
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// One reported match. `Debug` hides the token.
struct Report {
    token: Zeroizing<String>,
    token_type: String,
    url: String,
    source: String,
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("token", &"[REDACTED]")
            .field("token_type", &self.token_type)
            .field("url", &self.url)
            .field("source", &self.source)
            .finish()
    }
}

/// GitHub's feedback for one report.
#[derive(serde::Serialize)]
struct Feedback {
    token_hash: String,
    token_type: String,
    label: &'static str,
}

/// The reports of a signed body, or `None` when it is not a JSON array of them.
fn parse_reports(body: &[u8]) -> Option<Vec<Report>> {
    #[derive(serde::Deserialize)]
    struct Raw {
        token: String,
        #[serde(rename = "type", default)]
        token_type: Option<String>,
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        source: Option<String>,
    }
    let raw: Vec<Raw> = serde_json::from_slice(body).ok()?;
    Some(
        raw.into_iter()
            .map(|r| Report {
                token: Zeroizing::new(r.token),
                token_type: r.token_type.unwrap_or_default(),
                url: r.url.unwrap_or_default(),
                source: r.source.unwrap_or_default(),
            })
            .collect(),
    )
}

/// The value of a header that must appear exactly once, as visible ASCII of at most
/// `max` bytes.
fn single_header<'h>(headers: &'h HeaderMap, name: &HeaderName, max: usize) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() || value.len() > max || value.is_empty() {
        return None;
    }
    value.to_str().ok()
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

async fn receive<S: KeyStore, L: RateLimiter, K: KeySource>(
    State(alerts): State<Arc<Alerts<S, L, K>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match alerts.receive(&headers, body).await {
        Ok(feedback) => {
            let body = serde_json::to_vec(&feedback).unwrap_or_else(|_| b"[]".to_vec());
            (
                StatusCode::OK,
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response()
        }
        Err(refused) => {
            tracing::debug!(
                code = refused.status_and_code().1,
                "github secret-scanning alert refused"
            );
            refused.into_response()
        }
    }
}

impl<S: KeyStore, L: RateLimiter, K: KeySource> Alerts<S, L, K> {
    async fn receive(
        self: Arc<Self>,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Vec<Feedback>, Refused> {
        let identifier = single_header(headers, &KEY_IDENTIFIER_HEADER, keys::MAX_IDENTIFIER_LEN)
            .ok_or(Refused::MissingSignature)?;
        let signature = single_header(headers, &SIGNATURE_HEADER, keys::MAX_SIGNATURE_LEN)
            .ok_or(Refused::MissingSignature)?;
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body as u64) {
            return Err(Refused::BodyTooLarge);
        }
        let body = match axum::body::to_bytes(body, self.max_body).await {
            Ok(body) => body,
            Err(e) => {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                return Err(if too_large {
                    Refused::BodyTooLarge
                } else {
                    Refused::UnreadableBody
                });
            }
        };

        let key = match self.keys.get(identifier, self.keyring.now()).await {
            Lookup::Found(key) => key,
            Lookup::Unknown => return Err(Refused::UnknownKey),
            Lookup::Unavailable => return Err(Refused::KeysUnavailable),
        };
        if !keys::signature_valid(&key, &body, signature) {
            return Err(Refused::BadSignature);
        }
        let reports = parse_reports(&body);
        // The body holds the tokens too: wipe it when no one else holds the buffer.
        if let Ok(mut owned) = body.try_into_mut() {
            owned.as_mut().zeroize();
        }
        let reports = reports.ok_or(Refused::InvalidPayload)?;
        if reports.len() > self.max_tokens {
            return Err(Refused::TooManyTokens);
        }
        // Signed by GitHub: from here the work runs to its end even if GitHub hangs up,
        // so a leak is never half handled.
        let alerts = self.clone();
        tokio::spawn(async move { alerts.handle(reports).await })
            .await
            .unwrap_or(Err(Refused::Unavailable))
    }

    /// Confirms, acts on and answers every report; `Unavailable` if any could not be
    /// decided or acted on (the others are still handled).
    async fn handle(&self, reports: Vec<Report>) -> Result<Vec<Feedback>, Refused> {
        let mut confirmed: HashMap<String, Option<KeyRecord>> = HashMap::new();
        let mut acted_on: HashSet<KeyId> = HashSet::new();
        let mut complete = true;
        let mut feedback = Vec::with_capacity(reports.len());
        for report in &reports {
            let token_hash = lower_hex(&Sha256::digest(report.token.as_bytes()));
            let found = match confirmed.get(&token_hash) {
                Some(found) => found.clone(),
                None => match self.keyring.confirm_secret(&report.token).await {
                    Ok(found) => {
                        confirmed.insert(token_hash.clone(), found.clone());
                        found
                    }
                    Err(error) => {
                        tracing::warn!(%error, "a reported token could not be checked; github will be asked to resend");
                        complete = false;
                        continue;
                    }
                },
            };
            let label = match &found {
                Some(record) => {
                    let first = acted_on.insert(record.id.clone());
                    complete &= self.act_on(record, report, first).await;
                    "true_positive"
                }
                None => "false_positive",
            };
            feedback.push(Feedback {
                token_hash,
                token_type: report.token_type.clone(),
                label,
            });
        }
        tracing::debug!(
            reports = reports.len(),
            real = confirmed.values().filter(|f| f.is_some()).count(),
            "github secret-scanning alert handled"
        );
        if complete {
            Ok(feedback)
        } else {
            Err(Refused::Unavailable)
        }
    }

    /// Revokes (the first time the key comes up in this alert, unless flagging only or
    /// already revoked), logs and audits a confirmed leak; whether that all succeeded.
    async fn act_on(&self, record: &KeyRecord, report: &Report, first: bool) -> bool {
        let mut revoked = false;
        let mut done = true;
        if self.revoke && first && record.status != KeyStatus::Revoked {
            match self.keyring.revoke(&record.id, REVOCATION_REASON).await {
                Ok(_) => revoked = true,
                // Deleted meanwhile: nothing left to revoke.
                Err(crate::KeyringError::NotFound) => {}
                Err(error) => {
                    tracing::error!(key_id = %record.id, %error, "leaked api key could not be revoked");
                    done = false;
                }
            }
        }
        let url = bounded(&report.url, MAX_URL_LEN);
        let source = bounded(&report.source, MAX_SOURCE_LEN);
        tracing::warn!(
            key_id = %record.id,
            source = %source,
            url = %url,
            revoked,
            flag_only = !self.revoke,
            "api key leak reported by github secret scanning"
        );
        self.keyring.record_event(AuditEvent::LeakReported {
            id: record.id.clone(),
            owner: record.owner.clone(),
            url,
            source,
            revoked,
            at: self.keyring.now(),
        });
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_prints_without_its_token() {
        let reports =
            parse_reports(br#"[{"token":"sk_live_secret","type":"t","url":null}]"#).expect("valid");
        let printed = format!("{reports:?}");
        assert!(!printed.contains("sk_live_secret"), "{printed}");
    }

    #[test]
    fn payloads_that_are_not_arrays_of_reports_are_refused() {
        assert!(parse_reports(b"{}").is_none());
        assert!(parse_reports(br#"[{"type":"t"}]"#).is_none());
        assert!(parse_reports(b"[").is_none());
        assert_eq!(parse_reports(b"[]").map(|r| r.len()), Some(0));
    }

    #[test]
    fn long_reported_text_is_cut_at_a_character_boundary() {
        assert_eq!(bounded("abc", 2), "ab");
        assert_eq!(bounded("é", 1), "");
        assert_eq!(bounded("abc", 10), "abc");
    }

    #[test]
    fn headers_must_appear_once_and_be_bounded() {
        let mut headers = HeaderMap::new();
        assert!(single_header(&headers, &SIGNATURE_HEADER, 8).is_none());
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_static("abc"));
        assert_eq!(single_header(&headers, &SIGNATURE_HEADER, 8), Some("abc"));
        assert!(single_header(&headers, &SIGNATURE_HEADER, 2).is_none());
        headers.append(SIGNATURE_HEADER, HeaderValue::from_static("def"));
        assert!(single_header(&headers, &SIGNATURE_HEADER, 8).is_none());
    }
}
