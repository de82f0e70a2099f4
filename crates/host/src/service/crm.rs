//! CRM operations, the original sketch's flow made correct: check permission → price →
//! charge → do the operation → record the activity, all in one transaction. A refused
//! permission records a `denied` activity (403), a balance that cannot pay records
//! `insufficient_credits` (402), and an operation that fails records a `failed`
//! activity carrying only an error code — never the lead's data or a stack trace
//! (defect 15). Retries with the same `Idempotency-Key` answer the first result.

use std::collections::HashMap;
use std::sync::Arc;

use crm_core::chain::canonical_json;
use crm_core::{Activity, CoreError, Outcome, Timestamp};
use crm_store::activities;
use crm_store::ingest::Stored;
use crm_store::leads::{self, LeadRow};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{App, clock};
use crate::engine::{RawActivity, SharedEngine, Tenant};
use crate::error::{HostError, HostResult};
use crate::store::{Conn, IngestItem};
use crm_api::leads::{Lead, LeadFields, LeadResult};

/// What the operation does besides being recorded. Serialised into the request's hash:
/// a retry with the same `Idempotency-Key` must be the same request, effect included.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "effect")]
pub enum Effect {
    /// Metering only (`POST /v1/operations/{operation}`).
    None,
    CreateLead {
        id: String,
        fields: LeadFields,
    },
    UpdateLead {
        id: String,
        changes: LeadFields,
        expected_version: Option<u64>,
    },
    ReadLead {
        id: String,
    },
    ListLeads {
        after: Option<(i64, String)>,
        limit: usize,
    },
}

/// The result of an operation, whatever its outcome.
#[derive(Debug, Clone)]
pub struct Done {
    pub stored: Stored,
    /// The effect's answer (a lead, a page of leads) when it succeeded.
    pub result: Option<LeadResult>,
    /// Why the operation failed (`failed` outcome).
    pub error_code: Option<&'static str>,
}

pub use crm_api::operations::activity_input;

/// The activity id of a request: derived from its `Idempotency-Key` (so a retry is the
/// same activity), else a fresh ULID.
pub fn activity_id(app: &App, tenant: &str, route: &str, idempotency_key: Option<&str>) -> String {
    match idempotency_key {
        Some(k) => crm_api::operations::derived_id(tenant, route, k),
        None => app.ids.next(clock::now()),
    }
}

fn hash(v: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(v).as_bytes()))
}

fn enrich(
    engine: &SharedEngine,
    tenant: &Tenant,
    now: Timestamp,
    ip: Option<&str>,
    input: &Value,
) -> HostResult<Activity> {
    enrich_with(&**engine, tenant, now, ip, input)
}

fn enrich_with(
    engine: &dyn crate::engine::Engine,
    tenant: &Tenant,
    now: Timestamp,
    ip: Option<&str>,
    input: &Value,
) -> HostResult<Activity> {
    let raw = RawActivity {
        input_json: input.to_string(),
        generated_id: String::new(),
    };
    engine
        .enrich_batch(tenant, now, ip, std::slice::from_ref(&raw))?
        .pop()
        .ok_or_else(|| HostError::internal(anyhow::anyhow!("the engine answered no activity")))?
        .map_err(HostError::from)
}

