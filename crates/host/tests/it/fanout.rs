//! Fan-out with real processes on loopback: a real `redis-server` (stopped and
//! restarted for outages) and an upstream stub told to succeed, fail, refuse or hang.
//! Nothing acknowledged is lost; each id arrives in order per tenant.

use std::future::Future;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use crm_host::engine::EngineKind;
use crm_host::server::ServerConfig;
use serde_json::{Value, json};

use crate::support::redis::{RedisServer, stream_activities, stream_alerts, stream_ids};
use crate::support::upstream::{Mode, Upstream};
use crate::support::{Backend, Keys, TestServer, activity};

/// Longest a test waits for the relays to catch up.
const PATIENCE: Duration = Duration::from_secs(30);

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn ingest(s: &TestServer, k: &Keys, prefix: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:04}")).collect();
    let batch: Vec<Value> = ids
        .iter()
        .map(|id| activity(id, "user-123", "crm.leads.read"))
        .collect();
    let (status, answer) = s.post("/v1/activities", &k.ingest, json!(batch)).await;
    assert_eq!(status, 201, "{answer}");
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_gets_every_activity_in_order_across_an_outage() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.redis_url = Some(url);
    })
    .await;
    let k = s.tenant("t-redis", "100000").await;
    let mut expected = ingest(&s, &k, "before", 120).await;
    eventually("the stream holds the first batch", || async {
        stream_ids(&redis, "t-redis").await == expected
    })
    .await;

    redis.stop();
    // Ingest stays available while Redis is down; readiness is not lost, only degraded.
    let during = ingest(&s, &k, "during", 80).await;
    let (status, ready) = s.get("/readyz", &k.read).await;
    assert_eq!(status, 200, "{ready}");
    redis.restart(); // an empty Redis: the earlier entries are gone with the old process
    eventually("the backlog drains after the outage", || async {
        stream_ids(&redis, "t-redis").await == during
    })
    .await;
    expected.extend(during);
    let more = ingest(&s, &k, "after", 30).await;
    eventually("new activities follow", || async {
        stream_ids(&redis, "t-redis").await.ends_with(&more)
    })
    .await;
    let status = s.running.app.fanout.status();
    assert!(status.retries > 0, "the outage was retried: {status:?}");
    assert_eq!(status.spooled, 0, "Redis never spools");
}

