//! JSON errors (crm-core's shared vocabulary, as crm-host), API key auth, body parsing.

use crm_core::api_error::{ApiCode, ApiError};
use crm_core::{CoreError, ErrorCode};
use serde_json::Value;
use worker::{Request, Response, Result};

/// Largest request body: a full batch of 1000 activities at the metadata cap.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// A failed request: the shared API error (crm-core's vocabulary, same codes, statuses
/// and body as crm-host), wrapped so the worker's own conversions can live here.
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl Failure {
    pub fn new(code: ApiCode, message: impl Into<String>) -> Failure {
        Failure(ApiError::new(code, message))
    }

    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(ApiCode::Core(ErrorCode::InvalidInput), message)
    }

    pub fn too_large(message: impl Into<String>) -> Failure {
        Failure::new(ApiCode::Core(ErrorCode::TooLarge), message)
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(ApiCode::NotFound, message)
    }

    pub fn not_implemented(message: impl Into<String>) -> Failure {
        Failure::new(ApiCode::NotImplemented, message)
    }

    pub fn with_details(self, details: Value) -> Failure {
        Failure(self.0.with_details(details))
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Storage or platform failure: logged, answered without internals.
    pub fn internal(e: impl std::fmt::Display) -> Failure {
        worker::console_error!("internal error: {e}");
        Failure(ApiError::internal())
    }
}

impl From<CoreError> for Failure {
    fn from(e: CoreError) -> Failure {
        Failure(ApiError::from(e))
    }
}

impl From<worker::Error> for Failure {
    fn from(e: worker::Error) -> Failure {
        Failure::internal(e)
    }
}

impl From<crm_store::StoreError> for Failure {
    fn from(e: crm_store::StoreError) -> Failure {
        match e {
            crm_store::StoreError::Core(c) => c.into(),
            other => Failure::internal(other),
        }
    }
}

pub type ApiResult<T> = std::result::Result<T, Failure>;

pub fn respond<T: Into<Answer>>(result: ApiResult<T>) -> Result<Response> {
    let (status, body) = match result {
        Ok(answer) => {
            let Answer(status, body) = answer.into();
            (status, body)
        }
        Err(Failure(e)) => (e.status(), e.body()),
    };
    if status == 204 {
        // A 204 may not carry a body (the runtime refuses to build one).
        return Ok(Response::empty()?.with_status(204));
    }
    Ok(Response::from_json(&body)?.with_status(status))
}

/// Status and JSON body of a successful answer.
pub struct Answer(pub u16, pub Value);

impl From<Value> for Answer {
    fn from(v: Value) -> Answer {
        Answer(200, v)
    }
}

impl From<()> for Answer {
    fn from((): ()) -> Answer {
        Answer(204, Value::Null)
    }
}

/// The `Idempotency-Key` header, checked like crm-host checks it.
pub fn idempotency_key(req: &Request) -> ApiResult<Option<String>> {
    let Some(key) = req.headers().get("idempotency-key")? else {
        return Ok(None);
    };
    Ok(Some(crm_store::idempotency::check_key(&key)?.to_owned()))
}

/// The body as JSON, with the size cap and a JSON error for malformed input.
pub async fn body(req: &mut Request) -> ApiResult<Value> {
    let bytes = req.bytes().await?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Failure::too_large("the request body is too large"));
    }
    serde_json::from_slice(&bytes).map_err(|e| CoreError::from_json(&e).into())
}

pub fn parse<T: serde::de::DeserializeOwned>(v: Value) -> ApiResult<T> {
    serde_json::from_value(v).map_err(|e| CoreError::from_json(&e).into())
}

/// Query parameters, checked against the allowed names.
pub fn query(
    req: &Request,
    allowed: &[&str],
) -> ApiResult<std::collections::BTreeMap<String, String>> {
    let url = req.url()?;
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in url.query_pairs() {
        if !allowed.contains(&k.as_ref()) {
            return Err(Failure::bad_request(format!(
                "unknown query parameter `{}`; allowed: {}",
                crm_core::time::clip(&k),
                allowed.join(", ")
            )));
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

/// The client IP from Cloudflare's connection header, never from the body.
pub fn client_ip(req: &Request) -> Option<String> {
    req.headers().get("cf-connecting-ip").ok().flatten()
}
