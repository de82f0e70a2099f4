//! Errors as HTTP answers, and extractors whose rejections are JSON errors too.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::service::limits::BodyPermit;
use axum::http::header;
use crm_core::json_limits::{self, JsonLimits};

use crate::error::HostError;
use crate::service::queries::Params;
use crate::service::{App, limits};

impl IntoResponse for HostError {
    fn into_response(self) -> Response {
        if let HostError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "internal error");
        }
        crate::service::stats::Stats::refused(self.code());
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after() {
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

impl FromRequest<App> for Body {
    type Rejection = HostError;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|m| m.trim() == "application/json" || m.trim().ends_with("+json"))
            });
        if !json {
            return Err(HostError::BadRequest(
                "send the body as `Content-Type: application/json`".to_owned(),
            ));
        }
        let path = req.uri().path();
        let large = path == "/v1/activities" || path == "/v1/directory";
        let max = if large {
            limits::LARGE_BODY
        } else {
            limits::SMALL_BODY
        };
        let too_large = || {
            HostError::PayloadTooLarge(format!(
                "the request body is larger than {} KiB",
                max / 1024
            ))
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(too_large());
        }
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
            HostError::Api(crm_core::api_error::ApiError::new(
                crm_core::api_error::ApiCode::Timeout,
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
                too_large()
            } else {
                HostError::BadRequest("the request body could not be read".to_owned())
            }
        })?;
        json_limits::check(&bytes, JsonLimits::REQUEST)?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| HostError::Core(crm_core::CoreError::from_json(&e)))?;
        Ok(Body(value, permit))
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

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|q| Query(Params(q.0)))
            .map_err(|r: QueryRejection| HostError::BadRequest(r.body_text()))
    }
}

pub async fn not_found() -> HostError {
    HostError::NotFound("no such endpoint".to_owned())
}

pub async fn method_not_allowed() -> HostError {
    HostError::MethodNotAllowed("this endpoint does not support that method".to_owned())
}
