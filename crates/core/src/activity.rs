//! The activity record (the original sketch's `activityEntry`, made correct) and its input form.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::credits::Credits;
use crate::permission::Reason;
use crate::time::Timestamp;

/// What happened to the operation.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// The permission check refused it.
    Denied,
    /// The operation itself failed after it was allowed.
    Failed,
    /// The tenant's balance could not cover the cost; nothing was charged.
    InsufficientCredits,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
            Outcome::InsufficientCredits => "insufficient_credits",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        [
            Outcome::Success,
            Outcome::Denied,
            Outcome::Failed,
            Outcome::InsufficientCredits,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }
}

/// Outcome a client may report: whether its operation succeeded. `denied` and
/// `insufficient_credits` are decided by the engine, never by the client.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReportedOutcome {
    #[default]
    Success,
    Failed,
}

/// Compliance fields a client may send. The IP address is not one of them: it comes
/// from the connection.
// (Defect 20 took it from the body, where anyone can forge it.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComplianceInput {
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub authentication_method: Option<String>,
    /// Present only so that we can answer with a precise error instead of "unknown field".
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub ip_address: Option<IgnoredAny>,
}

/// An activity as a client submits it (`POST /v1/activities`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityInput {
    /// Idempotency key. When absent the runtime generates a ULID.
    #[serde(default)]
    pub id: Option<String>,
    pub user_id: String,
    pub operation: String,
    #[serde(default)]
    pub outcome: ReportedOutcome,
    #[serde(default)]
    pub entity_type: Option<String>,
    #[serde(default)]
    pub entity_id: Option<String>,
    /// Kept as given; never invented.
    // (Defect 19 made one up per activity.)
    #[serde(default)]
    pub session_id: Option<String>,
    /// When the operation happened; defaults to the time of receipt.
    #[serde(default)]
    pub occurred_at: Option<Timestamp>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub compliance: Option<ComplianceInput>,
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub ip_address: Option<IgnoredAny>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    pub id: String,
    pub name: String,
    /// Absent for accounts that have none (service accounts, integrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub department_id: String,
    pub organization_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hierarchy {
    pub organization_id: String,
    pub organization_name: String,
    pub department_id: String,
    pub department_name: String,
    /// Materialized department path `/top/child/leaf/`, used for subtree queries.
    pub department_path: String,
    /// Parent department, or the organization for a top-level department.
    pub parent_entity_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserContext {
    pub user: UserProfile,
    /// Department name, as the original sketch reported it.
    pub department: String,
    pub hierarchy: Hierarchy,
    /// `Acme Corp → Sales Department → John Doe`
    pub entity_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationContext {
    pub required: String,
    pub has: bool,
    /// `role:<RoleName>`, `direct` or `none`.
    pub source: String,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionContext {
    /// Every pattern the user holds (roles first, then direct grants).
    pub granted: Vec<String>,
    pub roles: Vec<RoleRef>,
    pub operation_context: OperationContext,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Compliance {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub location: Option<String>,
    pub authentication_method: Option<String>,
}

/// A recorded activity. `seq`, `prevHash` and `hash` are set when the storage layer
/// appends it to the tenant's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Activity {
    pub id: String,
    pub tenant_id: String,
    pub seq: u64,
    pub occurred_at: Timestamp,
    pub user_id: String,
    pub operation: String,
    pub outcome: Outcome,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub credits: Credits,
    pub session_id: Option<String>,
    pub user_context: UserContext,
    pub permission: PermissionContext,
    pub metadata: Map<String, Value>,
    pub compliance: Compliance,
    /// The directory version the permission decision was made against (decision
    /// provenance: an auditor can replay why it was allowed or refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_version: Option<u64>,
    /// The personal fields sealed under the subject's key (crypto-shredding): absent
    /// on records written before sealing and on records with nothing personal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal: Option<crate::personal::Personal>,
    pub prev_hash: String,
    pub hash: String,
}
