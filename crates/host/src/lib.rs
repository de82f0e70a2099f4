//! `crm-host`: the on-prem runtime. crm-core runs as a WebAssembly component in
//! wasmtime (or natively with `--engine native`); SQLite or PostgreSQL store
//! everything through a group-commit writer; the fan-out delivers the log to Redis and
//! an upstream API; axum serves the HTTP API. See ARCHITECTURE.md.

pub mod api;
pub mod cli;
pub mod engine;
pub mod error;
pub mod fanout;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
