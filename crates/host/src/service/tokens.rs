//! Issuing viewer tokens (the API and the demo's dashboard link).

use crm_core::viewer_token::{self, Claims, TokenScope};

use super::{App, clock};
use crate::error::HostResult;

/// A signed token for `scope` in `tenant`, valid `ttl_ms`; and its expiry.
pub async fn issue(
    app: &App,
    tenant: &str,
    scope: TokenScope,
    ttl_ms: i64,
) -> HostResult<(String, i64)> {
    let expires_at = clock::now().millis() + ttl_ms;
    let (secret, _) = app.store.tenant_secret(tenant).await?;
    let claims = Claims {
        tenant: tenant.to_owned(),
        scope,
        expires_at,
    };
    Ok((viewer_token::sign(&claims, &secret), expires_at))
}
