//! Synthetic RBAC data shared by the benches: docs/design.md §7 sizes a tenant at
//! 200 users, 20 roles and 500 permissions.

use serde_json::{Value, json};

pub const USERS: usize = 200;
pub const ROLES: usize = 20;
pub const PERMISSIONS: usize = 500;
/// Exact permissions each role grants.
pub const PER_ROLE: usize = 25;

pub fn permission(i: usize) -> String {
    format!("crm.mod{}.act{}", i / 10, i % 10)
}

/// The role at index 0 grants `crm.mod1.*`; role 1 denies `crm.mod2.act3`.
pub fn role_permissions(r: usize) -> Vec<String> {
    let mut perms: Vec<String> = (0..PER_ROLE)
        .map(|k| permission((r * PER_ROLE + k) % PERMISSIONS))
        .collect();
    match r {
        0 => perms.push("crm.mod1.*".to_owned()),
        1 => perms.push("!crm.mod2.act3".to_owned()),
        _ => {}
    }
    perms
}

/// User `u` holds roles `u % ROLES` and `(u + 7) % ROLES`.
pub fn user_roles(u: usize) -> [usize; 2] {
    [u % ROLES, (u + 7) % ROLES]
}

pub fn directory_json() -> Value {
    let departments: Vec<Value> = (0..10)
        .map(|d| {
            json!({ "id": format!("dept-{d}"), "name": format!("Dept {d}"), "organizationId": "org",
            "parentId": if d == 0 { Value::Null } else { json!(format!("dept-{}", (d - 1) / 3)) } })
        })
        .collect();
    let roles: Vec<Value> = (0..ROLES)
        .map(|r| json!({ "id": format!("role-{r}"), "name": format!("Role {r}"), "permissions": role_permissions(r) }))
        .collect();
    let users: Vec<Value> = (0..USERS)
        .map(|u| json!({ "id": format!("user-{u}"), "name": format!("User {u}"), "email": format!("u{u}@bench.test"),
            "departmentId": format!("dept-{}", u % 10),
            "roles": user_roles(u).iter().map(|r| format!("role-{r}")).collect::<Vec<_>>() }))
        .collect();
    json!({ "organizations": [{ "id": "org", "name": "Bench Org" }], "departments": departments, "roles": roles, "users": users })
}
