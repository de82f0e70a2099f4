//! The answers about a tenant's versioned configuration — the directory, the policy
//! and its price table — each with the version a later optimistic update names.

use crm_core::directory::{CompiledDirectory, DirectorySpec};
use crm_core::pricing::PriceTable;
use crm_core::tenant::TenantPolicy;
use serde::Serialize;
use serde_json::Value;

/// `PUT`/`PATCH /v1/directory`: what the directory now holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DirectorySummary {
    pub version: u64,
    pub users: usize,
    pub departments: usize,
    pub roles: usize,
    pub permissions: usize,
}

impl DirectorySummary {
    pub fn of(dir: &CompiledDirectory, version: u64) -> DirectorySummary {
        DirectorySummary {
            version,
            users: dir.user_count(),
            departments: dir.department_count(),
            roles: dir.role_count(),
            permissions: dir.permission_count(),
        }
    }
}

/// `GET /v1/directory`: the directory as stored.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DirectoryDocument {
    pub version: u64,
    /// Served as stored (it was checked when written).
    #[schemars(with = "DirectorySpec")]
    pub directory: Value,
}

/// `GET`/`PUT /v1/policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PolicyDocument {
    pub version: u64,
    pub policy: TenantPolicy,
}

/// `PUT /v1/credits/prices`: the table now in force and the policy version holding it.
/// (`GET` answers the bare table, so that it can be sent back as a `PUT`.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PriceList {
    #[serde(flatten)]
    pub prices: PriceTable,
    pub version: u64,
}
