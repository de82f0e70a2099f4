//! `crm-host bench …`: helpers `cargo xtask bench` drives to measure the figures in
//! BENCHMARKS.md — seeding realistic data fast, the raw rusqlite insert the ingest path
//! is compared with, many tenants for the memory figure, and an upstream stub.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crm_core::directory::DirectorySpec;
use crm_core::{Credits, TenantPolicy, Timestamp};
use crm_store::keys::KeyScope;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::parse_location;
use crate::engine::{NativeEngine, RawActivity, SharedEngine, Tenant};
use crate::service::{App, admin, clock};
use crate::store::{IngestItem, Location, Store};

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Fill a tenant with realistic activity over the last days, in-process.
    Seed {
        #[arg(long, value_parser = parse_location)]
        db: Location,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        activities: u64,
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 200)]
        users: usize,
    },
    /// Insert enriched activity rows with plain rusqlite (the same rows, indexes and
    /// `synchronous = FULL` as the store): the reference for the ingest figure.
    RawInsert {
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        /// Rows per transaction.
        #[arg(long, default_value_t = 5_000)]
        batch: usize,
    },
    /// Create tenants with synthetic directories; print their ids and admin keys (JSON).
    Tenants {
        #[arg(long, value_parser = parse_location)]
        db: Location,
        #[arg(long, default_value_t = 1_000)]
        count: usize,
        #[arg(long, default_value_t = 200)]
        users: usize,
    },
    /// What each part of the writer's per-activity work costs (statements by table,
    /// sealing, commit), optionally without one index.
    IngestParts(super::ingest_parts::IngestPartsArgs),
    /// Echo loopback TCP messages (the floor under an HTTP round trip); runs until killed.
    EchoServer(super::tcp_floor::EchoServerArgs),
    /// Time sequential round trips through `echo-server`; prints their percentiles (JSON).
    EchoClient(super::tcp_floor::EchoClientArgs),
    /// An upstream batch API that accepts everything and counts it.
    UpstreamStub {
        #[arg(long)]
        listen: SocketAddr,
    },
}

/// Operations, weights and entity types of synthetic traffic.
const WORK: &[(&str, &str)] = &[
    ("crm.leads.read", "lead"),
    ("crm.leads.update", "lead"),
    ("crm.leads.create", "lead"),
    ("crm.contacts.read", "contact"),
    ("crm.contacts.update", "contact"),
    ("crm.tickets.update", "ticket"),
    ("crm.reports.read", "report"),
];
const LOCATIONS: &[&str] = &["Berlin", "Paris", "New York", "Austin", "Lisbon", "Tokyo"];
const DEPARTMENTS: usize = 12;

/// A directory of `users` users in nested departments with a few roles.
pub fn synthetic_directory(users: usize) -> DirectorySpec {
    let departments: Vec<Value> = (0..DEPARTMENTS)
        .map(|d| {
            let parent = (d >= 3).then(|| format!("dept-{}", d % 3));
            json!({ "id": format!("dept-{d}"), "name": format!("Department {d}"), "organizationId": "org", "parentId": parent })
        })
        .collect();
    let users: Vec<Value> = (0..users)
        .map(|u| {
            json!({ "id": format!("user-{u:04}"), "name": format!("User {u}"), "email": format!("u{u}@example.test"),
                    "departmentId": format!("dept-{}", u % DEPARTMENTS), "roles": [if u % 10 == 0 { "manager" } else { "member" }] })
        })
        .collect();
    serde_json::from_value(json!({
        "organizations": [{ "id": "org", "name": "Bench Corp" }],
        "departments": departments,
        "roles": [
            { "id": "member", "name": "Member", "permissions": ["crm.leads.*", "crm.contacts.*", "crm.tickets.*", "!crm.leads.delete"] },
            { "id": "manager", "name": "Manager", "permissions": ["crm.*"] }
        ],
        "users": users,
    }))
    .expect("the synthetic directory is valid")
}

fn policy() -> TenantPolicy {
    serde_json::from_value(json!({ "timezone": "Europe/Berlin",
        "prices": { "default": "0.1", "prices": { "crm.leads.create": "2.5", "crm.leads.*": "0.5" } } }))
    .expect("the bench policy is valid")
}

