//! `crm-host`: the on-prem runtime. crm-core runs as a WebAssembly component in
//! wasmtime (or natively with `--engine native`); SQLite stores everything through a
//! group-commit writer; axum serves the HTTP API. See ARCHITECTURE.md.

pub mod api;
pub mod cli;
pub mod engine;
pub mod error;
pub mod server;
pub mod service;
pub mod store;
