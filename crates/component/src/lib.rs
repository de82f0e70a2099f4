//! Thin wit-bindgen guest over `crm_core::engine`: converts WIT values to core calls
//! and core errors to the WIT `error` record. Every rule lives in crm-core.

/// Generated glue, fenced: the only place in the workspace where unsafe code exists.
#[allow(unsafe_code, missing_debug_implementations)]
mod bindings {
    wit_bindgen::generate!({ world: "engine", path: "../../wit" });

    use super::Component;
    export!(Component with_types_in self);
}

use std::cell::RefCell;
use std::collections::HashMap;

use bindings::crm::engine::types::{Error, TenantRef};
use bindings::exports::crm::engine::{activities, conformance, permissions, tenants};
use crm_core::engine::TenantSnapshot;
use crm_core::permission::CheckRequest;
use crm_core::{CoreError, Credits, Timestamp};

/// Snapshots one instance keeps. Instances are pooled per host thread and serve every
/// tenant; past this many the oldest are dropped and the host reloads on demand.
const MAX_TENANTS_PER_INSTANCE: usize = 256;

thread_local! {
    static SNAPSHOTS: RefCell<HashMap<String, TenantSnapshot>> = RefCell::new(HashMap::new());
}

struct Component;

fn to_wit(e: CoreError) -> Error {
    Error {
        code: e.code.as_str().to_owned(),
        message: e.message,
        field: e.field,
    }
}

fn json_err(e: serde_json::Error) -> Error {
    to_wit(CoreError::from_json(&e))
}

fn with_tenant<T>(
    tenant: &TenantRef,
    f: impl FnOnce(&TenantSnapshot) -> Result<T, Error>,
) -> Result<T, Error> {
    SNAPSHOTS.with_borrow(|map| match map.get(&tenant.tenant_id) {
        Some(s) if s.version == tenant.version => f(s),
        _ => Err(Error {
            code: "snapshot_not_loaded".to_owned(),
            message: format!(
                "tenant snapshot {} v{} is not loaded",
                tenant.tenant_id, tenant.version
            ),
            field: None,
        }),
    })
}

impl tenants::Guest for Component {
    fn load(
        tenant: TenantRef,
        policy_json: String,
        directory_json: String,
    ) -> Result<tenants::SnapshotInfo, Error> {
        let snap = TenantSnapshot::from_json(
            &tenant.tenant_id,
            tenant.version,
            &policy_json,
            &directory_json,
        )
        .map_err(to_wit)?;
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let info = tenants::SnapshotInfo {
            users: count(snap.directory.user_count()),
            departments: count(snap.directory.department_count()),
            roles: count(snap.directory.role_count()),
            permissions: count(snap.directory.permission_count()),
        };
        SNAPSHOTS.with_borrow_mut(|map| {
            if map.len() >= MAX_TENANTS_PER_INSTANCE && !map.contains_key(&tenant.tenant_id) {
                map.clear();
            }
            map.insert(tenant.tenant_id, snap);
        });
        Ok(info)
    }

    fn unload(tenant_id: String) {
        SNAPSHOTS.with_borrow_mut(|map| map.remove(&tenant_id));
    }
}

impl permissions::Guest for Component {
    fn check_batch(
        tenant: TenantRef,
        checks: Vec<permissions::Check>,
    ) -> Result<Vec<permissions::Decision>, Error> {
        with_tenant(&tenant, |snap| {
            let requests: Vec<CheckRequest> = checks
                .into_iter()
                .map(|c| CheckRequest {
                    user_id: c.user_id,
                    permission: c.permission,
                })
                .collect();
            let decisions = snap.directory.check_batch(&requests).map_err(to_wit)?;
            Ok(decisions
                .into_iter()
                .map(|d| permissions::Decision {
                    allowed: d.allowed,
                    source: d.source,
                    reason: d.reason.as_str().to_owned(),
                })
                .collect())
        })
    }

    fn cost(tenant: TenantRef, operation: String) -> Result<i64, Error> {
        with_tenant(&tenant, |snap| {
            snap.cost(&operation).map(Credits::units).map_err(to_wit)
        })
    }
}

impl activities::Guest for Component {
    fn enrich_batch(
        tenant: TenantRef,
        ctx: activities::Context,
        items: Vec<activities::RawActivity>,
    ) -> Result<Vec<Result<String, Error>>, Error> {
        let now = Timestamp::from_millis(ctx.now_ms).map_err(to_wit)?;
        with_tenant(&tenant, |snap| {
            Ok(items
                .iter()
                .map(|item| {
                    let a = snap
                        .enrich_json(
                            &item.input_json,
                            &item.generated_id,
                            now,
                            ctx.ip_address.as_deref(),
                        )
                        .map_err(to_wit)?;
                    serde_json::to_string(&a).map_err(json_err)
                })
                .collect())
        })
    }
}

impl conformance::Guest for Component {
    fn evaluate(setup_json: String, op: String, input_json: String) -> String {
        crm_core::json_api::evaluate_json(&setup_json, &op, &input_json)
    }
}
