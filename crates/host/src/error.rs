//! The host's error type: every failure a request can meet, each mapped to one HTTP
//! status and a stable code. Internal errors are logged and answered without details.

use crm_api::error::{ApiCode, ApiError};
use crm_core::{CoreError, ErrorCode};
use serde_json::Value;

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
    /// The store or engine cannot serve right now (shutting down, busy).
    #[error("{0}")]
    Unavailable(String),
    /// Too much in flight (429) or backed up (503): retry after the given seconds.
    #[error("{message}")]
    Overloaded {
        code: ApiCode,
        message: String,
        retry_after: u64,
    },
    /// The store is out of space; nothing was written.
    #[error("{0}")]
    InsufficientStorage(String),
    /// A fully formed answer (code, message, details) decided by a flow.
    #[error("{}", .0.message)]
    Api(ApiError),
    /// A bug or an environment failure; details go to the log only.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

pub type HostResult<T> = Result<T, HostError>;

impl From<ApiError> for HostError {
    fn from(e: ApiError) -> HostError {
        HostError::Api(e)
    }
}

impl HostError {
    pub fn internal(e: impl Into<anyhow::Error>) -> HostError {
        HostError::Internal(e.into())
    }

    /// The shared API code (crm-core's vocabulary) of this error.
    pub fn api_code(&self) -> ApiCode {
        match self {
            HostError::Core(e) => ApiCode::Core(e.code),
            HostError::Unauthorized(_) => ApiCode::Unauthorized,
            HostError::Forbidden(_) => ApiCode::Forbidden,
            HostError::NotFound(_) => ApiCode::NotFound,
            HostError::Conflict { .. } => ApiCode::Conflict,
            HostError::PaymentRequired { .. } => ApiCode::Core(ErrorCode::InsufficientCredits),
            HostError::BadRequest(_) => ApiCode::Core(ErrorCode::InvalidInput),
            HostError::PayloadTooLarge(_) => ApiCode::Core(ErrorCode::TooLarge),
            HostError::Unavailable(_) => ApiCode::Unavailable,
            HostError::InsufficientStorage(_) => ApiCode::InsufficientStorage,
            HostError::Overloaded { code, .. } => *code,
            HostError::Api(e) => e.code,
            HostError::Internal(_) => ApiCode::Internal,
        }
    }

    pub fn status(&self) -> u16 {
        self.api_code().status()
    }

    pub fn code(&self) -> &'static str {
        self.api_code().as_str()
    }

    /// The answer in the shared shape, with its retry hint; internal errors say nothing
    /// of their cause.
    pub fn to_api(&self) -> ApiError {
        let answer = match self {
            HostError::Core(e) => ApiError::from(e.clone()),
            HostError::Conflict { message, details }
            | HostError::PaymentRequired { message, details } => {
                ApiError::new(self.api_code(), message.clone()).with_details(details.clone())
            }
            HostError::Internal(_) => ApiError::internal(),
            HostError::Api(e) => e.clone(),
            other => ApiError::new(self.api_code(), other.to_string()),
        };
        match self.retry_after() {
            Some(secs) if answer.retry_after.is_none() => {
                answer.with_retry_after(u32::try_from(secs).unwrap_or(u32::MAX))
            }
            _ => answer,
        }
    }

    /// Seconds the client should wait before retrying, when known.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            HostError::Overloaded { retry_after, .. } => Some(*retry_after),
            HostError::Unavailable(_) => {
                Some(u64::from(crm_api::storage::BUSY_RETRY_AFTER_SECONDS))
            }
            HostError::Api(e) => e.retry_after.map(u64::from),
            _ => None,
        }
    }

    /// `{ "error": { "code", "message", "details" } }`
    pub fn body(&self) -> crm_api::error::ErrorBody {
        self.to_api().body()
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
