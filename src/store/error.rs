//! Errors of key stores.

use thiserror::Error;

/// A [`KeyStore`](crate::KeyStore) operation failed.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Insert of an id that exists, or update of a record whose version moved on.
    #[error("conflict: the record exists or was changed concurrently")]
    Conflict,
    /// No record with that id.
    #[error("record not found")]
    NotFound,
    /// The backend could not answer (connection, timeout, corrupt row). Authentication
    /// fails closed on this error.
    #[error("store unavailable")]
    Unavailable(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
    /// The store does not implement this (optional) operation.
    #[error("the store does not support {0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Wraps a backend error as [`StoreError::Unavailable`].
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(std::sync::Arc::new(source))
    }
}
