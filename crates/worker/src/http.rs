//! The request as the edge's handlers see it, and their answers. Everything checked of
//! a request — route, query, credential form, scope, content type, body size and JSON
//! limits — is `crm_api`'s, the same code crm-host runs; this file only reads it off a
//! `worker::Request` (the body streamed, stopping at the endpoint's limit) and writes
//! `crm_api` answers back as `worker::Response`s, with `Retry-After` where one helps.

use std::collections::BTreeMap;

use crm_api::endpoints::{BodyLimit, Route};
use crm_api::error::{ApiCode, ApiError};
use crm_api::request;
use crm_core::CoreError;
use futures_util::StreamExt;
use serde_json::Value;
use worker::{Request, Response, Result};

use crate::auth::Caller;

/// A failed request: the shared API error (`crm_api`'s vocabulary, same codes, statuses,
/// bodies and retry hints as crm-host), wrapped so the worker's own conversions can
/// live here.
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl Failure {
    pub fn new(code: ApiCode, message: impl Into<String>) -> Failure {
        Failure(ApiError::new(code, message))
    }

    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure(ApiError::invalid(message))
    }

    pub fn too_large(message: impl Into<String>) -> Failure {
        Failure(ApiError::too_large(message))
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure(ApiError::not_found(message))
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

    /// A D1 failure, classified like the host's database errors (busy → 503 with
    /// `Retry-After`, full → 507, constraint → 409, else 500).
    pub fn storage(e: impl std::fmt::Display) -> Failure {
        let message = e.to_string();
        let class = crm_api::storage::Failure::of_d1_message(&message);
        worker::console_error!("D1 refused ({class:?}): {message}");
        Failure(class.answer())
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure(e)
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
            crm_store::StoreError::NotFound(m) => Failure::not_found(&m),
            other => Failure::internal(other),
        }
    }
}

pub type ApiResult<T> = std::result::Result<T, Failure>;

/// An answer as a response; errors carry their `Retry-After`.
pub fn respond<T: Into<Answer>>(result: ApiResult<T>) -> Result<Response> {
    let (status, body, retry_after) = match result {
        Ok(answer) => {
            let Answer(status, body) = answer.into();
            (status, body, None)
        }
        Err(Failure(e)) => (
            e.status(),
            serde_json::to_value(e.body()).map_err(|e| worker::Error::RustError(e.to_string()))?,
            e.retry_after,
        ),
    };
    if status == 204 {
        // A 204 may not carry a body (the runtime refuses to build one).
        return Ok(Response::empty()?.with_status(204));
    }
    let mut response = Response::from_json(&body)?.with_status(status);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .set("retry-after", &secs.to_string())?;
    }
    Ok(response)
}

/// Status and JSON body of a successful answer.
pub struct Answer(pub u16, pub Value);

impl Answer {
    /// A typed answer (one of `crm_api`'s structs) with its status.
    pub fn of<T: serde::Serialize>(status: u16, body: &T) -> ApiResult<Answer> {
        Ok(Answer(
            status,
            serde_json::to_value(body).map_err(Failure::internal)?,
        ))
    }
}

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

/// What a handler gets: the routed request, checked and read by `crm_api`'s rules.
pub struct Ctx {
    pub route: Route,
    /// Query parameters, only those the endpoint documents.
    pub query: BTreeMap<String, String>,
    /// The authenticated caller, already holding the endpoint's scope (public
    /// endpoints have none).
    pub caller: Option<Caller>,
    /// The JSON body, for endpoints that take one.
    pub body: Option<Value>,
    pub idempotency_key: Option<String>,
    /// From Cloudflare's connection header, never from the body.
    pub client_ip: Option<String>,
}

impl Ctx {
    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller
            .as_ref()
            .ok_or_else(|| Failure::internal("a handler of a public endpoint asked for its caller"))
    }

    pub fn param(&self, name: &str) -> ApiResult<String> {
        Ok(self.route.param(name)?)
    }

    /// The body (taken: a handler reads it once).
    pub fn take_body(&mut self) -> ApiResult<Value> {
        self.body
            .take()
            .ok_or_else(|| Failure::internal("a handler without a body asked for one"))
    }

    pub fn parse<T: serde::de::DeserializeOwned>(&mut self) -> ApiResult<T> {
        Ok(request::parse(self.take_body()?)?)
    }
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// Reads the request against its route: query, credential (whose scope must cover the
/// endpoint, decided before any body is read), then the body within its limit.
pub async fn context(req: &mut Request, env: &worker::Env, route: Route) -> ApiResult<Ctx> {
    let endpoint = route.endpoint;
    // crm-host's order: the query right after routing, then credential and scope,
    // the `Idempotency-Key`, and last the body.
    let url = req.url()?;
    let query = request::query(url.query(), endpoint.query)?;
    if endpoint.access == crm_api::endpoints::Access::Operator {
        crm_api::provisioning::check_operator(
            crate::operator::secret(env).as_deref(),
            header(req, "authorization").as_deref(),
        )?;
    }
    let caller = match endpoint.scope() {
        None => None,
        Some(scope) => {
            let caller = crate::auth::caller(req, env).await?;
            if let Some(scope) = crm_store::keys::KeyScope::parse(scope) {
                caller.require(scope)?;
            }
            Some(caller)
        }
    };
    let idempotency_key = if endpoint.idempotent {
        request::idempotency_key(header(req, "idempotency-key").as_deref().map(str::as_bytes))?
    } else {
        None
    };
    let body = if endpoint.body_limit() == BodyLimit::None {
        None
    } else {
        Some(body(req, endpoint).await?)
    };
    Ok(Ctx {
        route,
        query,
        caller,
        body,
        idempotency_key,
        client_ip: header(req, "cf-connecting-ip"),
    })
}

/// The body as JSON: refused on its declared length before reading, read as a stream
/// that stops at the endpoint's limit (an isolate's memory is shared by its requests),
/// then checked against the JSON limits while parsing.
pub async fn body(req: &mut Request, endpoint: &crm_api::endpoints::Endpoint) -> ApiResult<Value> {
    let max = request::body_head(
        endpoint,
        header(req, "content-type").as_deref(),
        header(req, "content-length").as_deref(),
    )?;
    let mut bytes = Vec::new();
    // A request without a body has no stream: it reads as empty (and fails to parse).
    if let Ok(mut stream) = req.stream() {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if bytes.len() + chunk.len() > max {
                return Err(request::body_too_large(max).into());
            }
            bytes.extend_from_slice(&chunk);
        }
    }
    Ok(request::json_body(&bytes)?)
}

/// A JSON body of the worker's own test hooks (not in the API table): the large limit.
pub async fn hook_body(req: &mut Request) -> ApiResult<Value> {
    let max = crm_api::endpoints::LARGE_BODY;
    let bytes = req.bytes().await?;
    if bytes.len() > max {
        return Err(request::body_too_large(max).into());
    }
    Ok(request::json_body(&bytes)?)
}

impl From<crm_api::flow::FlowError> for Failure {
    fn from(e: crm_api::flow::FlowError) -> Failure {
        match e {
            crm_api::flow::FlowError::Refused(api) => Failure(api),
            crm_api::flow::FlowError::Internal(m) => Failure::internal(m),
        }
    }
}
