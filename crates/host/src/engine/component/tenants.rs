//! Host side of the `tenants` interface.

use super::bindings::crm::engine::types::TenantRef;
use super::{GuestError, Instance, Tenant};

/// The guest's answer when a call names a snapshot it does not hold.
pub(super) const NOT_LOADED: &str = "snapshot_not_loaded";

impl Instance {
    /// Loads `tenant`'s snapshot into the guest and records its version.
    pub(super) fn load(&mut self, tenant: &Tenant) -> wasmtime::Result<Result<(), GuestError>> {
        let directory_json = serde_json::to_string(&tenant.snapshot.directory.to_spec())?;
        let answer = self.world.crm_engine_tenants().call_load(
            &mut self.store,
            tenant_ref(tenant),
            &tenant.policy_json,
            &directory_json,
        )?;
        Ok(answer.map(|_info| {
            self.loaded.insert(tenant.id().to_owned(), tenant.version());
        }))
    }
}

pub(super) fn tenant_ref(tenant: &Tenant) -> TenantRef<'_> {
    TenantRef {
        tenant_id: tenant.id(),
        version: tenant.version(),
    }
}