/// Outages of both sinks while ingest goes on, `CRM_OUTAGE_ROUNDS` times (10 in CI):
/// Redis killed and restarted (with its append-only file, as in production), the
/// upstream answering 503. Afterwards every acknowledged activity is in the stream in
/// order (at least once), and at the upstream — delivered, or spooled when its retries
/// ran out and then replayed.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_lost_across_repeated_outages_of_both_sinks() {
    let rounds: usize = std::env::var("CRM_OUTAGE_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let mut redis = RedisServer::start_durable();
    let upstream = Upstream::start(Mode::Accept).await;
    let (redis_url, upstream_url) = (redis.url(), upstream.url.clone());
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.redis_url = Some(redis_url);
        c.fanout.upstream_url = Some(upstream_url);
    })
    .await;
    let k = s.tenant("t-outages", "100000").await;
    let mut all = Vec::new();
    for round in 0..rounds {
        all.extend(ingest(&s, &k, &format!("up{round:02}"), 30).await);
        redis.stop();
        upstream.set(Mode::Fail);
        all.extend(ingest(&s, &k, &format!("down{round:02}"), 30).await);
        tokio::time::sleep(Duration::from_millis(200 + 50 * (round as u64 % 5))).await;
        redis.restart();
        upstream.set(Mode::Accept);
    }
    let first_seen = |ids: Vec<String>| {
        let mut seen = std::collections::HashSet::new();
        ids.into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect::<Vec<_>>()
    };
    let start = Instant::now();
    let mut streamed = first_seen(stream_ids(&redis, "t-outages").await);
    while streamed != all && start.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        streamed = first_seen(stream_ids(&redis, "t-outages").await);
    }
    let missing: Vec<&String> = all.iter().filter(|id| !streamed.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} missing from the stream: {:?}",
        missing.len(),
        all.len(),
        &missing[..missing.len().min(20)]
    );
    assert_eq!(streamed, all, "the stream holds every activity, in order");
    eventually("the upstream got or spooled every activity", || async {
        let spooled = spool_lines(&s, "t-outages").len();
        first_seen(upstream.ids()).len() + spooled >= all.len()
    })
    .await;
    replay(&s, &upstream.url);
    let mut delivered = first_seen(upstream.ids());
    delivered.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(delivered, expected, "every activity reached the upstream");
    assert!(
        s.running.app.fanout.status().retries > 0,
        "the outages were retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn defect_6_the_stream_keeps_activities_nobody_listened_to_and_publishes_live() {
    let redis = RedisServer::start();
    let url = redis.url();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.redis_url = Some(url);
    })
    .await;
    let k = s.tenant("t-quiet", "100000").await;
    // Nobody subscribed: a fire-and-forget PUBLISH would lose all of these.
    let unheard = ingest(&s, &k, "unheard", 50).await;
    eventually("the stream keeps them", || async {
        stream_ids(&redis, "t-quiet").await == unheard
    })
    .await;
    // A live listener gets the records published on the same channel name.
    let client = redis::Client::open(redis.url()).expect("url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .subscribe("crm:t-quiet:activities")
        .await
        .expect("subscribe");
    let live = ingest(&s, &k, "live", 5).await;
    let mut heard = Vec::new();
    let mut messages = pubsub.on_message();
    while heard.len() < live.len() {
        let msg = tokio::time::timeout(PATIENCE, futures_next(&mut messages))
            .await
            .expect("published in time")
            .expect("a message");
        let body: Value =
            serde_json::from_str(&msg.get_payload::<String>().expect("text")).expect("json");
        heard.push(body["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(heard, live);
}

async fn futures_next<S: futures_util::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    futures_util::StreamExt::next(s).await
}

/// `crm-host replay` of the server's spool to `upstream_url`, which must succeed.
fn replay(s: &TestServer, upstream_url: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm-host"))
        .arg("replay")
        .arg("--spool-dir")
        .arg(s.spool_dir())
        .args(["--upstream-url", upstream_url])
        .output()
        .expect("replay runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spool_lines(s: &TestServer, tenant: &str) -> Vec<Value> {
    let file = s
        .spool_dir()
        .join(format!("activity-backup-{tenant}.ndjson"));
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("spool line is JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_outage_backs_off_spools_and_replay_delivers_once() {
    let upstream = Upstream::start(Mode::Fail).await;
    let url = upstream.url.clone();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.upstream_url = Some(url);
        c.fanout.retry_budget = 3;
    })
    .await;
    let k = s.tenant("t-up", "100000").await;
    let ids = ingest(&s, &k, "up", 150).await;
    eventually("every activity is spooled", || async {
        spool_lines(&s, "t-up").len() == 150
    })
    .await;
    let spooled: Vec<String> = spool_lines(&s, "t-up")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(spooled, ids, "spooled once each, in order");
    // `/readyz` is public: it names the degraded sink and the kind of failure, never
    // the upstream's address (issue 26.12).
    let (_, ready) = s.get("/readyz", &k.read).await;
    assert_eq!(
        ready["fanout"]["degraded"]["upstream"], "temporary failure",
        "{ready}"
    );
    assert!(!ready.to_string().contains("127.0.0.1"), "{ready}");
    // defect 3: a failing upstream is retried a bounded number of times — two batches of
    // at most 100, three attempts each — not recursively.
    assert!(upstream.hits() <= 6, "{} attempts", upstream.hits());
    assert!(upstream.ids().is_empty());

    upstream.set(Mode::Accept);
    replay(&s, &upstream.url);
    assert_eq!(upstream.ids(), ids, "replayed once each, in order");
    assert!(
        spool_lines(&s, "t-up").is_empty(),
        "the spool is empty after replay"
    );

    // Later activities go straight through again.
    let more = ingest(&s, &k, "later", 10).await;
    eventually("new activities reach the upstream", || async {
        upstream.ids().ends_with(&more)
    })
    .await;
}

/// A redirect is not followed (issue 26.12): the batch and the upstream's auth header
/// never reach a host nobody configured; the batch is spooled like a refusal.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_redirect_is_not_followed() {
    let elsewhere = Upstream::start(Mode::Accept).await;
    let port: u16 = elsewhere
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let upstream = Upstream::start(Mode::RedirectTo(port)).await;
    let url = upstream.url.clone();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.upstream_url = Some(url);
        c.fanout.upstream_auth = Some("X-Upstream-Key: secret".to_owned());
    })
    .await;
    let k = s.tenant("t-redirected", "100000").await;
    ingest(&s, &k, "redirected", 5).await;
    eventually("the redirected batch is spooled", || async {
        spool_lines(&s, "t-redirected").len() == 5
    })
    .await;
    assert!(upstream.hits() >= 1);
    assert_eq!(elsewhere.hits(), 0, "the redirect was followed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_refusal_is_spooled_at_once_without_retries() {
    let upstream = Upstream::start(Mode::Refuse).await;
    let url = upstream.url.clone();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.upstream_url = Some(url);
        c.fanout.retry_budget = 50;
    })
    .await;
    let k = s.tenant("t-refused", "100000").await;
    ingest(&s, &k, "refused", 20).await;
    eventually("the refused batch is spooled", || async {
        spool_lines(&s, "t-refused").len() == 20
    })
    .await;
    assert_eq!(upstream.hits(), 1, "a 4xx is not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn defect_4_activities_recorded_during_a_delivery_are_not_lost() {
    let upstream = Upstream::start(Mode::Slow(Duration::from_millis(800))).await;
    let url = upstream.url.clone();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.upstream_url = Some(url);
    })
    .await;
    let k = s.tenant("t-flush", "100000").await;
    let mut ids = ingest(&s, &k, "first", 30).await;
    eventually("a delivery is in flight", || async { upstream.hits() > 0 }).await;
    // Recorded while the first delivery is still running.
    ids.extend(ingest(&s, &k, "second", 30).await);
    ids.extend(ingest(&s, &k, "third", 30).await);
    eventually("everything arrives", || async {
        upstream.ids().len() >= ids.len()
    })
    .await;
    assert_eq!(upstream.ids(), ids, "nothing lost, nothing twice, in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_backlog_answers_503_with_retry_after_and_loses_nothing() {
    let upstream = Upstream::start(Mode::Fail).await;
    let url = upstream.url.clone();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.upstream_url = Some(url);
        c.fanout.retry_budget = 1_000;
        c.fanout.max_backlog = 40;
    })
    .await;
    let k = s.tenant("t-full", "100000").await;
    let accepted = ingest(&s, &k, "fill", 50).await;
    eventually("the relay sees the backlog", || async {
        s.running.app.fanout.status().pending >= 50
    })
    .await;
    let resp = s
        .http
        .post(s.url("/v1/activities"))
        .bearer_auth(&k.ingest)
        .json(&activity("over", "user-123", "crm.leads.read"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unavailable");
    // The refused activity was not recorded; the accepted ones are all there.
    let stored = s.all("/v1/activities", &k.read).await;
    assert_eq!(stored.len(), accepted.len());
    upstream.set(Mode::Accept);
    eventually("the backlog drains once the upstream is back", || async {
        upstream.ids() == accepted
    })
    .await;
}

/// Issue 27: with a signing secret, every upstream request carries Standard Webhooks
/// headers; checked here by the specification's algorithm written out independently
/// (the worker tier checks the edge with the specification's own JavaScript library).
#[tokio::test(flavor = "multi_thread")]
async fn upstream_requests_are_signed_as_standard_webhooks_says() {
    use base64::Engine as _;
    use hmac::Mac as _;
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let upstream = Upstream::start(Mode::Accept).await;
    let url = upstream.url.clone();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.upstream_url = Some(url);
        c.fanout.upstream_signing_secret = Some(SECRET.to_owned());
    })
    .await;
    let k = s.tenant("t-signed", "100000").await;
    let ids = ingest(&s, &k, "signed", 120).await;
    eventually("every activity reaches the upstream", || async {
        upstream.ids() == ids
    })
    .await;
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("base64");
    let now = chrono::Utc::now().timestamp();
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "two batches of at most 100");
    let mut seen = std::collections::HashSet::new();
    for (headers, body) in requests {
        let header = |n: &str| headers[n].to_str().expect("ascii").to_owned();
        let (id, ts) = (header("webhook-id"), header("webhook-timestamp"));
        assert!(seen.insert(id.clone()), "ids differ per delivery");
        let sent: i64 = ts.parse().expect("seconds");
        assert!(
            (now - sent).abs() < 300,
            "a fresh timestamp: {sent} vs {now}"
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&body);
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert!(
            header("webhook-signature")
                .split(' ')
                .any(|sig| sig == expected),
            "signature of {id}"
        );
    }
}

