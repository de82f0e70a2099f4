//! `crm-api`: the HTTP API of the engine, written once for crm-host and crm-worker.
//!
//! - [`endpoints`] — every endpoint (operationId, tag, method, path, credential, body
//!   limit, query parameters, answers), the router both runtimes match requests with,
//!   and the OpenAPI 3.1 document both serve.
//! - [`document`] (feature `document`) — that document rendered from the table and
//!   the types.
//! - [`error`] — the error vocabulary: one [`ApiError`] (code → status, message,
//!   details, and the retry hint sent as `Retry-After`).
//! - [`request`] — what both runtimes check before and while reading a request: the
//!   bearer credential's form, `Idempotency-Key`, the content type, the body's size
//!   (refused on `Content-Length` before reading) and its JSON limits, strict query
//!   parameters.
//! - [`storage`] — a storage failure classified once (busy, full, constraint) into the
//!   answer and retry hint every backend gives.
//! - [`viewer_tokens`] — issuing, checking and revoking dashboard tokens.
//! - [`checkpoint`] — the chain head signed with a key the database does not hold.
//! - [`access`], [`requests`], [`operations`] — who may do what, the administrative
//!   request rules, and the answers of a metered operation.
//!
//! Pure like `crm-core`: no I/O, no clock, no randomness; callers pass them in.

pub mod access;
pub mod checkpoint;
pub mod credits;
pub mod dashboards;
#[cfg(feature = "document")]
pub mod document;
pub mod edge;
pub mod endpoints;
pub mod erasure;
pub mod error;
pub mod flow;
pub mod ingest;
pub mod leads;
pub mod listing;
pub mod operations;
pub mod paging;
pub mod permissions;
pub mod provisioning;
pub mod reports;
pub mod request;
pub mod requests;
pub mod status;
pub mod storage;
pub mod verify;
pub mod versioned;
pub mod viewer_tokens;
pub mod wallet;
pub mod webhook_targets;
pub mod webhooks;

pub use error::{ApiCode, ApiError};
