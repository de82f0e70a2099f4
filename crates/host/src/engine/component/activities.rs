//! Host side of the `activities` interface.

use crm_core::{Activity, CoreError, Credits, Timestamp};

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

    pub(super) fn guest_settle_and_seal(
        &self,
        balance: Credits,
        first_seq: u64,
        prev_hash: &str,
        activities: Vec<Activity>,
    ) -> EngineResult<(Credits, Vec<Activity>)> {
        let json = activities
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(json_fault)?;
        let settled = self.with_instance(|i| {
            i.world.crm_engine_activities().call_settle_and_seal(
                &mut i.store,
                balance.units(),
                first_seq,
                prev_hash,
                &json,
            )
        })?;
        let sealed = settled
            .activities_json
            .iter()
            .map(|text| serde_json::from_str(text))
            .collect::<Result<Vec<Activity>, _>>()
            .map_err(json_fault)?;
        Ok((Credits::from_units(settled.balance_units)?, sealed))
    }
}
