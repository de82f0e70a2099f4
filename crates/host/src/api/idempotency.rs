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
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let text = v.to_str().map_err(|_| {
            HostError::BadRequest("`Idempotency-Key` must be visible ASCII characters".to_owned())
        })?;
        let text = crm_store::idempotency::check_key(text)?;
        Ok(IdempotencyKey(Some(text.to_owned())))
    }
}

impl IdempotencyKey {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}