/// Runs the operation: the activity input is enriched first (bad input changes
/// nothing), then one writer transaction checks the effect, records the activity and
/// applies the effect.
pub async fn run(
    app: &App,
    tenant: &Arc<Tenant>,
    input: Map<String, Value>,
    effect: Effect,
    ip: Option<&str>,
) -> HostResult<Done> {
    app.fanout.admit(tenant.id())?;
    if let Effect::CreateLead { fields, .. }
    | Effect::UpdateLead {
        changes: fields, ..
    } = &effect
    {
        fields.validate()?;
    }
    let now = clock::now();
    let input = Value::Object(input);
    // The whole request (issue 26.7): a key reused with another title, value or change
    // is a conflict, not the first answer with the new content silently dropped.
    let request_hash = hash(&json!({ "activity": &input, "effect": &effect }));
    let activity = {
        let (t, ip, input) = (tenant.clone(), ip.map(str::to_owned), input.clone());
        app.engines
            .run(move |e| Ok(enrich_with(e, &t, now, ip.as_deref(), &input)))
            .await??
    };
    let (engine, tenant_c, ip) = (app.engine.clone(), tenant.clone(), ip.map(str::to_owned));
    let lock = tenant.id().to_owned();
    let _queued = super::ingest::queue_room(app, 1).await?;
    let done = app
        .store
        .write(Some(&lock), move |c| {
            transaction(
                c,
                &engine,
                &tenant_c,
                now,
                ip.as_deref(),
                &input,
                &request_hash,
                activity,
                &effect,
            )
        })
        .await?;
    app.fanout.notify();
    if !done.stored.duplicate {
        app.stats.recorded(
            tenant.id(),
            std::iter::once((done.stored.outcome, done.stored.credits.units())),
            1,
        );
    }
    Ok(done)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one transaction's inputs, passed through once"
)]
fn transaction(
    c: &mut dyn Conn,
    engine: &SharedEngine,
    tenant: &Arc<Tenant>,
    now: Timestamp,
    ip: Option<&str>,
    input: &Value,
    request_hash: &str,
    activity: Activity,
    effect: &Effect,
) -> HostResult<Done> {
    let d = c.dialect();
    let tid = tenant.id();
    // A retry of an earlier request (same derived id): answer what happened then.
    if let Some(row) = activities::lookup(d, tid, &[activity.id.as_str()])
        .first()
        .map(|st| c.query_opt(st))
        .transpose()?
        .flatten()
    {
        let e = activities::decode_existing(&row)?;
        if e.input_hash != request_hash {
            return Err(HostError::Conflict {
                message: "this Idempotency-Key was used for a different request".to_owned(),
                details: json!({ "activityId": e.id }),
            });
        }
        let result = match effect {
            Effect::CreateLead { id, .. }
            | Effect::UpdateLead { id, .. }
            | Effect::ReadLead { id } => lead(c, tid, id)?.map(|l| wrapped(&l)).transpose()?,
            Effect::ListLeads { .. } | Effect::None => None,
        };
        return Ok(Done {
            error_code: (e.outcome == Outcome::Failed).then_some("replayed_failure"),
            stored: Stored::replayed(e),
            result,
        });
    }
    let failure = if activity.outcome == Outcome::Success {
        precheck(c, tid, effect)?
    } else {
        None
    };
    let recorded = match failure {
        None => activity,
        Some(code) => {
            // Recorded as failed with its code only: no lead data, no internals.
            let mut failed = input.clone();
            failed["outcome"] = json!("failed");
            failed["metadata"] = json!({ "errorCode": code });
            enrich(engine, tenant, now, ip, &failed)?
        }
    };
    let item = IngestItem {
        activity: recorded,
        input_hash: request_hash.to_owned(),
    };
    let stored = crate::store::record(c, tenant, vec![item], now.millis(), &mut HashMap::new())?
        .pop()
        .ok_or_else(|| HostError::internal(anyhow::anyhow!("recording answered nothing")))?;
    let result = if failure.is_none() && stored.outcome == Outcome::Success {
        apply(
            c,
            tid,
            effect,
            stored.occurred_at.millis(),
            &input["userId"],
        )?
    } else {
        None
    };
    Ok(Done {
        stored,
        result,
        error_code: failure,
    })
}

fn lead(c: &mut dyn Conn, tenant: &str, id: &str) -> HostResult<Option<LeadRow>> {
    let d = c.dialect();
    c.query_opt(&leads::get(d, tenant, id))?
        .map(|r| leads::decode(&r).map_err(HostError::from))
        .transpose()
}

