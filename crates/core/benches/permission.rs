//! Permission check: crm-core's compiled directory vs cedar-policy on the same RBAC data.
//! `cargo bench -p crm-core --bench permission`

mod support;

use std::hint::black_box;
use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request};
use criterion::{Criterion, criterion_group, criterion_main};
use crm_core::{CompiledDirectory, DirectorySpec};
use serde_json::{Value, json};
use support::{PER_ROLE, PERMISSIONS, ROLES, USERS, permission, role_permissions, user_roles};

fn cedar_policies() -> PolicySet {
    let mut text = String::new();
    for r in 0..ROLES {
        let (deny, allow): (Vec<String>, Vec<String>) = role_permissions(r)
            .into_iter()
            .partition(|p| p.starts_with('!'));
        let actions: Vec<String> = allow.iter().map(|p| format!("Action::\"{p}\"")).collect();
        text += &format!(
            "permit(principal in Role::\"role-{r}\", action in [{}], resource);\n",
            actions.join(", ")
        );
        for d in deny {
            text += &format!(
                "forbid(principal in Role::\"role-{r}\", action == Action::\"{}\", resource);\n",
                &d[1..]
            );
        }
    }
    PolicySet::from_str(&text).expect("generated policies parse")
}

fn cedar_entities() -> Entities {
    let uid = |t: &str, id: &str| json!({ "type": t, "id": id });
    let mut list: Vec<Value> = (0..USERS)
        .map(|u| json!({ "uid": uid("User", &format!("user-{u}")), "attrs": {},
            "parents": user_roles(u).iter().map(|r| uid("Role", &format!("role-{r}"))).collect::<Vec<_>>() }))
        .collect();
    list.extend(
        (0..ROLES).map(
            |r| json!({ "uid": uid("Role", &format!("role-{r}")), "attrs": {}, "parents": [] }),
        ),
    );
    // Wildcards become action groups: every crm.mod1.* action is a member of "crm.mod1.*".
    list.extend((0..PERMISSIONS).map(|i| {
        let p = permission(i);
        let parents = if p.starts_with("crm.mod1.") {
            vec![uid("Action", "crm.mod1.*")]
        } else {
            vec![]
        };
        json!({ "uid": uid("Action", &p), "attrs": {}, "parents": parents })
    }));
    list.push(json!({ "uid": uid("Action", "crm.mod1.*"), "attrs": {}, "parents": [] }));
    list.push(json!({ "uid": uid("Action", "crm.unknown.read"), "attrs": {}, "parents": [] }));
    Entities::from_json_value(Value::Array(list), None).expect("generated entities parse")
}

/// (name, user, permission, expected allowed) for the four measured paths.
fn cases() -> [(&'static str, String, String, bool); 4] {
    [
        (
            "hit",
            "user-5".to_owned(),
            permission(5 * PER_ROLE + 3),
            true,
        ),
        (
            "miss",
            "user-5".to_owned(),
            "crm.unknown.read".to_owned(),
            false,
        ),
        (
            "wildcard",
            "user-0".to_owned(),
            "crm.mod1.act9".to_owned(),
            true,
        ),
        (
            "deny",
            "user-1".to_owned(),
            "crm.mod2.act3".to_owned(),
            false,
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let spec: DirectorySpec =
        serde_json::from_value(support::directory_json()).expect("bench directory");
    let dir = CompiledDirectory::compile(&spec).expect("bench directory compiles");
    let policies = cedar_policies();
    let entities = cedar_entities();
    let authorizer = Authorizer::new();
    let resource = EntityUid::from_str("Resource::\"any\"").expect("uid");

    let mut group = c.benchmark_group("permission_check");
    for (name, user, perm, allowed) in cases() {
        assert_eq!(
            dir.check_raw(&user, &perm).allowed,
            allowed,
            "crm-core {name}"
        );
        group.bench_function(format!("crm_core/{name}"), |b| {
            b.iter(|| black_box(dir.check_raw(black_box(&user), black_box(&perm))))
        });

        let principal = EntityUid::from_str(&format!("User::\"{user}\"")).expect("uid");
        let action = EntityUid::from_str(&format!("Action::\"{perm}\"")).expect("uid");
        let request = Request::new(principal, action, resource.clone(), Context::empty(), None)
            .expect("request without schema");
        let answer = authorizer.is_authorized(&request, &policies, &entities);
        assert_eq!(
            answer.decision() == Decision::Allow,
            allowed,
            "cedar {name}"
        );
        group.bench_function(format!("cedar/{name}"), |b| {
            b.iter(|| {
                black_box(authorizer.is_authorized(black_box(&request), &policies, &entities))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
