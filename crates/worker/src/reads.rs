//! Reads at the edge: permission checks, listings, reports and dashboards —
//! the same shapes as crm-host, read with the same `crm-store` statements and
//! aggregated by the same core code.

use std::collections::BTreeMap;

use crm_api::dashboards::{Dashboard, RECENT};
use crm_api::listing::ActivityPage;
use crm_api::permissions::{CheckAnswer, Checks};
use crm_api::reports::{Report, ReportRequest};
use crm_core::Timestamp;
use crm_core::duration::TimeRange;
use crm_core::engine::TenantSnapshot;
use crm_core::query::Cursor;
use crm_core::report::Aggregate;
use crm_store::keys::KeyScope;
use crm_store::listing::{self, Subject, UnknownSubject};
use crm_store::report;
use serde_json::Value;
use worker::{Env, Request};

use crate::auth::Caller;
use crate::d1::{self, DIALECT, Db};
use crate::http::{self, Answer, ApiResult, Ctx, Failure};
use crate::store;

pub async fn check(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    let checks = Checks::from_body(ctx.take_body()?)?;
    let snap = store::snapshot(env, &caller).await?;
    let answer = match checks {
        Checks::Batch(checks) => CheckAnswer::Batch {
            decisions: snap.directory.check_batch(&checks)?,
        },
        Checks::One(one) => CheckAnswer::One(snap.directory.check(&one.user_id, &one.permission)?),
    };
    Answer::of(200, &answer)
}

/// The conformance vectors' entry point, enabled only where `CONFORMANCE = "on"` (tests).
pub async fn conformance(req: &mut Request) -> ApiResult<Answer> {
    let body = http::hook_body(req).await?;
    let get = |k: &str| body.get(k).cloned().unwrap_or(Value::Null);
    let answer = crm_core::json_api::evaluate_json(
        &get("setup").to_string(),
        get("op").as_str().unwrap_or_default(),
        &get("input").to_string(),
    );
    Ok(Answer(
        200,
        serde_json::from_str(&answer).map_err(Failure::internal)?,
    ))
}

/// The subject's filter, resolved once against the directory (unknown or foreign ids
/// are 404, like on crm-host).
fn subject_filter(
    snap: &crm_core::engine::TenantSnapshot,
    subject: &Subject,
    range: TimeRange,
) -> ApiResult<crm_store::activities::Filter> {
    subject
        .filter(&snap.directory, range)
        .map_err(|UnknownSubject(m)| Failure::not_found(m))
}

fn range(params: &BTreeMap<String, String>) -> ApiResult<TimeRange> {
    Ok(crm_api::listing::range(params, now()?)?)
}

fn now() -> ApiResult<Timestamp> {
    Ok(Timestamp::from_millis(
        worker::Date::now().as_millis() as i64
    )?)
}

pub async fn list(ctx: &mut Ctx, env: &Env, subject: Subject) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    let snap = store::snapshot(env, &caller).await?;
    let f = listing_filter(&caller, &snap, subject, &ctx.query)?;
    page_answer(env, &caller, f, &ctx.query).await
}

/// The filter of a listing (`crm_api::listing`, as crm-host builds it), authorised.
fn listing_filter(
    caller: &Caller,
    snap: &TenantSnapshot,
    subject: Subject,
    params: &BTreeMap<String, String>,
) -> ApiResult<crm_store::activities::Filter> {
    let mut f = crm_api::listing::filter(&snap.directory, subject, params, range(params)?, |s| {
        caller.may_read(s, &snap.directory).map_err(|Failure(e)| e)
    })?;
    narrow(caller, snap, &mut f)?;
    Ok(f)
}

/// Narrows `f` to what the caller may read (`Principal::narrow_to_view`).
pub fn narrow(
    caller: &Caller,
    snap: &TenantSnapshot,
    f: &mut crm_store::activities::Filter,
) -> ApiResult<()> {
    caller
        .principal
        .narrow_to_view(f, &snap.directory)
        .map_err(|crm_api::access::Denied(m)| Failure(crm_api::ApiError::forbidden(m)))
}

async fn page_answer(
    env: &Env,
    caller: &Caller,
    f: crm_store::activities::Filter,
    params: &BTreeMap<String, String>,
) -> ApiResult<Answer> {
    Answer::of(
        200,
        &ActivityPage::from(page(env, caller, f, params).await?),
    )
}

/// One page of the activities `f` selects, newest first.
async fn page(
    env: &Env,
    caller: &Caller,
    f: crm_store::activities::Filter,
    params: &BTreeMap<String, String>,
) -> ApiResult<listing::Page> {
    let limit = crm_api::listing::limit(params)?;
    let cursor = params
        .get("cursor")
        .map(|c| Cursor::decode(c))
        .transpose()?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let rows = d1::query(
        &db,
        &listing::page(DIALECT, caller.tenant(), &f, cursor, limit),
    )
    .await?;
    Ok(listing::decode_page(&rows, limit)?)
}

