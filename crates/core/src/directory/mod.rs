//! The tenant directory: organizations, the department tree, users, roles and grants.
//!
//! `spec` is the shape clients send (and the patch format); `compiled` is the compact,
//! validated form that permission checks and enrichment read; `hierarchy` is a
//! department's place in its organization (department reports).

mod compiled;
mod grants;
mod hierarchy;
mod id_index;
mod spec;

pub use compiled::{CompiledDirectory, DeptIdx, UserIdx};
pub use grants::{Grants, PermissionIndex};
pub use hierarchy::{DepartmentHierarchy, DepartmentRef};
pub use spec::{Department, DirectoryPatch, DirectorySpec, Organization, RemoveIds, Role, User};
