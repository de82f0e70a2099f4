//! Issuing viewer tokens (the API and the demo's dashboard link).

use crm_api::viewer_tokens::{self, IssuedViewerToken};
use crm_core::viewer_token::TokenScope;

use super::{App, clock};
use crate::error::{HostError, HostResult};

/// A signed token for `scope` in `tenant`, valid `ttl_ms`, with a fresh id.
pub async fn issue(
    app: &App,
    tenant: &str,
    scope: TokenScope,
    ttl_ms: i64,
) -> HostResult<IssuedViewerToken> {
    let now = clock::now();
    let (secret, _) = app.store.tenant_secret(tenant).await?;
    viewer_tokens::issue(
        tenant,
        scope,
        app.ids.next(now),
        now.millis() + ttl_ms,
        &secret,
    )
    .map_err(HostError::Api)
}
