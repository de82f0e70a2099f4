//! Hostile load against a real `crm-host serve` process: sixteen concurrent 16 MB
//! bodies (an 8-million-element array in `metadata`) while another tenant keeps
//! ingesting. The host's peak resident memory stays under the stated bound, every
//! hostile request gets a 4xx/503 (never a 5xx fault), and the other tenant is served.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crm_host::engine::EngineKind;
use crm_host::store::Location;

use crate::support::{Backend, TestServer, activity};

/// The bound RELIABILITY.md states for this attack (the goal is < 300 MB).
const PEAK_RSS_LIMIT_KIB: u64 = 300 * 1024;

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn sixteen_16mb_bodies_stay_within_the_memory_bound_while_others_are_served() {
    // Tenants and keys are made in-process, then a separate server process serves them.
    let setup = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let attacker = setup.tenant("t-attacker", "1000").await;
    let victim = setup.tenant("t-victim", "100000").await;
    let Location::Sqlite(db) = setup.db.clone() else {
        unreachable!("sqlite")
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_crm-host"))
        .args([
            "serve",
            "--engine",
            "native",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
        ])
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("crm-host starts");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    for _ in 0..200 {
        if http.get(format!("{url}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let baseline = peak_rss_kib(child.id());

    // ~16 MB: {"userId":…,"metadata":{"a":[0,0,0,…]}} with 8 million elements.
    let mut body =
        String::from(r#"{"userId":"user-123","operation":"crm.leads.read","metadata":{"a":["#);
    body.push_str(&"0,".repeat(8_000_000 - 1));
    body.push_str("0]}}");
    assert!(body.len() > 15 << 20);
    let body = bytes::Bytes::from(body);
    let mut attacks = Vec::new();
    for _ in 0..16 {
        let (http, url, key, body) = (
            http.clone(),
            url.clone(),
            attacker.ingest.clone(),
            body.clone(),
        );
        attacks.push(tokio::spawn(async move {
            http.post(format!("{url}/v1/activities"))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    // Meanwhile the other tenant ingests and is timed.
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut i = 0;
    while Instant::now() < deadline {
        let start = Instant::now();
        let resp = http
            .post(format!("{url}/v1/activities"))
            .bearer_auth(&victim.ingest)
            .json(&activity(&format!("v-{i}"), "user-123", "crm.leads.read"))
            .send()
            .await
            .expect("victim request sent");
        assert_eq!(
            resp.status().as_u16(),
            201,
            "the other tenant is served during the attack"
        );
        latencies.push(start.elapsed());
        i += 1;
    }
    let mut statuses = Vec::new();
    for a in attacks {
        statuses.push(a.await.expect("attack task"));
    }
    let peak = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        statuses.iter().all(|s| *s == 413 || *s == 503 || *s == 0),
        "hostile bodies are refused with 413 or 503 (or the connection is closed), never a fault: {statuses:?}"
    );
    assert!(
        statuses.contains(&413),
        "at least one body was read and refused: {statuses:?}"
    );
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    eprintln!(
        "hostile: baseline {baseline} KiB, peak {peak} KiB, victim {} requests, p99 {:?}, attack statuses {statuses:?}",
        latencies.len(),
        p99
    );
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "peak resident memory {peak} KiB over the bound"
    );
    assert!(
        p99 < Duration::from_secs(2),
        "the other tenant's p99 {p99:?}"
    );
}
