//! TLS to PostgreSQL and Redis (issue 26.10), against local servers that present a
//! certificate from a CA made for the test: `sslmode=verify-full&sslrootcert=…` and
//! `rediss://` with `redis_ca` connect encrypted and verified; a certificate the
//! trusted roots do not vouch for is refused, never used in plain text.

use std::time::{Duration, Instant};

use crm_host::engine::EngineKind;
use crm_host::store::{Location, Store};
use serde_json::{Value, json};

use crate::support::redis::{RedisServer, stream_ids};
use crate::support::{Backend, TestServer, activity};

#[tokio::test(flavor = "multi_thread")]
async fn postgres_connects_with_a_verified_certificate_or_not_at_all() {
    let (plain, ca) = crm_testkit::postgres::tls_database();
    let verified = format!("{plain}?sslmode=verify-full&sslrootcert={}", ca.display());
    let store = Store::open(&Location::Postgres(verified)).expect("opens over TLS");
    let d = store.dialect();
    let encrypted = store
        .read(move |c| {
            let rows = c.query(&d.stmt(
                "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                Vec::new(),
            ))?;
            Ok(rows[0].string(0)?)
        })
        .await
        .expect("read");
    assert_eq!(encrypted, "true", "the session is encrypted");
    // `require` without a CA file verifies against the public roots, which do not know
    // this CA: refused.
    let e = Store::open(&Location::Postgres(format!("{plain}?sslmode=require")))
        .expect_err("an unverifiable certificate");
    assert!(
        format!("{e:#}").to_lowercase().contains("certificate"),
        "{e:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_redis_stream_is_fed_over_verified_tls() {
    let redis = RedisServer::start_tls();
    let (url, ca) = redis.tls_url().expect("a TLS port");
    let s = TestServer::start_configured(Backend::Sqlite, EngineKind::Native, |c| {
        c.fanout.redis_url = Some(url);
        c.fanout.redis_ca = Some(ca);
    })
    .await;
    let k = s.tenant("t-tls", "1000").await;
    let batch: Vec<Value> = (0..20)
        .map(|i| activity(&format!("tls-{i:02}"), "user-123", "crm.leads.read"))
        .collect();
    let want: Vec<String> = (0..20).map(|i| format!("tls-{i:02}")).collect();
    assert_eq!(
        s.post("/v1/activities", &k.ingest, json!(batch)).await.0,
        201
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    // Read back on the server's plain port; the host only knows its TLS port.
    while stream_ids(&redis, "t-tls").await != want {
        assert!(
            Instant::now() < deadline,
            "the stream never filled over TLS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // `crm-host tail` reads the same stream over TLS with the same CA option.
    let (url, ca) = redis.tls_url().expect("a TLS port");
    let tail = |ca: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_crm-host"));
        cmd.args([
            "tail",
            "--redis-url",
            &url,
            "--tenant",
            "t-tls",
            "--from-start",
        ])
        .args(["--count", "20", "--group", "tls-tail"])
        .env("CRM_LOG", "error");
        if let Some(ca) = ca {
            cmd.arg("--redis-ca").arg(ca);
        }
        cmd.output().expect("crm-host tail runs")
    };
    let out = tail(Some(&ca));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("an activity per line")["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, want);
    // Without the CA the server's certificate is not trusted: refused, nothing read.
    let refused = tail(None);
    assert!(!refused.status.success());
}
