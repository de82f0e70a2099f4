//! The endpoints' one way into `crm_api::flow`: the flow runs for the caller on its
//! tenant's snapshot — reads on the store's pool, writes through its writer
//! (`store::flows` drives them).

use crate::error::HostResult;
use crate::service::{App, clock};
use crate::store::Build;

use super::auth::Caller;

/// Runs the flow `build` makes for `caller`.
pub async fn run<A: Send + 'static>(app: &App, caller: &Caller, build: Build<A>) -> HostResult<A> {
    let tenant = caller.snapshot(app).await?;
    app.store
        .flow(tenant, caller.principal.clone(), clock::now(), build)
        .await
}
