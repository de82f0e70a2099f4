//! JSON errors (same shape and statuses as crm-host), API key auth, body parsing.

use crm_core::CoreError;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use worker::{Env, Request, Response, Result};

/// Largest request body: a full batch of 1000 activities at the metadata cap.
pub const MAX_BODY_BYTES: usize = 16 << 20;

#[derive(Debug)]
pub struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
    details: Value,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_input", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }

    pub fn not_implemented(message: impl Into<String>) -> ApiError {
        ApiError::new(501, "not_implemented", message)
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Storage or platform failure: logged, answered without internals.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        worker::console_error!("internal error: {e}");
        ApiError::new(500, "internal", "internal error; see the worker log")
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        let details = e
            .field
            .as_ref()
            .map_or_else(|| json!({}), |f| json!({ "field": f }));
        ApiError {
            status: e.code.http_status(),
            code: e.code.as_str(),
            message: e.message,
            details,
        }
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> ApiError {
        ApiError::internal(e)
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

pub fn respond<T: Into<Answer>>(result: ApiResult<T>) -> Result<Response> {
    let (status, body) = match result {
        Ok(answer) => {
            let Answer(status, body) = answer.into();
            (status, body)
        }
        Err(e) => (
            e.status,
            json!({ "error": { "code": e.code, "message": e.message, "details": e.details } }),
        ),
    };
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Ingest,
    Read,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Ingest => "ingest",
            Scope::Read => "read",
        }
    }
}

/// The caller: tenant and scopes come from the API key only.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    scopes: Vec<String>,
}

impl Caller {
    pub fn require(&self, scope: Scope) -> ApiResult<&Caller> {
        if self
            .scopes
            .iter()
            .any(|s| s == scope.as_str() || s == "admin")
        {
            Ok(self)
        } else {
            Err(ApiError::new(
                403,
                "forbidden",
                format!("this key lacks the `{}` scope", scope.as_str()),
            ))
        }
    }
}

pub async fn caller(req: &Request, env: &Env) -> ApiResult<Caller> {
    let header = req.headers().get("authorization")?.ok_or_else(|| {
        ApiError::new(
            401,
            "unauthorized",
            "missing `Authorization: Bearer <api key>`",
        )
    })?;
    let token = header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                401,
                "unauthorized",
                "the Authorization header must be `Bearer <api key>`",
            )
        })?;
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    crate::store::key(env, &hash)
        .await?
        .map(|(tenant_id, scopes)| Caller {
            tenant_id,
            scopes: scopes.split(',').map(str::to_owned).collect(),
        })
        .ok_or_else(|| ApiError::new(401, "unauthorized", "unknown or revoked API key"))
}

/// The body as JSON, with the size cap and a JSON error for malformed input.
pub async fn body(req: &mut Request) -> ApiResult<Value> {
    let bytes = req.bytes().await?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "too_large",
            "the request body is too large",
        ));
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
            return Err(ApiError::bad_request(format!(
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
