//! [`KeyAuth`]: what the HTTP layer knows, built once and shared by every route's layer.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::header::HeaderName;
use http::{Request, Response};

use super::credential::{Sources, X_API_KEY};
use super::layer::KeyAuthLayer;
use super::response::{CustomRejection, Rejection, Responses};
use super::transport::{ProxyHeaders, Trust};
use crate::cidr::Cidr;
use crate::keyring::{Keyring, VerifiedKey, VerifyContext, VerifyError};
use crate::ratelimit::RateLimiter;
use crate::record::Environment;
use crate::scope::{Requirement, RequirementError};
use crate::store::KeyStore;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether `flag` was unset, setting it. Read first: once a warning's flag is set, the
/// requests that meet it only read it, instead of each writing one shared cache line.
fn first_time(flag: &AtomicBool) -> bool {
    !flag.load(Ordering::Relaxed) && !flag.swap(true, Ordering::Relaxed)
}

/// The keyring behind the layer, without its store and limiter types, so that one
/// `KeyAuth` type serves every keyring (and can sit in axum state).
trait Verifier: Send + Sync + 'static {
    fn verify<'a>(
        &'a self,
        presented: &'a str,
        ctx: &'a VerifyContext<'a>,
    ) -> BoxFuture<'a, Result<VerifiedKey, VerifyError>>;

    fn sent_in_clear<'a>(&'a self, presented: &'a str, client: Option<IpAddr>)
    -> BoxFuture<'a, ()>;

    /// The longest credential the keyring could accept.
    fn max_credential_len(&self) -> usize;
}

impl<S: KeyStore, L: RateLimiter> Verifier for Keyring<S, L> {
    fn verify<'a>(
        &'a self,
        presented: &'a str,
        ctx: &'a VerifyContext<'a>,
    ) -> BoxFuture<'a, Result<VerifiedKey, VerifyError>> {
        Box::pin(Keyring::verify(self, presented, ctx))
    }

    fn sent_in_clear<'a>(
        &'a self,
        presented: &'a str,
        client: Option<IpAddr>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.report_sent_in_clear(presented, client))
    }

    fn max_credential_len(&self) -> usize {
        #[cfg(feature = "tokens")]
        if self.accepts_tokens() {
            return crate::token::MAX_TOKEN_LEN;
        }
        crate::format::MAX_KEY_LEN
    }
}

/// Authenticates HTTP requests with a [`Keyring`]: where credentials come from, which
/// transports and proxies to trust, the environment served, and how refusals are answered.
/// Cheap to clone. Make route layers with [`layer`](Self::layer) and
/// [`require`](Self::require).
///
/// ```
/// use keymint::http::KeyAuth;
/// use keymint::{KeyFormat, Keyring, MemoryStore};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new()).build()?;
/// let auth = KeyAuth::builder(keyring).realm("example")?.build();
/// let any_key = auth.layer();
/// let readers = auth.require("users:read")?;
/// let writers = auth.require("users:write")?.cost(5);
/// # let _ = (any_key, readers, writers);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct KeyAuth {
    pub(crate) inner: Arc<AuthInner>,
}

pub(crate) struct AuthInner {
    verifier: Box<dyn Verifier>,
    pub(crate) sources: Sources,
    pub(crate) trust: Trust,
    pub(crate) responses: Responses,
    pub(crate) environment: Option<Environment>,
    pub(crate) keep_credential: bool,
    misconfigured_warned: AtomicBool,
    local_proxy_warned: AtomicBool,
}

impl fmt::Debug for KeyAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyAuth")
            .field("sources", &self.inner.sources)
            .field("trust", &self.inner.trust)
            .field("responses", &self.inner.responses)
            .field("environment", &self.inner.environment)
            .finish_non_exhaustive()
    }
}

/// Why [`KeyAuthBuilder`] refused a setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// A realm must be 1 to 64 visible ASCII characters without `"` or `\`.
    #[error("realm must be 1 to 64 visible ASCII characters without '\"' or '\\'")]
    Realm,
    /// A problem type base must be a URI prefix of visible ASCII.
    #[error("problem type base must be visible ASCII, such as https://example.com/problems/")]
    ProblemBase,
    /// A query parameter name must be 1 to 64 of `A-Za-z0-9_-`.
    #[error("query parameter name must be 1 to 64 of A-Za-z0-9_-")]
    QueryParameter,
}

/// Configures a [`KeyAuth`]; every setting has a secure default.
#[must_use]
pub struct KeyAuthBuilder {
    verifier: Box<dyn Verifier>,
    sources: Sources,
    trust: Trust,
    responses: Responses,
    environment: Option<Environment>,
    keep_credential: bool,
}

