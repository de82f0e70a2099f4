//! Credits like a billing system (issue 27): grants that take effect later, expire,
//! are voided, and burn down by priority, then earliest expiry, then age; the
//! balance broken down by grant; every change in the ledger at the instant it took
//! effect; adjustments refused past the balance; and the audit still balancing the
//! ledger against the chain.

use std::time::Duration;

use crm_host::engine::EngineKind;
use serde_json::{Value, json};

use crate::support::{Backend, TestServer, activity};

fn at(offset_ms: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(offset_ms))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn units(v: &Value) -> i64 {
    crm_core::Credits::parse(v.as_str().unwrap_or_else(|| panic!("credits: {v}")))
        .expect("credits")
        .units()
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_take_effect_expire_are_voided_and_burn_down_by_priority() {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-grants", "100").await;
    let grant = |body: Value| {
        let (s, key) = (&s, k.admin.clone());
        async move {
            let (status, v) = s.post("/v1/credits/grants", &key, body).await;
            assert_eq!(status, 200, "{v}");
            v["grant"].clone()
        }
    };
    let urgent = grant(
        json!({ "amount": "10", "priority": 10, "expiresAt": at(60_000), "reason": "promo" }),
    )
    .await;
    let plain = grant(json!({ "amount": "20", "externalId": "inv-7" })).await;
    let later = grant(json!({ "amount": "5", "effectiveAt": at(600) })).await;
    let brief = grant(json!({ "amount": "7", "priority": 90, "expiresAt": at(900) })).await;
    assert_eq!(later["status"], "pending");
    assert_eq!(plain["externalId"], "inv-7");

    let (_, b) = s.get("/v1/credits/balance", &k.read).await;
    assert_eq!(b["balance"], "137.0000", "{b}");
    let order: Vec<&str> = b["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .map(|g| g["grantId"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        order,
        [
            urgent["id"].as_str().expect("id"),
            "opening-balance",
            plain["id"].as_str().expect("id"),
            brief["id"].as_str().expect("id"),
        ],
        "priority, then expiry (none last), then age: {b}"
    );
    assert_eq!(b["pending"][0]["grantId"], later["id"]);

    // An adjustment burns down in that order: all of `urgent`, then the opening grant.
    let (status, adj) = s
        .post(
            "/v1/credits/adjustments",
            &k.admin,
            json!({ "amount": "12", "reason": "refund" }),
        )
        .await;
    assert_eq!(
        (status, &adj["balance"]),
        (200, &json!("125.0000")),
        "{adj}"
    );
    let (_, listed) = s.get("/v1/credits/grants", &k.read).await;
    let find = |id: &Value| -> Value {
        listed["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .find(|g| g["id"] == *id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {listed}"))
    };
    assert_eq!(find(&urgent["id"])["status"], "exhausted");
    assert_eq!(find(&json!("opening-balance"))["remaining"], "98.0000");
    // Past the balance: 402, nothing changes.
    let (status, _) = s
        .post(
            "/v1/credits/adjustments",
            &k.admin,
            json!({ "amount": "1000", "reason": "x" }),
        )
        .await;
    assert_eq!(status, 402);

    // Time passes: `later` takes effect, `brief` expires — the balance says so at once,
    // before anything is written.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (_, b) = s.get("/v1/credits/balance", &k.read).await;
    assert_eq!(b["balance"], "123.0000", "125 + 5 - 7: {b}");
    assert_eq!(b["pending"], json!([]));

    // The next write records both at their own instants, then charges after them.
    let (status, _) = s
        .post(
            "/v1/activities",
            &k.ingest,
            json!([activity("g-1", "user-123", "crm.leads.read")]),
        )
        .await;
    assert_eq!(status, 201);
    let (_, ledger) = s.get("/v1/credits/ledger", &k.read).await;
    let entries = ledger["entries"].as_array().expect("entries");
    let entry = |kind: &str| -> Value {
        entries
            .iter()
            .find(|e| e["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("{kind} in {ledger}"))
    };
    assert_eq!(entry("expiry")["at"], brief["expiresAt"], "{ledger}");
    assert_eq!(entry("expiry")["delta"], "-7.0000");
    let activation = entries
        .iter()
        .find(|e| e["kind"] == "grant" && e["at"] == later["effectiveAt"])
        .unwrap_or_else(|| panic!("activation in {ledger}"));
    assert_eq!(activation["delta"], "5.0000");
    assert_eq!(entry("adjustment")["detail"], "refund");
    for pair in entries.windows(2) {
        assert_eq!(
            units(&pair[1]["balance"]) + units(&pair[0]["delta"]),
            units(&pair[0]["balance"]),
            "{ledger}"
        );
    }

    // Voiding forfeits what is left.
    let void = format!(
        "/v1/credits/grants/{}/void",
        plain["id"].as_str().expect("id")
    );
    let before = units(&s.get("/v1/credits/balance", &k.read).await.1["balance"]);
    let (status, voided) = s.call("POST", &void, &k.admin, None).await;
    assert_eq!(
        (status, &voided["grant"]["status"]),
        (200, &json!("voided")),
        "{voided}"
    );
    assert_eq!(units(&voided["balance"]), before - 200_000);
    assert_eq!(s.call("POST", &void, &k.admin, None).await.0, 404);
    let (_, expired) = s.get("/v1/credits/grants?status=expired", &k.read).await;
    assert_eq!(expired["grants"][0]["id"], brief["id"], "{expired}");

    // The audit balances the ledger (every kind) against the chain.
    let (_, v) = s.get("/v1/audit/verify", &k.read).await;
    assert_eq!(v["ok"], true, "{v}");

    // Refusals.
    for bad in [
        json!({ "amount": "1", "expiresAt": at(-1_000) }),
        json!({ "amount": "1", "effectiveAt": at(5_000), "expiresAt": at(4_000) }),
        json!({ "amount": "1", "priority": 101 }),
        json!({ "amount": "1", "color": "red" }),
    ] {
        let (status, v) = s.post("/v1/credits/grants", &k.admin, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
    assert_eq!(
        s.post("/v1/credits/grants", &k.read, json!({ "amount": "1" }))
            .await
            .0,
        403
    );
    assert_eq!(
        s.call("POST", "/v1/credits/grants/nope/void", &k.admin, None)
            .await
            .0,
        404
    );
}

/// Issue 27: alerts are crossings, raised in the transaction that crosses them —
/// exactly once, whatever follows — and a grant that lifts the balance resolves them.
#[tokio::test(flavor = "multi_thread")]
async fn credit_alerts_fire_once_in_the_crossing_transaction_and_resolve() {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-alerts", "10").await;
    let (_, policy) = s.get("/v1/policy", &k.read).await;
    let mut policy = policy["policy"].clone();
    policy["creditAlerts"] = json!([
        { "id": "low", "balanceBelow": "8" },
        { "id": "half", "grantConsumedPercent": 50 }
    ]);
    let (status, v) = s
        .call("PUT", "/v1/policy", &k.admin, Some(policy.clone()))
        .await;
    assert_eq!(status, 200, "{v}");
    let mut n = 0;
    let mut reads = |count: usize| {
        let batch: Vec<Value> = (0..count)
            .map(|_| {
                n += 1;
                activity(&format!("al-{n}"), "user-123", "crm.leads.read")
            })
            .collect();
        let s = &s;
        let key = k.ingest.clone();
        async move {
            let (status, v) = s.post("/v1/activities", &key, json!(batch)).await;
            assert_eq!(status, 201, "{v}");
        }
    };
    let alerts = || async {
        let (status, page) = s.get("/v1/credits/alerts", &k.read).await;
        assert_eq!(status, 200, "{page}");
        page["alerts"].as_array().expect("alerts").clone()
    };
    // 0.5 credits a read: 10 -> 8 is not below 8; 8 -> 7.5 is.
    reads(4).await;
    assert!(alerts().await.is_empty());
    reads(1).await;
    let fired = alerts().await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        (
            &fired[0]["ruleId"],
            &fired[0]["state"],
            &fired[0]["balance"]
        ),
        (&json!("low"), &json!("fired"), &json!("7.5000"))
    );
    // Written with the charge that crossed: the same instant as its usage entry.
    let (_, ledger) = s
        .get("/v1/credits/ledger?kind=usage&limit=1", &k.read)
        .await;
    assert_eq!(fired[0]["at"], ledger["entries"][0]["at"], "{ledger}");
    // Further spending below the threshold raises nothing new; passing half of the
    // opening grant (10) raises the share rule once.
    reads(4).await;
    reads(2).await;
    let now = alerts().await;
    assert_eq!(now.len(), 2, "{now:?}");
    assert_eq!(
        (&now[0]["ruleId"], &now[0]["grantId"]),
        (&json!("half"), &json!("opening-balance"))
    );
    // A grant lifts the balance back over 8: resolved, in the grant's transaction.
    let (status, _) = s
        .post("/v1/credits/grants", &k.admin, json!({ "amount": "5" }))
        .await;
    assert_eq!(status, 200);
    let now = alerts().await;
    assert_eq!(
        (&now[0]["ruleId"], &now[0]["state"], now.len()),
        (&json!("low"), &json!("resolved"), 3),
        "{now:?}"
    );
    // Paged newest first.
    let (_, page) = s.get("/v1/credits/alerts?limit=2", &k.read).await;
    let cursor = page["nextCursor"].as_str().expect("a next page");
    let (_, rest) = s
        .get(
            &format!("/v1/credits/alerts?limit=2&cursor={cursor}"),
            &k.read,
        )
        .await;
    assert_eq!(rest["alerts"][0]["entry"], 1, "{rest}");
    // A rule that is not one is refused, changing nothing.
    policy["creditAlerts"] =
        json!([{ "id": "both", "balanceBelow": "1", "grantConsumedPercent": 5 }]);
    assert_eq!(
        s.call("PUT", "/v1/policy", &k.admin, Some(policy)).await.0,
        400
    );
}

/// 16 clients spend a balance down past a threshold at once, spread over `bases` (one
/// host, or several over one database): the crossing is one transaction's, so exactly
/// one alert fires per rule, however the writes interleave.
pub(crate) async fn one_alert_under_concurrent_spending(
    setup: &TestServer,
    keys: &crate::support::Keys,
    bases: &[String],
) {
    let (_, policy) = setup.get("/v1/policy", &keys.read).await;
    let mut policy = policy["policy"].clone();
    policy["creditAlerts"] = json!([
        { "id": "low", "balanceBelow": "20" },
        { "id": "most", "grantConsumedPercent": 90 }
    ]);
    assert_eq!(
        setup
            .call("PUT", "/v1/policy", &keys.admin, Some(policy))
            .await
            .0,
        200
    );
    let http = reqwest::Client::new();
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (http, base, key) = (
                http.clone(),
                bases[c % bases.len()].clone(),
                keys.ingest.clone(),
            );
            tokio::spawn(async move {
                // 0.5 credits a read; 16 × 10 reads ask for 80 of the 50 there are.
                for r in 0..10 {
                    let resp = http
                        .post(format!("{base}/v1/activities?sync=true"))
                        .bearer_auth(&key)
                        .json(&activity(
                            &format!("race-{c}-{r}"),
                            "user-123",
                            "crm.leads.read",
                        ))
                        .send()
                        .await
                        .expect("sent");
                    assert!(
                        matches!(resp.status().as_u16(), 201 | 402),
                        "{}",
                        resp.status()
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client finished");
    }
    let (_, balance) = setup.get("/v1/credits/balance", &keys.read).await;
    assert_eq!(balance["balance"], "0.0000", "{balance}");
    let (_, page) = setup.get("/v1/credits/alerts?limit=100", &keys.read).await;
    let alerts = page["alerts"].as_array().expect("alerts");
    let of = |rule: &str| alerts.iter().filter(|a| a["ruleId"] == rule).count();
    assert_eq!((of("low"), of("most")), (1, 1), "{page}");
    assert_eq!(alerts.len(), 2, "{page}");
    assert!(alerts.iter().all(|a| a["state"] == "fired"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_threshold_crossed_by_16_concurrent_clients_raises_one_alert() {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-race", "50").await;
    one_alert_under_concurrent_spending(&s, &k, &[s.url("")]).await;
}

/// Issue 27: "a grant expiring within D days" — time crosses it, not a charge, so the
/// scheduled pass raises it: once per rule and grant however often the pass runs (and
/// with passes running at once), only for active grants still holding credits, and a
/// later grant's window when its time comes.
async fn expiry_windows_raise_one_alert_per_grant(backend: Backend) {
    let s = TestServer::start_on(backend, EngineKind::Native, None).await;
    let k = s.tenant("t-expiry", "10").await;
    let (_, policy) = s.get("/v1/policy", &k.read).await;
    let mut policy = policy["policy"].clone();
    policy["creditAlerts"] = json!([{ "id": "soon", "grantExpiringWithinDays": 7 }]);
    let (status, v) = s.call("PUT", "/v1/policy", &k.admin, Some(policy)).await;
    assert_eq!(status, 200, "{v}");
    const DAY: i64 = 86_400_000;
    let grant = |days: i64| {
        let s = &s;
        let key = k.admin.clone();
        async move {
            let (status, v) = s
                .post(
                    "/v1/credits/grants",
                    &key,
                    json!({ "amount": "5", "expiresAt": at(days * DAY) }),
                )
                .await;
            assert_eq!(status, 200, "{v}");
            v["grant"]["id"].as_str().expect("grant id").to_owned()
        }
    };
    let soon = grant(3).await;
    let later = grant(30).await;
    let voided = grant(2).await;
    let (status, _) = s
        .post(
            &format!("/v1/credits/grants/{voided}/void"),
            &k.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let alerts = || async {
        let (status, page) = s.get("/v1/credits/alerts", &k.read).await;
        assert_eq!(status, 200, "{page}");
        page["alerts"].as_array().expect("alerts").clone()
    };
    let pass = |offset: i64| {
        let app = s.running.app.clone();
        async move {
            crm_host::service::retention::run_once(
                &app,
                chrono::Utc::now().timestamp_millis() + offset,
            )
            .await
            .expect("a pass");
        }
    };
    assert!(alerts().await.is_empty(), "nothing before a pass");
    tokio::join!(pass(0), pass(0), pass(0));
    pass(0).await;
    let fired = alerts().await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        (
            &fired[0]["ruleId"],
            &fired[0]["state"],
            &fired[0]["grantId"]
        ),
        (&json!("soon"), &json!("fired"), &json!(soon))
    );
    // 24 days on, the second grant's window has opened: one more, the first not again.
    pass(24 * DAY).await;
    pass(24 * DAY).await;
    let fired = alerts().await;
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert_eq!(fired[0]["grantId"], json!(later));
    // A window of none or past a year is not a rule.
    let (_, policy) = s.get("/v1/policy", &k.read).await;
    for days in [0, 366] {
        let mut p = policy["policy"].clone();
        p["creditAlerts"] = json!([{ "id": "bad", "grantExpiringWithinDays": days }]);
        assert_eq!(s.call("PUT", "/v1/policy", &k.admin, Some(p)).await.0, 400);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_windows_raise_one_alert_per_grant_on_sqlite() {
    expiry_windows_raise_one_alert_per_grant(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_windows_raise_one_alert_per_grant_on_postgres() {
    expiry_windows_raise_one_alert_per_grant(Backend::Postgres).await;
}
