//! The HTTP API against a real server, on a real SQLite file and on a real
//! PostgreSQL database: every test runs on both (`on_both_backends!` at the end).

use crm_host::engine::EngineKind;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, activity};

async fn server(backend: Backend) -> TestServer {
    TestServer::start_on(backend, EngineKind::Component, None).await
}

fn count(v: &Value) -> usize {
    v["activities"].as_array().map_or(0, Vec::len)
}

async fn health_and_readiness(backend: Backend) {
    let s = server(backend).await;
    let (status, body) = s.get("/healthz", "").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = s.get("/readyz", "").await;
    assert_eq!((status, body["engine"].as_str()), (200, Some("component")));
}

async fn directory_is_versioned_and_validated_before_it_changes(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-dir", "10").await;
    let (status, body) = s.get("/v1/directory", &k.read).await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], 1);
    assert_eq!(body["directory"]["users"].as_array().map(Vec::len), Some(6));

    let patch = json!({ "upsert": { "users": [{ "id": "user-500", "name": "New Hire", "email": "new@acme.test",
        "departmentId": "dept-sales", "roles": ["role-sales-rep"] }] } });
    let (status, body) = s
        .call("PATCH", "/v1/directory", &k.admin, Some(patch))
        .await;
    assert_eq!(
        (status, body["version"].as_u64(), body["users"].as_u64()),
        (200, Some(2), Some(7)),
        "{body}"
    );
    let (_, decision) = s
        .post(
            "/v1/permissions/check",
            &k.ingest,
            json!({ "userId": "user-500", "permission": "crm.leads.read" }),
        )
        .await;
    assert_eq!(decision["allowed"], true);

    let cycle = json!({ "organizations": [{ "id": "o", "name": "O" }],
        "departments": [{ "id": "a", "name": "A", "organizationId": "o", "parentId": "b" },
                        { "id": "b", "name": "B", "organizationId": "o", "parentId": "a" }] });
    let (status, body) = s.call("PUT", "/v1/directory", &k.admin, Some(cycle)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("cycle"))
    );
    let (status, _) = s
        .call("PUT", "/v1/directory", &k.read, Some(json!({})))
        .await;
    assert_eq!(status, 403);
    let (_, body) = s.get("/v1/directory", &k.read).await;
    assert_eq!(
        body["version"], 2,
        "refused changes leave the directory as it was"
    );

    let (status, body) = s
        .call(
            "PUT",
            "/v1/directory",
            &k.admin,
            Some(json!({ "organizations": [] })),
        )
        .await;
    assert_eq!(
        (status, body["users"].as_u64(), body["version"].as_u64()),
        (200, Some(0), Some(3))
    );
}

