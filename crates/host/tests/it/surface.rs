//! The product surface around the core: viewer tokens and their limits, key
//! administration, sessions, dashboards, the tenant-wide report, CRM operations and
//! leads, idempotent writes, decision provenance and directory changes made outside
//! the server.

use crm_host::engine::EngineKind;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, activity};

async fn server() -> TestServer {
    TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await
}

async fn token(s: &TestServer, admin: &str, body: Value) -> String {
    let (status, answer) = s.post("/v1/viewer-tokens", admin, body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["dashboardPath"]
            .as_str()
            .expect("path")
            .starts_with("/#token=vt1.")
    );
    answer["token"].as_str().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_tokens_are_read_only_scoped_and_refused_when_forged_or_expired() {
    let s = server().await;
    let k = s.tenant("t-view", "1000").await;
    let other = s.tenant("t-other", "1000").await;
    let batch: Vec<Value> = ["user-123", "user-200", "user-402"]
        .iter()
        .enumerate()
        .map(|(i, u)| activity(&format!("v-{i}"), u, "crm.leads.read"))
        .collect();
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
        201
    );

    // Only admins issue tokens; bad requests are 4xx.
    assert_eq!(s.post("/v1/viewer-tokens", &k.read, json!({})).await.0, 403);
    assert_eq!(
        s.post("/v1/viewer-tokens", &k.admin, json!({ "userId": "nobody" }))
            .await
            .0,
        404
    );
    assert_eq!(
        s.post("/v1/viewer-tokens", &k.admin, json!({ "ttlSeconds": 0 }))
            .await
            .0,
        400
    );
    assert_eq!(
        s.post(
            "/v1/viewer-tokens",
            &k.admin,
            json!({ "ttlSeconds": 90000 })
        )
        .await
        .0,
        400
    );
    assert_eq!(
        s.post(
            "/v1/viewer-tokens",
            &k.admin,
            json!({ "userId": "user-123", "departmentId": "dept-1" })
        )
        .await
        .0,
        400
    );

    let user = token(&s, &k.admin, json!({ "userId": "user-123" })).await;
    assert_eq!(s.get("/v1/users/user-123/activities", &user).await.0, 200);
    assert_eq!(
        s.get("/v1/reports/users/user-123?since=1d", &user).await.0,
        200
    );
    assert_eq!(s.get("/v1/dashboards/users/user-123", &user).await.0, 200);
    // Another user, a department, the whole tenant, writes: all refused.
    assert_eq!(s.get("/v1/users/user-200/activities", &user).await.0, 403);
    assert_eq!(s.get("/v1/activities?userId=user-200", &user).await.0, 403);
    assert_eq!(s.get("/v1/activities", &user).await.0, 403);
    assert_eq!(s.get("/v1/reports", &user).await.0, 403);
    assert_eq!(
        s.get("/v1/reports/departments/dept-sales", &user).await.0,
        403
    );
    assert_eq!(s.get("/v1/credits/balance", &user).await.0, 403);
    assert_eq!(
        s.get("/v1/directory", &user).await.0,
        403,
        "the directory names every user"
    );
    assert_eq!(
        s.post(
            "/v1/activities",
            &user,
            activity("v-x", "user-123", "crm.leads.read")
        )
        .await
        .0,
        403
    );
    assert_eq!(s.post("/v1/viewer-tokens", &user, json!({})).await.0, 403);

    // A department token covers the subtree and its users, nothing else.
    let dept = token(&s, &k.admin, json!({ "departmentId": "dept-sales" })).await;
    assert_eq!(
        s.get("/v1/reports/departments/dept-sales-emea", &dept)
            .await
            .0,
        200
    );
    assert_eq!(s.get("/v1/users/user-123/activities", &dept).await.0, 200); // in dept-sales-emea
    assert_eq!(s.get("/v1/users/user-402/activities", &dept).await.0, 403); // in dept-1-a
    assert_eq!(s.get("/v1/reports/departments/dept-1", &dept).await.0, 403);
    let (status, session) = s.get("/v1/session", &dept).await;
    assert_eq!(status, 200);
    let visible: Vec<&str> = session["departments"]
        .as_array()
        .expect("departments")
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    assert_eq!(visible, vec!["dept-sales", "dept-sales-emea"]);
    assert_eq!(session["tenantWide"], false);

    // Tenant tokens read everything of their tenant, nothing of another.
    let tenant = token(&s, &k.admin, json!({})).await;
    assert_eq!(s.get("/v1/reports", &tenant).await.0, 200);
    assert_eq!(s.get("/v1/credits/balance", &tenant).await.0, 200);
    let (_, theirs) = s.get("/v1/activities", &other.read).await;
    assert_eq!(theirs["activities"].as_array().expect("list").len(), 0);

    // Forged: another tenant's token with this tenant's name, altered claims, junk.
    let foreign = token(&s, &other.admin, json!({})).await;
    let parts: Vec<&str> = foreign.split('.').collect();
    let claims = String::from_utf8(hex::decode(parts[1]).expect("hex")).expect("utf8");
    let forged_claims = hex::encode(claims.replace("t-other", "t-view"));
    let forged = format!("vt1.{forged_claims}.{}", parts[2]);
    for bad in [
        forged.as_str(),
        "vt1.00.00",
        "vt1.zz",
        &format!("{tenant}00"),
    ] {
        let (status, body) = s.get("/v1/reports", bad).await;
        assert_eq!(status, 401, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    // Expired: a token issued for one second.
    let short = token(&s, &k.admin, json!({ "ttlSeconds": 1 })).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(s.get("/v1/reports", &short).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_listed_created_with_expiry_and_revoked_at_once() {
    let s = server().await;
    let k = s.tenant("t-keys", "100").await;
    assert_eq!(s.get("/v1/keys", &k.read).await.0, 403);
    let (status, created) = s
        .post(
            "/v1/keys",
            &k.admin,
            json!({ "scopes": ["read"], "label": "reporting" }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let new_key = created["key"].as_str().expect("key").to_owned();
    let new_id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(s.get("/v1/credits/balance", &new_key).await.0, 200);
    let (_, listed) = s.get("/v1/keys", &k.admin).await;
    let keys = listed["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 4);
    assert!(
        keys.iter()
            .all(|k| k.get("keyHash").is_none() && k.get("key").is_none()),
        "no secrets listed"
    );
    // Revoked: refused on the very next request.
    let resp = s
        .call("DELETE", &format!("/v1/keys/{new_id}"), &k.admin, None)
        .await;
    assert_eq!(resp.0, 204);
    let (status, body) = s.get("/v1/credits/balance", &new_key).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        s.call("DELETE", "/v1/keys/key_nope", &k.admin, None)
            .await
            .0,
        404
    );
    // Bad requests.
    for bad in [
        json!({ "scopes": [] }),
        json!({ "scopes": ["root"] }),
        json!({ "scopes": ["read"], "expiresInSeconds": -1 }),
    ] {
        assert_eq!(
            s.post("/v1/keys", &k.admin, bad.clone()).await.0,
            400,
            "{bad}"
        );
    }
    // Expired keys are refused.
    let (_, short) = s
        .post(
            "/v1/keys",
            &k.admin,
            json!({ "scopes": ["read"], "expiresInSeconds": 1 }),
        )
        .await;
    let short = short["key"].as_str().expect("key").to_owned();
    assert_eq!(s.get("/v1/credits/balance", &short).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(s.get("/v1/credits/balance", &short).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_and_the_tenant_wide_report() {
    let s = server().await;
    let k = s.tenant("t-dash", "1000").await;
    let batch: Vec<Value> = (0..30)
        .map(|i| {
            activity(
                &format!("d-{i}"),
                if i % 3 == 0 { "user-200" } else { "user-123" },
                "crm.leads.create",
            )
        })
        .collect();
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
        201
    );
    let (status, dash) = s
        .get(
            "/v1/dashboards/users/user-123?since=1d&groupBy=hour",
            &k.read,
        )
        .await;
    assert_eq!(status, 200, "{dash}");
    assert_eq!(
        dash["context"]["entityPath"],
        "Acme Corp → Sales Department → EMEA Sales → John Doe"
    );
    assert_eq!(dash["report"]["totalActivities"], 20);
    assert_eq!(dash["recent"].as_array().expect("recent").len(), 20);
    assert_eq!(dash["recentSummary"]["totalOperations"], 20);
    // The sketch's `lastUpdated`: when this answer was made (issue 28).
    let made =
        chrono::DateTime::parse_from_rfc3339(dash["lastUpdated"].as_str().expect("lastUpdated"))
            .expect("RFC 3339");
    let age = chrono::Utc::now().signed_duration_since(made);
    assert!(age.num_seconds().abs() < 60, "{age:?}");
    assert_eq!(s.get("/v1/dashboards/users/nobody", &k.read).await.0, 404);
    assert_eq!(
        s.get("/v1/dashboards/users/user-123?bogus=1", &k.read)
            .await
            .0,
        400
    );
    let (status, all) = s.get("/v1/reports?since=1d", &k.read).await;
    assert_eq!(status, 200);
    assert_eq!(all["totalActivities"], 30);
    assert_eq!(all["userBreakdown"].as_array().expect("users").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn defect_17_operations_meter_any_crm_call_and_a_refusal_is_403_with_source_none() {
    let s = server().await;
    let k = s.tenant("t-ops", "3").await;
    let (status, ok) = s
        .post(
            "/v1/operations/crm.contacts.read",
            &k.ingest,
            json!({ "userId": "user-123" }),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    assert_eq!(ok["allowed"], true);
    assert_eq!(ok["creditsCharged"], "0.2500");
    // defect 17: refused is 403 with the denied activity recorded.
    let (status, denied) = s
        .post(
            "/v1/operations/crm.leads.delete",
            &k.ingest,
            json!({ "userId": "user-123" }),
        )
        .await;
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["error"]["details"]["activity"]["outcome"], "denied");
    let (_, check) = s
        .post(
            "/v1/permissions/check",
            &k.ingest,
            json!({ "userId": "user-123", "permission": "crm.leads.delete" }),
        )
        .await;
    assert_eq!(
        (check["allowed"].clone(), check["source"].clone()),
        (json!(false), json!("none"))
    );
    // Not enough credits: 402, recorded, nothing charged.
    let (status, poor) = s
        .post(
            "/v1/operations/crm.reports.export",
            &k.ingest,
            json!({ "userId": "user-123" }),
        )
        .await;
    assert_eq!(status, 402, "{poor}");
    assert_eq!(
        poor["error"]["details"]["activity"]["outcome"],
        "insufficient_credits"
    );
    let (_, balance) = s.get("/v1/credits/balance", &k.read).await;
    assert_eq!(balance["balance"], "2.7500");
    // Bad input changes nothing.
    for (path, body) in [
        (
            "/v1/operations/crm.contacts.read",
            json!({ "userId": "user-123", "id": "x" }),
        ),
        (
            "/v1/operations/crm.contacts.read",
            json!({ "userId": "user-123", "ipAddress": "1.2.3.4" }),
        ),
        ("/v1/operations/crm.contacts.read", json!([])),
        (
            "/v1/operations/not%20valid",
            json!({ "userId": "user-123" }),
        ),
    ] {
        let (status, body) = s.post(path, &k.ingest, body).await;
        assert!((400..500).contains(&status), "{path}: {status} {body}");
    }
    assert_eq!(s.all("/v1/activities", &k.read).await.len(), 3);
}

/// Issue 28: a lead's `priority` (the sketch's), kept with the lead, changed like its
/// other fields and recorded — with the status, never the content — on the activity.
#[tokio::test(flavor = "multi_thread")]
async fn leads_carry_a_priority_recorded_with_their_activity() {
    let s = server().await;
    let k = s.tenant("t-lead-priority", "1000").await;
    let create = json!({ "userId": "user-123", "leadId": "lead-p", "lead": { "title": "Renewal", "priority": "high" } });
    let (status, created) = s.post("/v1/leads", &k.ingest, create).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["lead"]["priority"], "high");
    let id = created["activity"]["id"].as_str().expect("id").to_owned();
    let (_, recorded) = s.get(&format!("/v1/activities/{id}"), &k.read).await;
    assert_eq!(
        recorded["metadata"],
        json!({ "leadStatus": "open", "leadPriority": "high" })
    );
    let (status, updated) = s
        .call(
            "PATCH",
            "/v1/leads/lead-p",
            &k.ingest,
            Some(json!({ "userId": "user-123", "changes": { "priority": "urgent" } })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (&updated["lead"]["priority"], &updated["lead"]["title"]),
        (&json!("urgent"), &json!("Renewal"))
    );
    let (status, bad) = s
        .post(
            "/v1/leads",
            &k.ingest,
            json!({ "userId": "user-123", "lead": { "title": "x", "priority": "whenever" } }),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let (_, listed) = s.get("/v1/leads?userId=user-123", &k.ingest).await;
    assert_eq!(
        listed["leads"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn defect_15_leads_are_created_updated_read_and_failures_record_no_lead_data() {
    let s = server().await;
    let k = s.tenant("t-leads", "1000").await;
    let lead = json!({ "title": "Enterprise deal", "source": "Website", "value": "50000", "customFields": { "tier": "gold" } });
    let (status, created) = s
        .post(
            "/v1/leads",
            &k.ingest,
            json!({ "userId": "user-123", "leadId": "lead-1", "lead": lead }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["lead"]["title"], "Enterprise deal");
    assert_eq!(created["lead"]["ownerId"], "user-123");
    assert_eq!(created["lead"]["version"], 1);
    assert_eq!(created["creditsCharged"], "3.5000");
    assert_eq!(created["activity"]["outcome"], "success");

    // Creating it again fails: a failed activity with an error code and no lead data.
    let (status, again) = s
        .post(
            "/v1/leads",
            &k.ingest,
            json!({ "userId": "user-123", "leadId": "lead-1", "lead": lead }),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["details"]["errorCode"], "lead_exists");
    let failed_id = again["error"]["details"]["activity"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let stored = s.all("/v1/activities?outcome=failed", &k.read).await;
    let failed = stored
        .iter()
        .find(|a| a["id"] == failed_id.as_str())
        .expect("recorded");
    assert_eq!(failed["metadata"], json!({ "errorCode": "lead_exists" }));
    assert_eq!(failed["credits"], "0.0000");
    let text = failed.to_string();
    assert!(
        !text.contains("Enterprise") && !text.contains("gold") && !text.contains("50000"),
        "{text}"
    );

    let (status, updated) = s
        .call(
            "PATCH",
            "/v1/leads/lead-1",
            &k.ingest,
            Some(json!({ "userId": "user-123", "changes": { "status": "won" }, "expectedVersion": 1 })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["lead"]["status"], "won");
    assert_eq!(updated["lead"]["title"], "Enterprise deal");
    assert_eq!(updated["lead"]["version"], 2);
    let (status, stale) = s
        .call(
            "PATCH",
            "/v1/leads/lead-1",
            &k.ingest,
            Some(json!({ "userId": "user-123", "changes": { "status": "lost" }, "expectedVersion": 1 })),
        )
        .await;
    assert_eq!(status, 409, "{stale}");
    assert_eq!(stale["error"]["details"]["errorCode"], "version_mismatch");
    let (status, missing) = s.get("/v1/leads/lead-9?userId=user-123", &k.ingest).await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["details"]["activity"]["outcome"], "failed");
    let (status, read) = s.get("/v1/leads/lead-1?userId=user-123", &k.ingest).await;
    assert_eq!(status, 200);
    assert_eq!(read["lead"]["status"], "won");
    let (status, listed) = s.get("/v1/leads?userId=user-123", &k.ingest).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["leads"].as_array().expect("leads").len(), 1);
    // A user without the permission: 403, nothing created.
    let (status, _) = s
        .post(
            "/v1/leads",
            &k.ingest,
            json!({ "userId": "user-400", "lead": { "title": "x" } }),
        )
        .await;
    assert_eq!(status, 403);
    // Bad input: 400 and nothing recorded.
    let before = s.all("/v1/activities", &k.read).await.len();
    for bad in [
        json!({ "userId": "user-123" }),
        json!({ "userId": "user-123", "lead": { "title": "" } }),
        json!({ "userId": "user-123", "lead": { "title": "t", "status": "maybe" } }),
        json!({ "userId": "user-123", "lead": { "title": "t", "value": "1e999" } }),
        json!({ "userId": "user-123", "lead": { "title": "t", "extra": 1 } }),
    ] {
        let (status, body) = s.post("/v1/leads", &k.ingest, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(s.all("/v1/activities", &k.read).await.len(), before);
}

/// A request with an `Idempotency-Key`: status and JSON answer.
async fn keyed(
    s: &TestServer,
    method: &str,
    path: &str,
    token: &str,
    key: &str,
    body: Value,
) -> (u16, Value) {
    let resp = s
        .http
        .request(method.parse().expect("method"), s.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("sent");
    (
        resp.status().as_u16(),
        resp.json::<Value>().await.expect("json"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_make_retries_answer_the_first_result() {
    let s = server().await;
    let k = s.tenant("t-idem", "100").await;
    let grant = |key: &'static str, amount: &'static str| {
        keyed(
            &s,
            "POST",
            "/v1/credits/grants",
            &k.admin,
            key,
            json!({ "amount": amount }),
        )
    };
    let first = grant("g-1", "5").await;
    assert_eq!(first.0, 200);
    assert_eq!(first.1["balance"], "105.0000", "{}", first.1);
    // The retry answers the first result (the same grant) and is not applied twice.
    assert_eq!(grant("g-1", "5").await, first);
    assert_eq!(grant("g-1", "6").await.0, 409);
    let second = grant("g-2", "5").await;
    assert_eq!(second.1["balance"], "110.0000");
    assert_ne!(second.1["grant"]["id"], first.1["grant"]["id"]);

    // Keys (issue 26.7): the retry names the key it made, without its text (never
    // stored), and makes no second key; another request under the key is 409.
    let new_key = json!({ "scopes": ["read"], "label": "idem-ci" });
    let (s1, made) = keyed(&s, "POST", "/v1/keys", &k.admin, "k-1", new_key.clone()).await;
    assert_eq!(s1, 201, "{made}");
    assert!(made["key"].is_string());
    let (s2, again) = keyed(&s, "POST", "/v1/keys", &k.admin, "k-1", new_key).await;
    assert_eq!((s2, &again["id"]), (200, &made["id"]), "{again}");
    assert!(again.get("key").is_none(), "{again}");
    let other = json!({ "scopes": ["admin"], "label": "idem-ci" });
    assert_eq!(
        keyed(&s, "POST", "/v1/keys", &k.admin, "k-1", other)
            .await
            .0,
        409
    );
    let (_, keys) = s.get("/v1/keys", &k.admin).await;
    let labelled = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["label"] == "idem-ci")
        .count();
    assert_eq!(labelled, 1, "{keys}");

    // Viewer tokens: the retry answers the same token, signed again from what was kept.
    let token = json!({ "userId": "user-123", "ttlSeconds": 600 });
    let path = "/v1/viewer-tokens";
    let (t1_status, t1) = keyed(&s, "POST", path, &k.admin, "v-1", token.clone()).await;
    assert_eq!(t1_status, 200, "{t1}");
    assert_eq!(
        keyed(&s, "POST", path, &k.admin, "v-1", token.clone()).await,
        (200, t1.clone())
    );
    let shorter = json!({ "userId": "user-123", "ttlSeconds": 60 });
    assert_eq!(
        keyed(&s, "POST", path, &k.admin, "v-1", shorter).await.0,
        409
    );
    let (_, t2) = keyed(&s, "POST", path, &k.admin, "v-2", token).await;
    assert_ne!(t2["token"], t1["token"]);
    assert_ne!(t2["id"], t1["id"]);

    // Activity batches without ids: the same key lands on the same ids.
    let batch = json!([{ "userId": "user-123", "operation": "crm.leads.read" }, { "userId": "user-200", "operation": "crm.leads.read" }]);
    let send =
        |key: &'static str, body: Value| keyed(&s, "POST", "/v1/activities", &k.ingest, key, body);
    let (first, a) = send("batch-1", batch.clone()).await;
    let (second, b) = send("batch-1", batch).await;
    assert_eq!((first, second), (201, 200));
    assert_eq!(a["results"][0]["id"], b["results"][0]["id"]);
    assert_eq!(b["duplicates"], 2);
    assert_eq!(s.all("/v1/activities", &k.read).await.len(), 2);

    // Issue 26.7: the key is bound to the whole request, items with their own ids
    // included — an extra item or a changed one under the same key is 409 and nothing
    // of it is recorded.
    let own = |n: usize| {
        json!((0..n)
            .map(|i| json!({ "id": format!("own-{i}"), "userId": "user-123", "operation": "crm.leads.read" }))
            .collect::<Vec<_>>())
    };
    assert_eq!(send("own-ids", own(2)).await.0, 201);
    assert_eq!(send("own-ids", own(2)).await.0, 200, "a retry");
    let (status, e) = send("own-ids", own(3)).await;
    assert_eq!(
        (status, e["error"]["code"].clone()),
        (409, json!("conflict")),
        "{e}"
    );
    let (status, _) = send("batch-1", own(1)).await;
    assert_eq!(status, 409, "another body under an earlier key");
    assert_eq!(
        s.all("/v1/activities", &k.read).await.len(),
        4,
        "own-2 never recorded"
    );

    // Operations and leads too.
    let lead = |method: &'static str, path: &'static str, key: &'static str, body: Value| {
        keyed(&s, method, path, &k.ingest, key, body)
    };
    let create = |title: &'static str| json!({ "userId": "user-123", "leadId": "lead-r", "lead": { "title": title } });
    assert_eq!(
        lead("POST", "/v1/leads", "lead-key", create("Retry me"))
            .await
            .0,
        201
    );
    assert_eq!(
        lead("POST", "/v1/leads", "lead-key", create("Retry me"))
            .await
            .0,
        200
    );
    // Issue 26.7: the key is bound to the whole request — another title under the same
    // key is a conflict, not the first answer with the new title silently dropped.
    let (status, e) = lead("POST", "/v1/leads", "lead-key", create("Another title")).await;
    assert_eq!(
        (status, e["error"]["code"].clone()),
        (409, json!("conflict")),
        "{e}"
    );
    let change =
        |status: &'static str| json!({ "userId": "user-123", "changes": { "status": status } });
    assert_eq!(
        lead("PATCH", "/v1/leads/lead-r", "change-key", change("won"))
            .await
            .0,
        200
    );
    let (status, e) = lead("PATCH", "/v1/leads/lead-r", "change-key", change("lost")).await;
    assert_eq!(status, 409, "{e}");
    let (_, got) = s.get("/v1/leads/lead-r?userId=user-123", &k.ingest).await;
    assert_eq!(
        (got["lead"]["title"].clone(), got["lead"]["status"].clone()),
        (json!("Retry me"), json!("won")),
        "{got}"
    );
    let (_, leads) = s.get("/v1/leads?userId=user-123", &k.ingest).await;
    assert_eq!(leads["leads"].as_array().expect("leads").len(), 1);
    let bad = s
        .http
        .post(s.url("/v1/credits/grants"))
        .bearer_auth(&k.admin)
        .header("idempotency-key", "")
        .json(&json!({ "amount": "1" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(bad.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn decisions_name_their_directory_version_and_outside_changes_are_seen_within_a_second() {
    let s = server().await;
    let k = s.tenant("t-prov", "100").await;
    let (_, first) = s
        .post(
            "/v1/operations/crm.leads.read",
            &k.ingest,
            json!({ "userId": "user-123" }),
        )
        .await;
    let id = first["activity"]["id"].as_str().expect("id").to_owned();
    let rows = s.all("/v1/activities", &k.read).await;
    let row = rows
        .iter()
        .find(|a| a["id"] == id.as_str())
        .expect("stored");
    assert_eq!(row["directoryVersion"], 1);

    // Another process (the CLI, another host) replaces the directory in the database.
    let spec = json!({ "organizations": [{ "id": "o", "name": "O" }],
        "departments": [{ "id": "d", "name": "D", "organizationId": "o" }],
        "users": [{ "id": "solo", "name": "Solo", "departmentId": "d", "grants": ["crm.leads.read"] }] });
    let file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(file.path(), spec.to_string()).expect("write");
    let crm_host::store::Location::Sqlite(db) = s.db.clone() else {
        unreachable!("sqlite backend")
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm-host"))
        .args(["directory", "import", "--tenant", "t-prov", "--db"])
        .arg(&db)
        .arg(file.path())
        .output()
        .expect("cli runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The running server uses it within the key cache's second (its own changes it
    // sees at once): user-123 is gone, solo exists.
    let started = std::time::Instant::now();
    loop {
        let (status, _) = s
            .post(
                "/v1/operations/crm.leads.read",
                &k.ingest,
                json!({ "userId": "user-123" }),
            )
            .await;
        if status == 422 {
            break;
        }
        assert_eq!(status, 201);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "the outside change is still unseen after 2 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, second) = s
        .post(
            "/v1/operations/crm.leads.read",
            &k.ingest,
            json!({ "userId": "solo" }),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let rows = s.all("/v1/activities", &k.read).await;
    let id = second["activity"]["id"].as_str().expect("id");
    assert_eq!(
        rows.iter().find(|a| a["id"] == id).expect("stored")["directoryVersion"],
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn defect_18_the_metrics_count_errors_and_the_error_rate_is_real() {
    let s = server().await;
    let k = s.tenant("t-metrics", "100").await;
    let (_, before) = s.get("/v1/metrics", &k.admin).await;
    let requests = before["requests"]["requests"].as_u64().expect("count");
    let errors = before["requests"]["clientErrors"].as_u64().expect("count");
    assert_eq!(s.get("/v1/nothing", &k.read).await.0, 404);
    assert_eq!(s.post("/v1/activities", &k.ingest, json!([])).await.0, 400);
    assert_eq!(
        s.post(
            "/v1/activities",
            &k.ingest,
            activity("m-1", "user-123", "crm.leads.read")
        )
        .await
        .0,
        201
    );
    // Another tenant's traffic is none of this tenant's business (issue 26.12).
    let other = s.tenant("t-metrics-other", "100").await;
    for _ in 0..3 {
        assert_eq!(
            s.post("/v1/activities", &other.ingest, json!([])).await.0,
            400
        );
    }
    let (_, after) = s.get("/v1/metrics", &k.admin).await;
    assert_eq!(after["tenantId"], "t-metrics");
    // The two authenticated requests above and the first metrics call itself; the 404
    // named no tenant, and the other tenant's three are not counted here.
    assert_eq!(
        after["requests"]["requests"].as_u64().expect("count"),
        requests + 3
    );
    assert_eq!(
        after["requests"]["clientErrors"].as_u64().expect("count"),
        errors + 1
    );
    assert_eq!(after["requests"]["activitiesRecorded"], 1);
    assert!(after["requests"]["errorRate"].as_f64().expect("rate") > 0.0);
    let prometheus = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    for name in [
        "crm_http_requests_total",
        "crm_errors_total",
        "crm_activities_recorded_total",
        "crm_commit_seconds",
        "crm_ingest_batch_size",
    ] {
        assert!(prometheus.contains(name), "{name} missing from /metrics");
    }
    // Every answer carries a request id; a client's own is kept when it is a plain id,
    // replaced when it could forge log lines or bloat them (issue 26.12).
    let resp = s.http.get(s.url("/healthz")).send().await.expect("sent");
    assert!(resp.headers().get("x-request-id").is_some());
    let echoed = |value: String| {
        let req = s.http.get(s.url("/healthz")).header("x-request-id", value);
        async move {
            let resp = req.send().await.expect("sent");
            resp.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(echoed("trace-42.a:b_c".to_owned()).await, "trace-42.a:b_c");
    for unfit in ["x\" level=error msg=forged".to_owned(), "a".repeat(129)] {
        let id = echoed(unfit.clone()).await;
        assert!(!id.is_empty() && id != unfit, "{unfit:?} was kept");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn defect_9_and_14_reports_count_everything_and_latest_is_the_newest() {
    let s = server().await;
    let k = s.tenant("t-big", "100000").await;
    let now = crm_host::service::clock::now().millis();
    let at = |ms: i64| crm_core::Timestamp::from_millis(ms).expect("in range");
    for chunk in 0..3 {
        // Newest first within each batch: "last seen" is never "latest".
        let batch: Vec<Value> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                let mut a = activity(&format!("b-{n}"), "user-123", "crm.leads.read");
                a["occurredAt"] = json!(at(now - 60_000 - n * 1_000));
                a
            })
            .collect();
        assert_eq!(
            s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
            201
        );
    }
    let (_, report) = s.get("/v1/reports?since=2d", &k.read).await;
    assert_eq!(report["totalActivities"], 1500, "no 1000-activity cap");
    let op = &report["operationBreakdown"][0];
    assert_eq!(op["count"], 1500);
    assert_eq!(op["latest"], json!(at(now - 60_000)));
}

/// The dashboard is served with a content security policy, no sniffing and no framing
/// (issue 26.12): a stolen page cannot be framed for clickjacking, nor scripts injected.
#[tokio::test]
async fn the_dashboard_is_served_with_security_headers() {
    let s = TestServer::start(EngineKind::Native).await;
    for path in ["/", "/app.js", "/pkg/crm_web_bg.wasm"] {
        let resp = s.http.get(s.url(path)).send().await.expect("sent");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let h = resp.headers();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..])
        );
        assert_eq!(
            h.get("x-frame-options").map(|v| v.as_bytes()),
            Some(&b"DENY"[..])
        );
    }
}

/// Issue 26.12: a department-scoped viewer token sees records *recorded under* its
/// subtree. A user who moves into the department brings no earlier history into the
/// manager's view (listings, the user's listing, exports), while the records made
/// after the move are there.
#[tokio::test(flavor = "multi_thread")]
async fn a_department_token_does_not_see_a_moved_users_earlier_history() {
    let s = server().await;
    let k = s.tenant("t-moved", "100000").await;
    let before: Vec<Value> = (0..3)
        .map(|i| activity(&format!("before-{i}"), "user-300", "crm.leads.read"))
        .collect();
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(before)).await.0,
        201
    );
    // user-300 moves from dept-eng into dept-sales-emea.
    let (status, moved) = s
        .call(
            "PATCH",
            "/v1/directory",
            &k.admin,
            Some(json!({ "upsert": { "users": [{ "id": "user-300", "name": "Moved", "departmentId": "dept-sales-emea", "roles": ["role-admin"] }] } })),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    let after: Vec<Value> = (0..2)
        .map(|i| activity(&format!("after-{i}"), "user-300", "crm.leads.read"))
        .collect();
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(after)).await.0,
        201
    );
    let (_, token) = s
        .post(
            "/v1/viewer-tokens",
            &k.admin,
            json!({ "departmentId": "dept-sales" }),
        )
        .await;
    let vt = token["token"].as_str().expect("token").to_owned();
    let ids = |page: Vec<Value>| -> Vec<String> {
        let mut v: Vec<String> = page
            .iter()
            .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        v.sort();
        v
    };
    let want = vec!["after-0".to_owned(), "after-1".to_owned()];
    assert_eq!(ids(s.all("/v1/users/user-300/activities", &vt).await), want);
    assert_eq!(
        ids(s.all("/v1/departments/dept-sales/activities", &vt).await),
        want
    );
    // The tenant's own keys still see the whole history.
    assert_eq!(
        s.all("/v1/users/user-300/activities", &k.read).await.len(),
        5
    );
    assert_eq!(s.get("/v1/activities/before-0", &vt).await.0, 404);
    assert_eq!(s.get("/v1/activities/after-0", &vt).await.0, 200);
    // Reports and the dashboard count what the listing shows, not the user's past.
    let (status, report) = s.get("/v1/reports/users/user-300", &vt).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["totalActivities"], 2, "{report}");
    let (_, report) = s.get("/v1/reports/users/user-300", &k.read).await;
    assert_eq!(report["totalActivities"], 5, "{report}");
    let (status, dash) = s.get("/v1/dashboards/users/user-300", &vt).await;
    assert_eq!(status, 200, "{dash}");
    assert_eq!(dash["report"]["totalActivities"], 2, "{dash}");
}

/// Issue 26.12: viewer tokens can be revoked — rotating the tenant's signing secret
/// refuses every token issued before, from the next request on; tokens issued after
/// work. A tenant that never issued one has no secret, and verifying a token writes
/// none (issue 26.9): a token signed with an empty key is refused.
#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_signing_secret_revokes_every_viewer_token() {
    let s = server().await;
    let fresh = s.tenant("t-never-issued", "10").await;
    let forged = crm_core::viewer_token::sign(
        &crm_core::viewer_token::Claims {
            tenant: "t-never-issued".to_owned(),
            scope: crm_core::viewer_token::TokenScope::Tenant,
            expires_at: i64::MAX / 4,
            id: None,
        },
        &[],
    );
    assert_eq!(s.get("/v1/session", &forged).await.0, 401);
    assert_eq!(s.get("/v1/session", &fresh.read).await.0, 200);

    let k = s.tenant("t-rotate", "10").await;
    let issue = || async {
        let (status, t) = s.post("/v1/viewer-tokens", &k.admin, json!({})).await;
        assert_eq!(status, 200, "{t}");
        t["token"].as_str().expect("token").to_owned()
    };
    let before = issue().await;
    assert_eq!(s.get("/v1/session", &before).await.0, 200);
    assert_eq!(
        s.call("POST", "/v1/viewer-tokens/rotate", &k.read, None)
            .await
            .0,
        403,
        "only an admin rotates"
    );
    assert_eq!(
        s.call("POST", "/v1/viewer-tokens/rotate", &k.admin, None)
            .await
            .0,
        204
    );
    assert_eq!(s.get("/v1/session", &before).await.0, 401, "revoked");
    let after = issue().await;
    assert_eq!(s.get("/v1/session", &after).await.0, 200);

    // Issue 26.12: one token revoked by its id; the others keep working.
    let (_, one) = s.post("/v1/viewer-tokens", &k.admin, json!({})).await;
    let (_, other) = s.post("/v1/viewer-tokens", &k.admin, json!({})).await;
    let text_of = |t: &Value| t["token"].as_str().expect("token").to_owned();
    let path = format!("/v1/viewer-tokens/{}", one["id"].as_str().expect("an id"));
    assert_eq!(s.call("DELETE", &path, &k.read, None).await.0, 403);
    assert_eq!(s.call("DELETE", &path, &k.admin, None).await.0, 204);
    assert_eq!(
        s.call("DELETE", &path, &k.admin, None).await.0,
        204,
        "twice is once"
    );
    assert_eq!(s.get("/v1/session", &text_of(&one)).await.0, 401);
    assert_eq!(s.get("/v1/session", &text_of(&other)).await.0, 200);
    assert_eq!(s.get("/v1/session", &after).await.0, 200);
    let (status, e) = s
        .call("DELETE", "/v1/viewer-tokens/a%20b", &k.admin, None)
        .await;
    assert_eq!(status, 400, "{e}");

    // The same from the command line: revoke by id, then rotate.
    let crm_host::store::Location::Sqlite(db) = s.db.clone() else {
        unreachable!("sqlite")
    };
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm-host"))
            .args(["viewer-token"])
            .args(args)
            .args(["--tenant", "t-rotate", "--db"])
            .arg(&db)
            .output()
            .expect("cli runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&["revoke", other["id"].as_str().expect("id")]);
    assert_eq!(s.get("/v1/session", &text_of(&other)).await.0, 401);
    assert_eq!(s.get("/v1/session", &after).await.0, 200);
    cli(&["rotate"]);
    assert_eq!(s.get("/v1/session", &after).await.0, 401);
}

/// Issue 27 (first slice): the credit ledger can be read — every balance change,
/// newest first, each with the balance after it, filtered by kind and paged.
#[tokio::test(flavor = "multi_thread")]
async fn the_credit_ledger_lists_every_balance_change_newest_first() {
    let s = server().await;
    let k = s.tenant("t-ledger", "100").await;
    let (status, granted) = s
        .post(
            "/v1/credits/grants",
            &k.admin,
            json!({ "amount": "5", "reason": "bonus" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(granted["grant"]["reason"], "bonus", "{granted}");
    let batch: Vec<Value> = (0..3)
        .map(|i| activity(&format!("ledger-{i}"), "user-123", "crm.leads.create"))
        .collect();
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
        201
    );
    let (status, page) = s.get("/v1/credits/ledger", &k.read).await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().expect("entries");
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["usage", "grant", "grant"], "{page}");
    // A grant's entry names the grant (its reason is the grant's).
    assert_eq!(
        entries[1]["detail"],
        format!("grant {}", granted["grant"]["id"].as_str().expect("id"))
    );
    assert_eq!(entries[2]["detail"], "grant opening-balance");
    assert_eq!(entries[2]["balance"], "100.0000", "the opening balance");
    // Each entry's balance is the one before it plus its change; the newest is the
    // balance the API answers.
    let units = |v: &Value| {
        crm_core::Credits::parse(v.as_str().expect("credits"))
            .expect("credits")
            .units()
    };
    for pair in entries.windows(2) {
        assert_eq!(
            units(&pair[1]["balance"]) + units(&pair[0]["delta"]),
            units(&pair[0]["balance"])
        );
    }
    let (_, balance) = s.get("/v1/credits/balance", &k.read).await;
    assert_eq!(balance["balance"], entries[0]["balance"]);
    assert!(units(&entries[0]["delta"]) < 0, "usage is a charge");

    let (_, grants) = s.get("/v1/credits/ledger?kind=grant", &k.read).await;
    assert_eq!(grants["entries"].as_array().expect("entries").len(), 2);
    let (_, first) = s.get("/v1/credits/ledger?limit=2", &k.read).await;
    let cursor = first["nextCursor"]
        .as_str()
        .expect("another page")
        .to_owned();
    let (_, rest) = s
        .get(
            &format!("/v1/credits/ledger?limit=2&cursor={cursor}"),
            &k.read,
        )
        .await;
    assert_eq!(
        rest["entries"][0]["detail"], "grant opening-balance",
        "{rest}"
    );
    assert!(rest.get("nextCursor").is_none(), "{rest}");
    assert_eq!(s.get("/v1/credits/ledger", &k.ingest).await.0, 403);
    assert_eq!(
        s.get("/v1/credits/ledger?kind=refund", &k.read).await.0,
        400
    );
}
