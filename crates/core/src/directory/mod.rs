//! The tenant directory: organizations, the department tree, users, roles and grants.
//!
//! `spec` is the shape clients send (and the patch format); `compiled` is the compact,
//! validated form that permission checks and enrichment read.

mod compiled;
mod grants;
mod id_index;
mod spec;

pub use compiled::{CompiledDirectory, DeptIdx, UserIdx};
pub use grants::{Grants, PermissionIndex};
pub use spec::{Department, DirectoryPatch, DirectorySpec, Organization, RemoveIds, Role, User};