async fn permission_checks_single_and_batch(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-perm", "10").await;
    let (status, d) = s
        .post(
            "/v1/permissions/check",
            &k.ingest,
            json!({ "userId": "user-123", "permission": "crm.leads.update" }),
        )
        .await;
    assert_eq!(
        (status, d["source"].as_str()),
        (200, Some("role:Sales Manager"))
    );
    let (status, d) = s
        .post(
            "/v1/permissions/check",
            &k.ingest,
            json!({ "checks": [
            { "userId": "user-123", "permission": "crm.leads.delete" },
            { "userId": "user-999", "permission": "crm.leads.read" } ] }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(d["decisions"][0]["reason"], "denied");
    assert_eq!(d["decisions"][1]["reason"], "unknown_user");
    let (status, e) = s
        .post("/v1/permissions/check", &k.ingest, json!({ "checks": [
            { "userId": "user-123", "permission": "crm.leads.read" }, { "userId": "user-123", "permission": "Bad Name" } ] }))
        .await;
    assert_eq!(
        (status, e["error"]["details"]["field"].as_str()),
        (400, Some("checks[1].permission"))
    );
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({ "userId": "user-123", "permission": "crm.leads.read" }))
        .collect();
    let (status, _) = s
        .post(
            "/v1/permissions/check",
            &k.ingest,
            json!({ "checks": many }),
        )
        .await;
    assert_eq!(status, 413);
    // Checks enumerate users and role names: a read key may not make them (issue 26.4),
    // and the scope is refused before the body is read.
    let (status, e) = s
        .post(
            "/v1/permissions/check",
            &k.read,
            json!({ "userId": "user-123", "permission": "crm.leads.update" }),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
}

async fn prices_balance_grants_and_charging_are_exact(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-credits", "10").await;
    let (status, prices) = s.get("/v1/credits/prices", &k.read).await;
    assert_eq!(
        (status, prices["prices"]["crm.leads.create"].as_str()),
        (200, Some("3.5000"))
    );
    // The price of one operation, and the entry that decides it (issue 28); what an
    // operation is then charged is the same figure (below, crm.leads.create).
    for (op, price, matched) in [
        ("crm.leads.create", "3.5000", json!("crm.leads.create")),
        ("crm.leads.archive", "0.5000", json!("crm.leads.*")),
        ("crm.deals.close", "0.2500", json!("*")),
    ] {
        let (status, p) = s.get(&format!("/v1/credits/prices/{op}"), &k.read).await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(
            (p["price"].as_str(), &p["matched"]),
            (Some(price), &matched),
            "{op}"
        );
    }
    assert_eq!(
        s.get("/v1/credits/prices/Not%20An%20Op", &k.read).await.0,
        400
    );
    let (status, _) = s
        .call(
            "PUT",
            "/v1/credits/prices",
            &k.admin,
            Some(json!({ "default": "-1" })),
        )
        .await;
    assert_eq!(status, 400, "negative prices are refused");
    let (status, p) = s
        .call(
            "PUT",
            "/v1/credits/prices",
            &k.admin,
            Some(json!({ "default": "0.1", "prices": { "crm.leads.create": "0.3" } })),
        )
        .await;
    assert_eq!((status, p["version"].as_u64()), (200, Some(2)));

    // defect_16: three charges of 0.1 and one of 0.3 leave exactly 9.4.
    for i in 0..3 {
        let (status, _) = s
            .post(
                "/v1/activities",
                &k.ingest,
                activity(&format!("c-{i}"), "user-300", "crm.contacts.read"),
            )
            .await;
        assert_eq!(status, 201);
    }
    s.post(
        "/v1/activities",
        &k.ingest,
        activity("c-3", "user-123", "crm.leads.create"),
    )
    .await;
    let (_, b) = s.get("/v1/credits/balance", &k.read).await;
    assert_eq!(b["balance"], "9.4000");

    let (status, b) = s
        .post(
            "/v1/credits/grants",
            &k.admin,
            json!({ "amount": "0.6", "reason": "top-up" }),
        )
        .await;
    assert_eq!((status, b["balance"].as_str()), (200, Some("10.0000")));
    for bad in [
        json!({ "amount": "-5" }),
        json!({ "amount": "0" }),
        json!({ "amount": "1.00001" }),
        json!({ "amount": 1, "x": 1 }),
    ] {
        let (status, e) = s.post("/v1/credits/grants", &k.admin, bad.clone()).await;
        assert_eq!(status, 400, "{bad} → {e}");
    }
    let (status, _) = s
        .post("/v1/credits/grants", &k.read, json!({ "amount": "1" }))
        .await;
    assert_eq!(status, 403);
    let (_, b) = s.get("/v1/credits/balance", &k.read).await;
    assert_eq!(b["balance"], "10.0000", "refused grants change nothing");
}

async fn insufficient_credits_is_402_recorded_and_charges_nothing(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-poor", "3").await;
    let (status, e) = s
        .post(
            "/v1/activities",
            &k.ingest,
            activity("p-1", "user-123", "crm.leads.create"),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (402, Some("insufficient_credits")),
        "{e}"
    );
    assert_eq!(
        e["error"]["details"]["activity"]["outcome"],
        "insufficient_credits"
    );
    let (_, b) = s.get("/v1/credits/balance", &k.read).await;
    assert_eq!(b["balance"], "3.0000");
    let listed = s
        .all("/v1/activities?outcome=insufficient_credits", &k.read)
        .await;
    assert_eq!(listed.len(), 1, "the refusal is in the audit log");
    assert_eq!(listed[0]["credits"], "0.0000");
}

async fn ingest_is_idempotent_by_id(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-idem", "100").await;
    let a = activity("same-1", "user-200", "crm.leads.read");
    let (status, first) = s.post("/v1/activities", &k.ingest, a.clone()).await;
    assert_eq!((status, first["duplicate"].as_bool()), (201, Some(false)));
    let (status, again) = s.post("/v1/activities", &k.ingest, a.clone()).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(
        (again["seq"].clone(), again["hash"].clone()),
        (first["seq"].clone(), first["hash"].clone())
    );

    let mut changed = a.clone();
    changed["operation"] = json!("crm.leads.update");
    let (status, e) = s.post("/v1/activities", &k.ingest, changed).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    // Within one batch: a repeat is answered as a duplicate of the first.
    let (status, batch) = s
        .post(
            "/v1/activities",
            &k.ingest,
            json!([
                activity("b-1", "user-200", "crm.leads.read"),
                activity("b-1", "user-200", "crm.leads.read"),
                a
            ]),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        (batch["created"].as_u64(), batch["duplicates"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        s.all("/v1/activities", &k.read).await.len(),
        2,
        "stored once each"
    );
}

async fn bad_input_is_a_json_4xx_and_writes_nothing(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-bad", "100").await;
    let raw = |body: &'static str, ctype: &'static str| {
        let req = s
            .http
            .post(s.url("/v1/activities"))
            .bearer_auth(&k.ingest)
            .header("content-type", ctype)
            .body(body);
        async move {
            let r = req.send().await.expect("sent");
            (
                r.status().as_u16(),
                r.json::<Value>().await.expect("JSON error body"),
            )
        }
    };
    for (body, ctype, status) in [
        ("{not json", "application/json", 400),
        (
            "{\"userId\": 5, \"operation\": \"crm.leads.read\"}",
            "application/json",
            400,
        ),
        ("{\"userId\": \"user-123\"}", "application/json", 400),
        ("\"just a string\"", "application/json", 400),
        ("[]", "application/json", 400),
        (
            "{\"userId\": \"user-123\", \"operation\": \"crm.leads.read\"}",
            "text/plain",
            400,
        ),
    ] {
        let (got, e) = raw(body, ctype).await;
        assert_eq!(got, status, "{body}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{e}"
        );
    }
    let cases = [
        (
            activity("x", "user-999", "crm.leads.read"),
            422,
            "unknown_user",
        ),
        (
            activity("x", "user-123", "not a name"),
            400,
            "invalid_input",
        ),
        (
            json!({ "userId": "user-123", "operation": "crm.leads.read", "credits": "0" }),
            400,
            "invalid_input",
        ),
        (
            json!({ "userId": "user-123", "operation": "crm.leads.read", "occurredAt": "yesterday" }),
            400,
            "invalid_input",
        ),
        (
            json!({ "userId": "user-123", "operation": "crm.leads.read", "metadata": { "blob": "x".repeat(10_000) } }),
            413,
            "too_large",
        ),
    ];
    for (body, status, code) in cases {
        let (got, e) = s.post("/v1/activities", &k.ingest, body.clone()).await;
        assert_eq!(
            (got, e["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {e}"
        );
    }
    let (status, e) = s
        .post(
            "/v1/activities",
            &k.ingest,
            json!([
                activity("ok-1", "user-123", "crm.leads.read"),
                activity("ok-2", "nobody", "crm.leads.read")
            ]),
        )
        .await;
    assert_eq!(
        (status, e["error"]["details"]["field"].as_str()),
        (422, Some("[1].userId")),
        "{e}"
    );
    let too_many: Vec<Value> = (0..1001)
        .map(|i| activity(&format!("m-{i}"), "user-123", "crm.leads.read"))
        .collect();
    let (status, _) = s.post("/v1/activities", &k.ingest, json!(too_many)).await;
    assert_eq!(status, 413);
    let (status, _) = s
        .post(
            "/v1/activities",
            &k.read,
            activity("r", "user-123", "crm.leads.read"),
        )
        .await;
    assert_eq!(status, 403, "a read key cannot ingest");
    let (status, _) = s
        .post(
            "/v1/activities",
            "crm_not_a_key",
            activity("r", "user-123", "crm.leads.read"),
        )
        .await;
    assert_eq!(status, 401);
    let (status, e) = s.call("DELETE", "/v1/activities", &k.admin, None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, _) = s.get("/v1/nothing-here", &k.read).await;
    assert_eq!(status, 404);

    assert!(
        s.all("/v1/activities", &k.read).await.is_empty(),
        "nothing was written"
    );
    let (_, b) = s.get("/v1/credits/balance", &k.read).await;
    assert_eq!(b["balance"], "100.0000");
}

async fn query_parameters_are_checked(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-query", "100").await;
    for (path, field) in [
        ("/v1/activities?since=30x", Some("since")),
        (
            "/v1/activities?since=30d&from=2024-01-01T00:00:00Z",
            Some("since"),
        ),
        ("/v1/activities?from=2024-13-01", Some("from")),
        ("/v1/activities?cursor=garbage", None),
        ("/v1/activities?limit=0", None),
        ("/v1/activities?limit=501", None),
        ("/v1/activities?outcome=maybe", None),
        ("/v1/activities?colour=blue", None),
        (
            "/v1/reports/users/user-123?groupBy=fortnight",
            Some("groupBy"),
        ),
        ("/v1/reports/users/user-123?tz=Mars/Base", Some("tz")),
    ] {
        let (status, e) = s.get(path, &k.read).await;
        assert_eq!(status, 400, "{path}: {e}");
        if let Some(f) = field {
            assert_eq!(
                e["error"]["details"]["field"].as_str(),
                Some(f),
                "{path}: {e}"
            );
        }
    }
    let (status, _) = s.get("/v1/users/user-999/activities", &k.read).await;
    assert_eq!(status, 404);
    let (status, _) = s.get("/v1/departments/dept-999/activities", &k.read).await;
    assert_eq!(status, 404);
}

async fn defect_8_pages_hold_each_activity_exactly_once(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-pages", "1000").await;
    // Whole milliseconds shared by 40 activities each, a few days back.
    let now = crm_host::service::clock::now().millis() / 1000 * 1000;
    let batch: Vec<Value> = (0..120u8)
        .map(|i| {
            let mut a = activity(&format!("pg-{i:03}"), "user-200", "crm.leads.read");
            // Many share a timestamp, so the cursor must break ties by seq.
            let day = 86_400_000 * (1 + i64::from(i % 3));
            a["occurredAt"] = json!(crm_core::Timestamp::from_millis(now - day).expect("in range"));
            a
        })
        .collect();
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
        201
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/users/user-200/activities?since=30d&limit=7&cursor={c}"),
            None => "/v1/users/user-200/activities?since=30d&limit=7".to_owned(),
        };
        let (status, page) = s.get(&path, &k.read).await;
        assert_eq!(status, 200);
        pages += 1;
        for a in page["activities"].as_array().expect("list") {
            assert!(
                seen.insert(a["id"].as_str().expect("id").to_owned()),
                "duplicate {}",
                a["id"]
            );
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (120, 18));
}

async fn defect_11_department_subtree_is_exact_and_tenant_scoped(backend: Backend) {
    let s = server(backend).await;
    let a = s.tenant("t-sub-a", "1000").await;
    let b = s.tenant("t-sub-b", "1000").await;
    // user-400 is in dept-1, user-401 in dept-10, user-402 in dept-1-a (child of dept-1).
    let batch = json!([
        activity("d-1", "user-400", "crm.tickets.read"),
        activity("d-2", "user-401", "crm.reports.read"),
        activity("d-3", "user-402", "crm.leads.read")
    ]);
    assert_eq!(
        s.post("/v1/activities", &a.ingest, batch.clone()).await.0,
        201
    );
    let ids = |list: Vec<Value>| {
        list.iter()
            .map(|a| a["id"].as_str().expect("id").to_owned())
            .collect::<Vec<_>>()
    };
    let mut dept1 = ids(s.all("/v1/departments/dept-1/activities", &a.read).await);
    dept1.sort();
    assert_eq!(
        dept1,
        ["d-1", "d-3"],
        "dept-1 covers dept-1-a, never dept-10"
    );
    assert_eq!(
        ids(s.all("/v1/activities?departmentId=dept-10", &a.read).await),
        ["d-2"]
    );
    assert!(
        s.all("/v1/departments/dept-1/activities", &b.read)
            .await
            .is_empty(),
        "no cross-tenant rows"
    );
}

async fn defect_12_tenants_never_see_each_other(backend: Backend) {
    let s = server(backend).await;
    let a = s.tenant("t-iso-a", "1000").await;
    let b = s.tenant("t-iso-b", "1000").await;
    assert_eq!(
        s.post(
            "/v1/activities",
            &a.ingest,
            activity("secret-1", "user-123", "crm.leads.create")
        )
        .await
        .0,
        201
    );
    assert_eq!(
        s.post(
            "/v1/activities",
            &b.ingest,
            activity("mine-1", "user-123", "crm.leads.read")
        )
        .await
        .0,
        201
    );
    // Same user id in both tenants: each sees only its own.
    let b_rows = s.all("/v1/users/user-123/activities", &b.read).await;
    assert_eq!(
        b_rows.iter().map(|r| r["id"].as_str()).collect::<Vec<_>>(),
        [Some("mine-1")]
    );
    assert!(b_rows.iter().all(|r| r["tenantId"] == "t-iso-b"));
    // A cursor from tenant A does not open tenant A's rows to B.
    let (_, page) = s.get("/v1/activities?limit=1", &a.read).await;
    let a_cursor = format!("c{}.{}", i64::MAX / 2, 1_000_000);
    let (_, leaked) = s
        .get(&format!("/v1/activities?cursor={a_cursor}"), &b.read)
        .await;
    assert!(
        leaked["activities"]
            .as_array()
            .expect("list")
            .iter()
            .all(|r| r["tenantId"] == "t-iso-b")
    );
    assert_eq!(count(&page), 1);
    // Same id in another tenant is a different activity, not a conflict.
    assert_eq!(
        s.post(
            "/v1/activities",
            &b.ingest,
            activity("secret-1", "user-200", "crm.leads.read")
        )
        .await
        .0,
        201
    );
    let (_, report) = s.get("/v1/reports/users/user-123", &b.read).await;
    assert_eq!(report["totalActivities"], 1);
    let (_, dir) = s.get("/v1/directory", &b.read).await;
    assert_eq!(dir["version"], 1);
    let (_, bal) = s.get("/v1/credits/balance", &a.read).await;
    assert_eq!(bal["balance"], "996.5000", "only A's own charge");
}

async fn defect_19_and_20_session_and_ip_are_never_invented_or_taken_from_the_body(
    backend: Backend,
) {
    let s = server(backend).await;
    let k = s.tenant("t-comp", "100").await;
    let (status, e) = s
        .post("/v1/activities", &k.ingest, json!({ "userId": "user-123", "operation": "crm.leads.read", "compliance": { "ipAddress": "6.6.6.6" } }))
        .await;
    assert_eq!(
        (status, e["error"]["details"]["field"].as_str()),
        (400, Some("compliance.ipAddress"))
    );
    assert_eq!(
        s.post(
            "/v1/activities",
            &k.ingest,
            activity("ip-1", "user-123", "crm.leads.read")
        )
        .await
        .0,
        201
    );
    let rows = s.all("/v1/activities", &k.read).await;
    assert_eq!(
        rows[0]["compliance"]["ipAddress"], "127.0.0.1",
        "from the TCP peer"
    );
    assert_eq!(rows[0]["sessionId"], Value::Null);
}

async fn defect_5_acknowledged_means_durable(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-durable", "100").await;
    let (status, ack) = s
        .post(
            "/v1/activities",
            &k.ingest,
            activity("dur-1", "user-123", "crm.leads.read"),
        )
        .await;
    assert_eq!(status, 201);
    // A separate store over the same database sees the acknowledged row at once.
    let store = s.independent_store();
    let d = store.dialect();
    let rows = store
        .read(move |c| Ok(c.query(&d.stmt("SELECT id, seq FROM activities", Vec::new()))?))
        .await
        .expect("read");
    let stored: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.string(0).expect("id"), r.int(1).expect("seq")))
        .collect();
    assert_eq!(
        stored,
        vec![("dur-1".to_owned(), ack["seq"].as_i64().expect("seq"))]
    );
}

async fn defect_1_generated_ids_never_collide(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-ids", "1000").await;
    let batch: Vec<Value> = (0..1000)
        .map(|_| json!({ "userId": "user-200", "operation": "crm.leads.read" }))
        .collect();
    let (status, answer) = s.post("/v1/activities", &k.ingest, json!(batch)).await;
    assert_eq!(status, 201);
    let ids: std::collections::BTreeSet<_> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(
        s.all("/v1/activities", &k.read).await.len(),
        1000,
        "nothing overwritten"
    );
}

async fn defect_2_counts_are_exact_and_nothing_lingers_after_the_answer(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-count", "1000").await;
    let mut expected = 0;
    for round in 0..5 {
        let batch: Vec<Value> = (0..40)
            .map(|i| activity(&format!("r{round}-{i}"), "user-123", "crm.contacts.read"))
            .collect();
        let (_, answer) = s.post("/v1/activities", &k.ingest, json!(batch)).await;
        expected += answer["created"].as_u64().expect("created");
        // Readable as soon as answered: no buffer between the answer and the store.
        assert_eq!(
            s.all("/v1/activities", &k.read).await.len() as u64,
            expected
        );
    }
    let (_, report) = s.get("/v1/reports/users/user-123", &k.read).await;
    assert_eq!(report["totalActivities"], 200);
}

async fn many_concurrent_clients_get_exact_counts_and_an_unbroken_chain(backend: Backend) {
    let s = std::sync::Arc::new(server(backend).await);
    let k = s.tenant("t-conc", "100000").await;
    let mut tasks = Vec::new();
    for client in 0..16 {
        let (s, key) = (s.clone(), k.ingest.clone());
        tasks.push(tokio::spawn(async move {
            for req in 0..20 {
                let batch: Vec<Value> = (0..10)
                    .map(|i| {
                        activity(
                            &format!("k{client}-{req}-{i}"),
                            ["user-123", "user-200", "user-300"][i % 3],
                            "crm.leads.create",
                        )
                    })
                    .collect();
                let (status, body) = s.post("/v1/activities", &key, json!(batch)).await;
                assert_eq!(status, 201, "{body}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let rows = s.all("/v1/activities", &k.read).await;
    assert_eq!(rows.len(), 3200);
    let mut chain: Vec<crm_core::Activity> = rows
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("activity"))
        .collect();
    chain.sort_by_key(|a| a.seq);
    assert_eq!((chain[0].seq, chain[3199].seq), (1, 3200));
    crm_core::chain::verify(&chain, crm_core::chain::GENESIS, 1).expect("chain verifies");
    // user-300 (admin role) pays 3.5 per create like everyone: 3200 × 3.5 charged exactly.
    let (_, b) = s.get("/v1/credits/balance", &k.read).await;
    assert_eq!(b["balance"], "88800.0000");
}

async fn defect_10_reports_carry_credits_and_compliance(backend: Backend) {
    let s = server(backend).await;
    let k = s.tenant("t-report", "1000").await;
    let batch: Vec<Value> = (0..6)
        .map(|i| activity(&format!("rp-{i}"), "user-123", "crm.leads.create"))
        .collect();
    s.post("/v1/activities", &k.ingest, json!(batch)).await;
    let (status, r) = s
        .get(
            "/v1/reports/users/user-123?since=1d&groupBy=hour&tz=UTC",
            &k.read,
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["userId"], "user-123");
    assert_eq!(r["totalCreditsUsed"], "21.0000");
    assert_eq!(r["complianceSummary"]["operationsByLocation"]["Berlin"], 6);
    assert_eq!(r["complianceSummary"]["authenticationMethods"]["sso"], 6);
    assert_eq!(r["complianceSummary"]["uniqueIpAddresses"], 1);
    let (status, d) = s
        .get("/v1/reports/departments/dept-sales?since=7d", &k.read)
        .await;
    assert_eq!(
        (
            status,
            d["totalActivities"].as_u64(),
            d["timezone"].as_str()
        ),
        (200, Some(6), Some("Europe/Berlin"))
    );
    assert_eq!(
        d["departmentBreakdown"][0]["departmentId"],
        "dept-sales-emea"
    );
    // Issue 28: the sketch's `hierarchy` — where the department sits, what is above
    // and directly below it, how many users its subtree holds.
    assert_eq!(
        d["hierarchy"],
        json!({
            "organizationId": "org-acme", "organizationName": "Acme Corp",
            "departmentId": "dept-sales", "departmentName": "Sales Department",
            "departmentPath": "/dept-sales/", "parentEntityId": "org-acme",
            "ancestors": [],
            "children": [{ "id": "dept-sales-emea", "name": "EMEA Sales" }],
            "usersInSubtree": 2,
        })
    );
    let (_, emea) = s
        .get("/v1/reports/departments/dept-sales-emea?since=7d", &k.read)
        .await;
    assert_eq!(
        (
            &emea["hierarchy"]["ancestors"],
            &emea["hierarchy"]["parentEntityId"],
            &emea["hierarchy"]["departmentPath"]
        ),
        (
            &json!([{ "id": "dept-sales", "name": "Sales Department" }]),
            &json!("dept-sales"),
            &json!("/dept-sales/dept-sales-emea/")
        )
    );
    assert!(r.get("hierarchy").is_none(), "a user report has none");
    // The sketch's `includeUserDetails`: each user's newest activities of the window,
    // equal to the user's own listing (an independent read), at most ten.
    let (status, detailed) = s
        .get(
            "/v1/reports/departments/dept-sales?since=7d&includeUserDetails=true",
            &k.read,
        )
        .await;
    assert_eq!(status, 200, "{detailed}");
    let details = detailed["userDetails"].as_array().expect("userDetails");
    assert_eq!(details.len(), 1, "{detailed}");
    assert_eq!(
        (&details[0]["userId"], &details[0]["name"]),
        (&json!("user-123"), &json!("John Doe"))
    );
    let listed = s
        .all("/v1/users/user-123/activities?since=7d", &k.read)
        .await;
    let listed_ids: Vec<&Value> = listed.iter().map(|a| &a["id"]).take(10).collect();
    let detail_ids: Vec<&Value> = details[0]["recent"]
        .as_array()
        .expect("recent")
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(detail_ids, listed_ids);
    assert!(d.get("userDetails").is_none(), "only when asked");
    for bad in [
        "/v1/reports/departments/dept-sales?includeUserDetails=yes",
        "/v1/reports?includeUserDetails=true",
    ] {
        assert_eq!(s.get(bad, &k.read).await.0, 400, "{bad}");
    }
}

async fn client_ip_comes_from_the_trusted_proxy_header_only_when_configured(backend: Backend) {
    // The client wrote the left entries; the proxy appended the address it saw.
    let forwarded = "203.0.113.9, 198.51.100.7, 10.0.0.1";
    for (header, trusted, expected) in [
        // Only loopback (the test's own proxy) is trusted: 10.0.0.1 is the client.
        (Some("X-Forwarded-For"), vec![], "10.0.0.1"),
        // An inner proxy network is trusted too: the next hop left of it is the client;
        // 203.0.113.9, which the client claimed, is never believed.
        (
            Some("X-Forwarded-For"),
            vec!["127.0.0.1".to_owned(), "10.0.0.0/8".to_owned()],
            "198.51.100.7",
        ),
        // No header configured: the TCP peer.
        (None, vec![], "127.0.0.1"),
    ] {
        let s = TestServer::start_configured(backend, EngineKind::Native, |c| {
            c.client_ip_header = header.map(str::to_owned);
            if !trusted.is_empty() {
                c.trusted_proxies =
                    crm_host::service::proxies::TrustedProxies::parse(&trusted).expect("valid");
            }
        })
        .await;
        let k = s.tenant("t-proxy", "100").await;
        let resp = s
            .http
            .post(s.url("/v1/activities"))
            .bearer_auth(&k.ingest)
            .header("x-forwarded-for", forwarded)
            .json(&activity("px-1", "user-123", "crm.leads.read"))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 201);
        let rows = s.all("/v1/activities", &k.read).await;
        assert_eq!(
            rows[0]["compliance"]["ipAddress"], expected,
            "header {header:?}, trusted {trusted:?}"
        );
    }
}

/// Issue 28: the questions auditors ask first. Activities with varied entities,
/// sessions, client addresses (through a trusted proxy), locations and metadata; every
/// lookup and filter answers exactly what a recount of the full export selects, on
/// both backends (the metadata filter is JSON in SQL: `json_extract` / `jsonb`).
async fn lookups_and_filters_equal_an_independent_recount(backend: Backend) {
    let s = TestServer::start_configured(backend, EngineKind::Native, |c| {
        c.client_ip_header = Some("X-Forwarded-For".to_owned());
    })
    .await;
    let k = s.tenant("t-lookup", "100000").await;
    let users = ["user-123", "user-200", "user-402"];
    let ips = ["10.1.2.3", "10.1.9.9", "10.2.0.1", "192.168.7.7"];
    for i in 0..24 {
        let mut a = activity(&format!("lk-{i}"), users[i % 3], "crm.leads.read");
        a["entityType"] = json!(if i % 4 == 0 { "deal" } else { "lead" });
        a["entityId"] = json!(format!("e-{}", i % 5));
        a["sessionId"] = json!(format!("s-{}", i % 3));
        let location = ["Berlin", "Paris", "Lima"][i % 3];
        a["compliance"]["location"] = json!(location);
        let source = ["web", "api"][i % 2];
        a["metadata"] = json!({ "source": source, "n": i });
        let resp = s
            .http
            .post(s.url("/v1/activities"))
            .bearer_auth(&k.ingest)
            .header("x-forwarded-for", ips[i % 4])
            .json(&a)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 201);
    }
    // The independent recount: the whole export, filtered here.
    let export = s
        .http
        .get(s.url("/v1/export"))
        .bearer_auth(&k.read)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    let all: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record"))
        .collect();
    assert_eq!(all.len(), 24);
    let ids = |page: &[Value]| -> Vec<String> {
        let mut v: Vec<String> = page
            .iter()
            .map(|a| a["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        v.sort();
        v
    };
    let expect = |keep: &dyn Fn(&Value) -> bool| {
        ids(&all.iter().filter(|a| keep(a)).cloned().collect::<Vec<_>>())
    };
    type Keep = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(&str, Keep)> = vec![
        (
            "/v1/entities/deal/e-0/activities",
            Box::new(|a: &Value| a["entityType"] == "deal" && a["entityId"] == "e-0"),
        ),
        (
            "/v1/activities?entityType=lead&entityId=e-1",
            Box::new(|a: &Value| a["entityType"] == "lead" && a["entityId"] == "e-1"),
        ),
        (
            "/v1/activities?sessionId=s-2",
            Box::new(|a: &Value| a["sessionId"] == "s-2"),
        ),
        (
            "/v1/activities?ipAddress=10.1.9.9",
            Box::new(|a: &Value| a["compliance"]["ipAddress"] == "10.1.9.9"),
        ),
        (
            "/v1/activities?ipAddress=10.1.0.0/16",
            Box::new(|a: &Value| {
                a["compliance"]["ipAddress"]
                    .as_str()
                    .is_some_and(|ip| ip.starts_with("10.1."))
            }),
        ),
        (
            "/v1/activities?ipAddress=10.0.0.0/8",
            Box::new(|a: &Value| {
                a["compliance"]["ipAddress"]
                    .as_str()
                    .is_some_and(|ip| ip.starts_with("10."))
            }),
        ),
        (
            "/v1/activities?location=Lima",
            Box::new(|a: &Value| a["compliance"]["location"] == "Lima"),
        ),
        (
            "/v1/activities?metadata=source:api",
            Box::new(|a: &Value| a["metadata"]["source"] == "api"),
        ),
        (
            "/v1/activities?metadata=source:api&location=Paris&userId=user-200",
            Box::new(|a: &Value| {
                a["metadata"]["source"] == "api"
                    && a["compliance"]["location"] == "Paris"
                    && a["userId"] == "user-200"
            }),
        ),
        (
            "/v1/users/user-402/activities?sessionId=s-2",
            Box::new(|a: &Value| a["userId"] == "user-402" && a["sessionId"] == "s-2"),
        ),
    ];
    for (path, keep) in &cases {
        let got = s.all(path, &k.read).await;
        let want = expect(keep.as_ref());
        assert!(!want.is_empty(), "{path}: the case selects something");
        assert_eq!(ids(&got), want, "{path}");
    }
    // The filters apply to exports too.
    let csv_free = s
        .http
        .get(s.url("/v1/export?location=Lima&sessionId=s-2"))
        .bearer_auth(&k.read)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    assert_eq!(
        csv_free.lines().count(),
        all.iter()
            .filter(|a| a["compliance"]["location"] == "Lima" && a["sessionId"] == "s-2")
            .count()
    );
    // One record by id, exactly as exported.
    let (status, one) = s.get("/v1/activities/lk-7", &k.read).await;
    assert_eq!(status, 200);
    assert_eq!(Some(&one), all.iter().find(|a| a["id"] == "lk-7"));
    assert_eq!(s.get("/v1/activities/nope", &k.read).await.0, 404);
    // A viewer limited to one user sees that user's records only, and the entity
    // history narrowed to them; another user's record is 404 (not 403: no existence
    // leak).
    let (_, token) = s
        .post(
            "/v1/viewer-tokens",
            &k.admin,
            json!({ "userId": "user-123" }),
        )
        .await;
    let vt = token["token"].as_str().expect("token").to_owned();
    assert_eq!(s.get("/v1/activities/lk-0", &vt).await.0, 200);
    assert_eq!(s.get("/v1/activities/lk-1", &vt).await.0, 404);
    let theirs = s.all("/v1/entities/lead/e-1/activities", &vt).await;
    assert_eq!(
        ids(&theirs),
        expect(&|a: &Value| a["entityType"] == "lead"
            && a["entityId"] == "e-1"
            && a["userId"] == "user-123")
    );
    // Bad filters are a clear 400.
    for bad in [
        "/v1/activities?ipAddress=10.0.0.0/12",
        "/v1/activities?metadata=nokey",
        "/v1/activities?entityType=deal",
    ] {
        let (status, e) = s.get(bad, &k.read).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (400, Some("invalid_input")),
            "{bad}"
        );
    }
}

/// Runs each listed test once on SQLite and once on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                super::$name(crate::support::Backend::Sqlite).await
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                super::$name(crate::support::Backend::Postgres).await
            })*
        }
    };
}

on_both_backends!(
    health_and_readiness,
    directory_is_versioned_and_validated_before_it_changes,
    permission_checks_single_and_batch,
    prices_balance_grants_and_charging_are_exact,
    insufficient_credits_is_402_recorded_and_charges_nothing,
    ingest_is_idempotent_by_id,
    bad_input_is_a_json_4xx_and_writes_nothing,
    query_parameters_are_checked,
    defect_8_pages_hold_each_activity_exactly_once,
    defect_11_department_subtree_is_exact_and_tenant_scoped,
    defect_12_tenants_never_see_each_other,
    defect_19_and_20_session_and_ip_are_never_invented_or_taken_from_the_body,
    defect_5_acknowledged_means_durable,
    defect_1_generated_ids_never_collide,
    defect_2_counts_are_exact_and_nothing_lingers_after_the_answer,
    many_concurrent_clients_get_exact_counts_and_an_unbroken_chain,
    defect_10_reports_carry_credits_and_compliance,
    client_ip_comes_from_the_trusted_proxy_header_only_when_configured,
    lookups_and_filters_equal_an_independent_recount,
);
