//! `cargo xtask bench`: every figure of BENCHMARKS.md measured side by side in one run
//! on this machine, each beside its goal and its comparison, written to
//! `<target>/bench-summary.json` and printed as the table BENCHMARKS.md carries.
//!
//! Steps: build `crm-host` (release); a raw rusqlite insert of enriched rows (the
//! reference); HTTP ingest through `crm-host serve` on SQLite and on PostgreSQL (a
//! throw-away cluster from `crm-testkit`), from one host and from two over one
//! PostgreSQL, and with the Redis and upstream sinks; the writer's work per activity
//! by part (`crm-host bench ingest-parts`, and without each index of `activities`);
//! permission checks over HTTP at a paced 20,000/s; reports over 1 M raw and 10 M
//! rollup-backed activities; resident memory per tenant at 1,000 tenants; batch
//! enrichment and checks through the component beside native, timed alternately.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{cargo, step, target_dir};

/// Knobs of one run (`--quick` shrinks the data for a smoke run).
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub raw_rows: usize,
    pub ingest_seconds: u64,
    pub report_raw: u64,
    pub report_rollups: u64,
    pub tenants: usize,
    /// Activities of each `ingest-parts` run (one per index, and one with all).
    pub parts_activities: usize,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            raw_rows: 200_000,
            ingest_seconds: 20,
            report_raw: 1_000_000,
            report_rollups: 10_000_000,
            tenants: 1_000,
            parts_activities: 100_000,
        }
    }

    pub fn quick() -> Sizes {
        Sizes {
            raw_rows: 20_000,
            ingest_seconds: 5,
            report_raw: 50_000,
            report_rollups: 200_000,
            tenants: 50,
            parts_activities: 5_000,
        }
    }
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The CPU a process of the run is pinned to (`taskset`): the permission checks' server
/// on one core and their load generator on the other, so neither measures the other's
/// scheduling. `None` runs unpinned (one core, or no `taskset`).
type Cpu = Option<u32>;

/// `bin`, under `taskset -c cpu` when pinned.
fn command(bin: &Path, cpu: Cpu) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(bin);
            cmd
        }
        None => Command::new(bin),
    }
}

/// Where the checks' server and load generator run: cores 0 and 1 when the machine has
/// two and `taskset` is there.
fn check_placement() -> (Cpu, Cpu) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if cores >= 2 && taskset {
        (Some(0), Some(1))
    } else {
        (None, None)
    }
}

/// Share of all cores busy over two seconds (from `/proc/stat`).
fn cpu_busy() -> Result<f64> {
    fn sample() -> Result<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .context("/proc/stat is empty")?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // idle and iowait are the 4th and 5th figures.
        let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
        Ok((cpu.iter().sum(), idle))
    }
    let (total0, idle0) = sample()?;
    std::thread::sleep(Duration::from_secs(2));
    let (total1, idle1) = sample()?;
    let total = total1.saturating_sub(total0).max(1);
    Ok(1.0 - idle1.saturating_sub(idle0) as f64 / total as f64)
}

/// Most of the machine's CPU others may use when a run starts: past it the figures
/// would measure the other load (BENCHMARKS.md takes figures from a quiet machine).
const MAX_BUSY_BEFORE_RUN: f64 = 0.10;

/// Refuses to start on a busy machine unless `allow_busy`; answers what the summary
/// records of the machine.
pub fn machine(allow_busy: bool) -> Result<Value> {
    let busy = cpu_busy()?;
    let quiet = quiet(busy, allow_busy)?;
    let (server, load) = check_placement();
    Ok(json!({
        "cpuBusyBeforeRun": busy,
        "quiet": quiet,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "checksServerCpu": server,
        "checksLoadgenCpu": load,
        "loadGenerator": "crm-host loadgen on the same machine",
    }))
}

/// Whether a machine `busy` before the run is quiet; refuses a busy one unless
/// `allow_busy`.
fn quiet(busy: f64, allow_busy: bool) -> Result<bool> {
    let quiet = busy <= MAX_BUSY_BEFORE_RUN;
    if !quiet && !allow_busy {
        bail!(
            "the machine is busy: {:.0} % of its CPU was in use in the two seconds before the run \
             (at most {:.0} %); figures from a busy machine are not figures. Stop the other load, \
             or pass --allow-busy to run anyway with the summary saying so",
            busy * 100.0,
            MAX_BUSY_BEFORE_RUN * 100.0
        );
    }
    Ok(quiet)
}

