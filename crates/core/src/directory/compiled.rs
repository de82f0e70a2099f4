//! Validation and the compiled, read-optimized directory.

use rustc_hash::FxHashMap;

use super::grants::{Grants, PermissionIndex};
use super::id_index::IdIndex;
use super::spec::DirectorySpec;
use crate::error::{CoreError, CoreResult, ErrorCode};
use crate::limits::{
    MAX_DEPARTMENT_DEPTH, MAX_DEPARTMENTS, MAX_GRANTS_PER_USER, MAX_ORGANIZATIONS,
    MAX_PERMISSIONS_PER_ROLE, MAX_ROLES, MAX_ROLES_PER_USER, MAX_USERS,
};
use crate::names::{validate_id, validate_label};
use crate::time::clip;

/// Index of a user in a compiled directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserIdx(pub(crate) u32);

impl UserIdx {
    /// Position in the directory document's `users` (see [`CompiledDirectory::user_at`]).
    pub fn position(self) -> u32 {
        self.0
    }
}
/// Index of a department in a compiled directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeptIdx(pub(crate) u32);

#[derive(Debug)]
pub(crate) struct OrgC {
    pub id: Box<str>,
    pub name: Box<str>,
}

#[derive(Debug)]
pub(crate) struct DeptC {
    pub id: Box<str>,
    pub name: Box<str>,
    pub org: u32,
    pub parent: Option<u32>,
    /// Department indexes from the top-level department down to this one.
    pub path: Box<[u32]>,
}

#[derive(Debug)]
pub(crate) struct UserC {
    pub id: Box<str>,
    pub name: Box<str>,
    pub email: Option<Box<str>>,
    pub title: Option<Box<str>>,
    pub dept: u32,
    pub roles: Box<[u32]>,
    /// Boxed and absent when empty: most users hold roles only, and an inline grant set
    /// is 80 bytes per user.
    pub direct: Option<Box<Grants>>,
}

#[derive(Debug)]
pub(crate) struct RoleC {
    pub id: Box<str>,
    pub name: Box<str>,
    pub grants: Grants,
}

/// A validated directory in the form checks and enrichment read.
#[derive(Debug)]
pub struct CompiledDirectory {
    pub(crate) orgs: Vec<OrgC>,
    pub(crate) depts: Vec<DeptC>,
    pub(crate) users: Vec<UserC>,
    pub(crate) roles: Vec<RoleC>,
    user_index: IdIndex,
    dept_index: IdIndex,
    pub(crate) permissions: PermissionIndex,
}

/// Counts are bounded by the `MAX_*` limits, far below `u32::MAX`.
fn count(n: usize) -> u32 {
    u32::try_from(n).expect("counts are bounded by limits")
}

fn too_many(field: &str, max: usize) -> CoreError {
    CoreError::too_large(field, format!("at most {max} {field} per directory"))
}

fn unknown(field: String, kind: &str, id: &str) -> CoreError {
    CoreError::new(
        ErrorCode::UnknownReference,
        format!("unknown {kind} `{}`", clip(id)),
    )
    .at(field)
}

/// Builds an id → index map, rejecting invalid and duplicate ids.
fn index_ids<'a>(
    field: &str,
    ids: impl Iterator<Item = &'a str>,
) -> CoreResult<FxHashMap<&'a str, u32>> {
    let mut map = FxHashMap::default();
    for (i, id) in ids.enumerate() {
        let at = format!("{field}[{i}].id");
        validate_id(&at, id)?;
        let idx = u32::try_from(i).expect("counts are bounded by limits");
        if map.insert(id, idx).is_some() {
            return Err(CoreError::new(
                ErrorCode::Duplicate,
                format!("duplicate {field} id `{}`", clip(id)),
            )
            .at(at));
        }
    }
    Ok(map)
}

