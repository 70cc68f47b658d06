//! Self-service (feature `axum`): a router that owners use to list, create, roll, revoke
//! and rename their own keys, with a small HTML page. Hosts nest it behind their own login.
//!
//! ```
//! use axum::Router;
//! use http::request::Parts;
//! use keymint::http::portal::{self, Allowance, OwnerResolver, PortalUser};
//! use keymint::{KeyFormat, Keyring, MemoryStore, Scope, TimeDelta};
//!
//! /// Your session lookup: here, a header set by your own authentication layer.
//! struct Session;
//!
//! impl OwnerResolver for Session {
//!     async fn resolve(&self, parts: &Parts) -> Option<PortalUser> {
//!         let user = parts.headers.get("x-user")?.to_str().ok()?;
//!         let allowance = Allowance::new()
//!             .scopes([Scope::new("users:*").ok()?])
//!             .max_lifetime(TimeDelta::days(90))
//!             .max_keys(10);
//!         Some(PortalUser::new(user, user, allowance))
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new()).build()?;
//! let app: Router = Router::new().nest("/portal", portal::router(keyring, Session));
//! # Ok(())
//! # }
//! ```
//!
//! Endpoints, relative to where the router is nested:
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the HTML page |
//! | `GET /api/keys[?after=<id>]` | `{"keys": [..], "next_after"}`: name, type, hint, scopes, created, expires, last used, status; never a secret or a hash |
//! | `POST /api/keys` `{"name", "type"?, "scopes"?, "expires_in_secs"?}` | 201 with the plaintext `key`, shown this once |
//! | `POST /api/keys/{id}/roll` `{"grace_secs"?}` | 201 with the new key's plaintext; the old key works for the grace period (never past its own expiry) |
//! | `POST /api/keys/{id}/revoke` `{"reason"?}` | 204 |
//! | `PATCH /api/keys/{id}` `{"name"?, "description"?}` | 200 with the key |
//!
//! Another owner's key id answers exactly like a nonexistent one (404), on every endpoint.
//! Every action is an [`AuditEvent::SelfService`](crate::AuditEvent::SelfService) naming
//! the actor.
//!
//! **CSRF.** With cookie sessions a browser attaches the cookie to requests that other
//! sites make. State-changing requests must therefore carry the header
//! `X-Keymint-Portal: 1`, which a cross-site form cannot set and a cross-origin script can
//! set only after a CORS preflight this router never approves; in addition a request whose
//! `Origin` differs from its `Host`, or whose `Sec-Fetch-Site` is `cross-site`, is refused
//! (403; over HTTP/2 the request's authority stands in for `Host`). Behind a reverse proxy,
//! forward the browser's `Host` unchanged. The page sends the header; so must your own
//! clients.
//!
//! **Rolls** are held to the allowance like creates (type, scopes, no roles); a key whose
//! predecessor is still in its grace period cannot be rolled again, and rolled keys in
//! their grace period count toward [`Allowance::max_keys`].

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, patch, post};
use chrono::TimeDelta;
use http::request::Parts;
use tokio::sync::Mutex;

use crate::keyring::Keyring;
use crate::ratelimit::RateLimiter;
use crate::scope::Scope;
use crate::store::KeyStore;

mod csrf;
mod handlers;
mod page;
mod problem;

pub use csrf::CSRF_HEADER;

/// What an owner may do through self-service. Defaults: the keyring's default key type,
/// no scopes, no limit on lifetime (beyond the key type's own), at most 20 keys, a roll's
/// grace period at most a week.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Allowance {
    key_types: Vec<String>,
    scopes: Vec<Scope>,
    max_lifetime: Option<TimeDelta>,
    max_keys: usize,
    max_grace: TimeDelta,
}

impl Allowance {
    /// The default [`max_keys`](Self::max_keys).
    pub const DEFAULT_MAX_KEYS: usize = 20;
    /// The default [`max_grace`](Self::max_grace): a week.
    pub const DEFAULT_MAX_GRACE: TimeDelta = TimeDelta::days(7);
}

impl Default for Allowance {
    fn default() -> Self {
        Self {
            key_types: Vec::new(),
            scopes: Vec::new(),
            max_lifetime: None,
            max_keys: Self::DEFAULT_MAX_KEYS,
            max_grace: Self::DEFAULT_MAX_GRACE,
        }
    }
}

