//! [`HttpKeySource`]: GitHub's public keys over HTTPS, with hyper and rustls (`ring`).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, HeaderValue, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::keys::{GitHubPublicKey, KeySource, KeySourceError};

/// Most bytes of a key document read (GitHub's is about 1 KiB).
pub const MAX_KEY_DOCUMENT: usize = 64 * 1024;

/// Fetches GitHub's secret-scanning public keys with a GET request: over HTTPS, checked
/// against the system's root certificates (rustls with the `ring` provider), or over plain
/// HTTP to a loopback address (a local test server). Redirects are not followed; the
/// answer must be a 200 of at most [`MAX_KEY_DOCUMENT`] bytes.
///
/// GitHub rate-limits unauthenticated calls to its API by address (60 an hour); give a
/// token with no scopes with [`bearer_token`](Self::bearer_token) if your servers share an
/// address with other GitHub API users.
#[derive(Clone)]
pub struct HttpKeySource {
    url: Uri,
    authorization: Option<HeaderValue>,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpKeySource {
    /// A source for GitHub's own endpoint,
    /// [`GITHUB_PUBLIC_KEYS_URL`](super::GITHUB_PUBLIC_KEYS_URL).
    ///
    /// # Errors
    /// [`KeySourceError::Tls`] when the system has no root certificates.
    pub fn github() -> Result<Self, KeySourceError> {
        Self::new(super::GITHUB_PUBLIC_KEYS_URL)
    }

    /// A source for the document at `url` (an `https` URL, or `http` to a loopback
    /// address given as an IP literal).
    ///
    /// # Errors
    /// [`KeySourceError::InvalidUrl`], [`KeySourceError::PlainHttp`] for `http` to any
    /// other host, or [`KeySourceError::Tls`] when the system has no root certificates.
    pub fn new(url: &str) -> Result<Self, KeySourceError> {
        let url: Uri = url
            .parse()
            .map_err(|_| KeySourceError::InvalidUrl("not a url"))?;
        let host = url.host().ok_or(KeySourceError::InvalidUrl("no host"))?;
        // rustls 0.23.48 deprecates its `ring` provider for lacking post-quantum key
        // exchange. What travels here is public (GitHub's public keys): only its
        // integrity matters, which classical TLS gives, so nothing is recorded today that
        // a future quantum computer could use. `ring` builds anywhere a C compiler does;
        // aws-lc-rs needs more of a toolchain.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let connector = match url.scheme_str() {
            Some("https") => hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(KeySourceError::Tls)?
                .https_only()
                .enable_http1()
                .build(),
            Some("http") if is_loopback(host) => {
                // Never used for TLS (the URL is plain http), so no roots are needed.
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| KeySourceError::Request(Box::new(e)))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_or_http()
                    .enable_http1()
                    .build()
            }
            Some("http") => return Err(KeySourceError::PlainHttp),
            _ => return Err(KeySourceError::InvalidUrl("not an http or https url")),
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            url,
            authorization: None,
            client,
        })
    }

    /// Sends `Authorization: Bearer <token>` (a GitHub token; it needs no scopes), for
    /// GitHub's higher rate limit of authenticated calls.
    ///
    /// # Errors
    /// [`KeySourceError::InvalidHeader`] when the token is not a valid header value.
    pub fn bearer_token(mut self, token: &str) -> Result<Self, KeySourceError> {
        let mut value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| KeySourceError::InvalidHeader)?;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(self)
    }

    async fn get(&self) -> Result<Bytes, KeySourceError> {
        let mut request = Request::get(self.url.clone())
            .header(USER_AGENT, concat!("keymint/", env!("CARGO_PKG_VERSION")))
            .header(ACCEPT, "application/json");
        if let Some(token) = &self.authorization {
            request = request.header(AUTHORIZATION, token.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| KeySourceError::Request(Box::new(e)))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| KeySourceError::Request(Box::new(e)))?;
        if response.status() != StatusCode::OK {
            return Err(KeySourceError::Status(response.status().as_u16()));
        }
        match Limited::new(response.into_body(), MAX_KEY_DOCUMENT)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => Err(KeySourceError::TooLarge(MAX_KEY_DOCUMENT)),
            Err(e) => Err(KeySourceError::Request(e)),
        }
    }
}

impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<Vec<GitHubPublicKey>, KeySourceError> {
        let document = self.get().await?;
        GitHubPublicKey::parse_document(&document)
    }
}

impl fmt::Debug for HttpKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpKeySource")
            .field("url", &self.url)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[REDACTED]"),
            )
            .finish_non_exhaustive()
    }
}

/// Whether `host` (a URI host: a name, an IPv4 address or a bracketed IPv6 address) is a
/// loopback address. Names are not resolved, so `localhost` does not count.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        assert!(matches!(
            HttpKeySource::new("http://keys.example/meta"),
            Err(KeySourceError::PlainHttp)
        ));
        assert!(HttpKeySource::new("http://127.0.0.1:8080/keys").is_ok());
        assert!(HttpKeySource::new("http://[::1]:8080/keys").is_ok());
        assert!(matches!(
            HttpKeySource::new("http://localhost/keys"),
            Err(KeySourceError::PlainHttp)
        ));
        assert!(matches!(
            HttpKeySource::new("ftp://127.0.0.1/keys"),
            Err(KeySourceError::InvalidUrl(_))
        ));
        assert!(matches!(
            HttpKeySource::new("/relative"),
            Err(KeySourceError::InvalidUrl(_))
        ));
    }

    #[test]
    fn the_bearer_token_is_never_printed() {
        let source = HttpKeySource::new("http://127.0.0.1:1/keys")
            .and_then(|s| s.bearer_token("ghp_secret_token_value"))
            .expect("valid");
        let printed = format!("{source:?}");
        assert!(!printed.contains("ghp_secret"), "{printed}");
        assert!(printed.contains("[REDACTED]"), "{printed}");
    }
}