fn host(bin: &Path, args: &[&str]) -> Result<Value> {
    host_on(bin, None, args)
}

fn host_on(bin: &Path, cpu: Cpu, args: &[&str]) -> Result<Value> {
    let out = command(bin, cpu)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running crm-host {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("crm-host {} failed", args.join(" "));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).or_else(|_| Ok(Value::String(last.trim().to_owned())))
}

fn serve(bin: &Path, db: &str, extra: &[&str]) -> Result<Server> {
    serve_on(bin, None, db, extra)
}

fn serve_on(bin: &Path, cpu: Cpu, db: &str, extra: &[&str]) -> Result<Server> {
    serve_with_env(bin, cpu, db, extra, &[])
}

/// `serve`, with `env` added to the server's environment.
fn serve_with_env(
    bin: &Path,
    cpu: Cpu,
    db: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<Server> {
    let port = free_port()?;
    let mut args = vec!["serve", "--db", db, "--listen"];
    let listen = format!("127.0.0.1:{port}");
    args.push(&listen);
    args.extend(extra);
    let child = command(bin, cpu)
        .args(&args)
        .env("CRM_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .context("starting crm-host serve")?;
    let server = Server {
        child,
        url: format!("http://{listen}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("crm-host serve did not come up")
}

fn loadgen(bin: &Path, url: &str, key: &str, args: &[&str]) -> Result<Value> {
    loadgen_on(bin, None, url, key, args)
}

fn loadgen_on(bin: &Path, cpu: Cpu, url: &str, key: &str, args: &[&str]) -> Result<Value> {
    let mut all = vec!["loadgen", "--url", url, "--key", key, "--json"];
    all.extend(args);
    host_on(bin, cpu, &all)
}

/// A tenant with a 200-user directory and an admin key, in `db`.
fn tenant(bin: &Path, db: &str, id: &str, activities: u64) -> Result<String> {
    host(
        bin,
        &[
            "bench",
            "seed",
            "--db",
            db,
            "--tenant",
            id,
            "--activities",
            &activities.to_string(),
        ],
    )?;
    let key = host(
        bin,
        &[
            "key", "create", "--db", db, "--tenant", id, "--scope", "admin",
        ],
    )?;
    Ok(key.as_str().unwrap_or_default().to_owned())
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")
}

/// The ingest load of every ingest figure: 8 clients posting batches of 500.
const INGEST_LOAD: &[&str] = &["--mix", "ingest", "--clients", "8", "--batch", "500"];

pub fn run(root: &Path, sizes: Sizes, machine: Value) -> Result<()> {
    step(
        "build crm-host (release)",
        cargo(&["build", "--release", "--locked", "-p", "crm-host"]),
    )?;
    let bin = target_dir(root).join("release/crm-host");
    let tmp = tempfile_dir()?;
    let dir = tmp.as_path();
    let mut figures = serde_json::Map::new();
    figures.insert("machine".into(), machine);
    let secs = sizes.ingest_seconds.to_string();

    eprintln!("xtask bench: raw rusqlite insert");
    let raw = host(
        &bin,
        &[
            "bench",
            "raw-insert",
            "--db",
            &path(dir, "raw.db"),
            "--rows",
            &sizes.raw_rows.to_string(),
        ],
    )?;
    figures.insert("rawInsert".into(), raw.clone());
    save(root, &figures)?;

    eprintln!("xtask bench: HTTP ingest, no sinks");
    let db = path(dir, "ingest.db");
    let key = tenant(&bin, &db, "bench", 0)?;
    let plain = {
        let s = serve(&bin, &db, &[])?;
        loadgen(
            &bin,
            &s.url,
            &key,
            &[INGEST_LOAD, &["--seconds", &secs]].concat(),
        )?
    };
    figures.insert("ingest".into(), plain.clone());
    save(root, &figures)?;

    eprintln!("xtask bench: a 30-day report while ingest runs at 20,000/s");
    figures.insert(
        "reportDuringIngest".into(),
        report_during_ingest(&bin, &db, &key, &secs)?,
    );
    save(root, &figures)?;

    eprintln!("xtask bench: HTTP ingest on PostgreSQL");
    let on_postgres = {
        let db = crm_testkit::postgres::database();
        let key = tenant(&bin, &db, "bench", 0)?;
        let s = serve(&bin, &db, &[])?;
        loadgen(
            &bin,
            &s.url,
            &key,
            &[INGEST_LOAD, &["--seconds", &secs]].concat(),
        )?
    };
    figures.insert("ingestPostgres".into(), on_postgres);
    save(root, &figures)?;

    eprintln!("xtask bench: one host and two hosts over one PostgreSQL");
    figures.insert("hostsPostgres".into(), hosts_over_postgres(&bin, &secs)?);
    save(root, &figures)?;

    eprintln!("xtask bench: what each part of the writer's work costs");
    figures.insert(
        "ingestParts".into(),
        ingest_parts(&bin, dir, sizes.parts_activities)?,
    );
    save(root, &figures)?;

    eprintln!("xtask bench: permission checks over HTTP at 20,000/s");
    {
        let (server_cpu, load_cpu) = check_placement();
        figures.insert("tcpFloor".into(), tcp_floor(&bin, server_cpu, load_cpu)?);
        let s = serve_on(&bin, server_cpu, &db, &[])?;
        let single = loadgen_on(
            &bin,
            load_cpu,
            &s.url,
            &key,
            &[
                "--mix",
                "check",
                "--clients",
                "32",
                "--rate",
                "20000",
                "--seconds",
                "10",
            ],
        )?;
        let batched = loadgen(
            &bin,
            &s.url,
            &key,
            &[
                "--mix",
                "check-batch",
                "--batch",
                "100",
                "--clients",
                "8",
                "--seconds",
                "10",
            ],
        )?;
        figures.insert("checks".into(), single);
        figures.insert("checksBatched".into(), batched);
        save(root, &figures)?;
    }

    eprintln!("xtask bench: HTTP ingest with Redis and upstream sinks");
    let with_sinks = {
        {
            let redis_server = crm_testkit::redis::RedisServer::start();
            let redis_url = redis_server.url();
            let stub_port = free_port()?;
            let mut stub = Command::new(&bin)
                .args([
                    "bench",
                    "upstream-stub",
                    "--listen",
                    &format!("127.0.0.1:{stub_port}"),
                ])
                .stderr(Stdio::null())
                .spawn()?;
            let db = path(dir, "sinks.db");
            let key = tenant(&bin, &db, "bench", 0)?;
            let upstream = format!("http://127.0.0.1:{stub_port}");
            let spool = path(dir, "spool");
            let result = {
                let s = serve(
                    &bin,
                    &db,
                    &[
                        "--redis-url",
                        &redis_url,
                        "--upstream-url",
                        &upstream,
                        "--spool-dir",
                        &spool,
                    ],
                )?;
                let r = loadgen(
                    &bin,
                    &s.url,
                    &key,
                    &[INGEST_LOAD, &["--seconds", &secs]].concat(),
                )?;
                std::thread::sleep(Duration::from_secs(3));
                let metrics: Value = ureq_json(&format!("{}/v1/metrics", s.url), &key)?;
                json!({ "ingest": r, "fanout": metrics["fanout"] })
            };
            let _ = stub.kill();
            let _ = stub.wait();
            result
        }
    };
    figures.insert("ingestWithSinks".into(), with_sinks);
    save(root, &figures)?;

    for (name, n) in [
        ("report1M", sizes.report_raw),
        ("report10M", sizes.report_rollups),
    ] {
        eprintln!("xtask bench: {name} ({n} activities over 30 days)");
        let db = path(dir, &format!("{name}.db"));
        let started = Instant::now();
        let key = tenant(&bin, &db, "bench", n)?;
        let seeded = started.elapsed().as_secs_f64();
        let s = serve(&bin, &db, &[])?;
        let tenant_wide = loadgen(
            &bin,
            &s.url,
            &key,
            &["--mix", "report", "--clients", "1", "--seconds", "10"],
        )?;
        let dept = measure_get(&s.url, &key, "/v1/reports/departments/dept-0?since=30d", 5)?;
        let quarter = measure_get(&s.url, &key, "/v1/reports?since=30d&tz=Asia/Kolkata", 5)?;
        // A user's report reads that user's raw rows (rollups are per department).
        let user = measure_get(&s.url, &key, "/v1/reports/users/user-0001?since=30d", 5)?;
        figures.insert(
            name.into(),
            json!({ "activities": n, "seedSeconds": seeded, "tenantWide": tenant_wide,
                    "departmentSubtreeMs": dept, "quarterHourZoneMs": quarter, "userRawMs": user }),
        );
        save(root, &figures)?;
        drop(s);
        // ~2.5 KB per stored activity: free the disk before the next, larger one.
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{db}{suffix}"));
        }
    }

    eprintln!(
        "xtask bench: memory per tenant ({} tenants × 200 users)",
        sizes.tenants
    );
    {
        let db = path(dir, "tenants.db");
        let tenants = host(
            &bin,
            &[
                "bench",
                "tenants",
                "--db",
                &db,
                "--count",
                &sizes.tenants.to_string(),
            ],
        )?;
        // mimalloc keeps freed pages resident for a while, and start-up (compiling the
        // component) frees ~100 MB: tenants loaded afterwards reuse those pages, and the
        // difference in RSS would understate what each tenant holds. Returning freed
        // pages at once makes RSS before and after count live memory.
        let s = serve_with_env(&bin, None, &db, &[], &[("MIMALLOC_PURGE_DELAY", "0")])?;
        std::thread::sleep(Duration::from_secs(1));
        let before = rss_kib(s.child.id())?;
        for t in tenants.as_array().into_iter().flatten() {
            let key = t["key"].as_str().unwrap_or_default();
            ureq_post(
                &format!("{}/v1/permissions/check", s.url),
                key,
                &json!({ "userId": "user-0001", "permission": "crm.leads.read" }),
            )?;
        }
        let after = rss_kib(s.child.id())?;
        let per = (after.saturating_sub(before)) as f64 / sizes.tenants as f64;
        figures.insert(
            "memory".into(),
            json!({ "tenants": sizes.tenants, "rssBeforeKiB": before, "rssAfterKiB": after, "perTenantKiB": per }),
        );
        save(root, &figures)?;
    }

    eprintln!("xtask bench: the component beside native crm-core");
    figures.insert("component".into(), component_vs_native(root)?);
    save(root, &figures)?;

    let summary = Value::Object(figures);
    let out = target_dir(root).join("bench-summary.json");
    println!("{}", table(&summary));
    eprintln!("xtask bench: wrote {}", out.display());
    Ok(())
}

/// The secondary indexes of `activities` (migrations 0001 and 0007). Each one's cost
/// is the difference between an `ingest-parts` run without it and one with all.
const ACTIVITY_INDEXES: &[&str] = &[
    "activities_by_seq",
    "activities_by_time",
    "activities_by_user",
    "activities_by_department",
    "activities_by_operation",
    "activities_by_entity",
];

/// Runs of each `ingest-parts` layout: one run's figures vary by a quarter from the
/// next on this machine (fsync and page-cache timing), more than one index costs.
const PARTS_RUNS: usize = 3;

/// The run with the median total of `runs`, with every run's total and the median
/// time of the activity rows beside it.
fn median_run(mut runs: Vec<Value>) -> Value {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let rows = median(
        runs.iter()
            .map(|r| num(r, &["perActivity", "INSERT activities", "us"]))
            .collect(),
    );
    let totals: Vec<f64> = runs.iter().map(|r| num(r, &["totalUs"])).collect();
    runs.sort_by(|a, b| num(a, &["totalUs"]).total_cmp(&num(b, &["totalUs"])));
    let mut chosen = runs.swap_remove(runs.len() / 2);
    chosen["runsTotalUs"] = json!(totals);
    chosen["activityRowsMedianUs"] = json!(rows);
    chosen
}

/// The writer's per-activity work by part on SQLite (with every index, then without
/// each one in turn, each run on a new file) and on new PostgreSQL databases.
fn ingest_parts(bin: &Path, dir: &Path, activities: usize) -> Result<Value> {
    let n = activities.to_string();
    let run = |db: &str, index: Option<&str>| {
        let mut args = vec!["bench", "ingest-parts", "--db", db, "--activities", &n];
        args.extend(index.map(|i| ["--drop-index", i]).into_iter().flatten());
        host(bin, &args)
    };
    let sqlite = |index: Option<&str>| -> Result<Value> {
        let runs = (0..PARTS_RUNS)
            .map(|_| {
                let db = path(dir, "parts.db");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{db}{suffix}"));
                }
                run(&db, index)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(median_run(runs))
    };
    let every_index = sqlite(None)?;
    let mut without = serde_json::Map::new();
    for index in ACTIVITY_INDEXES {
        without.insert((*index).into(), sqlite(Some(index))?);
    }
    let postgres = (0..PARTS_RUNS)
        .map(|_| run(&crm_testkit::postgres::database(), None))
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "sqlite": every_index, "sqliteWithout": without, "postgres": median_run(postgres) }))
}

/// Tenants written at once by each layout, each by its own load generator.
const HOSTS_TENANTS: usize = 4;

/// Ingest into one PostgreSQL database from one `crm-host serve`, then from two, for
/// `HOSTS_TENANTS` new tenants each (tenant i on host i mod hosts); the sum of the
/// load generators' rates per layout, and their ratio.
fn hosts_over_postgres(bin: &Path, secs: &str) -> Result<Value> {
    let db = crm_testkit::postgres::database();
    let layout = |hosts: usize| -> Result<Value> {
        let keys = (0..HOSTS_TENANTS)
            .map(|i| tenant(bin, &db, &format!("hosts{hosts}-{i}"), 0))
            .collect::<Result<Vec<_>>>()?;
        let servers = (0..hosts)
            .map(|_| serve(bin, &db, &[]))
            .collect::<Result<Vec<_>>>()?;
        let loads = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                command(bin, None)
                    .args(["loadgen", "--url", &servers[i % hosts].url, "--key", key])
                    .args([
                        "--json",
                        "--mix",
                        "ingest",
                        "--clients",
                        "2",
                        "--batch",
                        "500",
                    ])
                    .args(["--seconds", secs])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting a load generator")
            })
            .collect::<Result<Vec<_>>>()?;
        let mut per_tenant = Vec::new();
        for load in loads {
            let out = load.wait_with_output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            per_tenant.push(
                serde_json::from_str::<Value>(text.lines().last().unwrap_or_default())
                    .context("a load generator's summary")?,
            );
        }
        let total: f64 = per_tenant.iter().map(|v| num(v, &["itemsPerSec"])).sum();
        Ok(
            json!({ "hosts": hosts, "tenants": HOSTS_TENANTS, "itemsPerSec": total, "perTenant": per_tenant }),
        )
    };
    let one = layout(1)?;
    let two = layout(2)?;
    let ratio = num(&two, &["itemsPerSec"]) / num(&one, &["itemsPerSec"]);
    Ok(json!({ "oneHost": one, "twoHosts": two, "ratio": ratio }))
}

