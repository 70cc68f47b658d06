//! axum extractors (feature `axum`): the [`VerifiedKey`] a [`KeyAuthLayer`] put into the
//! request, or `Option<VerifiedKey>` on routes whose layer is
//! [`optional`](super::KeyAuthLayer::optional).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use super::KeyAuth;
use super::layer::PassedWithoutKey;
use super::response::{Rejection, Responses};
use crate::keyring::VerifiedKey;

/// The extractor's refusal when a handler asks for a [`VerifiedKey`] that no layer
/// provided: 401, as for a request without credentials, in the words of the route's
/// optional layer if it has one (its realm and problem types). It only happens on a route
/// without a keymint layer (or with an optional one), which is logged once.
#[derive(Debug)]
pub struct MissingKey {
    layer: Option<KeyAuth>,
}

impl IntoResponse for MissingKey {
    fn into_response(self) -> Response {
        match &self.layer {
            Some(auth) => auth.respond(&Rejection::MissingCredential),
            None => Responses::default().respond(&Rejection::MissingCredential),
        }
        .map(axum::body::Body::from)
    }
}

static UNGUARDED_WARNED: AtomicBool = AtomicBool::new(false);

impl<S: Send + Sync> FromRequestParts<S> for VerifiedKey {
    type Rejection = MissingKey;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<VerifiedKey>() {
            Some(key) => Ok(key.clone()),
            None => {
                if !UNGUARDED_WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        path = parts.uri.path(),
                        "a handler extracts VerifiedKey on a route without a (non-optional) keymint layer: answering 401"
                    );
                }
                Err(MissingKey {
                    layer: parts
                        .extensions
                        .get::<PassedWithoutKey>()
                        .map(|passed| passed.0.clone()),
                })
            }
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedKey {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<VerifiedKey>().cloned())
    }
}
