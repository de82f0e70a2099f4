//! Webhook endpoints (issue 27) on PostgreSQL shared by two hosts: every credit alert
//! event reaches a registered endpoint exactly once although both hosts fan in and
//! dispatch (the fan-in inserts each delivery once, a claim is exclusive), signed with
//! the endpoint's secret. Cross-runtime behaviour (refused URLs, retry after a 503,
//! the log, re-sending) is `tests/worker/parity.test.mjs`'s, checked there with the
//! standardwebhooks library.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use crm_api::webhook_targets::TargetPolicy;
use crm_host::engine::EngineKind;
use crm_host::server::ServerConfig;
use hmac::Mac as _;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer};

type Received = Arc<Mutex<Vec<(HeaderMap, bytes::Bytes)>>>;

async fn record(State(r): State<Received>, headers: HeaderMap, body: bytes::Bytes) -> StatusCode {
    r.lock().expect("receiver").push((headers, body));
    StatusCode::NO_CONTENT
}

/// A receiver on a loopback port: every request's headers and body.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/hook", post(record))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// The signature the specification asks for, computed here from its text rather than
/// by the engine's code.
fn verifies(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("base64");
    let header = |n: &str| headers[n].to_str().expect("ascii").to_owned();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

fn allow_loopback(c: &mut ServerConfig) {
    c.fanout.webhook_targets = TargetPolicy::from_list("127.0.0.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_over_postgres_deliver_each_alert_event_once_and_signed() {
    let a =
        TestServer::start_configured(Backend::Postgres, EngineKind::Native, allow_loopback).await;
    let mut config = ServerConfig::new(a.db.clone(), SocketAddr::from(([127, 0, 0, 1], 0)));
    config.engine = EngineKind::Native;
    allow_loopback(&mut config);
    let b = TestServer::start_at(config, tempfile::tempdir().expect("dir")).await;
    let k = a.tenant("t-hooks", "100").await;
    let (url, received) = receiver().await;

    let types = json!(["credits.alert.fired", "credits.alert.resolved"]);
    let (status, made) = a
        .post(
            "/v1/webhooks",
            &k.admin,
            json!({ "url": url, "eventTypes": types }),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["secret"].as_str().expect("secret").to_owned();
    let (_, policy) = a.get("/v1/policy", &k.admin).await;
    let mut policy = policy["policy"].clone();
    policy["creditAlerts"] = json!([{ "id": "low", "balanceBelow": "99.5" }]);
    assert_eq!(
        a.call("PUT", "/v1/policy", &k.admin, Some(policy)).await.0,
        200
    );

    // Five falls below the threshold and five lifts back, through both hosts.
    const ROUNDS: usize = 5;
    for round in 0..ROUNDS {
        let (s, e) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (st, body) = s
            .post(
                "/v1/credits/adjustments",
                &k.admin,
                json!({ "amount": "1", "reason": format!("round {round}") }),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        let (st, body) = e
            .post("/v1/credits/grants", &k.admin, json!({ "amount": "1" }))
            .await;
        assert_eq!(st, 200, "{body}");
    }

    let start = Instant::now();
    while received.lock().expect("receiver").len() < 2 * ROUNDS {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "only {} deliveries",
            received.lock().expect("receiver").len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both hosts keep polling: a second delivery of any event would arrive by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = received.lock().expect("receiver").clone();
    let mut by_entry: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (headers, body) in &got {
        assert!(
            verifies(&secret, headers, body),
            "a delivery that does not verify"
        );
        let v: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(v["data"]["tenantId"], "t-hooks");
        by_entry
            .entry(v["data"]["entry"].as_u64().expect("entry"))
            .or_default()
            .push(v["type"].as_str().expect("type").to_owned());
    }
    assert_eq!(got.len(), 2 * ROUNDS, "each event once: {by_entry:?}");
    let expected: BTreeMap<u64, Vec<String>> = (1..=2 * ROUNDS as u64)
        .map(|n| {
            let t = if n % 2 == 1 { "fired" } else { "resolved" };
            (n, vec![format!("credits.alert.{t}")])
        })
        .collect();
    assert_eq!(by_entry, expected);

    let id = made["id"].as_str().expect("id");
    let (status, log) = b
        .get(&format!("/v1/webhooks/{id}/deliveries"), &k.admin)
        .await;
    assert_eq!(status, 200, "{log}");
    let log = log["deliveries"].as_array().expect("deliveries").clone();
    assert_eq!(log.len(), 2 * ROUNDS);
    for d in &log {
        assert_eq!(
            (&d["status"], &d["attempts"]),
            (&json!("delivered"), &json!(1)),
            "{d}"
        );
        assert_eq!(d["lastAttempt"]["statusCode"], 204);
    }
}
