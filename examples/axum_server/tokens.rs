//! `POST /v1/tokens` (feature `tokens`): exchange the key on the request for a short-lived
//! token that may do less. Body (optional): `{"scopes": ["..."], "ttl_secs": N}`; answers
//! 201 `{"token", "expires_at", "scopes"}`. The token works on every route a key does.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keymint::token::TokenRequest;
use keymint::{KeyringError, MemoryKeyring, VerifiedKey};
use serde::Deserialize;
use serde_json::json;

use crate::app::problem;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Exchange {
    scopes: Option<Vec<String>>,
    ttl_secs: Option<i64>,
}

pub(crate) async fn derive(
    State(keyring): State<MemoryKeyring>,
    key: VerifiedKey,
    body: Bytes,
) -> Response {
    let exchange = if body.is_empty() {
        Exchange::default()
    } else {
        match serde_json::from_slice::<Exchange>(&body) {
            Ok(exchange) => exchange,
            Err(e) if e.is_data() => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    e.to_string(),
                );
            }
            Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()),
        }
    };
    let mut request = TokenRequest::new();
    if let Some(scopes) = exchange.scopes {
        request = request.scopes(scopes);
    }
    if let Some(secs) = exchange.ttl_secs {
        match u64::try_from(secs) {
            Ok(secs) if secs > 0 => request = request.ttl_secs(secs),
            _ => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_token_request",
                    "ttl_secs must be positive",
                );
            }
        }
    }
    match keyring.derive_token(&key, request).await {
        Ok(derived) => (
            StatusCode::CREATED,
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "token": derived.token.expose_secret(),
                "expires_at": derived.claims.expires_at(),
                "scopes": derived.claims.scopes(),
            })),
        )
            .into_response(),
        Err(KeyringError::InvalidRequest(detail)) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token_request",
            detail,
        ),
        Err(e) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}
