//! Enrichment: raw input + directory + tenant policy + caller-supplied context → a full
//! activity with who/what/when/where/why/how, and the credit settlement of a batch.

use crate::activity::{
    Activity, ActivityInput, Compliance, Hierarchy, OperationContext, Outcome, PermissionContext,
    ReportedOutcome, RoleRef, UserContext, UserProfile,
};
use crate::credits::Credits;
use crate::directory::{CompiledDirectory, UserIdx};
use crate::error::{CoreError, CoreResult, ErrorCode};
use crate::limits::{MAX_BACKDATE_MS, MAX_FUTURE_SKEW_MS, MAX_ID_LEN, MAX_USER_AGENT_LEN};
use crate::metadata;
use crate::names::{validate_id, validate_label, validate_operation, validate_text};
use crate::permission::RawDecision;
use crate::tenant::TenantPolicy;
use crate::time::{Timestamp, clip};
use serde_json::{Map, Value};

/// What only the runtime knows: the tenant, the clock, a fresh id, the connection.
#[derive(Debug, Clone)]
pub struct EnrichContext<'a> {
    pub tenant_id: &'a str,
    pub now: Timestamp,
    /// Used when the input carries no id.
    pub generated_id: String,
    /// Peer address of the connection (or of a trusted proxy's forwarded header).
    pub ip_address: Option<String>,
    /// Version of the directory the decision is made against, recorded with it.
    pub directory_version: Option<u64>,
}

/// Separator in entity paths, as in the original sketch: `Acme Corp → Sales → John Doe`.
pub const PATH_SEPARATOR: &str = " → ";

fn validate_input(input: &ActivityInput, now: Timestamp) -> CoreResult<()> {
    let body_ip = if input.ip_address.is_some() {
        Some("ipAddress")
    } else if input
        .compliance
        .as_ref()
        .is_some_and(|c| c.ip_address.is_some())
    {
        Some("compliance.ipAddress")
    } else {
        None
    };
    if let Some(field) = body_ip {
        return Err(CoreError::invalid(
            field,
            "ipAddress is taken from the connection and must not be sent in the body",
        ));
    }
    if let Some(id) = &input.id {
        validate_id("id", id)?;
    }
    validate_id("userId", &input.user_id)?;
    validate_operation("operation", &input.operation)?;
    if let Some(t) = &input.entity_type {
        validate_operation("entityType", t)?;
    }
    if let Some(e) = &input.entity_id {
        validate_text("entityId", e, MAX_ID_LEN)?;
    }
    if let Some(s) = &input.session_id {
        validate_id("sessionId", s)?;
    }
    if let Some(c) = &input.compliance {
        if let Some(ua) = &c.user_agent {
            validate_text("compliance.userAgent", ua, MAX_USER_AGENT_LEN)?;
        }
        if let Some(l) = &c.location {
            validate_label("compliance.location", l)?;
        }
        if let Some(m) = &c.authentication_method {
            validate_label("compliance.authenticationMethod", m)?;
        }
    }
    if let Some(at) = input.occurred_at {
        if at.millis() > now.millis().saturating_add(MAX_FUTURE_SKEW_MS) {
            return Err(CoreError::invalid(
                "occurredAt",
                "occurredAt is more than 5 minutes in the future",
            ));
        }
        if at.millis() < now.millis().saturating_sub(MAX_BACKDATE_MS) {
            return Err(CoreError::invalid(
                "occurredAt",
                "occurredAt is more than 90 days in the past",
            ));
        }
    }
    Ok(())
}

impl CompiledDirectory {
    /// The original sketch's `userContext`, made from the directory.
    pub fn user_context(&self, user: UserIdx) -> UserContext {
        let u = &self.users[user.0 as usize];
        let dept = &self.depts[u.dept as usize];
        let org = &self.orgs[dept.org as usize];
        let mut entity_path = String::from(&*org.name);
        for &d in dept.path.iter() {
            entity_path.push_str(PATH_SEPARATOR);
            entity_path.push_str(&self.depts[d as usize].name);
        }
        entity_path.push_str(PATH_SEPARATOR);
        entity_path.push_str(&u.name);
        let parent_entity_id = match dept.parent {
            Some(p) => self.depts[p as usize].id.to_string(),
            None => org.id.to_string(),
        };
        UserContext {
            user: UserProfile {
                id: u.id.to_string(),
                name: u.name.to_string(),
                email: u.email.as_deref().map(str::to_owned),
                title: u.title.as_deref().map(str::to_owned),
                department_id: dept.id.to_string(),
                organization_id: org.id.to_string(),
            },
            department: dept.name.to_string(),
            hierarchy: Hierarchy {
                organization_id: org.id.to_string(),
                organization_name: org.name.to_string(),
                department_id: dept.id.to_string(),
                department_name: dept.name.to_string(),
                department_path: self.department_path(crate::directory::DeptIdx(u.dept)),
                parent_entity_id,
            },
            entity_path,
        }
    }

    fn permission_context(
        &self,
        user: UserIdx,
        operation: String,
        decision: RawDecision,
    ) -> PermissionContext {
        let u = &self.users[user.0 as usize];
        let mut granted: Vec<String> = Vec::new();
        for &r in u.roles.iter() {
            for p in self.roles[r as usize].grants.patterns() {
                if !granted.iter().any(|g| **g == **p) {
                    granted.push(p.to_string());
                }
            }
        }
        for p in u.direct.iter().flat_map(|g| g.patterns()) {
            if !granted.iter().any(|g| **g == **p) {
                granted.push(p.to_string());
            }
        }
        PermissionContext {
            granted,
            roles: u
                .roles
                .iter()
                .map(|&r| RoleRef {
                    id: self.roles[r as usize].id.to_string(),
                    name: self.roles[r as usize].name.to_string(),
                })
                .collect(),
            operation_context: OperationContext {
                required: operation,
                has: decision.allowed,
                source: self.source_label(decision.source),
                reason: decision.reason,
            },
        }
    }
}

