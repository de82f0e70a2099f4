//! The conformance vectors through both engines (the wasm component in wasmtime and
//! crm-core linked natively), and rollup-based reports equal to raw recounts.

use std::path::Path;

use crate::support::{Backend, TestServer, activity, repo_root, shared_engine};
use crm_core::conformance::VectorFile;
use crm_core::json_api::Answer;
use crm_core::report::ReportRow;
use crm_host::engine::EngineKind;
use proptest::prelude::*;
use serde_json::{Value, json};

fn run_vectors(kind: EngineKind) -> usize {
    let engine = shared_engine(kind);
    let dir = repo_root().join("tests/conformance");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("vectors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut passed = 0;
    let mut failures = Vec::new();
    for path in files {
        let file: VectorFile = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .expect("vector file");
        let setup = file.setup(|name| fixture_text(&dir, name)).expect("setup");
        let setup_json = serde_json::to_string(&setup).expect("setup serializes");
        for case in &file.cases {
            let input = serde_json::to_string(&case.input).expect("input serializes");
            let text = engine
                .evaluate(&setup_json, &case.op, &input)
                .expect("no engine fault");
            let answer: Answer = serde_json::from_str(&text).expect("tagged answer");
            match case.check(&answer) {
                Ok(()) => passed += 1,
                Err(why) => failures.push(format!(
                    "{kind:?} {} / {}: {why}",
                    path.display(),
                    case.name
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    passed
}

fn fixture_text(dir: &Path, name: &str) -> Result<String, String> {
    std::fs::read_to_string(dir.join("fixtures").join(format!("{name}.json")))
        .map_err(|e| e.to_string())
}

#[test]
fn conformance_vectors_pass_through_the_wasm_component() {
    assert!(run_vectors(EngineKind::Component) >= 100);
}

#[test]
fn conformance_vectors_pass_through_the_native_engine() {
    assert!(run_vectors(EngineKind::Native) >= 100);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

const HOUR_MS: i64 = 3_600_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Reports read per-dimension rollups (quarter/hour time rows, hour and day rows of
    /// the other dimensions) for whole hours, and raw rows or the hour's rollups less
    /// the rest of the hour at the edges; the result must equal aggregating every raw
    /// row of the window, for a subtree and the tenant — also for windows ending now,
    /// inside the open hour, with activities dated ahead of it.
    #[test]
    fn rollup_reports_equal_raw_recount(
        offsets in prop::collection::vec(
            (
                // Spread over three days, within the last two hours, or around now
                // (up to four minutes ahead): the edges' hours hold rows on both sides.
                prop_oneof![0..72 * HOUR_MS, 0..2 * HOUR_MS, -4 * 60_000i64..10 * 60_000],
                0usize..3,
                0usize..4,
            ),
            1..60,
        ),
        from_back in 0i64..80 * HOUR_MS,
        span in 1i64..80 * HOUR_MS,
        group in prop::sample::select(vec!["hour", "day", "week", "month"]),
        tz in prop::sample::select(vec!["UTC", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York"]),
        department in any::<bool>(),
        ends_now in any::<bool>(),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let s = TestServer::start(EngineKind::Component).await;
            let k = s.tenant("t-roll", "100000").await;
            let now = crm_core::Timestamp::from_millis(chrono_now()).expect("now");
            let users = ["user-123", "user-200", "user-402"];
            let ops = ["crm.leads.create", "crm.leads.read", "crm.leads.delete", "crm.reports.export"];
            let batch: Vec<Value> = offsets.iter().enumerate().map(|(i, (back, u, o))| {
                let mut a = activity(&format!("p-{i}"), users[*u], ops[*o]);
                a["occurredAt"] = json!(crm_core::Timestamp::from_millis(now.millis() - back).expect("in range"));
                a
            }).collect();
            let (status, body) = s.post("/v1/activities", &k.ingest, json!(batch)).await;
            prop_assert_eq!(status, 201, "{}", body);

            let from = crm_core::Timestamp::from_millis(now.millis() - from_back).expect("from");
            let to = if ends_now { now.millis() + 1 } else { from.millis() + span };
            let to = crm_core::Timestamp::from_millis(to.max(from.millis() + 1)).expect("to");
            let (from_s, to_s) = (from.to_rfc3339(), to.to_rfc3339());
            let query = format!("from={from_s}&to={to_s}&groupBy={group}&tz={tz}");
            let (report, listing) = if department {
                ("/v1/reports/departments/dept-sales", "/v1/departments/dept-sales/activities")
            } else {
                ("/v1/reports", "/v1/activities")
            };
            let (status, mut via_api) = s.get(&format!("{report}?{query}"), &k.read).await;
            prop_assert_eq!(status, 200, "{}", via_api);

            // Raw recount: every stored activity in the window and subject, aggregated by the core.
            let all = s.all(&format!("{listing}?from={from_s}&to={to_s}"), &k.read).await;
            let rows: Vec<ReportRow> = all.iter().map(|v| {
                let a: crm_core::Activity = serde_json::from_value(v.clone()).expect("activity");
                ReportRow::from(&a)
            }).collect();
            let agg = crm_core::engine::aggregate(group, tz, &rows).expect("aggregate");
            let expected = serde_json::to_value(crm_core::engine::finish(vec![agg]).expect("finish")).expect("json");
            let obj = via_api.as_object_mut().expect("object");
            obj.remove("period");
            obj.remove("departmentId");
            obj.remove("hierarchy");
            prop_assert_eq!(via_api, expected);
            Ok(())
        })?;
    }
}

/// PostgreSQL upserts a batch's rollups as arrays (`unnest` of quoted array literals):
/// text that array syntax treats specially — quotes, backslashes, commas, braces,
/// spaces, the word NULL, no location at all (stored as the empty string) — must
/// arrive as itself, and batches that
/// add to existing rows and make new ones must still equal a raw recount.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_rollup_arrays_keep_any_text_and_equal_a_raw_recount() {
    let s = TestServer::start_on(Backend::Postgres, EngineKind::Native, None).await;
    let k = s.tenant("t-roll-pg", "100000").await;
    let now = chrono_now();
    let locations = [
        "Berlin, \"Mitte\"",
        "C:\\temp\\{x}",
        "NULL",
        "'single'",
        "two  spaces",
        "{a,b}",
        "Zürich",
    ];
    let users = ["user-123", "user-200", "user-402"];
    for round in 0..3 {
        let batch: Vec<Value> = (0..40)
            .map(|i| {
                let mut a = activity(&format!("pg-{round}-{i}"), users[i % 3], "crm.leads.read");
                match locations.get((i + round) % (locations.len() + 1)) {
                    Some(l) => a["compliance"]["location"] = json!(l),
                    None => drop(
                        a["compliance"]
                            .as_object_mut()
                            .map(|c| c.remove("location")),
                    ),
                }
                let back = (i as i64 * 37 + round as i64 * 11) * 60_000 % (30 * HOUR_MS);
                a["occurredAt"] =
                    json!(crm_core::Timestamp::from_millis(now - back).expect("in range"));
                a
            })
            .collect();
        let (status, body) = s.post("/v1/activities", &k.ingest, json!(batch)).await;
        assert_eq!(status, 201, "{body}");
    }
    let from = crm_core::Timestamp::from_millis(now - 40 * HOUR_MS)
        .expect("from")
        .to_rfc3339();
    let to = crm_core::Timestamp::from_millis(now + 1)
        .expect("to")
        .to_rfc3339();
    let (status, mut via_api) = s
        .get(
            &format!("/v1/reports?from={from}&to={to}&groupBy=hour&tz=UTC"),
            &k.read,
        )
        .await;
    assert_eq!(status, 200, "{via_api}");
    let all = s
        .all(&format!("/v1/activities?from={from}&to={to}"), &k.read)
        .await;
    assert_eq!(all.len(), 120);
    let rows: Vec<ReportRow> = all
        .iter()
        .map(|v| {
            ReportRow::from(
                &serde_json::from_value::<crm_core::Activity>(v.clone()).expect("activity"),
            )
        })
        .collect();
    let agg = crm_core::engine::aggregate("hour", "UTC", &rows).expect("aggregate");
    let expected =
        serde_json::to_value(crm_core::engine::finish(vec![agg]).expect("finish")).expect("json");
    let obj = via_api.as_object_mut().expect("object");
    for key in ["period", "departmentId", "hierarchy"] {
        obj.remove(key);
    }
    assert_eq!(via_api, expected);
    assert_eq!(
        via_api["complianceSummary"]["operationsByLocation"]["C:\\temp\\{x}"],
        json!(15)
    );
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).expect("fits"))
        .expect("after 1970")
}
