//! The router's error answers: RFC 9457 problem details with a stable `code`.

use std::borrow::Cow;

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::keyring::KeyringError;

/// An error answer of the portal.
#[derive(Debug)]
pub(super) struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: Cow<'static, str>,
}

impl Problem {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 422 `not_allowed`: beyond the user's allowance.
    pub(super) fn not_allowed(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "not_allowed", detail)
    }

    /// 404, the same for a key that does not exist and a key of another owner.
    pub(super) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such key")
    }

    /// 403 `csrf`.
    pub(super) fn csrf(detail: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf", detail)
    }
}

impl From<KeyringError> for Problem {
    fn from(error: KeyringError) -> Self {
        match error {
            KeyringError::NotFound => Self::not_found(),
            KeyringError::InvalidRequest(detail) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
            }
            KeyringError::InvalidState(detail) => {
                Self::new(StatusCode::CONFLICT, "invalid_state", detail)
            }
            KeyringError::Contention => Self::new(
                StatusCode::CONFLICT,
                "contention",
                "the key changed meanwhile: try again",
            ),
            other => {
                // The user learns only that it failed; the operator needs to know why.
                tracing::warn!(error = %other, "self-service request failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "try again later",
                )
            }
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", detail)
            }
            JsonRejection::JsonSyntaxError(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_json", detail)
            }
            // The wrong content type (415), a body over the limit (413), a broken stream.
            other => Self::new(other.status(), "unreadable_body", detail),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("urn:keymint:problem:{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        (
            self.status,
            [
                (http::header::CONTENT_TYPE, "application/problem+json"),
                (http::header::CACHE_CONTROL, "no-store"),
            ],
            body.to_string(),
        )
            .into_response()
    }
}
