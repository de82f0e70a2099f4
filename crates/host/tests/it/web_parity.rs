//! The browser module's client-side aggregation of an activity export equals the
//! server's report for the same data.

use crate::support::{TestServer, activity};
use crm_host::engine::EngineKind;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn client_side_aggregation_of_an_export_equals_the_server_report() {
    let s = TestServer::start(EngineKind::Component).await;
    let k = s.tenant("t-parity", "10000").await;
    let users = ["user-123", "user-200", "user-402", "user-401"];
    let ops = [
        "crm.leads.create",
        "crm.leads.read",
        "crm.leads.delete",
        "crm.reports.read",
    ];
    let now = chrono_like_now();
    let batch: Vec<Value> = (0..200)
        .map(|i| {
            let mut a = activity(&format!("w-{i}"), users[i % 4], ops[i % 3 + i % 2]);
            a["occurredAt"] =
                json!(crm_core::Timestamp::from_millis(now - (i as i64) * 1_234_567).expect("ts"));
            a
        })
        .collect();
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
        201
    );

    for (group, tz) in [
        ("day", "Europe/Berlin"),
        ("hour", "UTC"),
        ("week", "Asia/Kolkata"),
    ] {
        let (status, mut server) = s
            .get(
                &format!("/v1/reports/departments/dept-sales?since=30d&groupBy={group}&tz={tz}"),
                &k.read,
            )
            .await;
        assert_eq!(status, 200);
        let period = server["period"].clone();
        let (from, to) = (
            period["from"].as_str().expect("from"),
            period["to"].as_str().expect("to"),
        );
        let export: String = s
            .all(
                &format!("/v1/departments/dept-sales/activities?from={from}&to={to}"),
                &k.read,
            )
            .await
            .iter()
            .map(|a| format!("{a}\n"))
            .collect();
        let client: Value = serde_json::from_str(
            &crm_web::aggregate_ndjson(&export, group, tz).expect("aggregates"),
        )
        .expect("json");
        let obj = server.as_object_mut().expect("object");
        // The subject, window and the department's place are the server's to add.
        for added in ["period", "departmentId", "hierarchy"] {
            obj.remove(added);
        }
        assert_eq!(client, server, "{group} {tz}");
        assert!(client["totalActivities"].as_u64().expect("count") > 50);
    }
}

fn chrono_like_now() -> i64 {
    crm_host::service::clock::now().millis()
}
