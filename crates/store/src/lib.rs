//! `crm-store`: what every runtime's storage has in common, written once.
//!
//! The runtimes own their drivers (rusqlite and PostgreSQL in `crm-host`, D1 in
//! `crm-worker`); this crate owns everything else: each SQL statement (one definition,
//! rendered per [`Dialect`]), the row types and their mapping to core types, and the
//! pure decisions storage makes — classifying a batch against stored ids, folding
//! rollups, the guarded chain-head move, the listing page and cursor, the split of a
//! report into rollup and raw parts. A driver only executes [`Statement`]s and hands
//! back [`Row`]s, so no SQL text is written twice and the runtimes cannot drift.
//!
//! Like `crm-core`, this crate is pure: no I/O, no clock, no randomness.

pub mod activities;
pub mod alerts;
pub mod archive;
pub mod audit;
pub mod bounded_cache;
pub mod compaction;
#[cfg(test)]
mod d1_limits;
pub mod database_size;
pub mod dead_letters;
pub mod dialect;
pub mod erasure;
pub mod error;
pub mod export;
pub mod feeds;
pub mod grants;
pub mod idempotency;
pub mod ingest;
pub mod key_cache;
pub mod keys;
pub mod leads;
pub mod ledger;
pub mod ledger_check;
pub mod listing;
pub mod migrations;
pub mod outbox;
pub mod packing;
pub mod queued;
pub mod report;
pub mod retention;
pub mod rollup_check;
pub mod rollups;
pub mod shards;
pub mod sql;
pub mod subject_keys;
pub mod tenants;
#[cfg(test)]
mod testing;
pub mod viewer_tokens;
pub mod webhooks;

pub use dialect::Dialect;
pub use error::{StoreError, StoreResult};
pub use sql::{Row, Statement, Value};
