//! Export and tamper evidence: the export streams every record in chain order (NDJSON
//! as hashed, CSV), the verify endpoint and CLI recompute the chain, and editing,
//! deleting, reordering or cutting off stored rows is detected at the first bad seq.

use crm_host::engine::EngineKind;
use crm_host::store::Location;
use serde_json::{Value, json};

use crate::support::{Backend, Keys, TestServer, activity};

async fn seeded(n: usize) -> (TestServer, Keys) {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-audit", "100000").await;
    let users = ["user-123", "user-200", "user-402"];
    for chunk in 0..n.div_ceil(500) {
        let batch: Vec<Value> = (chunk * 500..((chunk + 1) * 500).min(n))
            .map(|i| activity(&format!("a-{i:05}"), users[i % 3], "crm.leads.read"))
            .collect();
        assert_eq!(
            s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
            201
        );
    }
    (s, k)
}

async fn raw(s: &TestServer, path: &str, key: &str) -> (u16, String, String) {
    let resp = s
        .http
        .get(s.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, resp.text().await.expect("body"))
}

/// Runs one statement on the server's database behind its back (tampering).
async fn tamper(s: &TestServer, sql: &str) {
    let store = s.independent_store();
    let d = store.dialect();
    let sql = sql.to_owned();
    store
        .write(None, move |c| {
            c.execute(&d.stmt(&sql, Vec::new()))?;
            Ok(())
        })
        .await
        .expect("tampered");
}

