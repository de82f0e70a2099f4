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

/// A real `crm-host serve` process over a database with an attacker and a victim
/// tenant (made in-process first); answers it, its URL, a client and both tenants' keys.
async fn hosted() -> (
    std::process::Child,
    String,
    reqwest::Client,
    crate::support::Keys,
    crate::support::Keys,
    TestServer,
) {
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
    let child = Command::new(env!("CARGO_BIN_EXE_crm-host"))
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
    (child, url, http, attacker, victim, setup)
}

/// The victim ingests one activity at a time until `until`; answers the latencies.
async fn victim_ingests(
    http: &reqwest::Client,
    url: &str,
    victim: &crate::support::Keys,
    until: Instant,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut i = 0;
    while Instant::now() < until {
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
    latencies.sort();
    latencies
}

fn p99(latencies: &[Duration]) -> Duration {
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

#[tokio::test(flavor = "multi_thread")]
async fn sixteen_16mb_bodies_stay_within_the_memory_bound_while_others_are_served() {
    let (mut child, url, http, attacker, victim, _setup) = hosted().await;
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
    let latencies = victim_ingests(
        &http,
        &url,
        &victim,
        Instant::now() + Duration::from_secs(4),
    )
    .await;
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
    let p99 = p99(&latencies);
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

/// Slow senders: one tenant opens many uploads that declare the largest body and then
/// trickle a byte now and then (a body may take 30 s). They hold at most the tenant's
/// share of the body budget — the rest are refused at once with 503 — and every other
/// tenant keeps uploading.
#[tokio::test(flavor = "multi_thread")]
async fn slow_senders_of_one_tenant_cannot_stop_the_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut child, url, http, attacker, victim, _setup) = hosted().await;
    let addr = url.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/activities HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n[",
            attacker.ingest,
            16 << 20
        );
        conn.write_all(head.as_bytes()).await.expect("head sent");
        slow.push(conn);
    }
    let until = Instant::now() + Duration::from_secs(5);
    let trickle = tokio::spawn(async move {
        let mut refused = 0;
        while Instant::now() < until {
            for conn in &mut slow {
                let _ = conn.write_all(b" ").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for mut conn in slow {
            let mut answer = [0u8; 12];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(100), conn.read(&mut answer)).await
                && answer[..n].starts_with(b"HTTP/1.1 503")
            {
                refused += 1;
            }
        }
        refused
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let latencies = victim_ingests(&http, &url, &victim, until).await;
    // A 2 MB batch of the other tenant needs the large budget too.
    let batch: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            let mut a = activity(&format!("big-{i}"), "user-123", "crm.leads.read");
            a["metadata"] = serde_json::json!({ "note": "x".repeat(2000) });
            a
        })
        .collect();
    let big = http
        .post(format!("{url}/v1/activities"))
        .bearer_auth(&victim.ingest)
        .json(&batch)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        big.status().as_u16(),
        201,
        "a large upload of another tenant goes through"
    );
    let refused = trickle.await.expect("trickle task");
    let peak = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let p99 = p99(&latencies);
    eprintln!(
        "slow senders: {refused} of 8 refused at once, peak {peak} KiB, victim {} requests, p99 {p99:?}",
        latencies.len()
    );
    assert!(
        refused >= 7,
        "beyond the tenant's share the uploads are refused: {refused}"
    );
    assert!(peak < PEAK_RSS_LIMIT_KIB, "peak resident memory {peak} KiB");
    assert!(
        p99 < Duration::from_secs(2),
        "the other tenant's p99 {p99:?}"
    );
}