/// Refuses, before anything is allocated, a directory whose compiled form would be too
/// large or too slow to build: too many distinct permission names, too many bitset
/// words across the roles and users that have grants, or too many wildcard matches.
fn check_compile_budget(spec: &DirectorySpec, permissions: &PermissionIndex) -> CoreResult<()> {
    use crate::limits::{MAX_GRANT_WORDS, MAX_PERMISSION_NAMES, MAX_WILDCARD_MATCHES};
    if permissions.len() > MAX_PERMISSION_NAMES {
        return Err(CoreError::too_large(
            "roles",
            format!(
                "the directory names {} distinct permissions; at most {MAX_PERMISSION_NAMES}",
                permissions.len()
            ),
        ));
    }
    let grant_sets = spec
        .roles
        .iter()
        .filter(|r| !r.permissions.is_empty())
        .count()
        + spec.users.iter().filter(|u| !u.grants.is_empty()).count();
    let words = grant_sets
        .saturating_mul(2)
        .saturating_mul(permissions.words());
    if words > MAX_GRANT_WORDS {
        return Err(CoreError::too_large(
            "users",
            format!(
                "{grant_sets} roles and users with grants over {} permissions need {words} bitset words; at most {MAX_GRANT_WORDS}",
                permissions.len()
            ),
        ));
    }
    let wildcards = spec
        .roles
        .iter()
        .flat_map(|r| &r.permissions)
        .chain(spec.users.iter().flat_map(|u| &u.grants))
        .filter(|p| super::grants::is_wildcard(p))
        .count();
    if wildcards.saturating_mul(permissions.len()) > MAX_WILDCARD_MATCHES {
        return Err(CoreError::too_large(
            "roles",
            format!(
                "{wildcards} wildcard patterns over {} permissions exceed the compile budget ({MAX_WILDCARD_MATCHES} matches)",
                permissions.len()
            ),
        ));
    }
    Ok(())
}

