//! The read endpoints' one way in: `crm_api::flow` flows, run for the caller on its
//! tenant's snapshot and the store's read pool (`store::flows` drives them).

use crate::error::HostResult;
use crate::service::{App, clock};
use crate::store::Build;

use super::auth::Caller;

/// Runs the flow `build` makes for `caller`.
pub async fn read<A: Send + 'static>(app: &App, caller: &Caller, build: Build<A>) -> HostResult<A> {
    let tenant = caller.snapshot(app).await?;
    app.store
        .flow(tenant, caller.principal.clone(), clock::now(), build)
        .await
}
