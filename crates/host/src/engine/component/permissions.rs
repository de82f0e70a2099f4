//! Host side of the `permissions` interface.

use crm_core::CompiledDirectory;
use crm_core::Credits;
use crm_core::permission::{CheckRequest, Decision, RawDecision, Reason, Source};

use super::bindings::crm::engine::types;
use super::tenants::tenant_ref;
use super::{ComponentEngine, EngineError, EngineResult, Tenant};

impl ComponentEngine {
    pub(super) fn guest_check_batch(
        &self,
        tenant: &Tenant,
        checks: &[CheckRequest],
    ) -> EngineResult<Vec<Decision>> {
        let mut names = String::with_capacity(
            checks
                .iter()
                .map(|c| c.user_id.len() + c.permission.len())
                .sum(),
        );
        let mut lengths = Vec::with_capacity(checks.len() * 2);
        for c in checks {
            for part in [&c.user_id, &c.permission] {
                names.push_str(part);
                lengths.push(
                    u32::try_from(part.len())
                        .map_err(|_| EngineError::Fault("a check longer than 4 GiB".to_owned()))?,
                );
            }
        }
        let decisions = self.with_tenant(tenant, |i| {
            i.world.crm_engine_permissions().call_check_batch(
                &mut i.store,
                tenant_ref(tenant),
                &names,
                &lengths,
            )
        })?;
        if decisions.len() != checks.len() {
            return Err(EngineError::Fault(
                "guest answered a different number of decisions".to_owned(),
            ));
        }
        let directory = &tenant.snapshot.directory;
        checks
            .iter()
            .zip(decisions)
            .map(|(req, d)| {
                Ok(directory.report(&req.user_id, &req.permission, raw_decision(directory, d)?))
            })
            .collect()
    }

    pub(super) fn guest_cost(&self, tenant: &Tenant, operation: &str) -> EngineResult<Credits> {
        let units = self.with_tenant(tenant, |i| {
            i.world
                .crm_engine_permissions()
                .call_cost(&mut i.store, tenant_ref(tenant), operation)
        })?;
        Ok(Credits::from_units(units)?)
    }
}

/// The guest's decision in the core's terms; a role outside `directory` breaks the
/// contract (both sides compiled the same version) and is a fault, not an index panic.
pub(super) fn raw_decision(
    directory: &CompiledDirectory,
    d: types::Decision,
) -> EngineResult<RawDecision> {
    let source = match d.source {
        types::Source::Role(r) => Source::Role(r),
        types::Source::Direct => Source::Direct,
        types::Source::None => Source::None,
    };
    if !directory.source_in_range(source) {
        return Err(EngineError::Fault(format!(
            "guest answered a role outside the directory: {source:?}"
        )));
    }
    Ok(RawDecision {
        allowed: d.allowed,
        source,
        reason: match d.reason {
            types::Reason::Granted => Reason::Granted,
            types::Reason::Denied => Reason::Denied,
            types::Reason::NotGranted => Reason::NotGranted,
            types::Reason::UnknownUser => Reason::UnknownUser,
        },
    })
}
