//! Issue 28: erasure by crypto-shredding. A subject's personal fields are stored
//! sealed under its key; erasing destroys the key, after which every read — listing,
//! lookup, export, report — shows the erased form, nothing personal remains at rest,
//! and the whole chain (the erasure's own record included) still verifies, online and
//! offline. On SQLite and PostgreSQL.

use crm_host::engine::EngineKind;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, activity};

const SECRETS: [&str; 5] = [
    "Jane Roe",
    "jane@acme.test",
    "Lisbon",
    "203.0.113.7",
    "+351-",
];

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_subject_reads_erased_everywhere_and_the_chain_verifies_on_sqlite() {
    erasure(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_subject_reads_erased_everywhere_and_the_chain_verifies_on_postgres() {
    erasure(Backend::Postgres).await;
}

/// Every stored body, search column and rollup value, read behind the server's back.
async fn at_rest(s: &TestServer) -> String {
    let store = s.independent_store();
    let d = store.dialect();
    let rows = store
        .read(move |c| {
            let mut out = Vec::new();
            for sql in [
                "SELECT body, COALESCE(ip_address, ''), COALESCE(location, '') FROM activities",
                "SELECT value, dimension, tier FROM report_rollups",
            ] {
                out.extend(c.query(&d.stmt(sql, Vec::new()))?);
            }
            Ok(out)
        })
        .await
        .expect("read");
    format!("{rows:?}")
}

async fn keys_of(s: &TestServer, subject: &str) -> u64 {
    let store = s.independent_store();
    let d = store.dialect();
    let subject = subject.to_owned();
    store
        .read(move |c| {
            let row = c.query_opt(&crm_store::subject_keys::count(d, "t-erase", &subject))?;
            Ok(row.map(|r| r.uint(0)).transpose()?.unwrap_or(0))
        })
        .await
        .expect("read")
}

async fn export(s: &TestServer, key: &str) -> (String, Vec<Value>) {
    let text = s
        .http
        .get(s.url("/v1/export"))
        .bearer_auth(key)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record per line"))
        .collect();
    (text, records)
}

fn verifies_offline(records: &[Value]) {
    let typed: Vec<crm_core::Activity> = records
        .iter()
        .map(|r| serde_json::from_value(r.clone()).expect("an activity"))
        .collect();
    crm_core::chain::verify(&typed, crm_core::chain::GENESIS, 1).expect("verifies offline");
}

async fn erasure(backend: Backend) {
    let s = TestServer::start_configured(backend, EngineKind::Native, |c| {
        c.client_ip_header = Some("X-Forwarded-For".to_owned());
    })
    .await;
    let k = s.tenant("t-erase", "100000").await;
    let (_, policy) = s.get("/v1/policy", &k.read).await;
    let mut policy = policy["policy"].clone();
    policy["personalKeys"] = json!(["Phone"]);
    assert_eq!(
        s.call("PUT", "/v1/policy", &k.admin, Some(policy)).await.0,
        200
    );
    for i in 0..12 {
        let jane = i % 2 == 0;
        let mut a = activity(
            &format!("er-{i}"),
            if jane { "user-200" } else { "user-123" },
            "crm.leads.read",
        );
        a["compliance"]["location"] = json!(if jane { "Lisbon" } else { "Berlin" });
        let phone = if jane { "+351-" } else { "+49-" };
        a["metadata"] = json!({ "phone": format!("{phone}{i}"), "stage": "won" });
        let resp = s
            .http
            .post(s.url("/v1/activities"))
            .bearer_auth(&k.ingest)
            .header(
                "x-forwarded-for",
                if jane { "203.0.113.7" } else { "198.51.100.1" },
            )
            .json(&a)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 201);
    }

    // Sealed at rest, open to readers.
    let stored = at_rest(&s).await;
    for secret in ["Jane Roe", "jane@acme.test", "+351-", "+49-", "John Doe"] {
        assert!(!stored.contains(secret), "{secret} stored in the clear");
    }
    assert_eq!(
        (keys_of(&s, "user-200").await, keys_of(&s, "user-123").await),
        (1, 1)
    );
    let (_, jane) = s.get("/v1/activities/er-0", &k.read).await;
    assert_eq!(jane["userContext"]["user"]["name"], "Jane Roe");
    assert_eq!(
        jane["userContext"]["entityPath"],
        "Acme Corp → Sales Department → Jane Roe"
    );
    assert_eq!(jane["compliance"]["location"], "Lisbon");
    assert_eq!(jane["compliance"]["ipAddress"], "203.0.113.7");
    assert_eq!(jane["metadata"]["phone"], "+351-0");
    assert_eq!(jane["personal"]["state"], "open");
    let (_, before) = s.get("/v1/reports?since=1d", &k.read).await;
    assert_eq!(
        before["complianceSummary"]["operationsByLocation"]["Lisbon"], 6,
        "{before}"
    );

    // Refused while the directory lists the subject; a bad id is 400, ingest keys 403.
    let erase = "/v1/subjects/user-200/erase";
    assert_eq!(s.call("POST", erase, &k.admin, None).await.0, 409);
    assert_eq!(s.call("POST", erase, &k.ingest, None).await.0, 403);
    assert_eq!(
        s.call("POST", "/v1/subjects/a%20b/erase", &k.admin, None)
            .await
            .0,
        400
    );
    let (status, _) = s
        .call(
            "PATCH",
            "/v1/directory",
            &k.admin,
            Some(json!({ "remove": { "users": ["user-200"] } })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, erased) = s.call("POST", erase, &k.admin, None).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["subject"], "user-200");
    assert_eq!(erased["keysDestroyed"], 1);
    assert_eq!(erased["rowsScrubbed"], 6);
    assert_eq!(erased["complete"], true);
    assert_eq!(erased["record"]["seq"], 13);
    assert_eq!(keys_of(&s, "user-200").await, 0);
    assert_eq!(keys_of(&s, "user-123").await, 1);

    // Nothing of the subject at rest: bodies, search columns, rollup values.
    let stored = at_rest(&s).await;
    for secret in SECRETS {
        assert!(!stored.contains(secret), "{secret} still stored");
    }
    // The other subject's search columns remain.
    assert!(stored.contains("Berlin") && stored.contains("198.51.100.1"));

    // Every read shows the erased form; the other subject is untouched.
    let (_, one) = s.get("/v1/activities/er-2", &k.read).await;
    assert_eq!(one["userContext"]["user"]["name"], "[erased]");
    assert_eq!(
        one["userContext"]["entityPath"],
        "Acme Corp → Sales Department → [erased]"
    );
    assert_eq!(one["userContext"]["user"]["email"], Value::Null);
    assert_eq!(one["compliance"]["location"], Value::Null);
    assert_eq!(one["compliance"]["ipAddress"], Value::Null);
    assert_eq!(one["compliance"]["authenticationMethod"], "sso");
    assert_eq!(one["metadata"]["phone"], "[erased]");
    assert_eq!(one["metadata"]["stage"], "won");
    assert_eq!(one["personal"]["state"], "erased");
    let (_, john) = s.get("/v1/activities/er-1", &k.read).await;
    assert_eq!(john["userContext"]["user"]["name"], "John Doe");
    assert_eq!(john["metadata"]["phone"], "+49-1");

    let (text, records) = export(&s, &k.read).await;
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} exported");
    }
    assert_eq!(records.len(), 13);
    verifies_offline(&records);
    let last = &records[12];
    assert_eq!(last["operation"], "subject.erase");
    assert_eq!(last["userId"], "user-200");
    assert_eq!(last["metadata"]["erasedSubject"], "user-200");
    assert_eq!(last["metadata"]["keysDestroyed"], 1);
    assert!(
        last["metadata"]["requestedBy"]
            .as_str()
            .is_some_and(|r| r.starts_with("key:"))
    );
    let (status, v) = s.get("/v1/audit/verify", &k.read).await;
    assert_eq!(status, 200);
    assert_eq!(
        (v["ok"].clone(), v["verified"].clone()),
        (json!(true), json!(13)),
        "{v}"
    );

    // Reports keep their counts: the subject's locations and addresses are `[erased]`.
    let (_, after) = s.get("/v1/reports?since=1d", &k.read).await;
    let by_location = &after["complianceSummary"]["operationsByLocation"];
    assert_eq!(by_location["Lisbon"], Value::Null, "{after}");
    assert_eq!(by_location["[erased]"], 6, "{after}");
    assert_eq!(by_location["Berlin"], 6, "{after}");
    assert_eq!(
        after["complianceSummary"]["totalOperations"],
        before["complianceSummary"]["totalOperations"]
            .as_u64()
            .expect("count")
            + 1
    );

    // Again: nothing left to destroy or scrub, and the request is recorded again.
    let (status, again) = s.call("POST", erase, &k.admin, None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (
            again["keysDestroyed"].clone(),
            again["rowsScrubbed"].clone()
        ),
        (json!(0), json!(0))
    );
    assert_eq!(
        s.call("POST", "/v1/subjects/user-999/erase", &k.admin, None)
            .await
            .0,
        404
    );
}
