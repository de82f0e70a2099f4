//! The CRM operations: `POST /v1/operations/{operation}` (metering for any CRM) and the
//! engine's own leads (`POST /v1/leads`, `PATCH`/`GET /v1/leads/{id}`, `GET
//! /v1/leads`). Each checks, prices, charges, does and records in one transaction
//! (`service::crm`); the answer carries the recorded activity and the credits charged.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use crm_api::operations;
use crm_store::keys::KeyScope;
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::error::{Body, Query};
use super::idempotency::IdempotencyKey;
use crate::error::{HostError, HostResult};
use crate::service::App;
use crate::service::crm::{self, Done, Effect, LeadFields};

/// Lead listing page size when none is asked for, and the most one may ask for.
const DEFAULT_LEADS: usize = 50;
const MAX_LEADS: usize = 500;

type Answer = HostResult<(StatusCode, Json<Value>)>;

/// The HTTP answer for an operation's outcome (`crm_api::operations`).
fn answer(done: Done, fresh_status: StatusCode) -> Answer {
    let (status, body) = operations::answer(
        &done.stored,
        done.result,
        done.error_code,
        fresh_status.as_u16(),
    )
    .map_err(HostError::Api)?;
    Ok((
        StatusCode::from_u16(status).map_err(HostError::internal)?,
        Json(body),
    ))
}

