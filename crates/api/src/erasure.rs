//! `POST /v1/subjects/{userId}/erase` for both runtimes: erasure by crypto-shredding
//! (`crm_core::personal`). The rules and the answer are here; the statements are
//! `crm_store::subject_keys` (destroy) and `crm_store::erasure` (scrub); the flow both
//! runtimes drive is `crate::flow::erasure`:
//! 1. it checks the subject with [`subject`] (the directory must not list it any more)
//!    and reads its keys (refusing with [`unknown`] a subject it knows nothing of);
//! 2. it moves the rollup values of the subject's archived records first, while its
//!    keys still open them (`crm_store::erasure::archived`, a segment per transaction;
//!    the edge within [`ERASE_QUERY_BUDGET`]; crm-host has no archive);
//! 3. in one transaction, it destroys the subject's keys and appends [`record`] to the
//!    chain;
//! 4. it drives `crm_store::erasure::Scrub` for at most [`MAX_SCRUB_CHUNKS`] chunks,
//!    each its own transaction, and answers [`ErasureAnswer`]; a request that stops
//!    short says so (`complete: false`) and the same request again continues.

use crm_core::directory::CompiledDirectory;
use crm_core::personal::Erasure;
use crm_core::{Activity, Timestamp};
use crm_store::ingest::Stored;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::access::Principal;
use crate::error::ApiError;

/// Scrub chunks one request runs (`crm_store::erasure::SCRUB_ROWS` rows each): 5,000
/// rows, well inside an edge invocation's 1,000 queries and 30 s of CPU.
pub const MAX_SCRUB_CHUNKS: usize = 25;

/// D1 queries an erasure at the edge spends on archived segments before it stops and
/// answers `complete: false` (an invocation has 1,000; the key destruction, the record
/// and the scrub need the rest). The first segment is always done, so every request
/// moves the erasure on.
pub const ERASE_QUERY_BUDGET: usize = 600;

/// The subject of the path, if it may be erased: a valid user id the directory no
/// longer lists. Erasure destroys what the records hold; the directory is the tenant's
/// own document, and a user still in it would be recorded again by its next activity.
pub fn subject(user_id: &str, directory: &CompiledDirectory) -> Result<String, ApiError> {
    crm_core::names::validate_id("userId", user_id)?;
    if directory.user(user_id).is_some() {
        return Err(ApiError::conflict(format!(
            "user `{user_id}` is still in the directory: remove it (PATCH /v1/directory) before erasing"
        )));
    }
    Ok(user_id.to_owned())
}

/// A subject with neither keys nor records: nothing to erase (404).
pub fn unknown(subject: &str) -> ApiError {
    ApiError::not_found(format!(
        "no records or keys of subject `{}`",
        crm_core::time::clip(subject)
    ))
}

/// Who asked, as the record names it: the API key's id.
pub fn requested_by(principal: &Principal) -> String {
    match principal {
        Principal::Key { id, .. } => format!("key:{id}"),
        Principal::Viewer { .. } => "viewer".to_owned(),
    }
}

/// The erasure record and the hash its idempotency compares (of the request: subject,
/// id and instant, so no other activity can share it).
pub fn record(
    tenant_id: &str,
    subject: &str,
    requested_by: &str,
    keys_destroyed: u64,
    id: String,
    at: Timestamp,
) -> (Activity, String) {
    let input_hash = hex::encode(Sha256::digest(format!(
        "erase\n{tenant_id}\n{subject}\n{id}\n{}",
        at.millis()
    )));
    let record = Erasure {
        tenant_id,
        id,
        subject,
        requested_by,
        keys_destroyed,
        at,
    }
    .record();
    (record, input_hash)
}

/// The answer of an erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureAnswer {
    pub subject: String,
    /// Keys destroyed by this request (0 when an earlier one already did, or when this
    /// one stopped before destroying them).
    pub keys_destroyed: u64,
    /// The erasure's record in the chain; absent when this request stopped before the
    /// keys were destroyed (archived segments still to read: send it again).
    pub record: Option<Stored>,
    /// Archived segments (the edge's R2 history) whose rollup values of the subject
    /// this request moved to `[erased]`; always 0 on crm-host, which has no archive.
    pub archived_segments: u64,
    /// Rows whose IP address and location this request removed from the search
    /// columns and the report rollups.
    pub rows_scrubbed: u64,
    /// False when the scrub stopped at this request's budget: the same request
    /// continues it.
    pub complete: bool,
}
