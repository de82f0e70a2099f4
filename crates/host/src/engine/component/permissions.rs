//! Host side of the `permissions` interface.

use crm_core::Credits;
use crm_core::permission::{CheckRequest, Decision, Reason};

use super::bindings::exports::crm::engine::permissions::Check;
use super::tenants::tenant_ref;
use super::{ComponentEngine, EngineError, EngineResult, Tenant};

impl ComponentEngine {
    pub(super) fn guest_check_batch(
        &self,
        tenant: &Tenant,
        checks: &[CheckRequest],
    ) -> EngineResult<Vec<Decision>> {
        let wit_checks: Vec<Check> = checks
            .iter()
            .map(|c| Check {
                user_id: c.user_id.clone(),
                permission: c.permission.clone(),
            })
            .collect();
        let decisions = self.with_tenant(tenant, |i| {
            i.world.crm_engine_permissions().call_check_batch(
                &mut i.store,
                &tenant_ref(tenant),
                &wit_checks,
            )
        })?;
        if decisions.len() != checks.len() {
            return Err(EngineError::Fault(
                "guest answered a different number of decisions".to_owned(),
            ));
        }
        checks
            .iter()
            .zip(decisions)
            .map(|(req, d)| {
                let reason = Reason::parse(&d.reason).ok_or_else(|| {
                    EngineError::Fault(format!("guest answered reason `{}`", d.reason))
                })?;
                Ok(Decision {
                    user_id: req.user_id.clone(),
                    permission: req.permission.clone(),
                    allowed: d.allowed,
                    source: d.source,
                    reason,
                })
            })
            .collect()
    }

    pub(super) fn guest_cost(&self, tenant: &Tenant, operation: &str) -> EngineResult<Credits> {
        let units = self.with_tenant(tenant, |i| {
            i.world
                .crm_engine_permissions()
                .call_cost(&mut i.store, &tenant_ref(tenant), operation)
        })?;
        Ok(Credits::from_units(units)?)
    }
}
