//! `/v1/dead-letters`: an edge endpoint (its queue consumer's dead letters). The host
//! writes before it answers, so nothing of its ingest is dead-lettered; its fan-out's
//! undeliverable batches go to the spool (`crm-host replay`).

use crate::error::HostError;

pub async fn none() -> HostError {
    HostError::Api(crm_core::api_error::ApiError::new(
        crm_core::api_error::ApiCode::NotImplemented,
        "crm-host has no dead letters: ingest is written before it is answered, and undeliverable fan-out is spooled (see `crm-host replay`)",
    ))
}
