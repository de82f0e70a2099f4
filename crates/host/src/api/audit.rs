//! `GET /v1/audit/verify`: recomputes the tenant's hash chain; 200 either way, with
//! `ok` and, when broken, the first bad sequence number and why.

use axum::Json;
use axum::extract::State;

use super::auth::Caller;
use crate::error::{HostError, HostResult};
use crate::service::{App, audit};

pub async fn verify(
    State(app): State<App>,
    caller: Caller,
) -> HostResult<Json<audit::Verification>> {
    caller.require_tenant_wide()?;
    let (store, tenant) = (app.store.clone(), caller.tenant().to_owned());
    let result = tokio::task::spawn_blocking(move || audit::verify(&store, &tenant, |_, _| {}))
        .await
        .map_err(|e| HostError::internal(anyhow::anyhow!("verify task: {e}")))??;
    Ok(Json(result))
}