/// A connection that never finishes its headers, and one that never finishes its body,
/// are cut off (the header-read timeout, and 408 for the body) while the server goes on
/// answering others.
#[tokio::test(flavor = "multi_thread")]
async fn stalled_headers_and_bodies_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start(EngineKind::Native).await;
    let k = s.tenant("t-stall", "1000").await;
    let addr = s.running.addr;
    let mut headers = tokio::net::TcpStream::connect(addr).await.expect("connect");
    headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("part of a head");
    let mut body = tokio::net::TcpStream::connect(addr).await.expect("connect");
    body.write_all(
        format!(
            "POST /v1/activities HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[",
            k.ingest
        )
        .as_bytes(),
    )
    .await
    .expect("head and part of a body");
    assert_eq!(s.get("/healthz", &k.read).await.0, 200, "others are served");
    // Both limits are 30 s; give them 40.
    let answer = |mut conn: tokio::net::TcpStream| async move {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(40), conn.read_to_end(&mut buf)).await;
        (read.is_ok(), String::from_utf8_lossy(&buf).into_owned())
    };
    let ((head_closed, head_answer), (body_closed, body_answer)) =
        tokio::join!(answer(headers), answer(body));
    assert!(head_closed, "a stalled head is cut off: {head_answer}");
    assert!(
        head_answer.is_empty() || head_answer.starts_with("HTTP/1.1 408"),
        "{head_answer}"
    );
    assert!(body_closed, "a stalled body is cut off");
    assert!(body_answer.starts_with("HTTP/1.1 408"), "{body_answer}");
}

/// Issue 26.1: exports nobody reads. A tenant opens exports on raw connections that never
/// read a byte; they hold no thread (each chunk is read on a pooled connection and sent
/// with a deadline), at most four are open per tenant (the fifth is 429 with
/// `Retry-After`), and another tenant's reads go on being answered quickly.
#[tokio::test(flavor = "multi_thread")]
async fn exports_nobody_reads_hold_no_thread_and_are_capped_per_tenant() {
    /// Unread exports the attacker opens (issue 26.1's "~512 exports that are never read").
    const SLOW_READERS: usize = 512;
    use tokio::io::AsyncWriteExt;

    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let hoarder = s.tenant("t-hoarder", "1000000").await;
    let other = s.tenant("t-other", "1000000").await;
    // ~8 MB of NDJSON: more than loopback's socket buffers hold, so an unread export
    // really stalls instead of fitting in the kernel.
    let padding = "p".repeat(900);
    for b in 0..6 {
        let batch: Vec<serde_json::Value> = (0..1000)
            .map(|i| {
                let mut a = activity(&format!("h-{b}-{i}"), "user-123", "crm.leads.read");
                a["metadata"] = serde_json::json!({ "note": padding });
                a
            })
            .collect();
        assert_eq!(
            s.post("/v1/activities", &hoarder.ingest, serde_json::json!(batch))
                .await
                .0,
            201
        );
    }
    let addr = s
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // An export asked for on a raw connection that is never read.
    let unread_export = || async {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let request = format!(
            "GET /v1/export HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
            hoarder.read
        );
        conn.write_all(request.as_bytes())
            .await
            .expect("request sent");
        conn
    };
    let mut stalled = Vec::new();
    for _ in 0..crm_host::service::limits::STREAMS_PER_TENANT {
        stalled.push(unread_export().await);
    }
    // Let the exports fill their buffers and stall.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = s
        .http
        .get(s.url("/v1/export"))
        .bearer_auth(&hoarder.read)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        resp.status().as_u16(),
        429,
        "a fifth open export is refused"
    );
    assert!(resp.headers().get("retry-after").is_some());
    // The issue's attack: 512 exports asked for and never read (the rest of them are
    // refused at once; their connections stay open, unread, too).
    for _ in stalled.len()..SLOW_READERS {
        stalled.push(unread_export().await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The other tenant is served while the stalled exports wait.
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let (status, _) = s.get("/v1/activities?limit=5", &other.read).await;
        latencies.push(start.elapsed());
        assert_eq!(status, 200);
    }
    let worst = p99(&latencies);
    eprintln!(
        "another tenant's reads during {} unread exports: p99 {worst:?}",
        stalled.len()
    );
    // The issue's goal is 50 ms; the bound leaves room for a loaded CI machine
    // running the debug build beside other tests.
    assert!(worst < Duration::from_millis(250), "p99 {worst:?}");
    drop(stalled);
}
