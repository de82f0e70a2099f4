//! The error vocabulary of the HTTP API, defined once for every runtime: the core's
//! codes plus those only a server can meet (authentication, routing, load, storage).
//! Body: `{ "error": { "code", "message", "details" } }`. Messages never carry
//! internals; `internal` always says only where to look.

use serde_json::{Value, json};

use crm_core::{CoreError, ErrorCode};

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
    /// Every code, the core's first.
    pub fn all() -> impl Iterator<Item = ApiCode> {
        ErrorCode::ALL.into_iter().map(ApiCode::Core).chain([
            ApiCode::Unauthorized,
            ApiCode::Forbidden,
            ApiCode::NotFound,
            ApiCode::MethodNotAllowed,
            ApiCode::Timeout,
            ApiCode::Conflict,
            ApiCode::TooManyRequests,
            ApiCode::Internal,
            ApiCode::NotImplemented,
            ApiCode::Unavailable,
            ApiCode::InsufficientStorage,
        ])
    }

    pub fn status(self) -> u16 {
        match self {
            ApiCode::Core(c) => c.http_status(),
            ApiCode::Unauthorized => 401,
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

impl serde::Serialize for ApiCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl schemars::JsonSchema for ApiCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let codes: Vec<&str> = ApiCode::all().map(ApiCode::as_str).collect();
        schemars::json_schema!({ "type": "string", "enum": codes })
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code, a message for people, and details for programs
/// (the field at fault, the recorded activity, `retryAfterSeconds`…).
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    pub code: ApiCode,
    pub message: String,
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub details: Value,
}

/// One API error answer: the one error type of every runtime's requests.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ApiCode,
    pub message: String,
    pub details: Value,
    /// Seconds after which a retry may succeed: sent as `Retry-After` (and in
    /// `details.retryAfterSeconds`) by every runtime.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(code: ApiCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::Core(ErrorCode::InvalidInput), message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::Core(ErrorCode::TooLarge), message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::NotFound, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::Forbidden, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiCode::Conflict, message)
    }

    /// 503 with a retry hint: the runtime cannot serve now, later it can.
    pub fn unavailable(message: impl Into<String>, retry_after: u32) -> ApiError {
        ApiError::new(ApiCode::Unavailable, message).with_retry_after(retry_after)
    }

    /// The answer for a path no endpoint has.
    pub fn no_such_endpoint() -> ApiError {
        ApiError::not_found("no such endpoint")
    }

    /// The answer for a known path and a method it does not have.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            ApiCode::MethodNotAllowed,
            "this endpoint does not support that method",
        )
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        if let (Some(secs), Some(d)) = (self.retry_after, self.details.as_object_mut()) {
            d.insert("retryAfterSeconds".to_owned(), json!(secs));
        }
        self
    }

    /// Adds the retry hint (also named in `details.retryAfterSeconds`).
    pub fn with_retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after = Some(seconds);
        if let Some(d) = self.details.as_object_mut() {
            d.insert("retryAfterSeconds".to_owned(), json!(seconds));
        }
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
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
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
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(e: &ApiError) -> Value {
        serde_json::to_value(e.body()).expect("an error body encodes")
    }

    #[test]
    fn core_errors_keep_code_status_and_field() {
        let e = ApiError::from(CoreError::invalid("userId", "bad"));
        assert_eq!(e.status(), 400);
        assert_eq!(
            body(&e),
            json!({ "error": { "code": "invalid_input", "message": "bad", "details": { "field": "userId" } } })
        );
    }

    #[test]
    fn a_retry_hint_is_kept_and_named_in_the_details() {
        let e = ApiError::unavailable("busy", 3).with_details(json!({ "ids": [] }));
        assert_eq!(e.retry_after, Some(3));
        assert_eq!(e.status(), 503);
        assert_eq!(body(&e)["error"]["details"]["retryAfterSeconds"], 3);
        assert_eq!(body(&e)["error"]["details"]["ids"], json!([]));
    }

    #[test]
    fn internal_errors_say_nothing_of_the_cause() {
        let body = body(&ApiError::internal()).to_string();
        assert!(body.contains("\"internal\"") && body.contains("server log"));
        assert_eq!(ApiError::internal().status(), 500);
    }
}
