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

use bindings::crm::engine::types::{Decision, Error, Reason, Source, TenantRef};
use bindings::exports::crm::engine::{activities, conformance, permissions, tenants};
use crm_core::engine::TenantSnapshot;
use crm_core::enrich::Enrichment;
use crm_core::permission::{self, RawDecision};
use crm_core::{CoreError, Credits, Outcome, Timestamp};

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

fn decision(d: RawDecision) -> Decision {
    Decision {
        allowed: d.allowed,
        source: match d.source {
            permission::Source::Role(r) => Source::Role(r),
            permission::Source::Direct => Source::Direct,
            permission::Source::None => Source::None,
        },
        reason: match d.reason {
            permission::Reason::Granted => Reason::Granted,
            permission::Reason::Denied => Reason::Denied,
            permission::Reason::NotGranted => Reason::NotGranted,
            permission::Reason::UnknownUser => Reason::UnknownUser,
        },
    }
}

/// The `(user id, permission)` pairs of a check buffer (see `check-batch` in the WIT).
fn split_checks<'a>(names: &'a str, lengths: &[u32]) -> Result<Vec<(&'a str, &'a str)>, Error> {
    let malformed = || Error {
        code: "invalid_input".to_owned(),
        message: "malformed check buffer".to_owned(),
        field: Some("checks".to_owned()),
    };
    if !lengths.len().is_multiple_of(2) {
        return Err(malformed());
    }
    let mut at = 0usize;
    let mut next = |len: u32| {
        let end = at.checked_add(len as usize).ok_or_else(malformed)?;
        let name = names.get(at..end).ok_or_else(malformed)?;
        at = end;
        Ok(name)
    };
    let pairs = lengths
        .chunks_exact(2)
        .map(|pair| Ok((next(pair[0])?, next(pair[1])?)))
        .collect::<Result<Vec<_>, Error>>()?;
    if at != names.len() {
        return Err(malformed());
    }
    Ok(pairs)
}

impl permissions::Guest for Component {
    fn check_batch(
        tenant: TenantRef,
        names: String,
        lengths: Vec<u32>,
    ) -> Result<Vec<Decision>, Error> {
        let pairs = split_checks(&names, &lengths)?;
        with_tenant(&tenant, |snap| {
            let decisions = snap
                .directory
                .check_pairs_raw(pairs.into_iter())
                .map_err(to_wit)?;
            Ok(decisions.into_iter().map(decision).collect())
        })
    }

    fn cost(tenant: TenantRef, operation: String) -> Result<i64, Error> {
        with_tenant(&tenant, |snap| {
            snap.cost(&operation).map(Credits::units).map_err(to_wit)
        })
    }
}

fn enrichment(e: Enrichment) -> Result<activities::Enrichment, Error> {
    Ok(activities::Enrichment {
        metadata_json: serde_json::to_string(&e.metadata).map_err(json_err)?,
        id: e.id,
        occurred_at_ms: e.occurred_at.millis(),
        user: e.user.position(),
        operation: e.operation,
        outcome: match e.outcome {
            Outcome::Success => activities::Outcome::Success,
            Outcome::Denied => activities::Outcome::Denied,
            Outcome::Failed => activities::Outcome::Failed,
            Outcome::InsufficientCredits => activities::Outcome::InsufficientCredits,
        },
        entity_type: e.entity_type,
        entity_id: e.entity_id,
        session_id: e.session_id,
        credits: e.credits.units(),
        decision: decision(e.decision),
        user_agent: e.user_agent,
        location: e.location,
        authentication_method: e.authentication_method,
    })
}

impl activities::Guest for Component {
    fn enrich_batch(
        tenant: TenantRef,
        now_ms: i64,
        items: Vec<activities::RawActivity>,
    ) -> Result<Vec<Result<activities::Enrichment, Error>>, Error> {
        let now = Timestamp::from_millis(now_ms).map_err(to_wit)?;
        with_tenant(&tenant, |snap| {
            Ok(items
                .iter()
                .map(|item| {
                    snap.decide_json(&item.input_json, &item.generated_id, now)
                        .map_err(to_wit)
                        .and_then(enrichment)
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

#[cfg(test)]
mod tests {
    use super::split_checks;

    #[test]
    fn a_check_buffer_splits_into_its_pairs() {
        let pairs =
            split_checks("u-1crm.leads.readu-22crm.x", &[3, 14, 4, 5]).expect("well formed");
        assert_eq!(pairs, [("u-1", "crm.leads.read"), ("u-22", "crm.x")]);
        assert_eq!(split_checks("", &[]).expect("empty"), []);
    }

    #[test]
    fn a_malformed_check_buffer_is_refused() {
        for (names, lengths) in [
            ("ab", &[1u32][..]),
            ("abc", &[1, 1]),
            ("ab", &[1, 2]),
            ("é", &[1, 1]),
            ("ab", &[u32::MAX, 1]),
        ] {
            let err = split_checks(names, lengths).expect_err("malformed");
            assert_eq!(err.code, "invalid_input", "{names:?} {lengths:?}");
        }
    }
}
