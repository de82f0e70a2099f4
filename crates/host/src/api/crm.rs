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
use crate::service::crm::{self, Done, Effect};
use crm_api::leads::{LeadCreate, LeadFields, LeadStatus, LeadUpdate};
use crm_api::operations::OperationAnswer;

/// Lead listing page size when none is asked for, and the most one may ask for.
const DEFAULT_LEADS: usize = 50;
const MAX_LEADS: usize = 500;

type Answer = HostResult<(StatusCode, Json<OperationAnswer>)>;

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

/// Who does a lead operation, and the context it is recorded with.
struct Actor<'a> {
    user_id: &'a str,
    session_id: Option<&'a str>,
    compliance: Option<&'a Value>,
}

/// The recorded activity of a lead operation: the lead's id, status and priority,
/// nothing of its content.
fn lead_activity(
    operation: &str,
    activity_id: &str,
    actor: &Actor<'_>,
    lead_id: Option<&str>,
    fields: Option<&LeadFields>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("userId".to_owned(), json!(actor.user_id));
    m.insert("entityType".to_owned(), json!("lead"));
    if let Some(l) = lead_id {
        m.insert("entityId".to_owned(), json!(l));
    }
    if let Some(s) = actor.session_id {
        m.insert("sessionId".to_owned(), json!(s));
    }
    if let Some(c) = actor.compliance {
        m.insert("compliance".to_owned(), c.clone());
    }
    let mut metadata = Map::new();
    if let Some(s) = fields.and_then(|f| f.status) {
        metadata.insert("leadStatus".to_owned(), json!(s.as_str()));
    }
    if let Some(p) = fields.and_then(|f| f.priority) {
        metadata.insert("leadPriority".to_owned(), json!(p.as_str()));
    }
    if !metadata.is_empty() {
        m.insert("metadata".to_owned(), Value::Object(metadata));
    }
    crm::activity_input(operation, activity_id, m)
}

pub async fn create_lead(
    State(app): State<App>,
    caller: Caller,
    key: IdempotencyKey,
    body: Body,
) -> Answer {
    caller.require(KeyScope::Ingest)?;
    let req: LeadCreate = body.parse()?;
    if req.lead.title.is_none() {
        return Err(crm_core::CoreError::invalid("lead.title", "a lead needs a `title`").into());
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
    let mut fields = req.lead.clone();
    fields.status = fields.status.or(Some(LeadStatus::Open));
    let actor = Actor {
        user_id: &req.user_id,
        session_id: req.session_id.as_deref(),
        compliance: req.compliance.as_ref(),
    };
    let input = lead_activity(
        "crm.leads.create",
        &activity_id,
        &actor,
        Some(&lead_id),
        Some(&fields),
    );
    let effect = Effect::CreateLead {
        id: lead_id,
        fields: req.lead,
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
    let req: LeadUpdate = body.parse()?;
    let tenant = caller.snapshot(&app).await?;
    let activity_id = crm::activity_id(
        &app,
        caller.tenant(),
        &format!("leads:update:{id}"),
        key.as_deref(),
    );
    let actor = Actor {
        user_id: &req.user_id,
        session_id: req.session_id.as_deref(),
        compliance: req.compliance.as_ref(),
    };
    let input = lead_activity(
        "crm.leads.update",
        &activity_id,
        &actor,
        Some(&id),
        Some(&req.changes),
    );
    let effect = Effect::UpdateLead {
        id,
        changes: req.changes,
        expected_version: req.expected_version,
    };
    answer(
        crm::run(&app, &tenant, input, effect, caller.ip_address.as_deref()).await?,
        StatusCode::OK,
    )
}

/// The reader of `GET /v1/leads…`: `userId` (required) and `sessionId` from the query.
fn reader(params: &crate::service::queries::Params) -> HostResult<Actor<'_>> {
    let user_id = params.get("userId").ok_or_else(|| {
        crm_core::CoreError::invalid("userId", "`userId` (who reads) is required")
    })?;
    Ok(Actor {
        user_id,
        session_id: params.get("sessionId"),
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
    let actor = reader(&params)?;
    let tenant = caller.snapshot(&app).await?;
    let activity_id = app.ids.next(crate::service::clock::now());
    let input = lead_activity("crm.leads.read", &activity_id, &actor, Some(&id), None);
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
    let actor = reader(&params)?;
    let limit = crm_store::listing::limit(params.get("limit"), DEFAULT_LEADS, MAX_LEADS)?;
    let after = params.get("cursor").map(crm::decode_cursor).transpose()?;
    let tenant = caller.snapshot(&app).await?;
    let activity_id = app.ids.next(crate::service::clock::now());
    let input = lead_activity("crm.leads.read", &activity_id, &actor, None, None);
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
