//! `crm-core`: the pure heart of the CRM activity engine.
//!
//! Everything here is deterministic: no I/O, no async, no clock and no randomness.
//! Callers (the wasm component, the worker, the browser module, native tests) pass
//! time, ids and random bits in. See `ARCHITECTURE.md` for the invariants.

pub mod activity;
pub mod alerts;
pub mod canonical;
pub mod chain;
pub mod conformance;
pub mod credits;
pub mod directory;
pub mod duration;
pub mod engine;
pub mod enrich;
pub mod error;
pub mod ids;
pub mod json_api;
pub mod json_limits;
pub mod limits;
pub mod metadata;
pub mod names;
pub mod permission;
pub mod personal;
pub mod pricing;
pub mod query;
pub mod report;
pub mod tenant;
pub mod time;
pub mod viewer_token;
pub mod wallet;
pub mod webhook_signature;

pub use activity::{Activity, ActivityInput, Outcome};
pub use credits::Credits;
pub use directory::{CompiledDirectory, DirectorySpec};
pub use error::{CoreError, ErrorCode};
pub use permission::Decision;
pub use tenant::TenantPolicy;
pub use time::Timestamp;