/// One synthetic activity input; each user has two addresses and works from two places.
fn activity(rng: &mut StdRng, users: usize, at: i64) -> Value {
    let u = rng.random_range(0..users);
    let (op, entity) = *WORK.choose(rng).expect("not empty");
    json!({ "userId": format!("user-{u:04}"), "operation": op, "entityType": entity,
            "entityId": format!("{entity}-{}", rng.random_range(1..50_000)),
            "sessionId": format!("s-{u}-{}", at / 3_600_000),
            "occurredAt": Timestamp::from_millis(at).expect("in range"),
            "metadata": { "source": "bench" },
            "compliance": { "userAgent": "bench/1", "location": LOCATIONS[(u + usize::from(rng.random_bool(0.2))) % LOCATIONS.len()],
                            "authenticationMethod": if rng.random_bool(0.9) { "sso" } else { "password" } } })
}

/// The client address of user `u`: two per user.
fn address(rng: &mut StdRng, u: usize) -> String {
    format!(
        "10.{}.{}.{}",
        u / 250,
        u % 250,
        1 + usize::from(rng.random_bool(0.3))
    )
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Seed {
            db,
            tenant,
            activities,
            days,
            users,
        } => seed(&db, &tenant, activities, days, users).await,
        BenchCommand::RawInsert { db, rows, batch } => raw_insert(&db, rows, batch),
        BenchCommand::Tenants { db, count, users } => tenants(&db, count, users).await,
        BenchCommand::IngestParts(args) => super::ingest_parts::run(args).await,
        BenchCommand::EchoServer(args) => {
            tokio::task::spawn_blocking(move || super::tcp_floor::serve(&args)).await?
        }
        BenchCommand::EchoClient(args) => {
            tokio::task::spawn_blocking(move || super::tcp_floor::measure(&args)).await?
        }
        BenchCommand::UpstreamStub { listen } => upstream_stub(listen).await,
    }
}

/// A store with the bench tenant (policy, `users` synthetic users, ample credits),
/// created unless it exists, and the service over it.
pub async fn bench_tenant(
    db: &Location,
    tenant_id: &str,
    users: usize,
) -> anyhow::Result<(App, Arc<Tenant>)> {
    let engine: SharedEngine = Arc::new(NativeEngine);
    let store = Store::open(db)?;
    let app = App::new(store.clone(), engine);
    if store.tenant(tenant_id).await.is_err() {
        admin::create_tenant_in(
            &store,
            tenant_id,
            tenant_id,
            &policy(),
            &synthetic_directory(users),
            Credits::parse("1000000000")?,
        )
        .await?;
    }
    let tenant = app.tenants.get(tenant_id, None).await?;
    Ok((app, tenant))
}

/// Synthetic traffic, enriched as a request would be: the same seed gives the same
/// activities.
pub struct Synthetic {
    rng: StdRng,
    users: usize,
}

impl Synthetic {
    pub fn new(users: usize) -> Synthetic {
        Synthetic {
            rng: StdRng::seed_from_u64(7),
            users,
        }
    }

    /// One activity occurring at `at`, enriched at `now` for one of the users.
    pub fn item(
        &mut self,
        app: &App,
        tenant: &Tenant,
        now: Timestamp,
        at: i64,
        input_hash: String,
    ) -> anyhow::Result<IngestItem> {
        let input = activity(&mut self.rng, self.users, at);
        let u: usize = input["userId"]
            .as_str()
            .and_then(|s| s[5..].parse().ok())
            .unwrap_or(0);
        let ip = address(&mut self.rng, u);
        let raw = RawActivity {
            input_json: input.to_string(),
            generated_id: app.ids.next(now),
        };
        let mut enriched =
            app.engine
                .enrich_batch(tenant, now, Some(&ip), std::slice::from_ref(&raw))?;
        let activity = enriched
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the engine answered no activity"))??;
        Ok(IngestItem {
            activity,
            input_hash,
        })
    }
}