impl fmt::Debug for KeyAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyAuthBuilder")
            .field("sources", &self.sources)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl KeyAuth {
    /// A builder over `keyring` with the defaults: `Authorization: Bearer` and `X-API-Key`
    /// accepted, no query parameter, plain HTTP refused except from loopback peers, no
    /// trusted proxy, the keyring's default environment, realm `api`, credential headers
    /// removed before the handler runs.
    pub fn builder<S: KeyStore, L: RateLimiter>(keyring: Keyring<S, L>) -> KeyAuthBuilder {
        KeyAuthBuilder {
            verifier: Box::new(keyring),
            sources: Sources::default(),
            trust: Trust::default(),
            responses: Responses::default(),
            environment: None,
            keep_credential: false,
        }
    }

    /// A layer that admits any valid key (cost 1).
    pub fn layer(&self) -> KeyAuthLayer {
        KeyAuthLayer::new(self.clone(), None)
    }

    /// A layer that admits keys holding `requirement` (in the scope language, parsed once
    /// here); others get 403 `insufficient_scope` and are charged nothing.
    ///
    /// # Errors
    /// A [`RequirementError`] for text that does not parse.
    pub fn require(&self, requirement: &str) -> Result<KeyAuthLayer, RequirementError> {
        let requirement = Requirement::parse(requirement)?;
        Ok(KeyAuthLayer::new(self.clone(), Some(Arc::new(requirement))))
    }

    /// The standard (or the host's) response for `rejection`.
    pub fn respond(&self, rejection: &Rejection) -> Response<String> {
        self.inner.responses.respond(rejection)
    }

    pub(crate) async fn verify(
        &self,
        presented: &str,
        ctx: &VerifyContext<'_>,
    ) -> Result<VerifiedKey, VerifyError> {
        self.inner.verifier.verify(presented, ctx).await
    }

    pub(crate) async fn sent_in_clear(&self, presented: &str, client: Option<IpAddr>) {
        self.inner.verifier.sent_in_clear(presented, client).await;
    }

    /// Logs, once, that loopback traffic carries forwarding headers while no proxy is
    /// trusted (a same-host proxy nobody configured). Answers whether it logged.
    pub(crate) fn warn_untrusted_local_proxy(&self) -> bool {
        let first = first_time(&self.inner.local_proxy_warned);
        if first {
            tracing::warn!(
                "requests from loopback carry Forwarded/X-Forwarded-* headers, but no proxy is \
                 trusted: if a proxy on this host forwards your traffic, configure \
                 KeyAuth::builder(..).trusted_proxies([\"127.0.0.1/32\".parse()?]); until then \
                 plain HTTP passes as local development and all clients share one address"
            );
        }
        first
    }

    /// Logs, once, that a request met two keymint layers.
    pub(crate) fn warn_misconfigured<B>(&self, req: &Request<B>) {
        if first_time(&self.inner.misconfigured_warned) {
            tracing::error!(
                path = req.uri().path(),
                "two keymint layers on one route: put the route's requirement on one layer only (requests answer 500)"
            );
        }
    }
}

