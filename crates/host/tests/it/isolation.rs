//! A scripted attacker: holding every credential of tenant A (admin, ingest and read
//! keys, a tenant-wide viewer token, a user-scoped one, a department-scoped one, an
//! expired one, and tokens forged for tenant B), it calls every documented endpoint with B's ids in every path
//! parameter, query parameter and body field it can. Nothing of B may come back (B's
//! data carries markers that appear nowhere else) and nothing of B may change.

use std::collections::BTreeMap;

use crm_core::viewer_token::{self, Claims, TokenScope};
use serde_json::{Value, json};

use crate::support::{TestServer, activity};

/// Text that exists only in tenant B's data.
const MARKERS: [&str; 3] = ["Zed Secretbee", "b-only-marker", "b-lead-marker"];

/// What B looks like from B's side; must be identical before and after the attack.
/// (Reads only: listing leads is itself a metered operation.)
async fn snapshot(s: &TestServer, admin: &str) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/v1/credits/balance",
        "/v1/directory",
        "/v1/policy",
        "/v1/keys",
    ] {
        out.insert(path.to_owned(), s.get(path, admin).await.1);
    }
    out.insert(
        "activities".to_owned(),
        json!(s.all("/v1/activities?since=3650d", admin).await),
    );
    Value::Object(out)
}

