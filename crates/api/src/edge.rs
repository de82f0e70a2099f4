//! The edge's own endpoints — dead letters, their redrive, the archive to R2 — with
//! the requests and answers crm-host also gives (truthfully empty, 404 or 501 there).

use crm_store::archive::Segment;
use crm_store::dead_letters::DeadLetter;
use serde::{Deserialize, Serialize};

/// `GET /v1/dead-letters`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
}

/// `POST /v1/dead-letters/{id}/redrive` (202): the letter is queued again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Redriven {
    /// The dead letter's id.
    pub redriven: String,
    /// Activities it carried.
    pub activities: usize,
}

/// `POST /v1/archive`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArchiveRequest {
    /// Records received more than this many days ago move.
    #[schemars(range(min = crm_store::archive::MIN_AGE_DAYS))]
    pub older_than_days: u32,
}

/// `POST /v1/archive`: what this call moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveAnswer {
    pub archived: Vec<Segment>,
    /// Whether more is due: call again.
    pub more: bool,
    /// Older records wait because a configured sink (the upstream) has not delivered
    /// them yet.
    pub held_back_by_sink: bool,
}

/// The refusal of a redrive whose letter does not exist (on crm-host, none ever does).
pub fn no_dead_letter(id: &str) -> crate::ApiError {
    crate::ApiError::not_found(format!("no dead letter `{}`", crm_core::time::clip(id)))
}
