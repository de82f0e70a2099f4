//! The edge's own endpoints, answered truthfully for a runtime that has none of what
//! they serve. `/v1/dead-letters`: the edge's queue consumer's dead letters — the host
//! writes before it answers, so nothing of its ingest is ever dead-lettered (its
//! fan-out's undeliverable batches go to the spool, `crm-host replay`): the list is
//! empty and no id exists. `/v1/archive`: cold history in R2 — the host's database has
//! no per-database size cap to work around, and retention removes old history: 501
//! with that reason.

use axum::Json;
use axum::extract::Path;
use crm_api::edge::{DeadLetterList, Redriven};
use crm_store::dead_letters::{DEFAULT_LIST, MAX_LIST};
use crm_store::keys::KeyScope;

use super::auth::Caller;
use super::error::Query;
use crate::error::{HostError, HostResult};

pub async fn dead_letters(
    caller: Caller,
    Query(params): Query,
) -> HostResult<Json<DeadLetterList>> {
    caller.require(KeyScope::Admin)?;
    crm_store::listing::limit(params.get("limit"), DEFAULT_LIST, MAX_LIST)?;
    Ok(Json(DeadLetterList {
        dead_letters: Vec::new(),
    }))
}

pub async fn redrive(caller: Caller, Path(id): Path<String>) -> HostResult<Json<Redriven>> {
    caller.require(KeyScope::Admin)?;
    // crm-host writes before it answers, so it has no dead letters.
    Err(HostError::Api(crm_api::edge::no_dead_letter(&id)))
}

pub async fn no_archive() -> HostError {
    HostError::Api(crm_api::error::ApiError::new(
        crm_api::error::ApiCode::NotImplemented,
        "crm-host keeps its history in its own database (no size cap to work around); old history is removed by retention (PUT /v1/policy)",
    ))
}