/// What enrichment decides with the tenant's rules: the whole record except what is a
/// plain projection of the directory for the user (profile, hierarchy, grants, role
/// names), which [`assemble`] adds. The wasm guest answers this much and the host
/// assembles it with its own copy of the same directory version, so only what the
/// guest computed crosses the boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrichment {
    pub id: String,
    pub occurred_at: Timestamp,
    pub user: UserIdx,
    pub operation: String,
    pub outcome: Outcome,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub session_id: Option<String>,
    pub credits: Credits,
    pub decision: RawDecision,
    /// Sanitized: redacted keys replaced, limits checked.
    pub metadata: Map<String, Value>,
    pub user_agent: Option<String>,
    pub location: Option<String>,
    pub authentication_method: Option<String>,
}

/// Validates the input and decides: the user, the permission decision, the outcome
/// (`denied` when the check refuses, otherwise what the client reported) and the price
/// (only successes are charged).
pub fn decide(
    directory: &CompiledDirectory,
    policy: &TenantPolicy,
    input: ActivityInput,
    ctx: &EnrichContext<'_>,
) -> CoreResult<Enrichment> {
    validate_input(&input, ctx.now)?;
    let user = directory.user(&input.user_id).ok_or_else(|| {
        CoreError::new(
            ErrorCode::UnknownUser,
            format!("unknown user `{}`", clip(&input.user_id)),
        )
        .at("userId")
    })?;
    let metadata = metadata::sanitize(input.metadata, &policy.redact_keys)?;
    let decision = directory.check_idx(user, &input.operation);
    let outcome = match (decision.allowed, input.outcome) {
        (false, _) => Outcome::Denied,
        (true, ReportedOutcome::Success) => Outcome::Success,
        (true, ReportedOutcome::Failed) => Outcome::Failed,
    };
    let credits = if outcome == Outcome::Success {
        policy.prices.cost(&input.operation)
    } else {
        Credits::ZERO
    };
    let compliance = input.compliance.unwrap_or_default();
    Ok(Enrichment {
        id: input.id.unwrap_or_else(|| ctx.generated_id.clone()),
        occurred_at: input.occurred_at.unwrap_or(ctx.now),
        user,
        operation: input.operation,
        outcome,
        entity_type: input.entity_type,
        entity_id: input.entity_id,
        session_id: input.session_id,
        credits,
        decision,
        metadata,
        user_agent: compliance.user_agent,
        location: compliance.location,
        authentication_method: compliance.authentication_method,
    })
}

/// The full activity from a decision and the directory it was made against, received
/// for `tenant_id` from `ip_address` (the record's provenance; the rest is decided).
pub fn assemble(
    directory: &CompiledDirectory,
    e: Enrichment,
    tenant_id: &str,
    ip_address: Option<&str>,
    directory_version: Option<u64>,
) -> Activity {
    let user_id = directory.users[e.user.0 as usize].id.to_string();
    Activity {
        id: e.id,
        tenant_id: tenant_id.to_owned(),
        seq: 0,
        occurred_at: e.occurred_at,
        user_id,
        operation: e.operation.clone(),
        outcome: e.outcome,
        entity_type: e.entity_type,
        entity_id: e.entity_id,
        credits: e.credits,
        session_id: e.session_id,
        user_context: directory.user_context(e.user),
        permission: directory.permission_context(e.user, e.operation, e.decision),
        metadata: e.metadata,
        compliance: Compliance {
            ip_address: ip_address.map(str::to_owned),
            user_agent: e.user_agent,
            location: e.location,
            authentication_method: e.authentication_method,
        },
        directory_version,
        personal: None,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// Builds the full activity: [`decide`], then [`assemble`].
pub fn enrich(
    directory: &CompiledDirectory,
    policy: &TenantPolicy,
    input: ActivityInput,
    ctx: &EnrichContext<'_>,
) -> CoreResult<Activity> {
    let decided = decide(directory, policy, input, ctx)?;
    Ok(assemble(
        directory,
        decided,
        ctx.tenant_id,
        ctx.ip_address.as_deref(),
        ctx.directory_version,
    ))
}

/// Result of charging a batch against a balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub balance: Credits,
    pub charged: Credits,
    /// Indexes of activities turned into `insufficient_credits`.
    pub refused: Vec<usize>,
}

/// Charges successful activities in order. One that the remaining balance cannot cover
/// becomes `insufficient_credits` with zero credits; later cheaper ones may still pass.
/// The balance never goes negative.
pub fn settle(activities: &mut [Activity], balance: Credits) -> CoreResult<Settlement> {
    let mut remaining = balance;
    let mut charged = Credits::ZERO;
    let mut refused = Vec::new();
    for (i, a) in activities.iter_mut().enumerate() {
        if a.outcome != Outcome::Success || a.credits == Credits::ZERO {
            continue;
        }
        match remaining.debit(a.credits) {
            Ok(next) => {
                charged = charged.checked_add(a.credits)?;
                remaining = next;
            }
            Err(e) if e.code == ErrorCode::InsufficientCredits => {
                a.outcome = Outcome::InsufficientCredits;
                a.credits = Credits::ZERO;
                refused.push(i);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Settlement {
        balance: remaining,
        charged,
        refused,
    })
}