/// The dashboard's default report (`since=30d`) before, during and after ingest paced
/// at 20,000 activities/s into the same tenant: the open hour fills while it is read.
fn report_during_ingest(bin: &Path, db: &str, key: &str, secs: &str) -> Result<Value> {
    const REPORT: &str = "/v1/reports?since=30d";
    let s = serve(bin, db, &[])?;
    let before = measure_get(&s.url, key, REPORT, 5)?;
    // 40 requests of 500 per second: 20,000 activities/s.
    let mut load = command(bin, None)
        .args(["loadgen", "--url", &s.url, "--key", key, "--json"])
        .args(INGEST_LOAD)
        .args(["--rate", "40", "--seconds", secs])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the ingest load")?;
    std::thread::sleep(Duration::from_secs(1));
    let mut during = Vec::new();
    while load.try_wait()?.is_none() {
        let start = Instant::now();
        ureq_json(&format!("{}{REPORT}", s.url), key)?;
        during.push(start.elapsed().as_secs_f64() * 1_000.0);
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = load.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ingest: Value = serde_json::from_str(text.lines().last().unwrap_or_default())
        .context("the ingest load's summary")?;
    let after = measure_get(&s.url, key, REPORT, 5)?;
    let open: Value = ureq_json(&format!("{}/v1/reports?since=1h", s.url), key)?;
    during.sort_by(f64::total_cmp);
    let at = |q: f64| {
        during
            .get(((during.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    Ok(json!({
        "beforeMs": before,
        "duringSamples": during.len(),
        "duringP50Ms": at(0.5),
        "duringMaxMs": during.last(),
        "afterMs": after,
        "openHourActivities": open["totalActivities"],
        "ingest": ingest,
    }))
}

/// Sequential round trips through a bare TCP echo server, pinned as the checks' server
/// and load generator are: the floor under the checks' latency on this machine.
fn tcp_floor(bin: &Path, server_cpu: Cpu, client_cpu: Cpu) -> Result<Value> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let child = command(bin, server_cpu)
        .args(["bench", "echo-server", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting crm-host bench echo-server")?;
    // Killed on every path, like a server.
    let _server = Server {
        child,
        url: addr.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            bail!("the echo server did not start on {addr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    host_on(
        bin,
        client_cpu,
        &["bench", "echo-client", "--connect", &addr],
    )
}

/// Batch enrichment and batch checks through both engines, timed alternately
/// (`crates/host/benches/engines.rs`): per 100-item batch, the median µs of each engine
/// and the median of the rounds' ratios.
fn component_vs_native(root: &Path) -> Result<Value> {
    let out = target_dir(root).join("engines-bench.json");
    let mut bench = cargo(&["bench", "--locked", "-p", "crm-host", "--bench", "engines"]);
    bench.env("ENGINES_BENCH_OUT", &out);
    step("crm-host engines, alternately", bench)?;
    Ok(serde_json::from_slice(
        &std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?,
    )?)
}

/// Writes the figures so far: a step failing late (or a stopped run) keeps the rest.
fn save(root: &Path, figures: &serde_json::Map<String, Value>) -> Result<()> {
    let out = target_dir(root).join("bench-summary.json");
    std::fs::write(&out, serde_json::to_string_pretty(figures)?)?;
    Ok(())
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("crm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A GET with the key, by curl (on every machine; keeps xtask free of an HTTP client).
fn ureq_json(url: &str, key: &str) -> Result<Value> {
    let out = Command::new("curl")
        .args(["-sf", "-H", &format!("Authorization: Bearer {key}"), url])
        .output()?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn ureq_post(url: &str, key: &str, body: &Value) -> Result<()> {
    let status = Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-H",
            &format!("Authorization: Bearer {key}"),
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-d", &body.to_string(), url])
        .status()?;
    if !status.success() {
        bail!("POST {url} failed");
    }
    Ok(())
}

/// Median wall time (ms) of `n` GETs.
fn measure_get(base: &str, key: &str, path: &str, n: usize) -> Result<f64> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        ureq_json(&format!("{base}{path}"), key)?;
        times.push(start.elapsed().as_secs_f64() * 1_000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[n / 2])
}

fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// The BENCHMARKS.md table: each figure, its goal and its comparison.
fn table(s: &Value) -> String {
    let raw = num(s, &["rawInsert", "rowsPerSec"]);
    let ingest = num(s, &["ingest", "itemsPerSec"]);
    let sinks = num(s, &["ingestWithSinks", "ingest", "itemsPerSec"]);
    let report_label = |name: &str| {
        format!(
            "Report, {:.2} M activities, tenant",
            num(s, &[name, "activities"]) / 1e6
        )
    };
    let (small_report, big_report) = (report_label("report1M"), report_label("report10M"));
    let component_ratio = |op: &str| format!("{:.2}× native", num(s, &["component", op, "ratio"]));
    let component_times = |op: &str| {
        format!(
            "component {:.1} µs, native {:.1} µs (medians; timed alternately)",
            num(s, &["component", op, "componentUs"]),
            num(s, &["component", op, "nativeUs"])
        )
    };
    let report_comparison = |name: &str| {
        format!(
            "subtree {:.1} ms; Asia/Kolkata (quarter-hour tier) {:.1} ms; one user (raw rows) {:.1} ms",
            num(s, &[name, "departmentSubtreeMs"]),
            num(s, &[name, "quarterHourZoneMs"]),
            num(s, &[name, "userRawMs"])
        )
    };
    let rows = [
        (
            "Durable HTTP ingest (8 clients × 500)",
            format!("{ingest:.0} activities/s"),
            "≥ 50,000/s and ≥ 0.5× raw".to_owned(),
            format!("raw rusqlite insert {raw:.0} rows/s → {:.2}×", ingest / raw),
        ),
        (
            "Durable HTTP ingest on PostgreSQL (8 clients × 500)",
            format!(
                "{:.0} activities/s",
                num(s, &["ingestPostgres", "itemsPerSec"])
            ),
            "— (several hosts share it)".to_owned(),
            format!(
                "{:.2}× of SQLite's {ingest:.0}",
                num(s, &["ingestPostgres", "itemsPerSec"]) / ingest
            ),
        ),
        (
            "Ingest from one host and from two over one PostgreSQL",
            format!(
                "two hosts {:.0} activities/s",
                num(s, &["hostsPostgres", "twoHosts", "itemsPerSec"])
            ),
            "— (the ratio is the figure)".to_owned(),
            format!(
                "one host {:.0}/s → {:.2}×; {HOSTS_TENANTS} tenants, each 2 clients × 500",
                num(s, &["hostsPostgres", "oneHost", "itemsPerSec"]),
                num(s, &["hostsPostgres", "ratio"])
            ),
        ),
        (
            "The writer's work per activity (SQLite, batches of 500)",
            format!("{:.1} µs", num(s, &["ingestParts", "sqlite", "totalUs"])),
            "20 µs (50,000/s)".to_owned(),
            format!(
                "PostgreSQL {:.1} µs; parts in the table below",
                num(s, &["ingestParts", "postgres", "totalUs"])
            ),
        ),
        (
            "Ingest with Redis + upstream sinks",
            format!("{sinks:.0} activities/s"),
            "≥ 0.8× without".to_owned(),
            format!(
                "{:.2}× of {ingest:.0}; not yet delivered 3 s after the load: Redis {}, upstream {}",
                sinks / ingest,
                s["ingestWithSinks"]["fanout"]["pending"]["redis"],
                s["ingestWithSinks"]["fanout"]["pending"]["upstream"]
            ),
        ),
        (
            "Permission check over HTTP (paced 20,000/s)",
            format!(
                "p50 {:.3} ms, p99 {:.3} ms",
                num(s, &["checks", "latencyMs", "p50"]),
                num(s, &["checks", "latencyMs", "p99"])
            ),
            "p50 < 0.1 ms, p99 < 1 ms".to_owned(),
            format!(
                "achieved {:.0} checks/s; a bare TCP echo between the same CPUs: p50 {:.0} µs, p99 {:.0} µs; {}",
                num(s, &["checks", "requestsPerSec"]),
                num(s, &["tcpFloor", "p50Us"]),
                num(s, &["tcpFloor", "p99Us"]),
                match (
                    s["machine"]["checksServerCpu"].as_u64(),
                    s["machine"]["checksLoadgenCpu"].as_u64()
                ) {
                    (Some(a), Some(b)) => format!("server on CPU {a}, load generator on CPU {b}"),
                    _ => "unpinned".to_owned(),
                }
            ),
        ),
        (
            "Batched checks (100 per request)",
            format!("{:.0} checks/s", num(s, &["checksBatched", "itemsPerSec"])),
            "—".to_owned(),
            format!(
                "p99 {:.3} ms per request",
                num(s, &["checksBatched", "latencyMs", "p99"])
            ),
        ),
        (
            "30-day tenant report while ingest runs (paced 20,000/s)",
            format!(
                "p50 {:.1} ms, max {:.1} ms",
                num(s, &["reportDuringIngest", "duringP50Ms"]),
                num(s, &["reportDuringIngest", "duringMaxMs"])
            ),
            "< 50 ms".to_owned(),
            format!(
                "before {:.1} ms, after {:.1} ms with {} activities in the last hour; ingest achieved {:.0}/s; {} samples",
                num(s, &["reportDuringIngest", "beforeMs"]),
                num(s, &["reportDuringIngest", "afterMs"]),
                s["reportDuringIngest"]["openHourActivities"],
                num(s, &["reportDuringIngest", "ingest", "itemsPerSec"]),
                s["reportDuringIngest"]["duringSamples"]
            ),
        ),
        (
            small_report.as_str(),
            format!(
                "p50 {:.1} ms",
                num(s, &["report1M", "tenantWide", "latencyMs", "p50"])
            ),
            "< 500 ms".to_owned(),
            report_comparison("report1M"),
        ),
        (
            big_report.as_str(),
            format!(
                "p50 {:.1} ms",
                num(s, &["report10M", "tenantWide", "latencyMs", "p50"])
            ),
            "< 50 ms".to_owned(),
            report_comparison("report10M"),
        ),
        (
            "Enrich a batch of 100 through the component",
            component_ratio("enrichBatch100"),
            "≤ 1.5× native".to_owned(),
            component_times("enrichBatch100"),
        ),
        (
            "Check a batch of 100 through the component",
            component_ratio("checkBatch100"),
            "≤ 1.5× native".to_owned(),
            component_times("checkBatch100"),
        ),
        (
            "Resident memory per tenant",
            format!("{:.1} KiB", num(s, &["memory", "perTenantKiB"])),
            "≤ 100 KB".to_owned(),
            format!("{} tenants × 200 users", s["memory"]["tenants"]),
        ),
    ];
    let mut out = String::new();
    if s["machine"]["quiet"] == false {
        out.push_str(&format!(
            "**Not a figure: the machine was busy ({:.0} % CPU in use before the run).**\n\n",
            num(s, &["machine", "cpuBusyBeforeRun"]) * 100.0
        ));
    }
    out.push_str("| figure | measured | goal | comparison (same run) |\n|---|---|---|---|\n");
    for (a, b, c, d) in rows {
        out.push_str(&format!("| {a} | {b} | {c} | {d} |\n"));
    }
    out.push('\n');
    out.push_str(&parts_table(&s["ingestParts"]));
    out
}

/// The writer's per-activity work by part (µs), SQLite beside PostgreSQL, then what
/// each index of `activities` adds on SQLite.
fn parts_table(p: &Value) -> String {
    let us = |run: &Value, part: &str| num(run, &["perActivity", part, "us"]);
    let mut names: Vec<&String> = ["sqlite", "postgres"]
        .iter()
        .filter_map(|b| p[*b]["perActivity"].as_object())
        .flat_map(|m| m.keys())
        .collect();
    names.sort();
    names.dedup();
    let mut out = String::from(
        "| part of the writer's work | SQLite µs/activity | PostgreSQL µs/activity |\n|---|---:|---:|\n",
    );
    for name in names {
        out.push_str(&format!(
            "| {name} | {:.2} | {:.2} |\n",
            us(&p["sqlite"], name),
            us(&p["postgres"], name)
        ));
    }
    out.push_str(&format!(
        "| **total** | **{:.1}** | **{:.1}** |\n\n",
        num(&p["sqlite"], &["totalUs"]),
        num(&p["postgres"], &["totalUs"])
    ));
    out.push_str("| index of `activities` (SQLite) | its cost, µs/activity (median of the activity rows' time) | total without it |\n|---|---:|---:|\n");
    let (all_rows, all) = (
        num(&p["sqlite"], &["activityRowsMedianUs"]),
        num(&p["sqlite"], &["totalUs"]),
    );
    for index in ACTIVITY_INDEXES {
        let run = &p["sqliteWithout"][*index];
        out.push_str(&format!(
            "| `{index}` | {:.2} | {:.1} µs (all: {all:.1}) |\n",
            all_rows - num(run, &["activityRowsMedianUs"]),
            num(run, &["totalUs"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_machine_is_refused_unless_allowed_and_the_table_says_so() {
        assert!(quiet(0.02, false).expect("quiet"));
        let refused = quiet(0.5, false).expect_err("refused");
        assert!(refused.to_string().contains("busy: 50 %"), "{refused}");
        assert!(!quiet(0.5, true).expect("allowed"));
        let summary = json!({ "machine": { "quiet": false, "cpuBusyBeforeRun": 0.5 } });
        assert!(table(&summary).starts_with("**Not a figure: the machine was busy (50 %"));
    }

    #[test]
    fn an_index_costs_what_the_activity_rows_save_without_it() {
        let run = |rows: f64, total: f64| {
            json!({ "totalUs": total, "perActivity": {
                "INSERT activities": { "us": rows }, "sealing and planning": { "us": 30.0 } } })
        };
        // Three runs each; the median run is chosen by its total, the rows' time is
        // the median of the rows' times.
        let runs = |rows: f64, total: f64| {
            median_run(vec![
                run(rows + 9.0, total + 1.0),
                run(rows, total - 5.0),
                run(rows - 1.0, total),
            ])
        };
        let mut without = serde_json::Map::new();
        for (i, index) in ACTIVITY_INDEXES.iter().enumerate() {
            without.insert((*index).into(), runs(40.0 - i as f64, 90.0 - i as f64));
        }
        let parts = json!({ "sqlite": runs(40.0, 90.0), "postgres": runs(50.0, 120.0),
                            "sqliteWithout": without });
        let table = parts_table(&parts);
        assert!(
            table.contains("| sealing and planning | 30.00 | 30.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| **total** | **90.0** | **120.0** |"),
            "{table}"
        );
        assert!(
            table.contains("| `activities_by_user` | 2.00 | 88.0 µs (all: 90.0) |"),
            "{table}"
        );
    }

    #[test]
    fn the_busy_share_is_a_fraction_of_the_machine() {
        let busy = cpu_busy().expect("/proc/stat");
        assert!((0.0..=1.0).contains(&busy), "{busy}");
    }
}
