//! Directory uploads are bounded before they are compiled: distinct permission names,
//! bitset words across roles and users, and wildcard matches each have a budget, so a
//! hostile upload is refused with `too_large` instead of taking seconds and gigabytes.

use crm_core::ErrorCode;
use crm_core::directory::{CompiledDirectory, DirectorySpec};
use serde_json::json;

fn spec(roles: serde_json::Value, users: serde_json::Value) -> DirectorySpec {
    serde_json::from_value(json!({
        "organizations": [{ "id": "org", "name": "Org" }],
        "departments": [{ "id": "d", "name": "D", "organizationId": "org" }],
        "roles": roles,
        "users": users,
    }))
    .expect("a well-formed spec")
}

fn refused_field(s: &DirectorySpec) -> String {
    let e = CompiledDirectory::compile(s).expect_err("over budget");
    assert_eq!(e.code, ErrorCode::TooLarge, "{e:?}");
    e.field.unwrap_or_default()
}

#[test]
fn too_many_distinct_permission_names_are_refused() {
    let roles: Vec<_> = (0..21)
        .map(|r| {
            let perms: Vec<String> = (0..1_000).map(|p| format!("crm.r{r}.p{p}")).collect();
            json!({ "id": format!("r{r}"), "name": format!("R{r}"), "permissions": perms })
        })
        .collect();
    assert_eq!(refused_field(&spec(json!(roles), json!([]))), "roles");
}

#[test]
fn too_many_bitset_words_are_refused() {
    // 15,000 names → 235 words per bitset; 10,000 users with a direct grant each →
    // 4.7 M words, over the 4 M budget.
    let perms: Vec<String> = (0..15_000).map(|p| format!("crm.m.p{p}")).collect();
    let roles: Vec<_> = perms
        .chunks(1_000)
        .enumerate()
        .map(|(i, c)| json!({ "id": format!("r{i}"), "name": format!("R{i}"), "permissions": c }))
        .collect();
    let users: Vec<_> = (0..10_000)
        .map(|u| json!({ "id": format!("u{u}"), "name": format!("U{u}"), "departmentId": "d", "grants": ["crm.m.p1"] }))
        .collect();
    assert_eq!(refused_field(&spec(json!(roles), json!(users))), "users");
}

#[test]
fn too_many_wildcard_matches_are_refused() {
    // 15,000 names and 2,000 wildcard grants → 30 M matches, over the 20 M budget.
    let perms: Vec<String> = (0..15_000).map(|p| format!("crm.w.p{p}")).collect();
    let mut roles: Vec<_> = perms
        .chunks(1_000)
        .enumerate()
        .map(|(i, c)| json!({ "id": format!("r{i}"), "name": format!("R{i}"), "permissions": c }))
        .collect();
    let wild: Vec<String> = (0..1_000).map(|i| format!("crm.x{i}.*")).collect();
    roles.push(json!({ "id": "w1", "name": "W1", "permissions": wild }));
    roles.push(json!({ "id": "w2", "name": "W2", "permissions": wild }));
    assert_eq!(refused_field(&spec(json!(roles), json!([]))), "roles");
}

#[test]
fn users_without_direct_grants_cost_no_bitset() {
    let perms: Vec<String> = (0..1_000).map(|p| format!("crm.a.p{p}")).collect();
    let users: Vec<_> = (0..20_000)
        .map(|u| json!({ "id": format!("u{u}"), "name": format!("U{u}"), "departmentId": "d", "roles": ["r"] }))
        .collect();
    let s = spec(
        json!([{ "id": "r", "name": "R", "permissions": perms }]),
        json!(users),
    );
    let d = CompiledDirectory::compile(&s).expect("within every budget");
    assert!(d.check("u19999", "crm.a.p999").expect("known user").allowed);
    assert!(!d.check("u0", "crm.b.x").expect("known user").allowed);
}
