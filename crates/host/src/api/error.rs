//! Errors as HTTP answers, and extractors whose rejections are JSON errors too.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::service::limits::BodyPermit;
use axum::http::header;
use crm_api::request;

use crate::error::HostError;
use crate::service::App;
use crate::service::queries::Params;

impl IntoResponse for HostError {
    fn into_response(self) -> Response {
        if let HostError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "internal error");
        }
        crate::service::stats::Stats::refused(self.code());
        let answer = self.to_api();
        let status =
            StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(answer.body())).into_response();
        if let Some(secs) = answer.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Longest a client may take to send its body: slow senders hold a budget reservation.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A JSON body, read within the host's bounds: its size (large-body endpoints 16 MiB,
/// others 1 MiB) is reserved from a budget before reading (503 when the budget is
/// spent), and depth, value count and string length are checked while reading, before
/// a tree is built (413). The reservation is held until the body is dropped.
#[derive(Debug)]
pub struct Body(
    pub Value,
    #[allow(
        dead_code,
        reason = "held, not read: releases the budget when the body is dropped"
    )]
    BodyPermit,
);

/// The tenant a request's body counts against (set by the `Caller` extractor, which runs
/// before the body is read): one tenant's slow senders cannot spend every tenant's
/// budget.
#[derive(Debug, Clone)]
pub struct BodyOwner(pub String);

/// The documented endpoint a request was routed to (axum's matched path template and
/// the method): its body limit, query parameters and scope come from the table.
pub fn endpoint_of(
    method: &axum::http::Method,
    extensions: &axum::http::Extensions,
) -> Option<&'static crm_api::endpoints::Endpoint> {
    let template = extensions.get::<axum::extract::MatchedPath>()?.as_str();
    crm_api::endpoints::ENDPOINTS
        .iter()
        .find(|e| e.path == template && e.method == method.as_str())
}

impl FromRequest<App> for Body {
    type Rejection = HostError;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        let endpoint = endpoint_of(req.method(), req.extensions())
            .ok_or_else(|| HostError::internal(anyhow::anyhow!("a body on an unrouted path")))?;
        let headers = req.headers();
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let max = request::body_head(
            endpoint,
            text(header::CONTENT_TYPE),
            text(header::CONTENT_LENGTH),
        )
        .map_err(HostError::Api)?;
        let declared = text(header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
        let large = endpoint.body_limit() == crm_api::endpoints::BodyLimit::Large;
        let tenant = req.extensions().get::<BodyOwner>().map(|o| o.0.clone());
        let permit = app
            .limits
            .body(tenant.as_deref(), declared.unwrap_or(max), large)?;
        let read = tokio::time::timeout(
            BODY_READ_TIMEOUT,
            axum::body::to_bytes(req.into_body(), max),
        )
        .await
        .map_err(|_| {
            HostError::Api(crm_api::error::ApiError::new(
                crm_api::error::ApiCode::Timeout,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            ))
        })?;
        let bytes = read.map_err(|e| {
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                HostError::Api(request::body_too_large(max))
            } else {
                HostError::BadRequest("the request body could not be read".to_owned())
            }
        })?;
        Ok(Body(
            request::json_body(&bytes).map_err(HostError::Api)?,
            permit,
        ))
    }
}

impl Body {
    /// Deserializes into a core type; errors name the problem without Rust internals.
    pub fn parse<T: serde::de::DeserializeOwned>(self) -> Result<T, HostError> {
        serde_json::from_value(self.0)
            .map_err(|e| HostError::Core(crm_core::CoreError::from_json(&e)))
    }
}

/// Query parameters as strings; the service layer checks names and values.
#[derive(Debug)]
pub struct Query(pub Params);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = HostError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let allowed = endpoint_of(&parts.method, &parts.extensions).map_or(&[][..], |e| e.query);
        request::query(parts.uri.query(), allowed)
            .map(|q| Query(Params(q)))
            .map_err(HostError::Api)
    }
}

pub async fn not_found() -> HostError {
    HostError::Api(crm_api::ApiError::no_such_endpoint())
}

pub async fn method_not_allowed() -> HostError {
    HostError::Api(crm_api::ApiError::method_not_allowed())
}