async fn verify(s: &TestServer, k: &Keys) -> Value {
    let (status, v) = s.get("/v1/audit/verify", &k.read).await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_stream_every_record_in_chain_order_and_verify_offline() {
    let (s, k) = seeded(2_300).await;
    let (status, kind, body) = raw(&s, "/v1/export?format=ndjson", &k.read).await;
    assert_eq!(status, 200);
    assert_eq!(kind, "application/x-ndjson");
    let records: Vec<crm_core::Activity> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("an activity per line"))
        .collect();
    assert_eq!(records.len(), 2_300);
    crm_core::chain::verify(&records, crm_core::chain::GENESIS, 1)
        .expect("the export verifies offline");

    let (status, kind, csv) = raw(&s, "/v1/export?format=csv&userId=user-200", &k.read).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"));
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .expect("header")
            .starts_with("seq,id,occurredAt,userId")
    );
    assert_eq!(lines.filter(|l| l.contains(",user-200,")).count(), 767);

    for bad in [
        "/v1/export?format=xml",
        "/v1/export?userId=nobody",
        "/v1/export?bogus=1",
        "/v1/export?since=forever",
    ] {
        let (status, _, body) = raw(&s, bad, &k.read).await;
        assert!((400..500).contains(&status), "{bad}: {status} {body}");
    }
    assert_eq!(raw(&s, "/v1/export", &k.ingest).await.0, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untouched_chain_verifies_and_every_kind_of_tampering_names_its_first_bad_seq() {
    let (s, k) = seeded(60).await;
    let v = verify(&s, &k).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["verified"], 60);

    // Editing a record's content.
    tamper(&s, "UPDATE activities SET body = replace(body, 'crm.leads.read', 'crm.leads.delete') WHERE seq = 20").await;
    let v = verify(&s, &k).await;
    assert_eq!(
        (v["ok"].clone(), v["firstBadSeq"].clone()),
        (json!(false), json!(20)),
        "{v}"
    );
    tamper(&s, "UPDATE activities SET body = replace(body, 'crm.leads.delete', 'crm.leads.read') WHERE seq = 20").await;
    assert_eq!(verify(&s, &k).await["ok"], true);

    // Editing an indexed column only (what reports and listings read).
    tamper(&s, "UPDATE activities SET credits_units = 0 WHERE seq = 7").await;
    assert_eq!(verify(&s, &k).await["firstBadSeq"], 7);
    tamper(
        &s,
        "UPDATE activities SET credits_units = 5000 WHERE seq = 7",
    )
    .await;
    assert_eq!(verify(&s, &k).await["ok"], true);

    // Issue 26.6: every column copied out of the body is compared — the department
    // path moves a record into another department's listings and viewer scope.
    for (column, seq) in [
        ("department_path", 9),
        ("department_id", 10),
        ("user_id", 11),
        ("tenant_id", 12),
    ] {
        tamper(
            &s,
            &format!("UPDATE activities SET {column} = {column} || 'x' WHERE seq = {seq}"),
        )
        .await;
        let v = verify(&s, &k).await;
        assert_eq!(v["firstBadSeq"], seq, "{column}: {v}");
        tamper(&s, &format!("UPDATE activities SET {column} = substr({column}, 1, length({column}) - 1) WHERE seq = {seq}")).await;
        assert_eq!(verify(&s, &k).await["ok"], true, "{column} restored");
    }
    // The columns as written, to restore them: IP address and location are sealed in
    // the body (`crm_core::personal`), so the body cannot give them back; the audit
    // compares them with what the subject's key opens.
    tamper(
        &s,
        "CREATE TABLE written AS SELECT * FROM activities WHERE seq = 13",
    )
    .await;
    for column in [
        "ip_address",
        "location",
        "auth_method",
        "entity_type",
        "entity_id",
        "session_id",
    ] {
        tamper(
            &s,
            &format!("UPDATE activities SET {column} = 'forged' WHERE seq = 13"),
        )
        .await;
        let v = verify(&s, &k).await;
        assert_eq!(v["firstBadSeq"], 13, "{column}: {v}");
        tamper(
            &s,
            &format!(
                "UPDATE activities SET {column} = (SELECT {column} FROM written) WHERE seq = 13"
            ),
        )
        .await;
        assert_eq!(verify(&s, &k).await["ok"], true, "{column} restored");
    }
    // A field added to a nested object, or a key repeated: the parser would accept the
    // body and serve it, but it is no longer the body that was hashed.
    for (from, to) in [
        ("\"userContext\":{", "\"userContext\":{\"injected\":true,"),
        ("\"metadata\":{", "\"metadata\":{\"k\":1,\"k\":2,"),
    ] {
        tamper(
            &s,
            &format!("UPDATE activities SET body = replace(body, '{from}', '{to}') WHERE seq = 14"),
        )
        .await;
        let v = verify(&s, &k).await;
        assert_eq!(v["firstBadSeq"], 14, "{to}: {v}");
        tamper(
            &s,
            &format!("UPDATE activities SET body = replace(body, '{to}', '{from}') WHERE seq = 14"),
        )
        .await;
        assert_eq!(verify(&s, &k).await["ok"], true, "{to} restored");
    }

    // Reordering two records.
    tamper(&s, "UPDATE activities SET seq = -1 WHERE seq = 31").await;
    tamper(&s, "UPDATE activities SET seq = 31 WHERE seq = 32").await;
    tamper(&s, "UPDATE activities SET seq = 32 WHERE seq = -1").await;
    let v = verify(&s, &k).await;
    assert_eq!(v["firstBadSeq"], 31, "{v}");
    tamper(&s, "UPDATE activities SET seq = -1 WHERE seq = 31").await;
    tamper(&s, "UPDATE activities SET seq = 31 WHERE seq = 32").await;
    tamper(&s, "UPDATE activities SET seq = 32 WHERE seq = -1").await;
    assert_eq!(verify(&s, &k).await["ok"], true);

    // Deleting the last record (the head no longer matches), then one in the middle.
    tamper(&s, "DELETE FROM activities WHERE seq = 60").await;
    let v = verify(&s, &k).await;
    assert_eq!(v["firstBadSeq"], 60, "{v}");
    tamper(&s, "DELETE FROM activities WHERE seq = 45").await;
    assert_eq!(verify(&s, &k).await["firstBadSeq"], 45);

    // The CLI says the same and fails.
    let Location::Sqlite(db) = s.db.clone() else {
        unreachable!("sqlite")
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm-host"))
        .args(["verify", "--tenant", "t-audit", "--db"])
        .arg(&db)
        .output()
        .expect("cli runs");
    assert!(!out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(printed["firstBadSeq"], 45);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_exports_reports_and_manages_keys() {
    let (s, k) = seeded(120).await;
    let Location::Sqlite(db) = s.db.clone() else {
        unreachable!("sqlite")
    };
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crm-host"))
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .expect("cli runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("out.ndjson");
    let (ok, _, err) = cli(&[
        "export",
        "--tenant",
        "t-audit",
        "--out",
        file.to_str().expect("utf8"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(&file)
            .expect("written")
            .lines()
            .count(),
        120
    );
    let (ok, out, err) = cli(&["report", "--tenant", "t-audit", "--since", "1d"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("120 activities"), "{out}");
    assert!(out.contains("crm.leads.read"), "{out}");
    let (ok, out, _) = cli(&["verify", "--tenant", "t-audit"]);
    assert!(ok, "{out}");
    let (ok, out, _) = cli(&["key", "list", "--tenant", "t-audit"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 4, "{out}"); // header + three keys
    // The ingest key: the admin key is still used below, and this host may remember
    // it for a second at most (`crm_store::key_cache`), a slow CLI run longer.
    let last = out
        .lines()
        .find(|line| line.contains("ingest") && !line.contains("admin"))
        .expect("the ingest key")
        .split_whitespace()
        .next()
        .expect("id")
        .to_owned();
    let (ok, _, _) = cli(&["key", "revoke", "--tenant", "t-audit", &last]);
    assert!(ok);
    let (ok, _, err) = cli(&["key", "revoke", "--tenant", "t-audit", "key_unknown"]);
    assert!(!ok && err.contains("no key"), "{err}");
    let (_, listed) = s.get("/v1/keys", &k.admin).await;
    let revoked = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| !k["revokedAt"].is_null())
        .count();
    assert_eq!(revoked, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_expired_records_in_chain_order_and_the_chain_still_verifies() {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-keep", "100000").await;
    let now = crm_host::service::clock::now().millis();
    let day = 86_400_000;
    let at = |ms: i64| crm_core::Timestamp::from_millis(ms).expect("in range");
    // Seq 1-40 are ten days old, seq 41-60 fresh, seq 61 old again (a late arrival).
    let mut batch: Vec<Value> = (0..40)
        .map(|i| {
            let mut a = activity(&format!("old-{i}"), "user-123", "crm.leads.read");
            a["occurredAt"] = json!(at(now - 10 * day + i));
            a
        })
        .collect();
    batch.extend((0..20).map(|i| activity(&format!("new-{i}"), "user-123", "crm.leads.read")));
    let mut late = activity("late", "user-123", "crm.leads.read");
    late["occurredAt"] = json!(at(now - 9 * day));
    batch.push(late);
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
        201
    );
    let (_, before) = s.get("/v1/reports?since=30d", &k.read).await;

    let (_, policy) = s.get("/v1/policy", &k.read).await;
    let mut policy = policy["policy"].clone();
    policy["retentionDays"] = json!(7);
    assert_eq!(
        s.call("PUT", "/v1/policy", &k.admin, Some(policy)).await.0,
        200
    );
    let deleted = crm_host::service::retention::run_once(&s.running.app, now)
        .await
        .expect("retention pass");
    assert_eq!(
        deleted, 40,
        "the old prefix, not the late arrival behind fresh records"
    );
    let left = s.all("/v1/activities?since=30d", &k.read).await;
    assert_eq!(left.len(), 21);
    assert!(left.iter().any(|a| a["id"] == "late"));
    let v = verify(&s, &k).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        (v["anchorSeq"].clone(), v["verified"].clone()),
        (json!(40), json!(21))
    );
    // Rollups keep their totals: a report over whole hours still counts what was deleted.
    let (_, after) = s.get("/v1/reports?since=30d", &k.read).await;
    assert_eq!(
        after["totalActivities"], before["totalActivities"],
        "{after}"
    );
    assert_eq!(before["totalActivities"], 61);
    // A second pass has nothing more to delete.
    assert_eq!(
        crm_host::service::retention::run_once(&s.running.app, now)
            .await
            .expect("pass"),
        0
    );
}

/// Issue 26.6: whoever can write the whole database can rewrite the chain (recompute
/// every hash after an edit) and verify still passes; a signed checkpoint kept outside
/// the database exposes it, on the API and in the CLI.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_signed_checkpoint_exposes_a_rewritten_chain() {
    let (s, k) = seeded(60).await;
    let (status, c) = s.get("/v1/audit/checkpoint", &k.read).await;
    assert_eq!(status, 200, "{c}");
    let kept: crm_api::checkpoint::Checkpoint =
        serde_json::from_value(c.clone()).expect("a checkpoint");
    kept.verify().expect("signed");
    assert_eq!((kept.tenant_id.as_str(), kept.seq), ("t-audit", 60));
    let with_kept = format!(
        "/v1/audit/verify?checkpointSeq={}&checkpointHash={}",
        kept.seq, kept.hash
    );
    let (_, v) = s.get(&with_kept, &k.read).await;
    assert_eq!(
        (v["ok"].clone(), v["checkpoint"].clone()),
        (json!(true), json!("matched")),
        "{v}"
    );
    // Scoped like verify: a tenant-wide read; ingest keys are refused.
    assert_eq!(s.get("/v1/audit/checkpoint", &k.ingest).await.0, 403);
    // A kept checkpoint past the head: records were cut off.
    let (_, v) = s
        .get(
            &format!(
                "/v1/audit/verify?checkpointSeq=61&checkpointHash={}",
                kept.hash
            ),
            &k.read,
        )
        .await;
    assert_eq!(
        (v["ok"].clone(), v["firstBadSeq"].clone()),
        (json!(false), json!(61)),
        "{v}"
    );
    for bad in [
        "/v1/audit/verify?checkpointSeq=60",
        "/v1/audit/verify?checkpointSeq=x&checkpointHash=00",
        "/v1/audit/verify?checkpointSeq=60&checkpointHash=zz",
    ] {
        let (status, e) = s.get(bad, &k.read).await;
        assert_eq!(status, 400, "{bad}: {e}");
    }

    // Rewrite from seq 10 on: edit the record, re-seal it and every later one, move
    // the head. The chain is consistent again.
    let store = s.independent_store();
    let d = store.dialect();
    store
        .write(None, move |c| {
            let rows = c.query(&d.stmt(
                "SELECT body FROM activities WHERE tenant_id = 't-audit' AND seq >= 9 ORDER BY seq",
                Vec::new(),
            ))?;
            let mut records: Vec<crm_core::Activity> = rows
                .iter()
                .map(|r| serde_json::from_str(r.text(0).expect("body")).expect("record"))
                .collect();
            let mut prev = records[0].hash.clone();
            for a in records.iter_mut().skip(1) {
                if a.seq == 10 {
                    a.operation = "crm.leads.delete".to_owned();
                }
                let seq = a.seq;
                crm_core::chain::seal(a, seq, &prev);
                prev = a.hash.clone();
                c.execute(&d.stmt(
                    "UPDATE activities SET body = ?1, hash = ?2, prev_hash = ?3, operation = ?4 WHERE tenant_id = 't-audit' AND seq = ?5",
                    vec![
                        serde_json::to_string(a).expect("json").into(),
                        a.hash.clone().into(),
                        a.prev_hash.clone().into(),
                        a.operation.clone().into(),
                        (seq as i64).into(),
                    ],
                ))?;
            }
            c.execute(&d.stmt(
                "UPDATE tenants SET head_hash = ?1 WHERE id = 't-audit'",
                vec![prev.into()],
            ))?;
            Ok(())
        })
        .await
        .expect("rewritten");
    assert_eq!(
        verify(&s, &k).await["ok"],
        true,
        "the rewrite passes plain verify"
    );
    let (_, v) = s.get(&with_kept, &k.read).await;
    assert_eq!(
        (v["ok"].clone(), v["firstBadSeq"].clone()),
        (json!(false), json!(60)),
        "{v}"
    );

    // The CLI checks the checkpoint's signature and key, then the chain against it.
    let Location::Sqlite(db) = s.db.clone() else {
        unreachable!("sqlite")
    };
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("kept.json");
    std::fs::write(&file, c.to_string()).expect("kept");
    let cli = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_crm-host"))
            .args(["verify", "--tenant", "t-audit", "--db"])
            .arg(&db)
            .arg("--checkpoint")
            .arg(&file)
            .args(extra)
            .output()
            .expect("cli runs")
    };
    let out = cli(&["--public-key", &kept.public_key]);
    assert!(!out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(printed["firstBadSeq"], 60, "{printed}");
    let other_key = "00".repeat(32);
    let out = cli(&["--public-key", &other_key]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("another key"));
    let mut forged = c.clone();
    forged["seq"] = json!(59);
    std::fs::write(&file, forged.to_string()).expect("forged");
    let out = cli(&[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The balance and the ledger are not hashed; the audit recounts them against the
/// chain, so a rewrite that keeps the ledger consistent with itself is still named.
#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_or_balance_rewritten_to_agree_with_itself_still_disagrees_with_the_chain() {
    let (s, k) = seeded(60).await;
    let (status, ledger) = s.get("/v1/credits/ledger", &k.read).await;
    assert_eq!(status, 200, "{ledger}");
    let usage = &ledger["entries"][0];
    assert_eq!(usage["kind"], "usage", "{ledger}");
    let v = verify(&s, &k).await;
    assert_eq!(
        (v["ok"].clone(), v["ledgerEntries"].clone()),
        (json!(true), json!(2)),
        "{v}"
    );

    let bad = |v: &Value, reason: &str| {
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["firstBadEntry"], 2, "{v}");
        assert!(v.get("firstBadSeq").is_none(), "{v}");
        assert!(
            v["reason"].as_str().unwrap_or_default().contains(reason),
            "{reason}: {v}"
        );
    };
    // The balance raised by one unit.
    tamper(
        &s,
        "UPDATE tenants SET balance_units = balance_units + 1 WHERE id = 't-audit'",
    )
    .await;
    bad(&verify(&s, &k).await, "balance");
    // ... and the ledger's last balance with it: that step no longer adds up.
    tamper(
        &s,
        "UPDATE credit_ledger SET balance_units = balance_units + 1 WHERE entry = 2",
    )
    .await;
    bad(&verify(&s, &k).await, "plus its change");
    // ... and its change as well: the ledger agrees with itself, not with the chain.
    tamper(
        &s,
        "UPDATE credit_ledger SET delta_units = delta_units + 1 WHERE entry = 2",
    )
    .await;
    bad(&verify(&s, &k).await, "its records cost");
    // Put back, it passes again.
    tamper(&s, "UPDATE credit_ledger SET delta_units = delta_units - 1, balance_units = balance_units - 1 WHERE entry = 2").await;
    tamper(
        &s,
        "UPDATE tenants SET balance_units = balance_units - 1 WHERE id = 't-audit'",
    )
    .await;
    assert_eq!(verify(&s, &k).await["ok"], true);
    // The usage entry deleted and the balance credited back: the records still cost.
    tamper(&s, "UPDATE tenants SET balance_units = (SELECT balance_units FROM credit_ledger WHERE entry = 1) WHERE id = 't-audit'").await;
    tamper(&s, "DELETE FROM credit_ledger WHERE entry = 2").await;
    let v = verify(&s, &k).await;
    assert_eq!(
        (v["ok"].clone(), v["firstBadEntry"].clone()),
        (json!(false), json!(1)),
        "{v}"
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no entry charged"),
        "{v}"
    );
}

/// Issue 25.6: a verification pages — `limit` records per call, continued with a
/// signed `resume` token — and the pages together say what one call says: every
/// record, every ledger entry, and a break past a pause point still found.
#[tokio::test(flavor = "multi_thread")]
async fn verification_pages_with_signed_resume_tokens() {
    let (s, k) = seeded(1_200).await;
    // More entries to recount across pauses: a grant between batches, more usage.
    let (status, _) = s
        .post("/v1/credits/grants", &k.admin, json!({ "amount": "5" }))
        .await;
    assert_eq!(status, 200);
    let batch: Vec<Value> = (0..300)
        .map(|i| activity(&format!("b-{i:04}"), "user-200", "crm.leads.read"))
        .collect();
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
        201
    );
    let whole = verify(&s, &k).await;
    assert_eq!(
        (
            whole["ok"].clone(),
            whole["complete"].clone(),
            whole["verified"].clone()
        ),
        (json!(true), json!(true), json!(1_500)),
        "{whole}"
    );
    assert!(whole.get("resume").is_none());

    let page = |extra: String| {
        let (s, read) = (&s, k.read.clone());
        async move {
            let (status, v) = s
                .get(&format!("/v1/audit/verify?limit=400{extra}"), &read)
                .await;
            assert_eq!(status, 200, "{v}");
            v
        }
    };
    let mut calls = 0;
    let mut v = page(String::new()).await;
    while v["complete"] == false {
        calls += 1;
        assert_eq!(v["ok"], true, "{v}");
        let token = v["resume"].as_str().expect("a resume token").to_owned();
        v = page(format!("&resume={token}")).await;
    }
    assert_eq!(calls, 3, "1,500 records in pages of 400");
    assert_eq!(v["verified"], whole["verified"]);
    assert_eq!(v["ledgerEntries"], whole["ledgerEntries"], "{v} vs {whole}");
    assert_eq!(v["ok"], true, "{v}");

    // A token edited to skip records, or sent by another tenant, is refused.
    let first = page(String::new()).await;
    let token = first["resume"].as_str().expect("token");
    let (body, sig) = token.split_once('.').expect("two parts");
    let edited = String::from_utf8(hex::decode(body).expect("hex"))
        .expect("json")
        .replace("\"after\":400", "\"after\":1400");
    let forged = format!("{}.{sig}", hex::encode(edited));
    let (status, e) = s
        .get(&format!("/v1/audit/verify?resume={forged}"), &k.read)
        .await;
    assert_eq!(status, 400, "{e}");
    let other = s.tenant("t-audit-other", "10").await;
    let (status, _) = s
        .get(&format!("/v1/audit/verify?resume={token}"), &other.read)
        .await;
    assert_eq!(status, 400);

    // A record altered past the pause point is found by the call that reaches it.
    tamper(&s, "UPDATE activities SET body = replace(body, 'crm.leads.read', 'crm.leads.delete') WHERE seq = 1000").await;
    let mut v = first.clone();
    while v["complete"] == false {
        let token = v["resume"].as_str().expect("a resume token").to_owned();
        v = page(format!("&resume={token}")).await;
    }
    assert_eq!(
        (v["ok"].clone(), v["firstBadSeq"].clone()),
        (json!(false), json!(1000)),
        "{v}"
    );
}

/// Issue 26.8: once its day closes, a day's rollups keep at most
/// `MAX_VALUES_PER_PERIOD` values of a client-chosen dimension; the rest fold into
/// `(other)`. Reports over the day answer exactly as before the fold.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_distinct_values_is_folded_once_its_day_closes() {
    const DAY: i64 = 86_400_000;
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-fold", "100000").await;
    let now = chrono::Utc::now().timestamp_millis();
    let day = now.div_euclid(DAY) * DAY - 3 * DAY;
    let at = |ms: i64| {
        crm_core::Timestamp::from_millis(ms)
            .expect("in range")
            .to_rfc3339()
    };
    let distinct = crm_store::compaction::MAX_VALUES_PER_PERIOD + 250;
    for chunk in 0..distinct.div_ceil(500) {
        let batch: Vec<Value> = (chunk * 500..((chunk + 1) * 500).min(distinct))
            .map(|i| {
                let mut a = activity(&format!("fold-{i}"), "user-123", "crm.leads.read");
                a["occurredAt"] = json!(at(day + 3 * 3_600_000 + i as i64));
                a["compliance"]["location"] = json!(format!("loc-{i:05}"));
                a
            })
            .collect();
        assert_eq!(
            s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
            201
        );
    }
    let report_path = format!("/v1/reports?from={}&to={}&tz=UTC", at(day), at(day + DAY));
    let (_, before) = s.get(&report_path, &k.read).await;
    let rows = |tier: &'static str| {
        let store = s.independent_store();
        let d = store.dialect();
        async move {
            store
                .read(move |c| {
                    let sql = format!(
                        "SELECT COUNT(*) FROM report_rollups WHERE tenant_id = 't-fold' AND dimension = 'location' AND tier = '{tier}'"
                    );
                    Ok(c.query(&d.stmt(&sql, Vec::new()))?[0].int(0)?)
                })
                .await
                .expect("counted")
        }
    };
    assert_eq!(rows("d").await, distinct as i64);
    crm_host::service::retention::run_once(&s.running.app, now)
        .await
        .expect("a pass");
    let kept = crm_store::compaction::MAX_VALUES_PER_PERIOD as i64 + 1;
    assert_eq!(rows("d").await, kept, "the day's values, folded");
    assert_eq!(rows("h").await, kept, "the hour's values, folded");
    // A second pass finds the day done.
    crm_host::service::retention::run_once(&s.running.app, now)
        .await
        .expect("a pass");
    assert_eq!(rows("d").await, kept);
    let (_, after) = s.get(&report_path, &k.read).await;
    for field in ["totalActivities", "totalCreditsUsed", "complianceSummary"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(after["totalActivities"], distinct);
    let (_, v) = s.get("/v1/audit/verify", &k.read).await;
    assert_eq!(v["ok"], true, "{v}");
}

/// Issue 26.6: reports answer from rollups, which are outside the chain, so the audit
/// recounts them against the stored records: a period's count lowered, a tier's count
/// raised, credits moved between periods — each named by its tier (and period).
#[tokio::test(flavor = "multi_thread")]
async fn rollups_edited_behind_the_engines_back_are_named_by_the_audit() {
    let (s, k) = seeded(60).await;
    // Records in two hours, so credits can be moved between periods.
    let earlier = (chrono::Utc::now() - chrono::Duration::hours(5))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let mut a = activity("older-1", "user-123", "crm.leads.read");
    a["occurredAt"] = json!(earlier);
    assert_eq!(s.post("/v1/activities", &k.ingest, json!([a])).await.0, 201);
    let v = verify(&s, &k).await;
    assert_eq!(v["ok"], true, "{v}");
    // At least a day, two hours in each hourly tier and two quarter-hours (the day is
    // one period when both hours fall on the same UTC day).
    assert!(v["rollupPeriods"].as_u64().expect("periods") >= 7, "{v}");

    let one_row = |tier: &str| {
        format!(
            "tenant_id = 't-audit' AND tier = '{tier}' AND (period_start, department_path, dimension, value) =
             (SELECT period_start, department_path, dimension, value FROM report_rollups
              WHERE tenant_id = 't-audit' AND tier = '{tier}' AND dimension IN ('outcome', 'time')
              ORDER BY period_start DESC LIMIT 1)"
        )
    };
    let named = |v: &Value, tier: &str, period: bool| {
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["firstBadRollup"]["tier"], tier, "{v}");
        assert_eq!(
            v["firstBadRollup"].get("periodStart").is_some(),
            period,
            "{v}"
        );
        assert!(v.get("firstBadSeq").is_none(), "{v}");
    };
    // A count lowered: the period's records outnumber it.
    tamper(
        &s,
        &format!(
            "UPDATE report_rollups SET count = count - 1 WHERE {}",
            one_row("h")
        ),
    )
    .await;
    named(&verify(&s, &k).await, "h", true);
    tamper(
        &s,
        &format!(
            "UPDATE report_rollups SET count = count + 1 WHERE {}",
            one_row("h")
        ),
    )
    .await;
    assert_eq!(verify(&s, &k).await["ok"], true);
    // A count raised: the tier counts a record the chain never held.
    tamper(
        &s,
        &format!(
            "UPDATE report_rollups SET count = count + 1 WHERE {}",
            one_row("d")
        ),
    )
    .await;
    named(&verify(&s, &k).await, "d", false);
    tamper(
        &s,
        &format!(
            "UPDATE report_rollups SET count = count - 1 WHERE {}",
            one_row("d")
        ),
    )
    .await;
    // Credits moved from the latest hour to the earlier one: totals unchanged.
    tamper(
        &s,
        &format!(
            "UPDATE report_rollups SET credits_units = credits_units - 1 WHERE {}",
            one_row("th")
        ),
    )
    .await;
    tamper(
        &s,
        "UPDATE report_rollups SET credits_units = credits_units + 1
         WHERE tenant_id = 't-audit' AND tier = 'th' AND (period_start, department_path, value) =
           (SELECT period_start, department_path, value FROM report_rollups
            WHERE tenant_id = 't-audit' AND tier = 'th' ORDER BY period_start LIMIT 1)",
    )
    .await;
    named(&verify(&s, &k).await, "th", true);
}
