//! crm-core linked directly.

use crm_core::permission::{CheckRequest, Decision};
use crm_core::{Activity, CoreError, Credits, Timestamp};

use super::{Engine, EngineKind, EngineResult, RawActivity, Tenant};

#[derive(Debug, Clone, Copy, Default)]
pub struct NativeEngine;

impl Engine for NativeEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Native
    }

    fn check_batch(&self, tenant: &Tenant, checks: &[CheckRequest]) -> EngineResult<Vec<Decision>> {
        Ok(tenant.snapshot.directory.check_batch(checks)?)
    }

    fn cost(&self, tenant: &Tenant, operation: &str) -> EngineResult<Credits> {
        Ok(tenant.snapshot.cost(operation)?)
    }

    fn enrich_batch(
        &self,
        tenant: &Tenant,
        now: Timestamp,
        ip_address: Option<&str>,
        items: &[RawActivity],
    ) -> EngineResult<Vec<Result<Activity, CoreError>>> {
        Ok(items
            .iter()
            .map(|i| {
                tenant
                    .snapshot
                    .enrich_json(&i.input_json, &i.generated_id, now, ip_address)
            })
            .collect())
    }

    fn evaluate(&self, setup_json: &str, op: &str, input_json: &str) -> EngineResult<String> {
        Ok(crm_core::json_api::evaluate_json(
            setup_json, op, input_json,
        ))
    }
}
