//! crm-host's integration tests, in one binary so wasmtime is linked once: the HTTP
//! API on SQLite and on PostgreSQL (both real, started here), the conformance vectors
//! through both engines, rollup reports against raw recounts, several hosts over one
//! PostgreSQL, and the browser module's parity with server reports.

mod api;
mod audit;
mod crash;
mod credits;
mod engines;
mod erasure;
mod fanout;
mod hostile;
mod isolation;
mod loadgen;
mod multi_host;
mod openapi;
mod operator;
mod pg_plans;
mod pg_reads;
mod schema;
mod support;
mod surface;
mod tcp_floor;
mod tenant_routing;
mod tls;
mod web_parity;
mod webhooks;
