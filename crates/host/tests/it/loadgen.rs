//! `crm-host loadgen`, the benchmarks' load generator, against a real server: what it
//! counts as done is what the server holds, a paced run keeps its rate, and failed
//! requests count as errors, not as answers.

use clap::Parser;
use crm_host::cli::loadgen::{LoadgenArgs, Summary, measure};
use crm_host::engine::EngineKind;

use crate::support::{Backend, TestServer};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: LoadgenArgs,
}

/// One load run against `url` with `key`, the rest of its arguments as on the command
/// line.
async fn load(url: &str, key: &str, rest: &[&str]) -> Summary {
    let words = ["loadgen", "--url", url, "--key", key]
        .into_iter()
        .chain(rest.iter().copied());
    measure(&Cli::parse_from(words).args)
        .await
        .expect("load runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn paced_ingest_is_counted_as_the_server_stores_it() {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-load", "1000000").await;
    let url = s.running.url();
    let run = load(
        &url,
        &k.admin,
        &[
            "--mix",
            "ingest",
            "--clients",
            "3",
            "--batch",
            "7",
            "--rate",
            "40",
            "--seconds",
            "2",
        ],
    )
    .await;
    assert_eq!(run.errors, 0);
    // 40 requests/s for 2 s, spread over three clients: 80 instants before the end.
    assert!((78..=80).contains(&run.requests), "{run:?}");
    assert_eq!(run.items, run.requests * 7);
    assert!(run.latency_ms.p50 > 0.0 && run.latency_ms.p50 <= run.latency_ms.max);
    let stored = s.all("/v1/activities", &k.read).await;
    assert_eq!(stored.len() as u64, run.items);
}

#[tokio::test(flavor = "multi_thread")]
async fn checks_and_reports_answer_and_failures_count_as_errors() {
    let s = TestServer::start_on(Backend::Sqlite, EngineKind::Native, None).await;
    let k = s.tenant("t-load-checks", "1000").await;
    let url = s.running.url();
    for mix in ["check", "check-batch", "report"] {
        let run = load(
            &url,
            &k.admin,
            &["--mix", mix, "--clients", "2", "--seconds", "1"],
        )
        .await;
        assert!(run.requests > 0 && run.errors == 0, "{mix}: {run:?}");
    }
    // A read key may not check permissions: every request is a 403, none a success.
    let refused = load(
        &url,
        &k.read,
        &["--mix", "check", "--clients", "2", "--seconds", "1"],
    )
    .await;
    assert_eq!(refused.requests, 0);
    assert!(refused.errors > 0);
}
