//! The example service's router, shared by `main.rs` and the end-to-end tests.
//!
//! Key types: `sk_live` (secret), `sk_test` (secret, test environment) and `pk_live`
//! (publishable, `*:read` scopes only). The service runs in live mode and trusts no proxy.
//! The self-service portal is mounted at `/portal`, behind the demo login of `login.rs`.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use keymint::http::{KeyAuth, KeyAuthBuilder, portal};
use keymint::ratelimit::KeyLimit;
use keymint::{
    AllowedOrigin, Environment, IssueRequest, KeyId, KeyType, KeyTypes, Keyring, KeyringError,
    MemoryKeyring, MemoryStore, Scope, TimeDelta, VerifiedKey,
};
use serde::Deserialize;
use serde_json::json;

use crate::login::{self, DemoLogin};
#[cfg(feature = "tokens")]
use crate::tokens;

/// The key types of the example.
pub(crate) fn key_types() -> KeyTypes {
    let read_only = Scope::new("*:read").expect("a valid pattern");
    KeyTypes::new(KeyType::secret("sk_live", Environment::live()).expect("valid prefix"))
        .with(KeyType::secret("sk_test", Environment::test()).expect("valid prefix"))
        .with(
            KeyType::publishable("pk_live", Environment::live())
                .expect("valid prefix")
                .allowed_scopes([read_only])
                .allow_any_origin(true),
        )
}

/// The example's keyring on the in-memory store (with feature `tokens`, it also derives
/// and accepts short-lived tokens, signed by a key made at start).
pub(crate) fn keyring() -> Result<MemoryKeyring, KeyringError> {
    let builder = Keyring::builder(key_types(), MemoryStore::new());
    #[cfg(feature = "tokens")]
    let builder = {
        use keymint::token::{TokenSigningKey, Tokens};
        builder.tokens(Tokens::new(TokenSigningKey::generate("example")?))
    };
    builder.build()
}

/// Issues the administrator's key: an `sk_live` key with scope `admin:keys`.
pub(crate) async fn admin_key(keyring: &MemoryKeyring) -> Result<String, KeyringError> {
    let issued = keyring
        .issue(IssueRequest::new("admin", "administrator").scopes(["admin:keys"]))
        .await?;
    Ok(issued.key.expose_secret().to_owned())
}

/// The router: every route of the example's contract.
pub(crate) fn router(keyring: MemoryKeyring) -> Router {
    router_with(keyring, |auth| auth)
}

/// The router with the layer's configuration adjusted (the tests trust a proxy).
pub(crate) fn router_with(
    keyring: MemoryKeyring,
    configure: impl FnOnce(KeyAuthBuilder) -> KeyAuthBuilder,
) -> Router {
    let builder = KeyAuth::builder(keyring.clone())
        .realm("keymint example")
        .expect("valid realm");
    let auth = configure(builder).build();
    let admin = auth.require("admin:keys").expect("valid requirement");
    let login = DemoLogin::new();
    let portal = portal::router(keyring.clone(), login.clone());
    let app = Router::new()
        .route("/admin/keys", post(create_key).route_layer(admin.clone()))
        .route("/admin/keys/{id}", delete(revoke_key).route_layer(admin))
        .route("/v1/hello", get(hello).route_layer(auth.layer()));
    #[cfg(feature = "tokens")]
    let app = app.route("/v1/tokens", post(tokens::derive).route_layer(auth.layer()));
    app.route(
        "/v1/users",
        get(list_users)
            .route_layer(auth.require("users:read").expect("valid requirement"))
            .post(create_user.layer(auth.require("users:write").expect("valid requirement"))),
    )
    .with_state(keyring)
    .nest("/portal", portal)
    .route(
        "/login",
        get(login::form).post(move |form| login::log_in(login, form)),
    )
    .route("/logout", post(login::log_out))
}

/// A problem+json answer of the example's own (bad input to the admin endpoints).
pub(crate) fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    let body = json!({
        "type": format!("urn:keymint:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail.into(),
        "code": code,
    });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    #[serde(rename = "type")]
    key_type: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    rate_limit: Option<NewLimit>,
    expires_in_secs: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLimit {
    limit: i64,
    period_secs: i64,
}

async fn create_key(
    State(keyring): State<MemoryKeyring>,
    body: Result<Json<NewKey>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        // Not JSON, or the wrong content type: 400; JSON of the wrong shape: 422.
        Err(JsonRejection::JsonDataError(e)) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                e.body_text(),
            );
        }
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_json", e.body_text()),
    };
    let unprocessable = |detail: String| {
        problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_key_request",
            detail,
        )
    };
    let key_type = body.key_type.unwrap_or_else(|| "sk_live".to_owned());
    if keyring.key_types().get(&key_type).is_none() {
        return unprocessable(format!(
            "unknown key type {key_type:?}: use sk_live, sk_test or pk_live"
        ));
    }
    let mut request = IssueRequest::new("demo", body.name)
        .key_type(key_type.clone())
        .scopes(body.scopes);
    let mut origins = Vec::new();
    for origin in &body.allowed_origins {
        match origin.parse::<AllowedOrigin>() {
            Ok(origin) => origins.push(origin),
            Err(e) => return unprocessable(format!("allowed origin {origin:?}: {e}")),
        }
    }
    request = request.allowed_origins(origins);
    if let Some(limit) = body.rate_limit {
        let spec = u32::try_from(limit.limit)
            .ok()
            .and_then(NonZeroU32::new)
            .zip(u64::try_from(limit.period_secs).ok().filter(|s| *s > 0))
            .and_then(|(n, secs)| KeyLimit::new(n, Duration::from_secs(secs)));
        match spec {
            Some(spec) => request = request.rate_limit(spec),
            None => {
                return unprocessable("rate_limit needs a positive limit and period_secs".into());
            }
        }
    }
    if let Some(secs) = body.expires_in_secs {
        if secs <= 0 {
            return unprocessable("expires_in_secs must be positive".into());
        }
        match TimeDelta::try_seconds(secs) {
            Some(after) => request = request.expires_in(after),
            None => return unprocessable("expires_in_secs is too large".into()),
        }
    }
    match keyring.issue(request).await {
        Ok(issued) => (
            StatusCode::CREATED,
            // The body holds the plaintext key: no cache along the way may keep it.
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "key": issued.key.expose_secret(),
                "id": issued.record.id,
                "hint": issued.record.hint,
                "type": key_type,
                "expires_at": issued.record.attributes.expires_at,
            })),
        )
            .into_response(),
        Err(KeyringError::InvalidRequest(detail)) => unprocessable(detail),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

async fn revoke_key(State(keyring): State<MemoryKeyring>, Path(id): Path<String>) -> Response {
    let Ok(id) = KeyId::new(&id) else {
        return problem(StatusCode::NOT_FOUND, "not_found", "no such key");
    };
    match keyring.revoke(&id, "revoked through the admin API").await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(KeyringError::NotFound) => problem(StatusCode::NOT_FOUND, "not_found", "no such key"),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

async fn hello(key: VerifiedKey) -> Json<serde_json::Value> {
    Json(
        json!({ "hello": key.owner(), "key": key.record().hint, "environment": key.environment() }),
    )
}

async fn list_users(_key: VerifiedKey) -> Json<serde_json::Value> {
    Json(json!({ "users": [{ "id": 1, "name": "Ada" }, { "id": 2, "name": "Grace" }] }))
}

async fn create_user(_key: VerifiedKey) -> Json<serde_json::Value> {
    Json(json!({ "created": { "id": 3, "name": "Barbara" } }))
}