/// Why the effect cannot happen, checked before anything is charged.
fn precheck(c: &mut dyn Conn, tenant: &str, effect: &Effect) -> HostResult<Option<&'static str>> {
    Ok(match effect {
        Effect::CreateLead { id, .. } => lead(c, tenant, id)?.is_some().then_some("lead_exists"),
        Effect::UpdateLead {
            id,
            expected_version,
            ..
        } => match lead(c, tenant, id)? {
            None => Some("lead_not_found"),
            Some(l) if expected_version.is_some_and(|v| v != l.version) => Some("version_mismatch"),
            Some(_) => None,
        },
        Effect::ReadLead { id } => lead(c, tenant, id)?.is_none().then_some("lead_not_found"),
        Effect::ListLeads { .. } | Effect::None => None,
    })
}

/// `{"lead": …}`: how single-lead results are answered.
fn wrapped(l: &LeadRow) -> HostResult<LeadResult> {
    Ok(LeadResult::One {
        lead: Lead::from_row(l)?,
    })
}

fn apply(
    c: &mut dyn Conn,
    tenant: &str,
    effect: &Effect,
    at: i64,
    user: &Value,
) -> HostResult<Option<LeadResult>> {
    let d = c.dialect();
    let data = |f: &LeadFields| serde_json::to_string(f).map_err(HostError::internal);
    match effect {
        Effect::None => Ok(None),
        Effect::CreateLead { id, fields } => {
            let row = LeadRow {
                id: id.clone(),
                owner_id: user.as_str().unwrap_or_default().to_owned(),
                data: data(fields)?,
                version: 1,
                created_at: at,
                updated_at: at,
            };
            c.execute(&leads::insert(d, tenant, &row))?;
            Ok(Some(wrapped(&row)?))
        }
        Effect::UpdateLead { id, changes, .. } => {
            let current = lead(c, tenant, id)?
                .ok_or_else(|| HostError::NotFound(format!("no lead `{id}`")))?;
            let before: LeadFields =
                serde_json::from_str(&current.data).map_err(HostError::internal)?;
            let next = before.merged(changes.clone());
            c.execute(&leads::update(
                d,
                tenant,
                id,
                current.version,
                &data(&next)?,
                at,
            ))?;
            Ok(lead(c, tenant, id)?.map(|l| wrapped(&l)).transpose()?)
        }
        Effect::ReadLead { id } => Ok(lead(c, tenant, id)?.map(|l| wrapped(&l)).transpose()?),
        Effect::ListLeads { after, limit } => {
            let rows = c.query(&leads::page(
                d,
                tenant,
                after.as_ref().map(|(t, i)| (*t, i.as_str())),
                *limit,
            ))?;
            let leads: Vec<LeadRow> = rows.iter().map(leads::decode).collect::<Result<_, _>>()?;
            let next = (leads.len() > *limit)
                .then(|| {
                    leads
                        .get(limit - 1)
                        .map(|l| format!("l{}.{}", l.updated_at, l.id))
                })
                .flatten();
            let page = leads
                .iter()
                .take(*limit)
                .map(Lead::from_row)
                .collect::<Result<_, _>>()?;
            Ok(Some(LeadResult::Page {
                leads: page,
                next_cursor: next,
            }))
        }
    }
}

/// A lead listing cursor `l<updatedAt>.<id>`.
pub fn decode_cursor(text: &str) -> HostResult<(i64, String)> {
    let bad = || HostError::Core(CoreError::invalid("cursor", "not a cursor from this API"));
    let (t, id) = text
        .strip_prefix('l')
        .and_then(|r| r.split_once('.'))
        .ok_or_else(bad)?;
    let t: i64 = t.parse().map_err(|_| bad())?;
    crm_core::names::validate_id("cursor", id).map_err(|_| bad())?;
    Ok((t, id.to_owned()))
}