#[tokio::test]
async fn tenant_a_credentials_reach_nothing_of_tenant_b() {
    let s = TestServer::start(crm_host::engine::EngineKind::Native).await;
    let a = s.tenant("iso-a", "1000").await;
    let b = s.tenant("iso-b", "1000").await;

    // Tenant B's private data, each piece carrying a marker.
    let (st, _) = s
        .call(
            "PATCH",
            "/v1/directory",
            &b.admin,
            Some(
                json!({ "upsert": { "users": [{ "id": "user-b-only", "name": "Zed Secretbee",
                "departmentId": "dept-sales-emea", "roles": ["role-sales-rep"] }] } }),
            ),
        )
        .await;
    assert_eq!(st, 200);
    let mut act = activity("b-act-1", "user-123", "crm.leads.read");
    act["metadata"] = json!({ "note": "b-only-marker" });
    assert_eq!(s.post("/v1/activities", &b.ingest, act).await.0, 201);
    let (st, lead) = s
        .post(
            "/v1/leads",
            &b.ingest,
            json!({ "userId": "user-123", "leadId": "b-lead-1", "lead": { "title": "b-lead-marker" } }),
        )
        .await;
    assert_eq!(st, 201, "{lead}");
    let (_, b_key) = s
        .post(
            "/v1/keys",
            &b.admin,
            json!({ "scopes": ["read"], "label": "b-key" }),
        )
        .await;
    let b_key_id = b_key["id"].as_str().expect("key id").to_owned();
    let (_, b_page) = s.get("/v1/activities?limit=1", &b.read).await;
    let b_cursor = b_page["nextCursor"].as_str().unwrap_or("c1.1").to_owned();
    let before = snapshot(&s, &b.admin).await;

    // A's credentials, and tokens that claim tenant B.
    let (_, t) = s.post("/v1/viewer-tokens", &a.admin, json!({})).await;
    let (_, tu) = s
        .post(
            "/v1/viewer-tokens",
            &a.admin,
            json!({ "userId": "user-200" }),
        )
        .await;
    let (_, td) = s
        .post(
            "/v1/viewer-tokens",
            &a.admin,
            json!({ "departmentId": "dept-sales" }),
        )
        .await;
    let claims_b = Claims {
        tenant: "iso-b".to_owned(),
        scope: TokenScope::Tenant,
        expires_at: i64::MAX / 2,
        id: None,
    };
    let forged_with_guess = viewer_token::sign(&claims_b, b"not the secret");
    let forged_from_a = {
        let a_token = t["token"].as_str().expect("token");
        // A's valid signature over claims naming B: the tenant part swapped.
        let parts: Vec<&str> = a_token.split('.').collect();
        let b_claims_hex = hex::encode(serde_json::to_vec(&claims_b).expect("claims serialize"));
        format!("{}.{}.{}", parts[0], b_claims_hex, parts[2])
    };
    let expired = {
        let (_, short) = s
            .post("/v1/viewer-tokens", &a.admin, json!({ "ttlSeconds": 1 }))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        short["token"].as_str().expect("token").to_owned()
    };
    let credentials: BTreeMap<&str, String> = BTreeMap::from([
        ("a-admin", a.admin.clone()),
        ("a-ingest", a.ingest.clone()),
        ("a-read", a.read.clone()),
        ("a-viewer", t["token"].as_str().expect("token").to_owned()),
        (
            "a-user-viewer",
            tu["token"].as_str().expect("token").to_owned(),
        ),
        (
            "a-department-viewer",
            td["token"].as_str().expect("token").to_owned(),
        ),
        ("expired", expired),
        ("forged-guess", forged_with_guess),
        ("forged-from-a", forged_from_a),
    ]);

    // B's ids in every place an endpoint takes one.
    let path_values: BTreeMap<&str, &str> =
        BTreeMap::from([("id", "b-lead-1"), ("operation", "crm.leads.read")]);
    let query_values: BTreeMap<&str, String> = BTreeMap::from([
        ("userId", "user-b-only".to_owned()),
        ("departmentId", "dept-sales-emea".to_owned()),
        ("cursor", b_cursor.clone()),
        ("since", "3650d".to_owned()),
        ("format", "ndjson".to_owned()),
        ("afterSeq", "0".to_owned()),
    ]);
    let bodies = [
        json!({ "userId": "user-b-only", "operation": "crm.leads.read", "permission": "crm.leads.read",
                "leadId": "b-lead-1", "id": "b-act-1" }),
        json!([{ "id": "b-act-1", "userId": "user-123", "operation": "crm.leads.read" }]),
        json!({ "checks": [{ "userId": "user-b-only", "permission": "crm.leads.read" }] }),
    ];
    let mut calls = 0;
    for e in crm_api::endpoints::ENDPOINTS {
        let mut paths = Vec::new();
        let concrete: String = e
            .path
            .split('/')
            .map(|seg| {
                seg.strip_prefix('{')
                    .and_then(|n| n.strip_suffix('}'))
                    .map_or(seg.to_owned(), |name| {
                        path_values
                            .get(name)
                            .copied()
                            .unwrap_or("b-act-1")
                            .to_owned()
                    })
            })
            .collect::<Vec<_>>()
            .join("/");
        paths.push(concrete.replace("/v1/keys/b-lead-1", &format!("/v1/keys/{b_key_id}")));
        paths.push(concrete.replace("b-lead-1", "user-b-only"));
        for q in e.query {
            if let Some(v) = query_values.get(q) {
                paths.push(format!("{concrete}?{q}={v}"));
            }
        }
        for (who, key) in &credentials {
            for path in &paths {
                let with_body = matches!(e.method, "POST" | "PUT" | "PATCH");
                for body in bodies
                    .iter()
                    .filter(|_| with_body)
                    .map(Some)
                    .chain(std::iter::once(None).filter(|_| !with_body))
                {
                    let (status, text) = s.call_text(e.method, path, key, body.cloned()).await;
                    calls += 1;
                    let answer = &text;
                    assert!(
                        status < 500 || status == 501,
                        "{who} {} {path}: {status} {answer}",
                        e.method
                    );
                    for m in MARKERS {
                        assert!(
                            !text.contains(m),
                            "{who} {} {path} leaked {m}: {text}",
                            e.method
                        );
                    }
                    if who.starts_with("forged") || *who == "expired" {
                        let public = matches!(
                            e.path,
                            "/healthz" | "/readyz" | "/metrics" | "/v1/openapi.json"
                        ) || e.path == "/v1/archive";
                        // Provisioning takes no API key at all; off here (no operator
                        // secret), it is 403 whatever is presented (it::operator).
                        let operator =
                            e.access == crm_api::endpoints::Access::Operator && status == 403;
                        assert!(
                            public || operator || status == 401,
                            "{who} {} {path}: {status} {answer}",
                            e.method
                        );
                    }
                }
            }
        }
    }
    assert!(calls > 500, "the attacker tried {calls} calls");
    assert_eq!(
        snapshot(&s, &b.admin).await,
        before,
        "tenant B is unchanged"
    );
}
