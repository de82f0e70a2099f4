//! Host side of the `activities` interface.

use crm_core::{Activity, CoreError, Timestamp};

use super::bindings::exports::crm::engine::activities::{Context, RawActivity as WitRaw};
use super::tenants::tenant_ref;
use super::{ComponentEngine, EngineResult, Tenant, core_error, json_fault};
use crate::engine::{EngineError, RawActivity};

impl ComponentEngine {
    pub(super) fn guest_enrich_batch(
        &self,
        tenant: &Tenant,
        now: Timestamp,
        ip_address: Option<&str>,
        items: &[RawActivity],
    ) -> EngineResult<Vec<Result<Activity, CoreError>>> {
        let ctx = Context {
            now_ms: now.millis(),
            ip_address: ip_address.map(str::to_owned),
        };
        let raw: Vec<WitRaw> = items
            .iter()
            .map(|i| WitRaw {
                input_json: i.input_json.clone(),
                generated_id: i.generated_id.clone(),
            })
            .collect();
        let answers = self.with_tenant(tenant, |i| {
            i.world.crm_engine_activities().call_enrich_batch(
                &mut i.store,
                &tenant_ref(tenant),
                &ctx,
                &raw,
            )
        })?;
        answers
            .into_iter()
            .map(|answer| match answer {
                Ok(json) => serde_json::from_str(&json).map(Ok).map_err(json_fault),
                Err(e) => match core_error(e) {
                    EngineError::Core(c) => Ok(Err(c)),
                    fault => Err(fault),
                },
            })
            .collect()
    }
}
