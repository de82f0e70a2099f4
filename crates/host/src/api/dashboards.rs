//! `GET /v1/dashboards/users/{id}`: a user's context (profile, department, hierarchy,
//! entity path), their report for the period, their most recent activities and a
//! summary of those.

use axum::Json;
use axum::extract::{Path, State};
use crm_api::dashboards::{Dashboard, RECENT};
use crm_store::keys::KeyScope;
use crm_store::listing::Subject;

use super::auth::Caller;
use super::error::Query;
use crate::error::{HostError, HostResult};
use crate::service::queries::{self, Params};
use crate::service::{App, reports};

pub async fn user(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> HostResult<Json<Dashboard>> {
    caller.require(KeyScope::Read)?;
    let tenant = caller.snapshot(&app).await?;
    let subject = Subject::User(id.clone());
    caller.may_read(&subject, &tenant)?;
    let dir = &tenant.snapshot.directory;
    let user = dir
        .user(&id)
        .ok_or_else(|| HostError::NotFound(format!("no user `{}`", crm_core::time::clip(&id))))?;
    let context = dir.user_context(user);
    let report =
        reports::report(&app, &tenant, subject.clone(), &params, &caller.principal).await?;
    let mut recent_params = Params::default();
    recent_params
        .0
        .insert("limit".to_owned(), RECENT.to_string());
    for k in ["since", "from", "to"] {
        if let Some(v) = params.get(k) {
            recent_params.0.insert(k.to_owned(), v.to_owned());
        }
    }
    let page = queries::list(&app, &tenant, subject, &recent_params, &caller.principal).await?;
    Ok(Json(Dashboard::new(
        id,
        context,
        report,
        page,
        crate::service::clock::now(),
    )?))
}