impl CompiledDirectory {
    /// Validates and compiles a directory. Every reference must resolve, ids must be
    /// unique, the department tree must be acyclic and at most `MAX_DEPARTMENT_DEPTH` deep.
    pub fn compile(spec: &DirectorySpec) -> CoreResult<CompiledDirectory> {
        if spec.organizations.len() > MAX_ORGANIZATIONS {
            return Err(too_many("organizations", MAX_ORGANIZATIONS));
        }
        if spec.departments.len() > MAX_DEPARTMENTS {
            return Err(too_many("departments", MAX_DEPARTMENTS));
        }
        if spec.users.len() > MAX_USERS {
            return Err(too_many("users", MAX_USERS));
        }
        if spec.roles.len() > MAX_ROLES {
            return Err(too_many("roles", MAX_ROLES));
        }

        let org_index = index_ids("organizations", spec.organizations.iter().map(|o| &*o.id))?;
        let dept_index = index_ids("departments", spec.departments.iter().map(|d| &*d.id))?;
        // Refuses invalid and duplicate user ids; the lookup kept is built at the end.
        index_ids("users", spec.users.iter().map(|u| &*u.id))?;
        let role_index = index_ids("roles", spec.roles.iter().map(|r| &*r.id))?;

        let mut orgs = Vec::with_capacity(spec.organizations.len());
        for (i, o) in spec.organizations.iter().enumerate() {
            validate_label(&format!("organizations[{i}].name"), &o.name)?;
            orgs.push(OrgC {
                id: o.id.as_str().into(),
                name: o.name.as_str().into(),
            });
        }

        let mut parents = Vec::with_capacity(spec.departments.len());
        let mut dept_orgs = Vec::with_capacity(spec.departments.len());
        for (i, d) in spec.departments.iter().enumerate() {
            validate_label(&format!("departments[{i}].name"), &d.name)?;
            let org = *org_index.get(d.organization_id.as_str()).ok_or_else(|| {
                unknown(
                    format!("departments[{i}].organizationId"),
                    "organization",
                    &d.organization_id,
                )
            })?;
            let parent = match &d.parent_id {
                None => None,
                Some(p) => Some(*dept_index.get(p.as_str()).ok_or_else(|| {
                    unknown(format!("departments[{i}].parentId"), "department", p)
                })?),
            };
            dept_orgs.push(org);
            parents.push(parent);
        }
        let paths = department_paths(&parents)?;
        for (i, path) in paths.iter().enumerate() {
            if path.iter().any(|&d| dept_orgs[d as usize] != dept_orgs[i]) {
                return Err(CoreError::invalid(
                    format!("departments[{i}].parentId"),
                    "a department's parent must belong to the same organization",
                ));
            }
        }
        let depts: Vec<DeptC> = spec
            .departments
            .iter()
            .zip(paths)
            .enumerate()
            .map(|(i, (d, path))| DeptC {
                id: d.id.as_str().into(),
                name: d.name.as_str().into(),
                org: dept_orgs[i],
                parent: parents[i],
                path,
            })
            .collect();

        // Pass 1: intern every exact permission name so all bitsets share one index.
        let mut permissions = PermissionIndex::default();
        for (i, r) in spec.roles.iter().enumerate() {
            validate_label(&format!("roles[{i}].name"), &r.name)?;
            if r.permissions.len() > MAX_PERMISSIONS_PER_ROLE {
                return Err(CoreError::too_large(
                    format!("roles[{i}].permissions"),
                    format!("at most {MAX_PERMISSIONS_PER_ROLE} permissions per role"),
                ));
            }
            Grants::intern_names(
                &format!("roles[{i}].permissions"),
                &r.permissions,
                &mut permissions,
            )?;
        }
        for (i, u) in spec.users.iter().enumerate() {
            if u.grants.len() > MAX_GRANTS_PER_USER {
                return Err(CoreError::too_large(
                    format!("users[{i}].grants"),
                    format!("at most {MAX_GRANTS_PER_USER} direct grants per user"),
                ));
            }
            Grants::intern_names(&format!("users[{i}].grants"), &u.grants, &mut permissions)?;
        }

        check_compile_budget(spec, &permissions)?;
        let roles = spec
            .roles
            .iter()
            .map(|r| RoleC {
                id: r.id.as_str().into(),
                name: r.name.as_str().into(),
                grants: Grants::compile(&r.permissions, &permissions),
            })
            .collect();

        let mut users = Vec::with_capacity(spec.users.len());
        for (i, u) in spec.users.iter().enumerate() {
            validate_label(&format!("users[{i}].name"), &u.name)?;
            if let Some(e) = &u.email {
                validate_label(&format!("users[{i}].email"), e)?;
            }
            if let Some(t) = &u.title {
                validate_label(&format!("users[{i}].title"), t)?;
            }
            let dept = *dept_index.get(u.department_id.as_str()).ok_or_else(|| {
                unknown(
                    format!("users[{i}].departmentId"),
                    "department",
                    &u.department_id,
                )
            })?;
            if u.roles.len() > MAX_ROLES_PER_USER {
                return Err(CoreError::too_large(
                    format!("users[{i}].roles"),
                    format!("at most {MAX_ROLES_PER_USER} roles per user"),
                ));
            }
            let mut roles = Vec::with_capacity(u.roles.len());
            for (j, r) in u.roles.iter().enumerate() {
                let idx = *role_index
                    .get(r.as_str())
                    .ok_or_else(|| unknown(format!("users[{i}].roles[{j}]"), "role", r))?;
                if !roles.contains(&idx) {
                    roles.push(idx);
                }
            }
            users.push(UserC {
                id: u.id.as_str().into(),
                name: u.name.as_str().into(),
                email: u.email.as_deref().map(Into::into),
                title: u.title.as_deref().map(Into::into),
                dept,
                roles: roles.into(),
                direct: (!u.grants.is_empty())
                    .then(|| Box::new(Grants::compile(&u.grants, &permissions))),
            });
        }

        let user_index = IdIndex::build(count(users.len()), |i| &users[i as usize].id);
        let dept_index = IdIndex::build(count(depts.len()), |i| &depts[i as usize].id);
        Ok(CompiledDirectory {
            orgs,
            depts,
            users,
            roles,
            user_index,
            dept_index,
            permissions,
        })
    }

    pub fn user(&self, id: &str) -> Option<UserIdx> {
        self.user_index
            .get(id, |i| &self.users[i as usize].id)
            .map(UserIdx)
    }

    /// The user at `position` in the directory document, if there is one. Positions are
    /// how a user crosses the wasm boundary: guest and host compile the same document,
    /// so a position means the same user on both sides.
    pub fn user_at(&self, position: u32) -> Option<UserIdx> {
        ((position as usize) < self.users.len()).then_some(UserIdx(position))
    }

    pub fn department(&self, id: &str) -> Option<DeptIdx> {
        self.dept_index
            .get(id, |i| &self.depts[i as usize].id)
            .map(DeptIdx)
    }

