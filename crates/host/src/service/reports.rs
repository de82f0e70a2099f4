//! Reports for the console (`crm-host report`): the report endpoint's flow
//! (`crm_api::flow::report`), read as the operator.

use std::sync::Arc;

use crm_api::access::Principal;
use crm_api::flow::report::ReportFlow;
use crm_api::reports::Report;
use crm_store::listing::Subject;

use super::queries::Params;
use super::{App, clock};
use crate::engine::Tenant;
use crate::error::HostResult;

pub async fn report(
    app: &App,
    tenant: Arc<Tenant>,
    subject: Subject,
    params: Params,
) -> HostResult<Report> {
    let build: crate::store::Build<Report> =
        Box::new(move |cx| Box::new(ReportFlow::new(cx, subject, params.0)));
    app.store
        .flow(tenant, Principal::operator(), clock::now(), build)
        .await
}
