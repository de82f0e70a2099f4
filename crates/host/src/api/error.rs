//! Errors as HTTP answers, and extractors whose rejections are JSON errors too.

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::HostError;
use crate::service::queries::Params;

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

/// A JSON body; malformed JSON, a wrong content type or an oversized body answer a JSON error.
#[derive(Debug)]
pub struct Body(pub Value);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = HostError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(r: &JsonRejection) -> HostError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            HostError::PayloadTooLarge("the request body is too large".to_owned())
        }
        _ => HostError::BadRequest(r.body_text()),
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
