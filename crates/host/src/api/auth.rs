//! `Authorization: Bearer <api key>`. The tenant comes from the key and nothing else.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use std::sync::Arc;

use crm_store::keys::{KeyRecord, KeyScope};

use crate::engine::Tenant;
use crate::error::HostError;
use crate::service::{App, clock};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: KeyRecord,
    /// From the connection (or the configured trusted proxy header).
    pub ip_address: Option<String>,
}

impl Caller {
    pub fn tenant(&self) -> &str {
        &self.key.tenant_id
    }

    /// The caller's tenant snapshot, at least as new as the version its key lookup saw.
    pub async fn snapshot(&self, app: &App) -> Result<Arc<Tenant>, HostError> {
        app.tenants
            .get(&self.key.tenant_id, Some(self.key.tenant_version))
            .await
    }

    pub fn require(&self, scope: KeyScope) -> Result<&Caller, HostError> {
        if self.key.allows(scope) {
            Ok(self)
        } else {
            Err(HostError::Forbidden(format!(
                "this key lacks the `{}` scope",
                scope.as_str()
            )))
        }
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = HostError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                HostError::Unauthorized("missing `Authorization: Bearer <api key>`".to_owned())
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                HostError::Unauthorized(
                    "the Authorization header must be `Bearer <api key>`".to_owned(),
                )
            })?
            .to_owned();
        let key = app
            .store
            .key(&token, clock::now().millis())
            .await?
            .ok_or_else(|| {
                HostError::Unauthorized("unknown, expired or revoked API key".to_owned())
            })?;
        Ok(Caller {
            key,
            ip_address: client_ip(parts, app),
        })
    }
}

fn client_ip(parts: &Parts, app: &App) -> Option<String> {
    if let Some(name) = &app.client_ip_header {
        // Behind a trusted proxy: the first address of the header is the client.
        if let Some(v) = parts
            .headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
        {
            let first = v.split(',').next().map(str::trim).unwrap_or_default();
            if let Ok(ip) = first.parse::<std::net::IpAddr>() {
                return Some(ip.to_string());
            }
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}
