//! Promises under failure: kill -9 at random moments under concurrent load (every
//! acknowledged activity present exactly once, `seq` contiguous, the chain verifies,
//! rollups equal a raw recount, the balance equals grants minus charges), a store job
//! that panics fails alone, and a full disk answers 507 with nothing half-written and
//! recovers when space returns.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crm_core::Credits;
use crm_host::engine::EngineKind;
use crm_host::store::Location;
use rand::Rng;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, activity};

/// Rounds of kill -9 (the issue asks for at least 20); `CRM_CRASH_ROUNDS` runs more.
fn rounds() -> usize {
    std::env::var("CRM_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn(db: &std::path::Path) -> Proc {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_crm-host"))
        .args([
            "serve",
            "--engine",
            "native",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
        ])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("crm-host starts");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Proc { child, url }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_under_load_loses_nothing_acknowledged_and_breaks_nothing() {
    let setup = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = setup.tenant("t-crash", "40").await;
    let Location::Sqlite(db) = setup.db.clone() else {
        unreachable!("sqlite")
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut granted = Credits::parse("40").expect("opening").units();
    for round in 0..rounds() {
        let host = spawn(&db).await;
        let mut clients = Vec::new();
        for c in 0..4 {
            let (http, url, ingest, admin) = (
                http.clone(),
                host.url.clone(),
                k.ingest.clone(),
                k.admin.clone(),
            );
            clients.push(tokio::spawn(async move {
                let (mut ids, mut grants) = (Vec::new(), 0i64);
                for r in 0.. {
                    if r % 5 == 0 {
                        let resp = http
                            .post(format!("{url}/v1/credits/grants"))
                            .bearer_auth(&admin)
                            .header("idempotency-key", format!("g-{round}-{c}-{r}"))
                            .json(&json!({ "amount": "0.5" }))
                            .send()
                            .await;
                        match resp {
                            Ok(r) if r.status().is_success() => grants += 5_000,
                            _ => break,
                        }
                    }
                    let batch: Vec<Value> = (0..25)
                        .map(|i| {
                            activity(
                                &format!("k-{round}-{c}-{r}-{i}"),
                                "user-123",
                                "crm.leads.create",
                            )
                        })
                        .collect();
                    match http
                        .post(format!("{url}/v1/activities"))
                        .bearer_auth(&ingest)
                        .json(&batch)
                        .send()
                        .await
                    {
                        Ok(resp) if resp.status().as_u16() == 201 => {
                            let answer: Value = match resp.json().await {
                                Ok(a) => a,
                                Err(_) => break,
                            };
                            ids.extend(
                                answer["results"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|s| s["id"].as_str().map(str::to_owned)),
                            );
                        }
                        _ => break,
                    }
                }
                (ids, grants)
            }));
        }
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(50..400))).await;
        // SIGKILL: no shutdown, no flush.
        let mut host = host;
        host.child.kill().expect("kill -9");
        host.child.wait().expect("reaped");
        for c in clients {
            let (ids, g) = c.await.expect("client");
            acked.extend(ids);
            granted += g;
        }
    }

    let host = spawn(&db).await;
    let key = |p: &str| format!("{}{p}", host.url);
    let get = |p: String, k: String| {
        let http = http.clone();
        async move {
            http.get(p)
                .bearer_auth(k)
                .send()
                .await
                .expect("sent")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let v = get(key("/v1/audit/verify"), k.read.clone()).await;
    assert_eq!(
        v["ok"],
        true,
        "the chain verifies after {} crashes: {v}",
        rounds()
    );
    let export = http
        .get(key("/v1/export"))
        .bearer_auth(&k.read)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("body");
    let stored: Vec<crm_core::Activity> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    let ids: BTreeSet<String> = stored.iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), stored.len(), "no activity stored twice");
    let lost: Vec<_> = acked.difference(&ids).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert_eq!(
        stored.iter().map(|a| a.seq).collect::<Vec<_>>(),
        (1..=stored.len() as u64).collect::<Vec<_>>()
    );
    // Rollups equal a raw recount of what survived (every record is recent, so all
    // of them fall in the report's window).
    let rolled = get(
        key("/v1/reports?since=2d&groupBy=day&tz=UTC"),
        k.read.clone(),
    )
    .await;
    let rows: Vec<crm_core::report::ReportRow> = stored
        .iter()
        .map(crm_core::report::ReportRow::from)
        .collect();
    let recount = serde_json::to_value(
        crm_core::engine::finish(vec![
            crm_core::engine::aggregate("day", "UTC", &rows).expect("aggregate"),
        ])
        .expect("finish"),
    )
    .expect("json");
    for field in [
        "totalActivities",
        "totalCreditsUsed",
        "operationBreakdown",
        "temporalBreakdown",
        "complianceSummary",
        "userBreakdown",
    ] {
        assert_eq!(rolled[field], recount[field], "{field}");
    }
    assert_eq!(rolled["totalActivities"], stored.len());
    // Balance = grants - charges (grants answered after commit; unanswered ones may
    // have committed too, so count the ledger's grants, which the answers bound below).
    let charged: i64 = stored.iter().map(|a| a.credits.units()).sum();
    let balance = get(key("/v1/credits/balance"), k.read.clone()).await;
    let balance = Credits::parse(balance["balance"].as_str().expect("balance"))
        .expect("credits")
        .units();
    assert!(
        balance + charged >= granted,
        "acknowledged grants are all there"
    );
    assert!(
        (balance + charged - granted) % 5_000 == 0,
        "only whole unacknowledged grants differ"
    );
    eprintln!(
        "crash: {} rounds, {} acknowledged, {} stored",
        rounds(),
        acked.len(),
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_store_job_fails_alone_and_the_writer_goes_on() {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-panic", "100").await;
    let store = s.running.app.store.clone();
    let failed = store
        .write(None, |_| -> crm_host::error::HostResult<()> {
            panic!("a bug in a job")
        })
        .await;
    assert_eq!(failed.expect_err("the job fails").status(), 500);
    assert!(store.writer_running());
    assert_eq!(
        s.post(
            "/v1/activities",
            &k.ingest,
            activity("after-panic", "user-123", "crm.leads.read")
        )
        .await
        .0,
        201
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_507_writes_nothing_and_recovers() {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-full", "100").await;
    assert_eq!(
        s.post(
            "/v1/activities",
            &k.ingest,
            activity("before", "user-123", "crm.leads.read")
        )
        .await
        .0,
        201
    );
    let store = s.running.app.store.clone();
    // The writer's database may not grow any more: the next page it needs fails as a
    // full disk would (SQLITE_FULL).
    store
        .write(None, |c| {
            let pages = c.query(&c.dialect().stmt("PRAGMA page_count", Vec::new()))?[0].int(0)?;
            c.batch(&format!("PRAGMA max_page_count = {pages}"))?;
            Ok(())
        })
        .await
        .expect("limit set");
    let big: Vec<Value> = (0..400)
        .map(|i| {
            let mut a = activity(&format!("full-{i}"), "user-123", "crm.leads.read");
            a["metadata"] = json!({ "note": "x".repeat(2_000) });
            a
        })
        .collect();
    let (status, body) = s.post("/v1/activities", &k.ingest, json!(big)).await;
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage");
    assert_eq!(
        s.all("/v1/activities", &k.read).await.len(),
        1,
        "nothing half-written"
    );
    store
        .write(None, |c| {
            c.batch("PRAGMA max_page_count = 1073741823")?;
            Ok(())
        })
        .await
        .expect("space returns");
    assert_eq!(s.post("/v1/activities", &k.ingest, json!(big)).await.0, 201);
    let (_, v) = s.get("/v1/audit/verify", &k.read).await;
    assert_eq!(v["ok"], true);
}