/// Sets the tenant's one alert rule: `low`, below 8 credits.
async fn alert_below_8(s: &TestServer, k: &Keys) {
    let (_, policy) = s.get("/v1/policy", &k.read).await;
    let mut policy = policy["policy"].clone();
    policy["creditAlerts"] = json!([{ "id": "low", "balanceBelow": "8" }]);
    assert_eq!(
        s.call("PUT", "/v1/policy", &k.admin, Some(policy)).await.0,
        200
    );
}

/// Issue 27: credit alert events reach the upstream too, in order, each once, on their
/// own route; the activity log's upstream delivery is not held up by them.
#[tokio::test(flavor = "multi_thread")]
async fn credit_alerts_reach_the_upstream_in_order() {
    let upstream = Upstream::start(Mode::Accept).await;
    let url = upstream.url.clone();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.upstream_url = Some(url);
    })
    .await;
    let k = s.tenant("t-alert-upstream", "10").await;
    alert_below_8(&s, &k).await;
    let ids = ingest(&s, &k, "spend-up", 5).await;
    let (status, _) = s
        .post("/v1/credits/grants", &k.admin, json!({ "amount": "5" }))
        .await;
    assert_eq!(status, 200);
    eventually("both alert events reach the upstream", || async {
        upstream.alerts().len() == 2
    })
    .await;
    let got = upstream.alerts();
    let seen: Vec<_> = got
        .iter()
        .map(|a| {
            (
                a["tenantId"].clone(),
                a["entry"].clone(),
                a["state"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (json!("t-alert-upstream"), json!(1), json!("fired")),
            (json!("t-alert-upstream"), json!(2), json!("resolved"))
        ]
    );
    eventually("the activities too", || async { upstream.ids() == ids }).await;
}

/// A signing secret that is not `whsec_` + base64 stops the server at start, not at
/// the first delivery.
#[test]
fn a_malformed_signing_secret_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm-host"))
        .args(["replay", "--upstream-url", "http://127.0.0.1:9"])
        .args(["--upstream-signing-secret", "not-a-secret"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("whsec_"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 27: alert events go through their own outbox to Redis (`crm:{tenant}:alerts`),
/// each once, in order, beside the activity stream and across an outage; retention
/// waits for the activity log's sinks only.
#[tokio::test(flavor = "multi_thread")]
async fn credit_alerts_reach_their_redis_stream_once_across_an_outage() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.redis_url = Some(url);
    })
    .await;
    let k = s.tenant("t-alert-stream", "10").await;
    alert_below_8(&s, &k).await;
    // 0.5 a read: the fifth crosses below 8.
    let ids = ingest(&s, &k, "spend", 5).await;
    eventually("the alert is in its stream", || async {
        stream_alerts(&redis, "t-alert-stream").await.len() == 1
    })
    .await;
    let streamed = stream_alerts(&redis, "t-alert-stream").await;
    assert_eq!(
        (
            &streamed[0]["tenantId"],
            &streamed[0]["ruleId"],
            &streamed[0]["state"],
            &streamed[0]["balance"],
            &streamed[0]["entry"]
        ),
        (
            &json!("t-alert-stream"),
            &json!("low"),
            &json!("fired"),
            &json!("7.5000"),
            &json!(1)
        )
    );
    // The activity log has its own relay: its stream fills beside the alerts', in order.
    eventually("the activities are in their stream", || async {
        stream_ids(&redis, "t-alert-stream").await == ids
    })
    .await;
    // Resolved while Redis is down: delivered when it is back, and only that one.
    redis.stop();
    let (status, _) = s
        .post("/v1/credits/grants", &k.admin, json!({ "amount": "5" }))
        .await;
    assert_eq!(status, 200);
    redis.restart();
    eventually("the resolution follows the outage", || async {
        stream_alerts(&redis, "t-alert-stream")
            .await
            .iter()
            .any(|a| a["state"] == "resolved")
    })
    .await;
    let after = stream_alerts(&redis, "t-alert-stream").await;
    assert_eq!(
        after.len(),
        1,
        "a fresh Redis holds only what came after: {after:?}"
    );
    assert_eq!(after[0]["entry"], 2);
    assert_eq!(s.running.app.fanout.log_sinks(), vec!["redis"]);
}

/// Issue 28: what reaches Redis and the upstream after an erasure is the erased form:
/// records still in the outbox when the subject is erased (here: written by a host
/// without sinks, delivered by a second host over the same database) arrive erased,
/// and the erasure's own record follows them. Sinks read every batch from the store,
/// opened at that moment (`crm_store::outbox`).
#[tokio::test(flavor = "multi_thread")]
async fn sinks_receive_the_erased_form_after_an_erasure() {
    let a = TestServer::start(EngineKind::Native).await;
    let k = a.tenant("t-erase-sinks", "100").await;
    let batch: Vec<Value> = (0..4)
        .map(|i| activity(&format!("es-{i}"), "user-200", "crm.leads.read"))
        .collect();
    assert_eq!(
        a.post("/v1/activities", &k.ingest, json!(batch)).await.0,
        201
    );
    let (status, _) = a
        .call(
            "PATCH",
            "/v1/directory",
            &k.admin,
            Some(json!({ "remove": { "users": ["user-200"] } })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, erased) = a
        .call("POST", "/v1/subjects/user-200/erase", &k.admin, None)
        .await;
    assert_eq!(status, 200, "{erased}");

    let redis = RedisServer::start();
    let upstream = Upstream::start(Mode::Accept).await;
    let mut config = ServerConfig::new(a.db.clone(), SocketAddr::from(([127, 0, 0, 1], 0)));
    config.engine = EngineKind::Native;
    config.fanout.redis_url = Some(redis.url());
    config.fanout.upstream_url = Some(upstream.url.clone());
    let dir = tempfile::tempdir().expect("dir");
    config.fanout.spool_dir = dir.path().join("spool");
    let _b = TestServer::start_at(config, dir).await;
    eventually("both sinks have all five records", || async {
        stream_activities(&redis, "t-erase-sinks").await.len() == 5 && upstream.records().len() == 5
    })
    .await;
    for (sink, records) in [
        ("redis", stream_activities(&redis, "t-erase-sinks").await),
        ("upstream", upstream.records()),
    ] {
        let text = serde_json::to_string(&records).expect("json");
        assert!(
            !text.contains("Jane Roe") && !text.contains("jane@acme.test"),
            "{sink}: {text}"
        );
        for r in &records[..4] {
            assert_eq!(r["userContext"]["user"]["name"], "[erased]", "{sink}");
            assert_eq!(r["personal"]["state"], "erased", "{sink}");
        }
        assert_eq!(records[4]["operation"], "subject.erase", "{sink}");
    }
}