/// `GET /v1/activities/{id}`: one record as stored; 404 outside the caller's view.
pub async fn one(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let caller = ctx.caller()?.clone();
    let snap = store::snapshot(env, &caller).await?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let missing = || Failure::not_found(format!("no activity `{}`", crm_core::time::clip(&id)));
    let row = d1::query_opt(
        &db,
        &crm_store::activities::by_id(DIALECT, caller.tenant(), &id),
    )
    .await?
    .ok_or_else(missing)?;
    let (body, user, path) = crm_store::activities::decode_by_id(&row)?;
    if !caller
        .principal
        .may_read_record(&user, &path, &snap.directory)
    {
        return Err(missing());
    }
    let record: Value = serde_json::from_str(&body).map_err(Failure::internal)?;
    Ok(Answer(200, record))
}

/// `GET /v1/entities/{type}/{id}/activities`: an entity's history; a limited viewer
/// token sees the touches of its own user or subtree.
pub async fn entity(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    let mut params = ctx.query.clone();
    params.insert("entityType".to_owned(), ctx.param("type")?);
    params.insert("entityId".to_owned(), ctx.param("id")?);
    let snap = store::snapshot(env, &caller).await?;
    let mut f = crm_api::listing::filter(
        &snap.directory,
        Subject::Tenant,
        &params,
        range(&params)?,
        |s| {
            if *s == Subject::Tenant {
                Ok(())
            } else {
                caller.may_read(s, &snap.directory).map_err(|Failure(e)| e)
            }
        },
    )?;
    narrow(&caller, &snap, &mut f)?;
    page_answer(env, &caller, f, &params).await
}

pub async fn report(ctx: &mut Ctx, env: &Env, subject: Subject) -> ApiResult<Answer> {
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Read)?;
    let params = ctx.query.clone();
    let snap = store::snapshot(env, &caller).await?;
    Answer::of(
        200,
        &report_body(env, &caller, &snap, &subject, &params).await?,
    )
}

/// The subject's report: hourly rollups for whole hours, raw rows at the edges,
/// merged by the core (as crm-host).
async fn report_body(
    env: &Env,
    caller: &Caller,
    snap: &TenantSnapshot,
    subject: &Subject,
    params: &BTreeMap<String, String>,
) -> ApiResult<Report> {
    if *subject == Subject::Tenant {
        caller.require_tenant_wide()?;
    } else {
        caller.may_read(subject, &snap.directory)?;
    }
    let req = ReportRequest::parse(params, now()?, &snap.policy)?;
    let mut f = subject_filter(snap, subject, req.range)?;
    narrow(caller, snap, &mut f)?;
    let db = Db::of_tenant(env, caller.tenant()).await?;
    let mut partials = Vec::new();
    let tier = req.tz.time_tier(req.range.from, req.range.to);
    for part in report::parts(DIALECT, caller.tenant(), &f, tier) {
        let rows = d1::query(&db, &part.statement).await?;
        let rows = rows
            .iter()
            .map(|row| part.decode(row))
            .collect::<Result<Vec<_>, _>>()?;
        let mut partial = Aggregate::new(req.group_by, req.tz);
        partial.add_inputs(&rows)?;
        partials.push(partial);
    }
    let mut report = Report::new(partials, subject, req.range, &snap.directory)?;
    if req.include_user_details {
        let rows = d1::query(
            &db,
            &listing::page(
                DIALECT,
                caller.tenant(),
                &f,
                None,
                crm_api::reports::USER_DETAIL_PAGE,
            ),
        )
        .await?;
        let page = listing::decode_page(&rows, crm_api::reports::USER_DETAIL_PAGE)?;
        report.user_details = Some(crm_api::reports::user_details(&page, &snap.directory)?);
    }
    Ok(report)
}

/// `GET /v1/dashboards/users/{id}`: context, report, recent activities and their summary.
pub async fn dashboard(ctx: &mut Ctx, env: &Env) -> ApiResult<Answer> {
    let id = ctx.param("id")?;
    let caller = ctx.caller()?.clone();
    caller.require(KeyScope::Read)?;
    let params = ctx.query.clone();
    let snap = store::snapshot(env, &caller).await?;
    let subject = Subject::User(id.clone());
    caller.may_read(&subject, &snap.directory)?;
    let dir = &snap.directory;
    let user = dir
        .user(&id)
        .ok_or_else(|| Failure::not_found(format!("no user `{}`", crm_core::time::clip(&id))))?;
    let report = report_body(env, &caller, &snap, &subject, &params).await?;
    let mut recent_params: BTreeMap<String, String> = params
        .iter()
        .filter(|(k, _)| ["since", "from", "to"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    recent_params.insert("limit".to_owned(), RECENT.to_string());
    let f = listing_filter(&caller, &snap, subject, &recent_params)?;
    let page = page(env, &caller, f, &recent_params).await?;
    let now = Timestamp::from_millis(worker::Date::now().as_millis() as i64)?;
    let answer = Dashboard::new(id, dir.user_context(user), report, page, now)?;
    Answer::of(200, &answer)
}