fn visible(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

impl KeyAuthBuilder {
    /// The `realm` of `WWW-Authenticate` challenges (default `api`).
    ///
    /// # Errors
    /// [`HttpConfigError::Realm`] for an empty, long or unquotable realm.
    pub fn realm(mut self, realm: &str) -> Result<Self, HttpConfigError> {
        if realm.is_empty() || realm.len() > 64 || !visible(realm) || realm.contains(['"', '\\']) {
            return Err(HttpConfigError::Realm);
        }
        self.responses.realm = realm.to_owned();
        Ok(self)
    }

    /// The base of the problem `type` URIs: `type` is this plus the refusal's code
    /// (default `urn:keymint:problem:`, so `urn:keymint:problem:revoked`). Point it at
    /// your documentation, such as `https://api.example.com/errors/`. Rate limits always
    /// use the draft's `quota-exceeded` type.
    ///
    /// # Errors
    /// [`HttpConfigError::ProblemBase`] for text that is not visible ASCII.
    pub fn problem_types(mut self, base: &str) -> Result<Self, HttpConfigError> {
        if base.is_empty() || base.len() > 256 || !base.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HttpConfigError::ProblemBase);
        }
        self.responses.problem_base = base.to_owned();
        Ok(self)
    }

    /// Answer revoked, disabled, expired, not-yet-valid, malformed and wrong-environment keys,
    /// and certificate-bound keys without their certificate, exactly like unknown ones (401,
    /// code `invalid`), so a client learns nothing about a key it holds. Default `false`.
    pub fn hide_reasons(mut self, hide: bool) -> Self {
        self.responses.hide_reasons = hide;
        self
    }

    /// Whether `Authorization: Bearer <key>` is read (default `true`).
    pub fn bearer(mut self, read: bool) -> Self {
        self.sources.bearer = read;
        self
    }

    /// Whether `X-API-Key: <key>` is read (default `true`).
    pub fn api_key_header(mut self, read: bool) -> Self {
        self.sources.headers.retain(|h| *h != X_API_KEY);
        if read {
            self.sources.headers.insert(0, X_API_KEY);
        }
        self
    }

    /// Also reads the key from header `name`.
    pub fn header(mut self, name: HeaderName) -> Self {
        if !self.sources.headers.contains(&name) {
            self.sources.headers.push(name);
        }
        self
    }

    /// Also reads the key from query parameter `name`. Discouraged: URLs end up in access
    /// logs, browser history and `Referer` headers, where keys leak.
    ///
    /// Every pair of the query is read, and the parameter is removed from the URI before the
    /// handler runs. A value, or the name itself, written with percent-escapes (`api%5Fkey`,
    /// which a decoding reader such as axum's `Query` would take for `api_key`) is refused
    /// with 400 `invalid_request`: keys never need escaping.
    ///
    /// # Errors
    /// [`HttpConfigError::QueryParameter`] for a name that is not `A-Za-z0-9_-`.
    pub fn query_parameter(mut self, name: &str) -> Result<Self, HttpConfigError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(HttpConfigError::QueryParameter);
        }
        self.sources.query = Some(name.to_owned());
        Ok(self)
    }

    /// Proxies whose forwarding headers are believed (the kind
    /// [`proxy_headers`](Self::proxy_headers) names, `X-Forwarded-*` by default): for a
    /// request from one of them, the client is the rightmost forwarded hop outside these
    /// networks and the scheme is the one it forwards. No proxy is trusted by default.
    pub fn trusted_proxies(mut self, networks: impl IntoIterator<Item = Cidr>) -> Self {
        self.trust.proxies = networks.into_iter().collect();
        self
    }

    /// Which forwarding headers the trusted proxies write (default
    /// [`ProxyHeaders::XForwarded`]). Only that kind is read, since a header of the other
    /// kind is passed through by the proxy exactly as the client wrote it.
    pub fn proxy_headers(mut self, headers: ProxyHeaders) -> Self {
        self.trust.headers = headers;
        self
    }

    /// Accept keys over plain HTTP from anywhere (default `false`: refused with 403 and
    /// reported with an audit event, since the key crossed the network in clear).
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.trust.allow_plain_http = allow;
        self
    }

    /// Accept plain HTTP from loopback peers (default `true`, for local development). A
    /// request from a trusted proxy, loopback or not, is judged by the scheme it forwards.
    pub fn loopback_exempt(mut self, exempt: bool) -> Self {
        self.trust.loopback_exempt = exempt;
        self
    }

    /// The environment this service serves (default: the keyring's default environment).
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Keep the credential header on requests that reach the handler (default: removed,
    /// so handlers and anything they log never see the key). It is marked sensitive
    /// either way.
    pub fn keep_credential_header(mut self, keep: bool) -> Self {
        self.keep_credential = keep;
        self
    }

    /// The `Retry-After` of 503 answers (store or limiter unavailable, overloaded);
    /// default 1 s.
    pub fn retry_after_unavailable(mut self, after: Duration) -> Self {
        self.responses.retry_unavailable_secs = after.as_secs().max(1);
        self
    }

    /// Replaces refusal responses: `build` is called for each refusal, and its `None` falls
    /// back to the standard response. The response must not echo the presented key.
    pub fn rejection(
        mut self,
        build: impl Fn(&Rejection) -> Option<Response<String>> + Send + Sync + 'static,
    ) -> Self {
        let custom: Arc<CustomRejection> = Arc::new(build);
        self.responses.custom = Some(custom);
        self
    }

    /// Finishes the configuration.
    pub fn build(mut self) -> KeyAuth {
        self.responses.prepare();
        self.sources.max_len = self.verifier.max_credential_len();
        KeyAuth {
            inner: Arc::new(AuthInner {
                verifier: self.verifier,
                sources: self.sources,
                trust: self.trust,
                responses: self.responses,
                environment: self.environment,
                keep_credential: self.keep_credential,
                misconfigured_warned: AtomicBool::new(false),
                local_proxy_warned: AtomicBool::new(false),
            }),
        }
    }
}
