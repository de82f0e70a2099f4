//! The `Idempotency-Key` request header: a retry with the same key answers the first
//! result and changes nothing. Endpoints derive the ids they create from it, so a
//! retry lands on the same rows (see `service::crm::activity_id`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::HostError;

/// Longest key accepted: room for a UUID or a client's own composite key.
const MAX_KEY_LEN: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = HostError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let text = v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|t| {
                !t.is_empty() && t.len() <= MAX_KEY_LEN && t.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or_else(|| {
                HostError::BadRequest(format!(
                    "`Idempotency-Key` must be 1-{MAX_KEY_LEN} visible ASCII characters"
                ))
            })?;
        Ok(IdempotencyKey(Some(text.to_owned())))
    }
}

impl IdempotencyKey {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}
