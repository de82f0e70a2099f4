//! Several stateless hosts over one PostgreSQL: two `crm-host serve` processes, eight
//! concurrent clients on each, grants and ingest interleaved. Every acknowledged
//! activity is stored once, `seq` is contiguous, the chain verifies, and the balance
//! equals what was granted minus what the stored activities were charged.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crm_core::{Activity, Credits};
use crm_host::engine::EngineKind;
use crm_host::store::Location;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, activity};

/// Clients per host, requests per client and activities per request.
const CLIENTS_PER_HOST: usize = 8;
const REQUESTS_PER_CLIENT: usize = 12;
const BATCH: usize = 20;

struct HostProcess {
    child: Child,
    url: String,
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn spawn_host(db: &str) -> HostProcess {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_crm-host"))
        .args([
            "serve",
            "--db",
            db,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--engine",
            "native",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("crm-host starts");
    let host = HostProcess {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http
            .get(format!("{}/readyz", host.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return host;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("crm-host on {} never became ready", host.url);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_host_processes_on_one_postgres_keep_chain_and_balance_exact() {
    // An in-process server creates the tenant and keys; it then steps aside.
    let setup = TestServer::start_on(Backend::Postgres, EngineKind::Native, None).await;
    let keys = setup.tenant("t-multi", "50").await;
    let Location::Postgres(url) = setup.db.clone() else {
        unreachable!("a postgres backend has a postgres location")
    };
    let hosts = [spawn_host(&url).await, spawn_host(&url).await];
    let http = reqwest::Client::new();

    let mut clients = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        for c in 0..CLIENTS_PER_HOST {
            let (http, url, ingest, admin) = (
                http.clone(),
                host.url.clone(),
                keys.ingest.clone(),
                keys.admin.clone(),
            );
            clients.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut granted = 0i64;
                for r in 0..REQUESTS_PER_CLIENT {
                    if r % 4 == 0 {
                        let resp = http
                            .post(format!("{url}/v1/credits/grants"))
                            .bearer_auth(&admin)
                            .json(&json!({ "amount": "1.5", "reason": "top-up" }))
                            .send()
                            .await
                            .expect("grant sent");
                        assert_eq!(resp.status().as_u16(), 200);
                        granted += Credits::parse("1.5").expect("amount").units();
                    }
                    let batch: Vec<Value> = (0..BATCH)
                        .map(|i| {
                            activity(
                                &format!("m-{h}-{c}-{r}-{i}"),
                                "user-123",
                                "crm.leads.create",
                            )
                        })
                        .collect();
                    let resp = http
                        .post(format!("{url}/v1/activities"))
                        .bearer_auth(&ingest)
                        .json(&batch)
                        .send()
                        .await
                        .expect("ingest sent");
                    assert_eq!(resp.status().as_u16(), 201);
                    let answer: Value = resp.json().await.expect("json");
                    for item in answer["results"].as_array().expect("results") {
                        acked.push(item["id"].as_str().expect("id").to_owned());
                    }
                }
                (acked, granted)
            }));
        }
    }
    let mut acked = Vec::new();
    let mut granted = Credits::parse("50").expect("opening").units();
    for c in clients {
        let (ids, g) = c.await.expect("client finished");
        acked.extend(ids);
        granted += g;
    }
    drop(hosts);

    let store = setup.independent_store();
    let d = store.dialect();
    let bodies = store
        .read(move |c| {
            Ok(c.query(&d.stmt(
                "SELECT body FROM activities WHERE tenant_id = ?1 ORDER BY seq",
                vec!["t-multi".into()],
            ))?)
        })
        .await
        .expect("read");
    let stored: Vec<Activity> = bodies
        .iter()
        .map(|r| serde_json::from_str(r.text(0).expect("body")).expect("activity"))
        .collect();

    let ids: BTreeSet<&str> = stored.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        stored.len(),
        acked.len(),
        "every acknowledged activity stored once"
    );
    assert_eq!(ids.len(), stored.len(), "no id twice");
    assert!(acked.iter().all(|id| ids.contains(id.as_str())));
    let seqs: Vec<u64> = stored.iter().map(|a| a.seq).collect();
    assert_eq!(
        seqs,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "seq is contiguous"
    );
    crm_core::chain::verify(&stored, crm_core::chain::GENESIS, 1).expect("the chain verifies");

    let charged: i64 = stored.iter().map(|a| a.credits.units()).sum();
    let (_, balance) = setup.get("/v1/credits/balance", &keys.read).await;
    let balance = Credits::parse(balance["balance"].as_str().expect("balance")).expect("credits");
    assert_eq!(
        balance.units(),
        granted - charged,
        "balance = grants - charges"
    );
    assert!(
        stored
            .iter()
            .any(|a| a.outcome == crm_core::Outcome::InsufficientCredits),
        "the balance ran out at some point, so refusals were exercised too"
    );
}

/// Issue 27: two hosts over one PostgreSQL, 16 clients spending past a threshold: one
/// alert per rule.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_on_one_postgres_raise_one_alert_per_crossing() {
    let setup = TestServer::start_on(Backend::Postgres, EngineKind::Native, None).await;
    let keys = setup.tenant("t-multi-alert", "50").await;
    let Location::Postgres(url) = setup.db.clone() else {
        unreachable!("a postgres backend has a postgres location")
    };
    let hosts = [spawn_host(&url).await, spawn_host(&url).await];
    let bases: Vec<String> = hosts.iter().map(|h| h.url.clone()).collect();
    crate::credits::one_alert_under_concurrent_spending(&setup, &keys, &bases).await;
}
