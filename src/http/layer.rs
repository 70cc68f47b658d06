//! The tower [`Layer`] and [`Service`] that verify a request's key before the inner
//! service runs.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HOST, ORIGIN};
use http::{HeaderName, Method, Request, Response};
use tower::{Layer, Service};

use super::auth::KeyAuth;
use super::response::{Rejection, set_rate_limit_headers};
use crate::certificate::ClientCertificate;
use crate::keyring::{VerifiedKey, VerifyContext};
use crate::scope::Requirement;

const ACCESS_CONTROL_REQUEST_METHOD: HeaderName =
    HeaderName::from_static("access-control-request-method");
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Verifies each request's key with its route's requirement and cost, once, before the
/// inner service: a route layer. Made by [`KeyAuth::layer`] and [`KeyAuth::require`].
///
/// On success the [`VerifiedKey`] is in the request's extensions (and is an axum
/// extractor with feature `axum`), the credential header is removed (unless kept), and the
/// response carries the key's `RateLimit-Policy` and `RateLimit` fields. On refusal the
/// inner service is not called. CORS preflights (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`) that reach this layer are answered 204 without a key and
/// without calling the inner service: put a CORS layer (tower-http's `CorsLayer`) outside
/// this one to answer them with CORS headers. (Behind axum's `route_layer`, a preflight
/// reaches the layer only on a route with an `OPTIONS` handler: axum answers 405 for a
/// method the route lacks before any route layer runs.)
///
/// Put exactly one on each route, carrying that route's requirement: a request that meets
/// a second one is answered 500 (it would be verified, and charged, twice).
#[derive(Clone, Debug)]
#[must_use]
pub struct KeyAuthLayer {
    auth: KeyAuth,
    requirement: Option<Arc<Requirement>>,
    cost: u32,
    optional: bool,
}

impl KeyAuthLayer {
    pub(crate) fn new(auth: KeyAuth, requirement: Option<Arc<Requirement>>) -> Self {
        Self {
            auth,
            requirement,
            cost: 1,
            optional: false,
        }
    }

    /// The route's weight against the key's rate limit and uses left (default 1).
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = cost;
        self
    }

    /// Requests without any credential pass (with no [`VerifiedKey`]: extract
    /// `Option<VerifiedKey>`); a credential that is sent must still be valid.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// What a request gets: a verified key, no key (optional routes, preflights), or a
    /// refusal.
    async fn authenticate<B>(
        &self,
        req: &mut Request<B>,
    ) -> Result<Option<VerifiedKey>, Rejection> {
        if req.extensions().get::<VerifiedKey>().is_some() {
            self.auth.warn_misconfigured(req);
            return Err(Rejection::Misconfigured);
        }
        let inner = &self.auth.inner;
        let presented = inner
            .sources
            .extract(req.headers(), req.uri().query())
            .map_err(|e| Rejection::InvalidRequest(e.detail()))?;
        let Some(presented) = presented else {
            return if self.optional {
                Ok(None)
            } else {
                Err(Rejection::MissingCredential)
            };
        };
        let reached = inner.trust.judge(req).map_err(|_| {
            Rejection::InvalidRequest("a forwarding header from a trusted proxy is unreadable")
        })?;
        if reached.untrusted_local_proxy {
            self.auth.warn_untrusted_local_proxy();
        }
        if reached.plain_refused {
            self.auth.sent_in_clear(presented, reached.client).await;
            return Err(Rejection::PlainHttp);
        }
        let origin = browser_origin(req, reached.secure);
        let mut ctx = VerifyContext::new().cost(self.cost);
        if let Some(ip) = reached.client {
            ctx = ctx.client_ip(ip);
        }
        if let Some(requirement) = &self.requirement {
            ctx = ctx.require(requirement);
        }
        if let Some(environment) = &inner.environment {
            ctx = ctx.environment(environment);
        }
        if let Some(origin) = &origin {
            ctx = ctx.origin(origin);
        }
        // A certificate on a trusted proxy's connection is the proxy's own: a key bound to
        // a client's certificate is then refused, not matched against the proxy's.
        if let Some(certificate) = req.extensions().get::<ClientCertificate>()
            && !reached.via_proxy
        {
            ctx = ctx.client_certificate(certificate);
        }
        let verified = self
            .auth
            .verify(presented, &ctx)
            .await
            .map_err(Rejection::Verify)?;
        // `presented` borrows the request's own header (or query) bytes: the request can
        // change only now that the key is no longer read.
        drop(ctx);
        let headers = req.headers_mut();
        for name in inner.sources.header_names() {
            if inner.keep_credential {
                for (header, value) in headers.iter_mut() {
                    if header == name {
                        value.set_sensitive(true);
                    }
                }
            } else {
                headers.remove(name);
            }
        }
        if let Some(param) = &inner.sources.query
            && !inner.keep_credential
            && let Some(stripped) = without_query_parameter(req.uri(), param)
        {
            *req.uri_mut() = stripped;
            // axum's router keeps the URI as it arrived for handlers that ask (`OriginalUri`,
            // inserted before route layers run): it must not keep the key either.
            #[cfg(feature = "axum")]
            if let Some(original) = req.extensions_mut().get_mut::<axum::extract::OriginalUri>()
                && let Some(stripped) = without_query_parameter(&original.0, param)
            {
                original.0 = stripped;
            }
        }
        Ok(Some(verified))
    }
}

