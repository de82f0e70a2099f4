//! The unit of aggregation: one activity, or one rollup group of activities.

use serde::{Deserialize, Serialize};

use crate::activity::{Activity, Outcome};
use crate::credits::Credits;
use crate::time::Timestamp;

fn one() -> u64 {
    1
}

/// A row of every report dimension fed to an `Aggregate`. Raw activities have
/// `count = 1`; a row standing for a group carries its count and summed credits,
/// `occurredAt` = the start of its period and `latest` = its newest activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportRow {
    pub occurred_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Timestamp>,
    #[serde(default = "one")]
    pub count: u64,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department_id: Option<String>,
    pub operation: String,
    #[serde(default = "default_outcome")]
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    /// Total credits of the row (not per activity).
    #[serde(default)]
    pub credits: Credits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
}

fn default_outcome() -> Outcome {
    Outcome::Success
}

impl From<&Activity> for ReportRow {
    fn from(a: &Activity) -> Self {
        ReportRow {
            occurred_at: a.occurred_at,
            latest: None,
            count: 1,
            user_id: a.user_id.clone(),
            department_id: Some(a.user_context.hierarchy.department_id.clone()),
            operation: a.operation.clone(),
            outcome: a.outcome,
            entity_type: a.entity_type.clone(),
            credits: a.credits,
            location: a.compliance.location.clone(),
            authentication_method: a.compliance.authentication_method.clone(),
            ip_address: a.compliance.ip_address.clone(),
        }
    }
}
