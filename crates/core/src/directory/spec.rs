//! Directory as clients send it (`PUT /v1/directory`) and the patch format
//! (`PATCH /v1/directory`).

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectorySpec {
    #[serde(default)]
    pub organizations: Vec<Organization>,
    #[serde(default)]
    pub departments: Vec<Department>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub organization_id: String,
    /// Parent department; `None` for a top-level department of the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    pub id: String,
    pub name: String,
    /// Optional: service accounts and integrations have no mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub department_id: String,
    /// Role ids, in priority order: the first granting role is the reported source.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Direct permission patterns (`crm.reports.export`, `!crm.leads.delete`).
    #[serde(default)]
    pub grants: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Role {
    pub id: String,
    pub name: String,
    /// Permission patterns; `!`-prefixed patterns deny and override any grant.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// Ids to delete in a patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveIds {
    #[serde(default)]
    pub organizations: Vec<String>,
    #[serde(default)]
    pub departments: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A patch: first `remove`, then `upsert` (replace by id, or append). The result must
/// validate as a whole, so a patch can never leave dangling references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryPatch {
    #[serde(default)]
    pub upsert: DirectorySpec,
    #[serde(default)]
    pub remove: RemoveIds,
}

trait HasId {
    fn id(&self) -> &str;
}
impl HasId for Organization {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for Department {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for User {
    fn id(&self) -> &str {
        &self.id
    }
}
impl HasId for Role {
    fn id(&self) -> &str {
        &self.id
    }
}

fn patch_list<T: HasId + Clone>(
    field: &str,
    list: &mut Vec<T>,
    remove: &[String],
    upsert: &[T],
) -> CoreResult<()> {
    for id in remove {
        let before = list.len();
        list.retain(|item| item.id() != id);
        if list.len() == before {
            return Err(CoreError::new(
                crate::error::ErrorCode::UnknownReference,
                format!("cannot remove unknown {field} `{}`", crate::time::clip(id)),
            )
            .at(format!("remove.{field}")));
        }
    }
    for item in upsert {
        match list.iter_mut().find(|existing| existing.id() == item.id()) {
            Some(existing) => *existing = item.clone(),
            None => list.push(item.clone()),
        }
    }
    Ok(())
}

impl DirectorySpec {
    /// Applies a patch to a copy of this spec. Validation happens when the result is
    /// compiled.
    pub fn patched(&self, patch: &DirectoryPatch) -> CoreResult<DirectorySpec> {
        let mut next = self.clone();
        patch_list(
            "organizations",
            &mut next.organizations,
            &patch.remove.organizations,
            &patch.upsert.organizations,
        )?;
        patch_list(
            "departments",
            &mut next.departments,
            &patch.remove.departments,
            &patch.upsert.departments,
        )?;
        patch_list(
            "users",
            &mut next.users,
            &patch.remove.users,
            &patch.upsert.users,
        )?;
        patch_list(
            "roles",
            &mut next.roles,
            &patch.remove.roles,
            &patch.upsert.roles,
        )?;
        Ok(next)
    }
}
