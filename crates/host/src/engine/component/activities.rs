//! Host side of the `activities` interface: the guest decides, the host assembles the
//! record with its own copy of the same directory version (`crm_core::enrich::assemble`).

use crm_core::enrich::Enrichment;
use crm_core::{Activity, CoreError, Credits, Outcome, Timestamp};

use super::bindings::exports::crm::engine::activities::{self as wit, RawActivity as WitRaw};
use super::permissions::raw_decision;
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
        let raw: Vec<WitRaw> = items
            .iter()
            .map(|i| WitRaw {
                input_json: &i.input_json,
                generated_id: &i.generated_id,
            })
            .collect();
        let answers = self.with_tenant(tenant, |i| {
            i.world.crm_engine_activities().call_enrich_batch(
                &mut i.store,
                tenant_ref(tenant),
                now.millis(),
                &raw,
            )
        })?;
        if answers.len() != items.len() {
            return Err(EngineError::Fault(
                "guest answered a different number of activities".to_owned(),
            ));
        }
        answers
            .into_iter()
            .map(|answer| match answer {
                Ok(e) => Ok(Ok(tenant
                    .snapshot
                    .assemble(enrichment(tenant, e)?, ip_address))),
                Err(e) => match core_error(e) {
                    EngineError::Core(c) => Ok(Err(c)),
                    fault => Err(fault),
                },
            })
            .collect()
    }
}

/// The guest's record in the core's terms, every index and value checked: a guest that
/// breaks the contract is a fault, never a panic or a wrong record.
fn enrichment(tenant: &Tenant, e: wit::Enrichment) -> EngineResult<Enrichment> {
    let directory = &tenant.snapshot.directory;
    let fault = |what: &str| EngineError::Fault(format!("guest answered {what}"));
    Ok(Enrichment {
        id: e.id,
        occurred_at: Timestamp::from_millis(e.occurred_at_ms)
            .map_err(|_| fault("a time out of range"))?,
        user: directory
            .user_at(e.user)
            .ok_or_else(|| fault("a user outside the directory"))?,
        operation: e.operation,
        outcome: match e.outcome {
            wit::Outcome::Success => Outcome::Success,
            wit::Outcome::Denied => Outcome::Denied,
            wit::Outcome::Failed => Outcome::Failed,
            wit::Outcome::InsufficientCredits => Outcome::InsufficientCredits,
        },
        entity_type: e.entity_type,
        entity_id: e.entity_id,
        session_id: e.session_id,
        credits: Credits::from_units(e.credits).map_err(|_| fault("credits out of range"))?,
        decision: raw_decision(directory, e.decision)?,
        metadata: serde_json::from_str(&e.metadata_json).map_err(json_fault)?,
        user_agent: e.user_agent,
        location: e.location,
        authentication_method: e.authentication_method,
    })
}
