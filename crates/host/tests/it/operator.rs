//! Provisioning (issue 25.11): the operator's secret creates a tenant, its opening
//! balance and its first admin key over the API — nothing else opens it.

use crm_host::engine::EngineKind;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, activity};

const SECRET: &str = "0123456789abcdef0123456789abcdef-operator";

async fn provision(s: &TestServer, bearer: &str, body: Value) -> (u16, Value) {
    s.call("POST", "/v1/operator/tenants", bearer, Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_provisions_a_tenant_with_its_balance_and_first_admin_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("operator.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("written");
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.operator_secret = Some(secret_file);
    })
    .await;
    let body =
        json!({ "id": "t-new", "name": "New Co", "timezone": "Europe/Berlin", "balance": "25" });
    let (status, made) = provision(&s, SECRET, body.clone()).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (made["tenantId"].as_str(), made["shard"].as_u64()),
        (Some("t-new"), Some(0))
    );
    let admin = made["adminKey"]["key"]
        .as_str()
        .expect("the key's text")
        .to_owned();
    assert_eq!(made["adminKey"]["scopes"], json!(["admin"]));

    // The key works at once; the balance is a grant with its ledger entry; the chain
    // starts empty and verifies.
    let (status, session) = s.get("/v1/session", &admin).await;
    assert_eq!(status, 200, "{session}");
    let (_, balance) = s.get("/v1/credits/balance", &admin).await;
    assert_eq!(balance["balance"], "25.0000", "{balance}");
    assert_eq!(balance["grants"][0]["grantId"], "opening-balance");
    let (_, policy) = s.get("/v1/policy", &admin).await;
    assert_eq!(policy["policy"]["timezone"], "Europe/Berlin", "{policy}");
    let (_, v) = s.get("/v1/audit/verify", &admin).await;
    assert_eq!(
        (v["ok"].clone(), v["ledgerEntries"].clone()),
        (json!(true), json!(1)),
        "{v}"
    );

    // The same tenant again: 409, nothing changed.
    assert_eq!(provision(&s, SECRET, body).await.0, 409);
    // Not the secret — an API key of any scope included — is 401; a bad body 400.
    let other = s.tenant("t-other", "10").await;
    for bearer in ["nope", other.admin.as_str(), admin.as_str()] {
        let (status, e) = provision(&s, bearer, json!({ "id": "t-x", "name": "x" })).await;
        assert_eq!(status, 401, "{bearer}: {e}");
    }
    for bad in [
        json!({ "id": "t y", "name": "x" }),
        json!({ "id": "t-y", "name": "x", "shard": 1 }),
        json!({ "id": "t-y", "name": "x", "timezone": "Nowhere/Else" }),
        json!({ "id": "t-y", "name": "x", "extra": true }),
    ] {
        assert_eq!(provision(&s, SECRET, bad.clone()).await.0, 400, "{bad}");
    }
    let (status, _) = s.get("/v1/session", &admin).await;
    assert_eq!(status, 200);
    // An activity for a user of its (empty) directory is refused as unknown: the tenant
    // starts with no users until its directory is uploaded.
    let (status, _) = s
        .post(
            "/v1/activities",
            &admin,
            json!([activity("a-1", "user-123", "crm.leads.read")]),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_operator_secret_provisioning_is_off() {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-off", "10").await;
    for bearer in [SECRET, k.admin.as_str()] {
        let (status, e) = provision(&s, bearer, json!({ "id": "t-x", "name": "x" })).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{e}"
        );
    }
}
