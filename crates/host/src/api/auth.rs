//! `Authorization: Bearer <api key | viewer token>`. The tenant comes from the key or
//! the signed token and nothing else; viewer tokens are read-only and may be limited to
//! one user or one department subtree.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use crm_api::access::Denied;
use crm_api::request::{self, Credential};
use crm_api::viewer_tokens;
use crm_store::keys::KeyScope;

use super::error::BodyOwner;
use crate::engine::Tenant;
use crate::error::HostError;
use crate::service::{App, clock};

pub use crm_api::access::Principal;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    /// The tenant's directory version when the credential was checked.
    pub tenant_version: u64,
    pub principal: Principal,
    /// From the connection (or the configured trusted proxy header).
    pub ip_address: Option<String>,
    /// This request's place among the credential's requests in flight.
    _in_flight: Arc<tokio::sync::OwnedSemaphorePermit>,
}

impl Caller {
    pub fn tenant(&self) -> &str {
        &self.tenant_id
    }

    /// The caller's tenant snapshot, at least as new as the version its credential saw.
    pub async fn snapshot(&self, app: &App) -> Result<Arc<Tenant>, HostError> {
        app.tenants
            .get(&self.tenant_id, Some(self.tenant_version))
            .await
    }

    /// Keys need the scope (admin implies all); viewer tokens may only read.
    pub fn require(&self, scope: KeyScope) -> Result<&Caller, HostError> {
        self.principal.require(scope).map_err(denied)?;
        Ok(self)
    }
}

fn denied(Denied(message): Denied) -> HostError {
    HostError::Forbidden(message)
}

impl FromRequestParts<App> for Caller {
    type Rejection = HostError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .map(|h| h.to_str().unwrap_or_default());
        let credential = request::credential(header).map_err(HostError::Api)?;
        // The endpoint's scope is decided here, before any body is read: a credential
        // that may not use the endpoint never holds a body budget.
        let scope = super::error::endpoint_of(&parts.method, &parts.extensions)
            .and_then(|e| e.scope())
            .and_then(KeyScope::parse);
        let ip_address = client_ip(parts, app);
        let now = clock::now().millis();
        let caller = match credential {
            Credential::ViewerToken(token) => viewer(app, token, now, ip_address).await?,
            Credential::ApiKey(token) => {
                let key = app.store.key(token, now).await?.ok_or_else(|| {
                    HostError::Unauthorized("unknown, expired or revoked API key".to_owned())
                })?;
                let in_flight = Arc::new(app.limits.admit(&key.id)?);
                Caller {
                    tenant_id: key.tenant_id,
                    tenant_version: key.tenant_version,
                    principal: Principal::Key {
                        id: key.id,
                        scopes: key.scopes,
                    },
                    ip_address,
                    _in_flight: in_flight,
                }
            }
        };
        if let Some(scope) = scope {
            caller.require(scope)?;
        }
        parts.extensions.insert(BodyOwner(caller.tenant_id.clone()));
        if let Some(slot) = parts.extensions.get::<crate::service::stats::TenantSlot>() {
            // The request counter attributes this answer to the caller's tenant.
            let _ = slot.0.set(caller.tenant_id.clone());
        }
        Ok(caller)
    }
}

async fn viewer(
    app: &App,
    token: &str,
    now: i64,
    ip_address: Option<String>,
) -> Result<Caller, HostError> {
    let (tenant, token_id) = viewer_tokens::claimed(token).map_err(HostError::Api)?;
    let stored = app.store.viewer_check(&tenant, token_id).await?;
    let (claims, version) = viewer_tokens::verify(token, stored, now).map_err(HostError::Api)?;
    let credential = format!("viewer:{}", &token[token.len().saturating_sub(16)..]);
    Ok(Caller {
        tenant_id: claims.tenant,
        tenant_version: version,
        principal: Principal::Viewer {
            scope: claims.scope,
            expires_at: claims.expires_at,
        },
        ip_address,
        _in_flight: Arc::new(app.limits.admit(&credential)?),
    })
}

/// The client's address. Directly connected clients: the TCP peer. Behind a reverse
/// proxy (`client_ip_header` set, and the peer is a trusted proxy): the rightmost
/// address of the header that is not itself a trusted proxy — entries to its left
/// were written by the client and prove nothing.
fn client_ip(parts: &Parts, app: &App) -> Option<String> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let (Some(name), Some(peer)) = (&app.client_ip_header, peer)
        && app.trusted_proxies.trusts(peer)
    {
        let values: Vec<IpAddr> = parts
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        if let Some(client) = values
            .iter()
            .rev()
            .find(|a| !app.trusted_proxies.trusts(**a))
        {
            return Some(client.to_string());
        }
        if let Some(first) = values.first() {
            return Some(first.to_string());
        }
    }
    peer.map(|p| p.to_string())
}
