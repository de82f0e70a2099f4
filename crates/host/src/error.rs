//! The host's error type: every failure a request can meet, each mapped to one HTTP
//! status and a stable code. Internal errors are logged and answered without details.

use crm_core::CoreError;
use serde_json::{Value, json};

use crate::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The core refused the input.
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Same id, different content (idempotency), or a stale precondition.
    #[error("{message}")]
    Conflict { message: String, details: Value },
    /// Balance too low for a single activity.
    #[error("{message}")]
    PaymentRequired { message: String, details: Value },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The store or engine cannot serve right now (shutting down, disk trouble).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an environment failure; details go to the log only.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

pub type HostResult<T> = Result<T, HostError>;

impl HostError {
    pub fn internal(e: impl Into<anyhow::Error>) -> HostError {
        HostError::Internal(e.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            HostError::Core(e) => e.code.http_status(),
            HostError::Unauthorized(_) => 401,
            HostError::Forbidden(_) => 403,
            HostError::NotFound(_) => 404,
            HostError::Conflict { .. } => 409,
            HostError::PaymentRequired { .. } => 402,
            HostError::BadRequest(_) => 400,
            HostError::PayloadTooLarge(_) => 413,
            HostError::MethodNotAllowed(_) => 405,
            HostError::Unavailable(_) => 503,
            HostError::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            HostError::Core(e) => e.code.as_str(),
            HostError::Unauthorized(_) => "unauthorized",
            HostError::Forbidden(_) => "forbidden",
            HostError::NotFound(_) => "not_found",
            HostError::Conflict { .. } => "conflict",
            HostError::PaymentRequired { .. } => "insufficient_credits",
            HostError::BadRequest(_) => "invalid_input",
            HostError::PayloadTooLarge(_) => "too_large",
            HostError::MethodNotAllowed(_) => "method_not_allowed",
            HostError::Unavailable(_) => "unavailable",
            HostError::Internal(_) => "internal",
        }
    }

    /// `{ "error": { "code", "message", "details" } }`
    pub fn body(&self) -> Value {
        let (message, details) = match self {
            HostError::Core(e) => (
                e.message.clone(),
                e.field
                    .as_ref()
                    .map_or_else(|| json!({}), |f| json!({ "field": f })),
            ),
            HostError::Conflict { message, details }
            | HostError::PaymentRequired { message, details } => (message.clone(), details.clone()),
            HostError::Internal(_) => ("internal error; see the server log".to_owned(), json!({})),
            other => (other.to_string(), json!({})),
        };
        json!({ "error": { "code": self.code(), "message": message, "details": details } })
    }
}

impl From<EngineError> for HostError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Core(c) => HostError::Core(c),
            EngineError::Fault(f) => HostError::Internal(anyhow::anyhow!("engine fault: {f}")),
        }
    }
}

impl From<rusqlite::Error> for HostError {
    fn from(e: rusqlite::Error) -> Self {
        HostError::Internal(e.into())
    }
}