/// `POST /v1/operations/{operation}`: the body is an activity without `id` and
/// `operation` (`userId`, `entityType`, `entityId`, `sessionId`, `metadata`,
/// `compliance`, and `outcome: "failed"` when the CRM's own operation failed).
pub async fn operation(
    State(app): State<App>,
    caller: Caller,
    Path(operation): Path<String>,
    key: IdempotencyKey,
    body: Body,
) -> Answer {
    caller.require(KeyScope::Ingest)?;
    let tenant = caller.snapshot(&app).await?;
    let id = crm::activity_id(
        &app,
        caller.tenant(),
        &format!("op:{operation}"),
        key.as_deref(),
    );
    let Value::Object(input) = operations::metering_input(&operation, &id, body.0)? else {
        return Err(HostError::internal(anyhow::anyhow!(
            "metering input is an object"
        )));
    };
    let done = crm::run(
        &app,
        &tenant,
        input,
        Effect::None,
        caller.ip_address.as_deref(),
    )
    .await?;
    answer(done, StatusCode::CREATED)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LeadRequest {
    user_id: String,
    #[serde(default)]
    lead_id: Option<String>,
    #[serde(default)]
    lead: Option<LeadFields>,
    #[serde(default)]
    changes: Option<LeadFields>,
    #[serde(default)]
    expected_version: Option<u64>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    compliance: Option<Value>,
}

/// The recorded activity of a lead operation: the lead's id and status, nothing of its
/// content.
fn lead_activity(
    operation: &str,
    activity_id: &str,
    req: &LeadRequest,
    lead_id: Option<&str>,
    status: Option<&str>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("userId".to_owned(), json!(req.user_id));
    m.insert("entityType".to_owned(), json!("lead"));
    if let Some(l) = lead_id {
        m.insert("entityId".to_owned(), json!(l));
    }
    if let Some(s) = &req.session_id {
        m.insert("sessionId".to_owned(), json!(s));
    }
    if let Some(c) = &req.compliance {
        m.insert("compliance".to_owned(), c.clone());
    }
    if let Some(s) = status {
        m.insert("metadata".to_owned(), json!({ "leadStatus": s }));
    }
    crm::activity_input(operation, activity_id, m)
}

fn status_name(f: &LeadFields) -> Option<String> {
    f.status
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
}

pub async fn create_lead(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    body: Body,
) -> Answer {
    caller.require(KeyScope::Ingest)?;
    let req: LeadRequest = body.parse()?;
    let fields = req.lead.clone().ok_or_else(|| {
        crm_core::CoreError::invalid("lead", "`lead` with at least a `title` is required")
    })?;
    if fields.title.is_none() {
        return Err(crm_core::CoreError::invalid("lead.title", "a lead needs a `title`").into());
    }
    if req.changes.is_some() || req.expected_version.is_some() {
        return Err(HostError::BadRequest(
            "`changes` and `expectedVersion` belong to PATCH".to_owned(),
        ));
    }
    let tenant = caller.snapshot(&app).await?;
    let activity_id = crm::activity_id(&app, caller.tenant(), "leads:create", key.as_deref());
    let lead_id = match &req.lead_id {
        Some(id) => {
            crm_core::names::validate_id("leadId", id)?;
            id.clone()
        }
        None => format!("lead-{}", activity_id.trim_start_matches("idem-")),
    };
    let status = status_name(&fields).or_else(|| Some("open".to_owned()));
    let input = lead_activity(
        "crm.leads.create",
        &activity_id,
        &req,
        Some(&lead_id),
        status.as_deref(),
    );
    let effect = Effect::CreateLead {
        id: lead_id,
        fields,
    };
    answer(
        crm::run(&app, &tenant, input, effect, caller.ip_address.as_deref()).await?,
        StatusCode::CREATED,
    )
}

pub async fn update_lead(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    key: IdempotencyKey,
    body: Body,
) -> Answer {
    caller.require(KeyScope::Ingest)?;
    crm_core::names::validate_id("id", &id)?;
    let req: LeadRequest = body.parse()?;
    let changes = req
        .changes
        .clone()
        .ok_or_else(|| crm_core::CoreError::invalid("changes", "`changes` is required"))?;
    if req.lead.is_some() || req.lead_id.is_some() {
        return Err(HostError::BadRequest(
            "the lead is named by the path; send `changes`".to_owned(),
        ));
    }
    let tenant = caller.snapshot(&app).await?;
    let activity_id = crm::activity_id(
        &app,
        caller.tenant(),
        &format!("leads:update:{id}"),
        key.as_deref(),
    );
    let input = lead_activity(
        "crm.leads.update",
        &activity_id,
        &req,
        Some(&id),
        status_name(&changes).as_deref(),
    );
    let effect = Effect::UpdateLead {
        id,
        changes,
        expected_version: req.expected_version,
    };
    answer(
        crm::run(&app, &tenant, input, effect, caller.ip_address.as_deref()).await?,
        StatusCode::OK,
    )
}

fn user_param(params: &crate::service::queries::Params) -> HostResult<LeadRequest> {
    let user_id = params.get("userId").ok_or_else(|| {
        crm_core::CoreError::invalid("userId", "`userId` (who reads) is required")
    })?;
    Ok(LeadRequest {
        user_id: user_id.to_owned(),
        lead_id: None,
        lead: None,
        changes: None,
        expected_version: None,
        session_id: params.get("sessionId").map(str::to_owned),
        compliance: None,
    })
}

pub async fn read_lead(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query,
) -> Answer {
    caller.require(KeyScope::Ingest)?;
    crm_core::names::validate_id("id", &id)?;
    let req = user_param(&params)?;
    let tenant = caller.snapshot(&app).await?;
    let activity_id = app.ids.next(crate::service::clock::now());
    let input = lead_activity("crm.leads.read", &activity_id, &req, Some(&id), None);
    answer(
        crm::run(
            &app,
            &tenant,
            input,
            Effect::ReadLead { id },
            caller.ip_address.as_deref(),
        )
        .await?,
        StatusCode::OK,
    )
}

pub async fn list_leads(State(app): State<App>, caller: Caller, Query(params): Query) -> Answer {
    caller.require(KeyScope::Ingest)?;
    let req = user_param(&params)?;
    let limit = crm_store::listing::limit(params.get("limit"), DEFAULT_LEADS, MAX_LEADS)?;
    let after = params.get("cursor").map(crm::decode_cursor).transpose()?;
    let tenant = caller.snapshot(&app).await?;
    let activity_id = app.ids.next(crate::service::clock::now());
    let input = lead_activity("crm.leads.read", &activity_id, &req, None, None);
    answer(
        crm::run(
            &app,
            &tenant,
            input,
            Effect::ListLeads { after, limit },
            caller.ip_address.as_deref(),
        )
        .await?,
        StatusCode::OK,
    )
}
