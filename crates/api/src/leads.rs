//! The engine's own leads (`POST /v1/leads`, `PATCH`/`GET /v1/leads/{id}`, `GET
//! /v1/leads`): the fields a client sets, the requests that create and change them, and
//! a lead as answered. crm-host runs them; the edge answers 501 (no leads table there).

use crm_core::error::CoreResult;
use crm_core::{Credits, Timestamp};
use crm_store::leads::LeadRow;
use crm_store::{StoreError, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crm_core::activity::ComplianceInput;

/// Lead fields a client may set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeadFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<LeadStatus>,
    /// How urgently it is worked (the original sketch's `priority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<LeadPriority>,
    /// Deal value, exact to 1/10,000 (text or number on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Credits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeadStatus {
    Open,
    Qualified,
    Won,
    Lost,
}

impl LeadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::Open => "open",
            LeadStatus::Qualified => "qualified",
            LeadStatus::Won => "won",
            LeadStatus::Lost => "lost",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeadPriority {
    Low,
    Medium,
    High,
    Urgent,
}

impl LeadPriority {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadPriority::Low => "low",
            LeadPriority::Medium => "medium",
            LeadPriority::High => "high",
            LeadPriority::Urgent => "urgent",
        }
    }
}

impl LeadFields {
    /// Labels are short single lines; custom fields obey the metadata limits.
    pub fn validate(&self) -> CoreResult<()> {
        if let Some(t) = &self.title {
            crm_core::names::validate_label("title", t)?;
        }
        if let Some(s) = &self.source {
            crm_core::names::validate_label("source", s)?;
        }
        if let Some(c) = &self.custom_fields {
            crm_core::metadata::sanitize(Some(Value::Object(c.clone())), &[])
                .map_err(|e| e.within("customFields"))?;
        }
        Ok(())
    }

    /// `other`'s fields override these.
    pub fn merged(mut self, other: LeadFields) -> LeadFields {
        self.title = other.title.or(self.title);
        self.source = other.source.or(self.source);
        self.status = other.status.or(self.status);
        self.priority = other.priority.or(self.priority);
        self.value = other.value.or(self.value);
        self.custom_fields = other.custom_fields.or(self.custom_fields);
        self
    }
}

/// `POST /v1/leads`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeadCreate {
    /// Who creates it (checked for `crm.leads.create`, charged, recorded).
    pub user_id: String,
    /// The lead's id; derived from the activity's when absent.
    #[serde(default)]
    pub lead_id: Option<String>,
    /// At least a `title`.
    pub lead: LeadFields,
    #[serde(default)]
    pub session_id: Option<String>,
    /// Checked when the activity is enriched (where `ipAddress` is refused by name).
    #[serde(default)]
    #[schemars(with = "Option<ComplianceInput>")]
    pub compliance: Option<Value>,
}

/// `PATCH /v1/leads/{id}`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeadUpdate {
    /// Who changes it (checked for `crm.leads.update`, charged, recorded).
    pub user_id: String,
    pub changes: LeadFields,
    /// The version the change was made against: a lead changed since is a conflict.
    #[serde(default)]
    pub expected_version: Option<u64>,
    #[serde(default)]
    pub session_id: Option<String>,
    /// Checked when the activity is enriched (where `ipAddress` is refused by name).
    #[serde(default)]
    #[schemars(with = "Option<ComplianceInput>")]
    pub compliance: Option<Value>,
}

/// A lead as answered.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lead {
    #[serde(flatten)]
    pub fields: LeadFields,
    pub id: String,
    /// The user who created it.
    pub owner_id: String,
    /// Raised by every change; name it in `expectedVersion`.
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Lead {
    /// The lead a stored row holds.
    pub fn from_row(row: &LeadRow) -> StoreResult<Lead> {
        let fields: LeadFields = serde_json::from_str(&row.data)
            .map_err(|e| StoreError::decode(format!("a stored lead: {e}")))?;
        Ok(Lead {
            fields,
            id: row.id.clone(),
            owner_id: row.owner_id.clone(),
            version: row.version,
            created_at: Timestamp::from_millis(row.created_at)?,
            updated_at: Timestamp::from_millis(row.updated_at)?,
        })
    }
}

/// What a lead operation answers besides its activity: the lead, or a page of them.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum LeadResult {
    One {
        lead: Lead,
    },
    #[serde(rename_all = "camelCase")]
    Page {
        leads: Vec<Lead>,
        /// Pass as `cursor` for the next page; null on the last.
        next_cursor: Option<String>,
    },
}
