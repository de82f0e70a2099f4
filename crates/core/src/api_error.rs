//! The error vocabulary of the HTTP API, defined once for every runtime: the core's
//! codes plus those only a server can meet (authentication, routing, load, storage).
//! Body: `{ "error": { "code", "message", "details" } }`. Messages never carry
//! internals; `internal` always says only where to look.

use serde_json::{Value, json};

use crate::error::{CoreError, ErrorCode};

/// Every code an API answer can carry, with its one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiCode {
    /// A rule of the core refused the input.
    Core(ErrorCode),
    /// No valid key or token (401).
    Unauthorized,
    /// Valid, but not allowed to do this (403).
    Forbidden,
    /// No such endpoint or resource in this tenant (404).
    NotFound,
    /// The endpoint exists, the method does not (405).
    MethodNotAllowed,
    /// The client was too slow sending its request (408).
    Timeout,
    /// Same id or idempotency key with different content, or a stale precondition (409).
    Conflict,
    /// The tenant's balance cannot cover the operation (402), refused before recording.
    InsufficientCredits,
    /// Rate or concurrency limit of the key (429), with `Retry-After`.
    TooManyRequests,
    /// A bug or an environment failure (500); details go to the log only.
    Internal,
    /// The runtime does not serve this endpoint (501), with the reason.
    NotImplemented,
    /// Temporarily unable to serve (503), with `Retry-After` where known.
    Unavailable,
    /// The store has no space left (507); nothing was written.
    InsufficientStorage,
}

impl ApiCode {
    pub fn status(self) -> u16 {
        match self {
            ApiCode::Core(c) => c.http_status(),
            ApiCode::Unauthorized => 401,
            ApiCode::InsufficientCredits => 402,
            ApiCode::Forbidden => 403,
            ApiCode::NotFound => 404,
            ApiCode::MethodNotAllowed => 405,
            ApiCode::Timeout => 408,
            ApiCode::Conflict => 409,
            ApiCode::TooManyRequests => 429,
            ApiCode::Internal => 500,
            ApiCode::NotImplemented => 501,
            ApiCode::Unavailable => 503,
            ApiCode::InsufficientStorage => 507,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApiCode::Core(c) => c.as_str(),
            ApiCode::Unauthorized => "unauthorized",
            ApiCode::InsufficientCredits => "insufficient_credits",
            ApiCode::Forbidden => "forbidden",
            ApiCode::NotFound => "not_found",
            ApiCode::MethodNotAllowed => "method_not_allowed",
            ApiCode::Timeout => "timeout",
            ApiCode::Conflict => "conflict",
            ApiCode::TooManyRequests => "too_many_requests",
            ApiCode::Internal => "internal",
            ApiCode::NotImplemented => "not_implemented",
            ApiCode::Unavailable => "unavailable",
            ApiCode::InsufficientStorage => "insufficient_storage",
        }
    }
}

/// One API error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ApiCode,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(code: ApiCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    /// Without internals: the message only says where the details went.
    pub fn internal() -> ApiError {
        ApiError::new(ApiCode::Internal, "internal error; see the server log")
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// `{ "error": { "code", "message", "details" } }`
    pub fn body(&self) -> Value {
        json!({ "error": { "code": self.code.as_str(), "message": self.message, "details": self.details } })
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        let details = e
            .field
            .as_ref()
            .map_or_else(|| json!({}), |f| json!({ "field": f }));
        ApiError {
            code: ApiCode::Core(e.code),
            message: e.message,
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_code_status_and_field() {
        let e = ApiError::from(CoreError::invalid("userId", "bad"));
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.body(),
            json!({ "error": { "code": "invalid_input", "message": "bad", "details": { "field": "userId" } } })
        );
    }

    #[test]
    fn internal_errors_say_nothing_of_the_cause() {
        let body = ApiError::internal().body().to_string();
        assert!(body.contains("\"internal\"") && body.contains("server log"));
        assert_eq!(ApiError::internal().status(), 500);
    }
}
