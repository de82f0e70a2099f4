//! The edge's own endpoints, answered 501 with the reason. `/v1/dead-letters`: its
//! queue consumer's dead letters — the host writes before it answers, so nothing of its
//! ingest is dead-lettered; its fan-out's undeliverable batches go to the spool
//! (`crm-host replay`). `/v1/archive`: cold history in R2 — the host's database has no
//! per-database size cap to work around, and retention removes old history.

use crate::error::HostError;

pub async fn no_dead_letters() -> HostError {
    HostError::Api(crm_core::api_error::ApiError::new(
        crm_core::api_error::ApiCode::NotImplemented,
        "crm-host has no dead letters: ingest is written before it is answered, and undeliverable fan-out is spooled (see `crm-host replay`)",
    ))
}

pub async fn no_archive() -> HostError {
    HostError::Api(crm_core::api_error::ApiError::new(
        crm_core::api_error::ApiCode::NotImplemented,
        "crm-host keeps its history in its own database (no size cap to work around); old history is removed by retention (PUT /v1/policy)",
    ))
}
