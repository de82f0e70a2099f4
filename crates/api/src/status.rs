//! The status answers: liveness, readiness and a tenant's metrics. What each runtime
//! can know differs (crm-host counts its requests and runs fan-out; the edge's request
//! counts live in Workers analytics and its backlog in D1), so the members only one of
//! them fills are optional and say whose they are.

use serde::Serialize;
use serde_json::Value;

/// `GET /healthz`: the process answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Health {
    pub status: Live,
}

/// The process is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Live {
    Ok,
}

impl Health {
    pub const OK: Health = Health { status: Live::Ok };
}

/// `GET /readyz`: the database answers (and, on crm-host, the writer runs).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Ready {
    pub status: Readiness,
    /// What runs the core: `component` or `native` (crm-host), `worker` (the edge).
    pub engine: String,
    /// crm-host: the fan-out sinks, their backlog and the degraded ones (by failure
    /// class, never an address).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub fanout: Option<Value>,
}

/// The runtime is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    Ready,
}

/// crm-host's request counts for one tenant since the process started.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// Share of answered requests that were errors (4xx and 5xx), 0..=1.
    pub error_rate: f64,
    /// Share of answered requests that were server faults (5xx), 0..=1.
    pub server_error_rate: f64,
    pub in_flight: u64,
    pub activities_recorded: u64,
    /// Recorded as denied, failed or insufficient_credits.
    pub activities_refused: u64,
    pub permission_checks: u64,
    pub credits_deducted: crm_core::Credits,
}

/// The edge's upstream delivery for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamProgress {
    /// The last sequence number the upstream acknowledged.
    pub delivered_seq: u64,
    /// Records after it, waiting.
    pub pending: u64,
}

/// `GET /v1/metrics`: the caller's tenant only.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub tenant_id: String,
    /// What runs the core: `component` or `native` (crm-host), `worker` (the edge).
    pub engine: String,
    /// crm-host: this process's counts (the edge's are in Workers analytics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestCounts>,
    /// crm-host: the tenant's undelivered activities per sink and the degraded sinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub fanout: Option<Value>,
    /// The edge: the head of the tenant's chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_seq: Option<u64>,
    /// The edge: ids accepted and still in the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_ids: Option<u64>,
    /// The edge: dead letters waiting for a redrive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<u64>,
    /// The edge: upstream delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamProgress>,
    /// The edge: what the isolate that answered has used of its platform limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolate: Option<IsolateUsage>,
}

/// An edge isolate's use of Cloudflare's limits since it started: its wasm memory's
/// high-water mark and the most any one of its invocations spent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IsolateUsage {
    /// wasm linear memory at its largest (it never shrinks).
    pub memory_high_water_bytes: u64,
    /// The isolate's memory, shared with the JavaScript heap.
    pub memory_limit_bytes: u64,
    pub peak_invocation_queries: u64,
    pub peak_invocation_subrequests: u64,
    /// D1 queries an invocation may make (a `batch()` counts each statement).
    pub max_invocation_queries: u64,
    /// Fetches, R2, Queues and D1 calls an invocation may make.
    pub max_invocation_subrequests: u64,
}
