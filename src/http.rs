//! HTTP integration (feature `tower`; axum extractors with feature `axum`): a tower
//! [`Layer`](tower::Layer) that authenticates, authorizes and rate-limits requests by the
//! standards.
//!
//! * Credentials: `Authorization: Bearer <key>` and `X-API-Key` by default, a header of
//!   your choosing, or a query parameter by explicit (discouraged) opt-in. Two different
//!   credentials in one request, a value that is not visible ASCII or longer than any
//!   key: 400 `invalid_request`, before any parsing.
//! * Transport: keys over plain HTTP are refused (403 `plain_http`, with an
//!   [`AuditEvent::SentInClear`](crate::AuditEvent::SentInClear) so the key can be
//!   rolled), except from loopback peers; the scheme and client address come from the
//!   connection, or from the forwarding headers a trusted proxy writes
//!   ([`ProxyHeaders`]: `X-Forwarded-*` by default, or `Forwarded`) only when the peer is
//!   one. Give the layer the peer address with axum's `ConnectInfo<SocketAddr>` (or a
//!   [`PeerAddr`] extension) and mark TLS connections with [`Tls`] (a URI's scheme is
//!   the client's word, not the connection's).
//! * Client certificates (mutual TLS): insert the certificate a connection presented as a
//!   [`ClientCertificate`] extension, and keys bound to a certificate verify only with it
//!   (401 `certificate_required` / `certificate_mismatch`, `error="invalid_token"` as
//!   RFC 8705 asks). A certificate on a trusted proxy's connection is the proxy's and is
//!   ignored. The set-up with axum and tokio-rustls is in the guide,
//!   `keymint::guide::client_certificates`.
//! * One verification per request, with the route's requirement and cost known, so a
//!   request refused for its scopes is charged nothing.
//! * Responses: RFC 6750 challenges, RFC 9457 `application/problem+json` bodies with a
//!   stable `code`, `Retry-After` on 429 and 503, `RateLimit-Policy` / `RateLimit`
//!   (draft-ietf-httpapi-ratelimit-headers-10) on allowed and denied responses. Nothing
//!   echoes the key.
//!
//! ```
//! use axum::{Router, routing::get};
//! use keymint::http::KeyAuth;
//! use keymint::{KeyFormat, Keyring, MemoryStore, VerifiedKey};
//!
//! async fn hello(key: VerifiedKey) -> String {
//!     format!("hello {}", key.owner())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new()).build()?;
//! let auth = KeyAuth::builder(keyring).build();
//! let app: Router = Router::new()
//!     .route("/v1/hello", get(hello).route_layer(auth.layer()))
//!     .route("/v1/users", get(hello).route_layer(auth.require("users:read")?));
//! # Ok(())
//! # }
//! ```
//!
//! Where the layer goes relative to a `TraceLayer`: a trace layer outside it sees request
//! headers before any inner layer runs, so mark the credential headers sensitive outside the
//! trace layer (tower-http's `SetSensitiveRequestHeadersLayer`, applied after
//! `TraceLayer` in `Router::layer` order) — the keymint layer removes them only for the
//! handler. For publishable keys from browsers, put tower-http's `CorsLayer` outside the
//! keymint layer (it answers preflights itself; the keymint layer answers any that reach it
//! with a bare 204, never calling the handler; behind axum's `route_layer` none reach it
//! unless the route has an `OPTIONS` handler, since axum answers 405 for a method the route
//! lacks) and expose `RateLimit`, `RateLimit-Policy`, `Retry-After` and `WWW-Authenticate`.

mod auth;
mod credential;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
mod extract;
mod layer;
#[cfg(feature = "leak-alerts")]
#[cfg_attr(docsrs, doc(cfg(feature = "leak-alerts")))]
pub mod leak_alerts;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod portal;
mod response;
mod transport;

pub use crate::certificate::ClientCertificate;
pub use auth::{HttpConfigError, KeyAuth, KeyAuthBuilder};
pub use credential::X_API_KEY;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::MissingKey;
pub use layer::{KeyAuthLayer, KeyAuthService};
pub use response::{QUOTA_EXCEEDED_TYPE, Rejection};
pub use transport::{PeerAddr, ProxyHeaders, Tls};