/// A CORS preflight: `OPTIONS` from a browser (`Origin`) asking about a method. It carries
/// no credentials by design.
fn is_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        && req.headers().contains_key(ORIGIN)
}

/// The layer's own answer to a preflight: 204 and nothing else. The inner service is not
/// called (it could be any handler, run without a key); CORS headers come from a CORS layer
/// outside this one, which answers preflights itself before they get here.
fn preflight_answer<B: From<String>>() -> Response<B> {
    let mut response = Response::new(B::from(String::new()));
    *response.status_mut() = http::StatusCode::NO_CONTENT;
    response
}

/// `uri` without query parameter `param` (the key, once read), so that neither the handler
/// nor anything logging the URI after this layer sees it; `None` when it has no such
/// parameter.
fn without_query_parameter(uri: &http::Uri, param: &str) -> Option<http::Uri> {
    let query = uri.query()?;
    let is_param = |pair: &&str| pair.split('=').next() == Some(param);
    if !query.split('&').any(|pair| is_param(&pair)) {
        return None;
    }
    let kept: Vec<&str> = query.split('&').filter(|pair| !is_param(pair)).collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

/// Left in the extensions of a request a layer let through without a key (an optional
/// route, a preflight): how that layer answers refusals.
#[cfg(feature = "axum")]
#[derive(Clone, Debug)]
pub(crate) struct PassedWithoutKey(pub(crate) KeyAuth);

/// The browser origin a request came from, `None` when it did not come from a browser page.
///
/// A browser sends `Origin` on cross-origin requests (and on most others), and
/// `Sec-Fetch-Site` on all. A same-origin `GET` carries no `Origin`: its origin is the
/// server's own, rebuilt from `Host` and the connection's scheme. Any other origin that is
/// implied but missing reads as `null`, which no allowed origin matches; so does an
/// unreadable one. `Sec-Fetch-Site: none` is the user's own navigation (a typed URL).
fn browser_origin<B>(req: &Request<B>, secure: bool) -> Option<Cow<'_, str>> {
    let headers = req.headers();
    if let Some(value) = headers.get(ORIGIN) {
        return Some(Cow::Borrowed(value.to_str().unwrap_or("null")));
    }
    let site = headers.get(SEC_FETCH_SITE)?.as_bytes();
    if site == b"none" {
        return None;
    }
    let own = (site == b"same-origin")
        .then(|| match headers.get(HOST) {
            Some(host) => host.to_str().ok(),
            // HTTP/2 names the host in `:authority`.
            None => req.uri().authority().map(http::uri::Authority::as_str),
        })
        .flatten()
        .filter(|host| !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic()));
    Some(match own {
        Some(host) => Cow::Owned(format!(
            "{}://{}",
            if secure { "https" } else { "http" },
            host.to_ascii_lowercase()
        )),
        None => Cow::Borrowed("null"),
    })
}

impl<S> Layer<S> for KeyAuthLayer {
    type Service = KeyAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyAuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of a [`KeyAuthLayer`].
#[derive(Clone, Debug)]
pub struct KeyAuthService<S> {
    inner: S,
    layer: KeyAuthLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for KeyAuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready goes into the future; its clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            if is_preflight(&req) {
                return Ok(preflight_answer());
            }
            match layer.authenticate(&mut req).await {
                Ok(verified) => {
                    let headers = verified.as_ref().and_then(VerifiedKey::rate_limit_headers);
                    match verified {
                        Some(key) => {
                            req.extensions_mut().insert(key);
                        }
                        // A handler that asks for a key here anyway answers as this layer would.
                        #[cfg(feature = "axum")]
                        None => {
                            req.extensions_mut()
                                .insert(PassedWithoutKey(layer.auth.clone()));
                        }
                        #[cfg(not(feature = "axum"))]
                        None => {}
                    }
                    let mut response = inner.call(req).await?;
                    if let Some(values) = headers
                        && !response.headers().contains_key(super::response::RATELIMIT)
                    {
                        set_rate_limit_headers(&mut response, &values);
                    }
                    Ok(response)
                }
                Err(rejection) => Ok(layer.auth.respond(&rejection).map(ResBody::from)),
            }
        })
    }
}
