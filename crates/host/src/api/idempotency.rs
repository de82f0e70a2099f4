//! The `Idempotency-Key` request header: a retry with the same key answers the first
//! result and changes nothing. Endpoints derive the ids they create from it, so a
//! retry lands on the same rows (see `service::crm::activity_id`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::HostError;

#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = HostError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get("idempotency-key").map(|v| v.as_bytes());
        crm_api::request::idempotency_key(header)
            .map(IdempotencyKey)
            .map_err(HostError::Api)
    }
}

impl IdempotencyKey {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}
