//! The engine's operations exactly as runtimes call them: a loaded tenant snapshot,
//! batch enrichment, settle-and-seal and report partials. The wasm component and the
//! host's native engine both delegate here, so the two engines cannot drift apart.

use crate::activity::{Activity, ActivityInput};
use crate::chain;
use crate::credits::Credits;
use crate::directory::{CompiledDirectory, DirectorySpec};
use crate::enrich::{EnrichContext, Enrichment, assemble, decide, settle};
use crate::error::{CoreError, CoreResult};
use crate::report::{Aggregate, GroupBy, ReportBody, ReportRow, ReportTz};
use crate::tenant::TenantPolicy;
use crate::time::Timestamp;

/// A tenant's compiled directory and policy, as a runtime keeps it per version.
#[derive(Debug)]
pub struct TenantSnapshot {
    pub tenant_id: String,
    pub version: u64,
    pub policy: TenantPolicy,
    pub directory: CompiledDirectory,
}

impl TenantSnapshot {
    pub fn from_json(
        tenant_id: &str,
        version: u64,
        policy_json: &str,
        directory_json: &str,
    ) -> CoreResult<TenantSnapshot> {
        let policy: TenantPolicy = serde_json::from_str(policy_json)
            .map_err(|e| CoreError::from_json(&e).within("policy"))?;
        policy.validate()?;
        let spec: DirectorySpec = serde_json::from_str(directory_json)
            .map_err(|e| CoreError::from_json(&e).within("directory"))?;
        Ok(TenantSnapshot {
            tenant_id: tenant_id.to_owned(),
            version,
            policy,
            directory: CompiledDirectory::compile(&spec)?,
        })
    }

    /// Enriches one raw activity (JSON text). `generated_id` is used when it has no id.
    pub fn enrich_json(
        &self,
        input_json: &str,
        generated_id: &str,
        now: Timestamp,
        ip_address: Option<&str>,
    ) -> CoreResult<Activity> {
        let decided = self.decide_json(input_json, generated_id, now)?;
        Ok(self.assemble(decided, ip_address))
    }

    /// The rules' part of [`enrich_json`](Self::enrich_json) (see [`Enrichment`]).
    pub fn decide_json(
        &self,
        input_json: &str,
        generated_id: &str,
        now: Timestamp,
    ) -> CoreResult<Enrichment> {
        let input: ActivityInput =
            serde_json::from_str(input_json).map_err(|e| CoreError::from_json(&e))?;
        let ctx = EnrichContext {
            tenant_id: &self.tenant_id,
            now,
            generated_id: generated_id.to_owned(),
            ip_address: None,
            directory_version: Some(self.version),
        };
        decide(&self.directory, &self.policy, input, &ctx)
    }

    /// The record of a decision made against this snapshot, received from `ip_address`.
    pub fn assemble(&self, decided: Enrichment, ip_address: Option<&str>) -> Activity {
        assemble(
            &self.directory,
            decided,
            &self.tenant_id,
            ip_address,
            Some(self.version),
        )
    }

    /// Credit cost of an operation.
    pub fn cost(&self, operation: &str) -> CoreResult<Credits> {
        crate::names::validate_operation("operation", operation)?;
        Ok(self.policy.prices.cost(operation))
    }
}

/// Charges `activities` in order against `balance`, then appends them to the chain
/// starting at `first_seq` after `prev_hash`. Returns the remaining balance.
pub fn settle_and_seal(
    balance: Credits,
    first_seq: u64,
    prev_hash: &str,
    activities: &mut [Activity],
) -> CoreResult<Credits> {
    let settlement = settle(activities, balance)?;
    let mut prev = prev_hash.to_owned();
    for (seq, a) in (first_seq..).zip(activities.iter_mut()) {
        chain::seal(a, seq, &prev);
        prev.clone_from(&a.hash);
    }
    Ok(settlement.balance)
}

/// Aggregates rows into a mergeable partial.
pub fn aggregate(group_by: &str, timezone: &str, rows: &[ReportRow]) -> CoreResult<Aggregate> {
    let mut agg = Aggregate::new(GroupBy::parse(group_by)?, ReportTz::parse(timezone)?);
    agg.add_all(rows)?;
    Ok(agg)
}

/// Merges partials (all of one grouping and timezone) into a report body.
pub fn finish(partials: Vec<Aggregate>) -> CoreResult<ReportBody> {
    let mut iter = partials.into_iter();
    let mut total = iter
        .next()
        .ok_or_else(|| CoreError::invalid("partials", "at least one partial is needed"))?;
    for part in iter {
        total.merge(&part)?;
    }
    total.finish()
}