impl Allowance {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key types (by name) the owner may create; empty: the keyring's default type.
    pub fn key_types<I: IntoIterator<Item = T>, T: Into<String>>(mut self, names: I) -> Self {
        self.key_types = names.into_iter().map(Into::into).collect();
        self
    }

    /// Scope patterns the owner's keys may hold at most: each requested scope must be
    /// covered by one of them.
    pub fn scopes(mut self, patterns: impl IntoIterator<Item = Scope>) -> Self {
        self.scopes = patterns.into_iter().collect();
        self
    }

    /// The longest lifetime of a new key; a key asked for without expiry gets it.
    pub fn max_lifetime(mut self, lifetime: TimeDelta) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Most active keys the owner may hold. Within one process concurrent creates cannot
    /// exceed it; across processes sharing a store, each checks on its own.
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// The longest grace period a roll may give the old key (it never outlives the old
    /// key's own expiry either).
    pub fn max_grace(mut self, grace: TimeDelta) -> Self {
        self.max_grace = grace;
        self
    }
}

/// Who is using the portal, as the host's [`OwnerResolver`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalUser {
    owner: String,
    actor: String,
    allowance: Allowance,
}

impl PortalUser {
    /// The user `actor` (for the audit trail) managing the keys of `owner` (your tenant or
    /// user id, as keys are issued with) within `allowance`.
    pub fn new(owner: impl Into<String>, actor: impl Into<String>, allowance: Allowance) -> Self {
        Self {
            owner: owner.into(),
            actor: actor.into(),
            allowance,
        }
    }
}

/// How the router learns who is asking: implement it over your session (a cookie, a header
/// your login layer sets). `None` answers 401.
pub trait OwnerResolver: Send + Sync + 'static {
    /// The user behind the request, if logged in.
    fn resolve(&self, parts: &Parts) -> impl Future<Output = Option<PortalUser>> + Send;
}

/// The router's state.
struct Portal<S, L, R> {
    keyring: Keyring<S, L>,
    resolver: R,
    /// Creates of one owner run one at a time (owners hash onto these stripes), so that
    /// concurrent requests cannot together exceed [`Allowance::max_keys`] in this process.
    create_locks: Box<[Mutex<()>]>,
    stripe_hasher: foldhash::fast::RandomState,
}

const CREATE_STRIPES: usize = 64;

/// Largest request body the router reads.
const MAX_BODY: usize = 16 * 1024;

type Shared<S, L, R> = Arc<Portal<S, L, R>>;

/// The self-service router over `keyring`, asking `resolver` who the user is.
pub fn router<S: KeyStore, L: RateLimiter, R: OwnerResolver>(
    keyring: Keyring<S, L>,
    resolver: R,
) -> Router {
    Router::new()
        .route("/", get(page::page))
        .route(
            "/api/keys",
            get(handlers::list::<S, L, R>).post(handlers::create::<S, L, R>),
        )
        .route("/api/keys/{id}", patch(handlers::edit::<S, L, R>))
        .route("/api/keys/{id}/roll", post(handlers::roll::<S, L, R>))
        .route("/api/keys/{id}/revoke", post(handlers::revoke::<S, L, R>))
        .route("/api/types", get(handlers::types::<S, L, R>))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(Portal {
            keyring,
            resolver,
            create_locks: (0..CREATE_STRIPES).map(|_| Mutex::new(())).collect(),
            stripe_hasher: foldhash::fast::RandomState::default(),
        }))
}

impl<S, L, R> Portal<S, L, R> {
    /// The lock that serialises `owner`'s creates.
    fn create_lock(&self, owner: &str) -> &Mutex<()> {
        let mut hasher = self.stripe_hasher.build_hasher();
        hasher.write(owner.as_bytes());
        let stripe = usize::try_from(hasher.finish() % CREATE_STRIPES as u64).unwrap_or(0);
        &self.create_locks[stripe]
    }
}

impl Allowance {
    /// The key types this allowance lets its owner create, the first being the default.
    fn types<'a>(&'a self, default_type: &'a str) -> Vec<&'a str> {
        if self.key_types.is_empty() {
            vec![default_type]
        } else {
            self.key_types.iter().map(String::as_str).collect()
        }
    }
}
