//! `crm-host loadgen`: N concurrent clients against a running server — ingest batches,
//! permission checks (single or batched) or reports — for a fixed time, optionally
//! paced to a target rate; prints throughput and latency percentiles (`--json` for
//! scripts). What the benchmarks in BENCHMARKS.md are measured with.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde::Serialize;
use serde_json::{Value, json};

/// Operations the generated activities and checks use (any tenant prices them).
const OPERATIONS: &[&str] = &[
    "crm.leads.read",
    "crm.leads.update",
    "crm.leads.create",
    "crm.contacts.read",
    "crm.tickets.update",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mix {
    /// `POST /v1/activities` with `--batch` activities per request.
    Ingest,
    /// `POST /v1/permissions/check`, one check per request.
    Check,
    /// `POST /v1/permissions/check` with `--batch` checks per request.
    CheckBatch,
    /// `GET /v1/reports?since=30d`.
    Report,
}

#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    /// Base URL of the server (`http://127.0.0.1:8080`).
    #[arg(long)]
    url: String,
    /// API key (ingest for ingest and checks, read for reports).
    #[arg(long, env = "CRM_KEY")]
    key: String,
    #[arg(long, value_enum, default_value = "ingest")]
    mix: Mix,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Items per request (activities or checks).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Target requests per second over all clients (default: as fast as possible).
    #[arg(long)]
    rate: Option<u64>,
    /// Users the activities and checks name (default: the users the key's session lists).
    #[arg(long, value_delimiter = ',')]
    users: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub mix: Mix,
    pub clients: usize,
    pub batch: usize,
    pub seconds: f64,
    pub requests: u64,
    pub items: u64,
    pub errors: u64,
    pub requests_per_sec: f64,
    pub items_per_sec: f64,
    pub latency_ms: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1_000.0
}

async fn users(args: &LoadgenArgs, http: &reqwest::Client) -> anyhow::Result<Vec<String>> {
    if !args.users.is_empty() {
        return Ok(args.users.clone());
    }
    let session: Value = http
        .get(format!("{}/v1/session", args.url))
        .bearer_auth(&args.key)
        .send()
        .await?
        .error_for_status()
        .map_err(|e| anyhow::anyhow!("listing users needs a key with read (or pass --users): {e}"))?
        .json()
        .await?;
    let users: Vec<String> = session["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    anyhow::ensure!(
        !users.is_empty(),
        "the tenant has no users to generate load for"
    );
    Ok(users)
}

fn request(
    args: &LoadgenArgs,
    http: &reqwest::Client,
    users: &[String],
) -> reqwest::RequestBuilder {
    let mut rng = rand::rng();
    let mut pick = || {
        (
            users.choose(&mut rng).cloned().unwrap_or_default(),
            (*OPERATIONS
                .choose(&mut rand::rng())
                .unwrap_or(&"crm.leads.read"))
            .to_owned(),
        )
    };
    let post = |path: &str, body: Value| {
        http.post(format!("{}{path}", args.url))
            .bearer_auth(&args.key)
            .json(&body)
    };
    match args.mix {
        Mix::Ingest => {
            let batch: Vec<Value> = (0..args.batch)
                .map(|_| {
                    let (u, op) = pick();
                    json!({ "userId": u, "operation": op, "entityType": "lead",
                            "entityId": format!("lead-{}", rand::rng().random_range(1..10_000)),
                            "compliance": { "userAgent": "loadgen/1", "location": "Berlin", "authenticationMethod": "sso" } })
                })
                .collect();
            post("/v1/activities", json!(batch))
        }
        Mix::Check => {
            let (u, op) = pick();
            post(
                "/v1/permissions/check",
                json!({ "userId": u, "permission": op }),
            )
        }
        Mix::CheckBatch => {
            let checks: Vec<Value> = (0..args.batch)
                .map(|_| {
                    let (u, op) = pick();
                    json!({ "userId": u, "permission": op })
                })
                .collect();
            post("/v1/permissions/check", json!({ "checks": checks }))
        }
        Mix::Report => http
            .get(format!("{}/v1/reports?since=30d", args.url))
            .bearer_auth(&args.key),
    }
}

/// Runs the load and answers its summary.
pub async fn measure(args: &LoadgenArgs) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        args.clients > 0 && args.batch > 0 && args.seconds > 0,
        "clients, batch and seconds must be positive"
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(60))
        .build()?;
    let users = users(args, &http).await?;
    let items_per_request = match args.mix {
        Mix::Ingest | Mix::CheckBatch => args.batch as u64,
        Mix::Check | Mix::Report => 1,
    };
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.clients as f64 / r.max(1) as f64));
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.seconds).with_style(
            ProgressStyle::with_template("loadgen [{bar:40}] {pos}/{len} s")
                .expect("valid template"),
        )
    };
    let mut tasks = Vec::with_capacity(args.clients);
    for client in 0..args.clients {
        let (http, users) = (http.clone(), users.clone());
        let args = LoadgenArgs {
            url: args.url.clone(),
            key: args.key.clone(),
            users: Vec::new(),
            ..*args
        };
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            // Clients start spread over one interval: started together, they sent in
            // bursts of `clients` and measured their own queueing.
            let mut next =
                start + interval.unwrap_or_default() * client as u32 / args.clients as u32;
            loop {
                // A paced client sends at each of its instants before the end; an
                // unpaced one until the end.
                match interval {
                    Some(_) if next >= end => break,
                    Some(i) => {
                        tokio::time::sleep_until(next.into()).await;
                        next += i;
                    }
                    None if Instant::now() >= end => break,
                    None => {}
                }
                let req = request(&args, &http, &users);
                let sent = Instant::now();
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies
                            .push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
            }
        })
    };
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    ticker.abort();
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let requests = all.len() as u64;
    Ok(Summary {
        mix: args.mix,
        clients: args.clients,
        batch: args.batch,
        seconds,
        requests,
        items: requests * items_per_request,
        errors,
        requests_per_sec: requests as f64 / seconds,
        items_per_sec: (requests * items_per_request) as f64 / seconds,
        latency_ms: Latency {
            p50: quantile(&all, 0.5),
            p99: quantile(&all, 0.99),
            p999: quantile(&all, 0.999),
            max: quantile(&all, 1.0),
        },
    })
}

pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let s = measure(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "{:?}: {} clients × {} per request, {:.1} s: {:.0} requests/s, {:.0} items/s, {} errors",
            s.mix, s.clients, s.batch, s.seconds, s.requests_per_sec, s.items_per_sec, s.errors
        );
        println!(
            "latency ms: p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}",
            s.latency_ms.p50, s.latency_ms.p99, s.latency_ms.p999, s.latency_ms.max
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_microseconds_in_milliseconds() {
        let v: Vec<u64> = (1..=1000).map(|i| i * 1_000).collect();
        assert_eq!(quantile(&v, 0.5), 501.0);
        assert_eq!(quantile(&v, 1.0), 1000.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
