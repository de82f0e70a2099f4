//! Host side of the `conformance` interface, and the `Engine` impl tying the files together.

use crm_core::permission::{CheckRequest, Decision};
use crm_core::{Activity, CoreError, Credits, Timestamp};

use super::ComponentEngine;
use crate::engine::{Engine, EngineKind, EngineResult, RawActivity, Tenant};

impl Engine for ComponentEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Component
    }

    fn check_batch(&self, tenant: &Tenant, checks: &[CheckRequest]) -> EngineResult<Vec<Decision>> {
        self.guest_check_batch(tenant, checks)
    }

    fn cost(&self, tenant: &Tenant, operation: &str) -> EngineResult<Credits> {
        self.guest_cost(tenant, operation)
    }

    fn enrich_batch(
        &self,
        tenant: &Tenant,
        now: Timestamp,
        ip_address: Option<&str>,
        items: &[RawActivity],
    ) -> EngineResult<Vec<Result<Activity, CoreError>>> {
        self.guest_enrich_batch(tenant, now, ip_address, items)
    }

    fn evaluate(&self, setup_json: &str, op: &str, input_json: &str) -> EngineResult<String> {
        self.with_instance(|i| {
            i.world
                .crm_engine_conformance()
                .call_evaluate(&mut i.store, setup_json, op, input_json)
                .map(Ok)
        })
    }
}