    /// The directory document this was compiled from, up to what compiling normalises
    /// (a role named twice for one user is kept once): compiling it again gives the same
    /// directory with every user, role and department at the same position. Runtimes
    /// keep the compiled form only and write the document again when they need it
    /// (loading the wasm guest), instead of holding its text beside it.
    pub fn to_spec(&self) -> DirectorySpec {
        use super::spec::{Department, Organization, Role, User};
        let patterns = |g: &Grants| g.patterns().iter().map(|p| p.to_string()).collect();
        DirectorySpec {
            organizations: self
                .orgs
                .iter()
                .map(|o| Organization {
                    id: o.id.to_string(),
                    name: o.name.to_string(),
                })
                .collect(),
            departments: self
                .depts
                .iter()
                .map(|d| Department {
                    id: d.id.to_string(),
                    name: d.name.to_string(),
                    organization_id: self.orgs[d.org as usize].id.to_string(),
                    parent_id: d.parent.map(|p| self.depts[p as usize].id.to_string()),
                })
                .collect(),
            users: self
                .users
                .iter()
                .map(|u| User {
                    id: u.id.to_string(),
                    name: u.name.to_string(),
                    email: u.email.as_deref().map(str::to_owned),
                    title: u.title.as_deref().map(str::to_owned),
                    department_id: self.depts[u.dept as usize].id.to_string(),
                    roles: u
                        .roles
                        .iter()
                        .map(|&r| self.roles[r as usize].id.to_string())
                        .collect(),
                    grants: u.direct.as_deref().map(patterns).unwrap_or_default(),
                })
                .collect(),
            roles: self
                .roles
                .iter()
                .map(|r| Role {
                    id: r.id.to_string(),
                    name: r.name.to_string(),
                    permissions: patterns(&r.grants),
                })
                .collect(),
        }
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn department_count(&self) -> usize {
        self.depts.len()
    }

    pub fn role_count(&self) -> usize {
        self.roles.len()
    }

    pub fn permission_count(&self) -> usize {
        self.permissions.len()
    }

    pub fn user_id(&self, user: UserIdx) -> &str {
        &self.users[user.0 as usize].id
    }

    pub fn user_department(&self, user: UserIdx) -> DeptIdx {
        DeptIdx(self.users[user.0 as usize].dept)
    }

    pub fn department_id(&self, dept: DeptIdx) -> &str {
        &self.depts[dept.0 as usize].id
    }

    /// Ids of this department and every department below it.
    pub fn subtree(&self, dept: DeptIdx) -> Vec<&str> {
        self.depts
            .iter()
            .filter(|d| d.path.contains(&dept.0))
            .map(|d| &*d.id)
            .collect()
    }

    /// Materialized path `/top/child/leaf/` of department ids. Storage keeps it in a
    /// column so a subtree is a prefix range (`dept_path >= '/a/' AND < '/a0'`), never a
    /// `LIKE '%id%'` scan that also matches `dept-10` when asked for `dept-1`.
    pub fn department_path(&self, dept: DeptIdx) -> String {
        let mut out = String::from("/");
        for &d in self.depts[dept.0 as usize].path.iter() {
            out.push_str(&self.depts[d as usize].id);
            out.push('/');
        }
        out
    }
}

/// Paths from the top of the tree to each department; errors on a cycle or excess depth.
fn department_paths(parents: &[Option<u32>]) -> CoreResult<Vec<Box<[u32]>>> {
    const UNSEEN: u8 = 0;
    const ACTIVE: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![UNSEEN; parents.len()];
    let mut paths: Vec<Option<Box<[u32]>>> = vec![None; parents.len()];
    for start in 0..parents.len() {
        let mut chain = Vec::new();
        let mut cur = Some(start);
        while let Some(c) = cur {
            match state[c] {
                DONE => break,
                ACTIVE => {
                    return Err(CoreError::new(
                        ErrorCode::Cycle,
                        "the department tree has a cycle",
                    )
                    .at(format!("departments[{c}].parentId")));
                }
                _ => {}
            }
            state[c] = ACTIVE;
            chain.push(c);
            cur = parents[c].map(|p| p as usize);
        }
        // Unwind from the topmost new node down, extending the known parent path.
        for &c in chain.iter().rev() {
            let mut path: Vec<u32> = match parents[c] {
                Some(p) => paths[p as usize]
                    .as_deref()
                    .expect("parent resolved first")
                    .to_vec(),
                None => Vec::new(),
            };
            path.push(u32::try_from(c).expect("bounded"));
            if path.len() > MAX_DEPARTMENT_DEPTH {
                return Err(CoreError::too_large(
                    format!("departments[{c}].parentId"),
                    format!("the department tree is deeper than {MAX_DEPARTMENT_DEPTH} levels"),
                ));
            }
            paths[c] = Some(path.into());
            state[c] = DONE;
        }
    }
    Ok(paths
        .into_iter()
        .map(|p| p.expect("every department resolved"))
        .collect())
}
