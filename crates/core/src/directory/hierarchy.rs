//! A department's place in its organization, as a department report answers it (the
//! original sketch's `hierarchy`): where it sits, what is above and directly below it,
//! and how many users the report's subtree holds.

use serde::Serialize;

use super::{CompiledDirectory, DeptIdx};
use crate::activity::Hierarchy;

/// A department by id and display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DepartmentRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentHierarchy {
    /// Its organization, itself, its materialized path and its parent (the organization
    /// for a top-level department) — the shape a user's context carries.
    #[serde(flatten)]
    pub place: Hierarchy,
    /// The departments above it, the top first.
    pub ancestors: Vec<DepartmentRef>,
    /// The departments directly below it.
    pub children: Vec<DepartmentRef>,
    /// Users in it and in every department below it.
    pub users_in_subtree: usize,
}

impl CompiledDirectory {
    pub fn department_hierarchy(&self, dept: DeptIdx) -> DepartmentHierarchy {
        let named = |i: u32| {
            let d = &self.depts[i as usize];
            DepartmentRef {
                id: d.id.to_string(),
                name: d.name.to_string(),
            }
        };
        let d = &self.depts[dept.0 as usize];
        let org = &self.orgs[d.org as usize];
        let parent_entity_id = match d.parent {
            Some(p) => self.depts[p as usize].id.to_string(),
            None => org.id.to_string(),
        };
        DepartmentHierarchy {
            place: Hierarchy {
                organization_id: org.id.to_string(),
                organization_name: org.name.to_string(),
                department_id: d.id.to_string(),
                department_name: d.name.to_string(),
                department_path: self.department_path(dept),
                parent_entity_id,
            },
            ancestors: d
                .path
                .iter()
                .filter(|&&i| i != dept.0)
                .map(|&i| named(i))
                .collect(),
            children: (0..self.depts.len())
                .filter_map(|i| u32::try_from(i).ok())
                .filter(|&i| self.depts[i as usize].parent == Some(dept.0))
                .map(named)
                .collect(),
            users_in_subtree: self
                .users
                .iter()
                .filter(|u| self.depts[u.dept as usize].path.contains(&dept.0))
                .count(),
        }
    }
}
