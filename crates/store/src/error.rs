//! Errors of the storage logic. A stored value that does not decode is a bug or a
//! damaged database, never the client's fault: runtimes answer it as an internal error.

use crm_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A column held something other than what the schema promises.
    #[error("stored data does not decode: {0}")]
    Decode(String),
    /// A core rule refused stored or computed data (credits out of range, bad time).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// What the request names does not exist (answered 404).
    #[error("{0}")]
    NotFound(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn decode(what: impl Into<String>) -> StoreError {
        StoreError::Decode(what.into())
    }

    /// A stored record that cannot be read back or re-encoded.
    pub fn corrupt(e: impl std::fmt::Display) -> StoreError {
        StoreError::Decode(e.to_string())
    }
}
