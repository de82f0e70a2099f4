//! One error type for the whole core. Every variant has a stable machine code (used in
//! HTTP error bodies and conformance vectors) and a human message that never carries
//! internals.

use serde::Serialize;

/// Stable machine-readable error codes. Runtimes map them to HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Input is syntactically or semantically invalid (HTTP 400/422).
    InvalidInput,
    /// Input exceeds a documented size limit (HTTP 413/422).
    TooLarge,
    /// A referenced user does not exist in the tenant's directory (HTTP 422).
    UnknownUser,
    /// The directory references something it does not define (HTTP 422).
    UnknownReference,
    /// Two items share an id (HTTP 422).
    Duplicate,
    /// The department or organization tree has a cycle (HTTP 422).
    Cycle,
    /// The tenant's balance cannot cover the cost (HTTP 402).
    InsufficientCredits,
    /// Arithmetic left the representable range (HTTP 422).
    Overflow,
    /// The hash chain does not verify (reported by `verify`, not a client fault).
    ChainBroken,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::InvalidInput,
        ErrorCode::TooLarge,
        ErrorCode::UnknownUser,
        ErrorCode::UnknownReference,
        ErrorCode::Duplicate,
        ErrorCode::Cycle,
        ErrorCode::InsufficientCredits,
        ErrorCode::Overflow,
        ErrorCode::ChainBroken,
    ];

    /// The code for its text, for errors that crossed a wasm boundary as strings.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The HTTP status every runtime answers for this code (one mapping, shared).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput => 400,
            ErrorCode::TooLarge => 413,
            ErrorCode::InsufficientCredits => 402,
            ErrorCode::UnknownUser
            | ErrorCode::UnknownReference
            | ErrorCode::Duplicate
            | ErrorCode::Cycle
            | ErrorCode::Overflow => 422,
            ErrorCode::ChainBroken => 409,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::UnknownReference => "unknown_reference",
            ErrorCode::Duplicate => "duplicate",
            ErrorCode::Cycle => "cycle",
            ErrorCode::InsufficientCredits => "insufficient_credits",
            ErrorCode::Overflow => "overflow",
            ErrorCode::ChainBroken => "chain_broken",
        }
    }
}

/// A core error: a code, a message for humans and an optional pointer to the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{message}")]
pub struct CoreError {
    pub code: ErrorCode,
    pub message: String,
    /// JSON-pointer-like path of the offending field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl CoreError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CoreError {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError {
            code: ErrorCode::InvalidInput,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn too_large(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError {
            code: ErrorCode::TooLarge,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Places the error inside a container: `userId` within `activities[3]` becomes
    /// `activities[3].userId`, so batch callers learn which item failed.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = Some(match self.field.take() {
            Some(f) => format!("{prefix}.{f}"),
            None => prefix.to_owned(),
        });
        self
    }

    /// Wraps a serde_json error without leaking Rust type names.
    pub fn from_json(err: &serde_json::Error) -> Self {
        CoreError::new(ErrorCode::InvalidInput, json_message(err))
    }
}

/// serde_json messages are already user-facing ("missing field `userId` at line 1 column 20");
/// we keep them but strip nothing else, since they never contain server internals.
fn json_message(err: &serde_json::Error) -> String {
    format!("malformed JSON input: {err}")
}

pub type CoreResult<T> = Result<T, CoreError>;
