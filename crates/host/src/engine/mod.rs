//! The engine seam: the same operations served by crm-core linked natively or by the
//! crm-component guest inside wasmtime. Everything above this module is engine-agnostic.

mod component;
mod native;
mod pool;

use std::sync::Arc;

use crm_core::engine::TenantSnapshot;
use crm_core::permission::{CheckRequest, Decision};
use crm_core::{Activity, CoreError, Credits, Timestamp};

pub use component::ComponentEngine;
pub use native::NativeEngine;
pub use pool::EnginePool;

/// Which engine runs the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// crm-core compiled to a WebAssembly component, run in wasmtime (the default).
    Component,
    /// crm-core linked into the host, for comparison and debugging.
    Native,
}

impl EngineKind {
    /// As answered in `/readyz` and `/v1/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Component => "component",
            EngineKind::Native => "native",
        }
    }
}

/// Failure of an engine call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The core refused the input: a guest-visible error the client can act on.
    #[error("{0}")]
    Core(#[from] CoreError),
    /// The engine itself failed (trap, resource limit, broken contract). Never the
    /// client's fault; the instance that failed is discarded.
    #[error("engine fault: {0}")]
    Fault(String),
}

pub type EngineResult<T> = Result<T, EngineError>;

/// A tenant as the engine needs it: the native snapshot (also used by the host for
/// lookups) plus the policy text it was built from. The directory's text is not kept
/// (it is most of a tenant's memory); the component loads one written back from the
/// compiled form (`CompiledDirectory::to_spec`).
#[derive(Debug)]
pub struct Tenant {
    pub snapshot: TenantSnapshot,
    pub policy_json: String,
}

impl Tenant {
    pub fn id(&self) -> &str {
        &self.snapshot.tenant_id
    }

    pub fn version(&self) -> u64 {
        self.snapshot.version
    }
}

/// One raw activity for enrichment.
#[derive(Debug, Clone)]
pub struct RawActivity {
    pub input_json: String,
    pub generated_id: String,
}

pub trait Engine: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> EngineKind;
    fn check_batch(&self, tenant: &Tenant, checks: &[CheckRequest]) -> EngineResult<Vec<Decision>>;
    fn cost(&self, tenant: &Tenant, operation: &str) -> EngineResult<Credits>;
    /// One result per item, in order.
    fn enrich_batch(
        &self,
        tenant: &Tenant,
        now: Timestamp,
        ip_address: Option<&str>,
        items: &[RawActivity],
    ) -> EngineResult<Vec<Result<Activity, CoreError>>>;
    /// The conformance entry point: `{"ok": ...}` or `{"error": ...}` JSON text.
    fn evaluate(&self, setup_json: &str, op: &str, input_json: &str) -> EngineResult<String>;
}

pub type SharedEngine = Arc<dyn Engine>;

/// Builds the engine of `kind`. The component is compiled once here (~1 s) and shared.
pub fn build(kind: EngineKind) -> anyhow::Result<SharedEngine> {
    Ok(match kind {
        EngineKind::Component => Arc::new(ComponentEngine::new()?),
        EngineKind::Native => Arc::new(NativeEngine),
    })
}