/// Enriches and sends the batch through the store (chain, rollups, ledger), off HTTP.
async fn seed(
    db: &Location,
    tenant_id: &str,
    total: u64,
    days: u32,
    users: usize,
) -> anyhow::Result<()> {
    let (app, tenant) = bench_tenant(db, tenant_id, users).await?;
    let now = clock::now();
    let span = i64::from(days) * crm_core::duration::DAY_MS;
    let mut synthetic = Synthetic::new(users);
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("seeding [{bar:40}] {pos}/{len} ({per_sec})")
            .expect("valid template"),
    );
    const BATCH: u64 = 5_000;
    let mut done = 0;
    while done < total {
        let n = BATCH.min(total - done);
        let items = (0..n)
            .map(|i| {
                let at = now.millis() - span + ((done + i) as i64 * span / total as i64);
                synthetic.item(&app, &tenant, now, at, format!("seed-{}", done + i))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        app.store
            .ingest(tenant.clone(), items, now.millis())
            .await?;
        done += n;
        bar.set_position(done);
    }
    bar.finish_and_clear();
    println!("{}", json!({ "tenant": tenant_id, "activities": done }));
    Ok(())
}

fn raw_insert(path: &PathBuf, rows: usize, batch: usize) -> anyhow::Result<()> {
    // The store creates the schema; the inserts below bypass it entirely.
    drop(Store::open(&Location::Sqlite(path.clone()))?);
    let dir = crm_core::engine::TenantSnapshot::from_json(
        "raw",
        1,
        &serde_json::to_string(&policy())?,
        &serde_json::to_string(&synthetic_directory(200))?,
    )?;
    let now = clock::now();
    let mut rng = StdRng::seed_from_u64(7);
    let mut activities = Vec::with_capacity(rows);
    let mut prev = crm_core::chain::GENESIS.to_owned();
    for i in 0..rows {
        let input = activity(&mut rng, 200, now.millis() - (rows - i) as i64 * 1_000);
        let mut a = dir.enrich_json(
            &input.to_string(),
            &format!("raw-{i:09}"),
            now,
            Some("10.0.0.1"),
        )?;
        crm_core::chain::seal(&mut a, i as u64 + 1, &prev);
        prev.clone_from(&a.hash);
        activities.push(a);
    }
    let statements: Vec<crm_store::Statement> = activities
        .iter()
        .map(|a| crm_store::activities::insert(crm_store::Dialect::Sqlite, a, "h", now.millis()))
        .collect::<Result<_, _>>()?;
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let start = Instant::now();
    for chunk in statements.chunks(batch) {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(&chunk[0].sql)?;
            for st in chunk {
                stmt.execute(rusqlite::params_from_iter(st.params.iter().map(
                    |v| match v {
                        crm_store::Value::Int(i) => rusqlite::types::Value::from(*i),
                        crm_store::Value::Text(t) => rusqlite::types::Value::from(t.clone()),
                    },
                )))?;
            }
        }
        tx.commit()?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let bytes: usize = activities
        .iter()
        .map(|a| serde_json::to_string(a).map_or(0, |s| s.len()))
        .sum();
    println!(
        "{}",
        json!({ "rows": rows, "batch": batch, "seconds": seconds, "rowsPerSec": rows as f64 / seconds,
                "avgBodyBytes": bytes / rows.max(1) })
    );
    Ok(())
}

async fn tenants(db: &Location, count: usize, users: usize) -> anyhow::Result<()> {
    let store = Store::open(db)?;
    let directory = synthetic_directory(users);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("t{i:05}");
        admin::create_tenant_in(
            &store,
            &id,
            &id,
            &policy(),
            &directory,
            Credits::parse("1000")?,
        )
        .await?;
        let key = admin::create_key_in(&store, &id, &[KeyScope::Admin], Some("bench")).await?;
        out.push(json!({ "tenant": id, "key": key }));
    }
    println!("{}", Value::Array(out));
    Ok(())
}

async fn upstream_stub(listen: SocketAddr) -> anyhow::Result<()> {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/api/activities/batch",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let counter = counter.clone();
            async move {
                let n = body["activities"].as_array().map_or(0, Vec::len);
                counter.fetch_add(n as u64, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("upstream stub on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
