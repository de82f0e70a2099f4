//! `crm-host demo`: a working system in one command, on embedded SQLite — a demo
//! tenant with nested departments, ~50 users and roles, a month of activity, an API key.

use std::net::SocketAddr;
use std::path::PathBuf;

use crm_core::directory::DirectorySpec;
use crm_core::{Credits, TenantPolicy};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::engine::EngineKind;
use crate::server::{self, ServerConfig};
use crate::service::admin;
use crate::service::ingest::{self, Submission};
use crate::store::Scope;

const DEMO_TENANT: &str = "demo";
/// Activities are sent in batches of this size, like a busy CRM backend would.
const DEMO_BATCH: usize = 250;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to keep the database; a temporary folder (deleted on exit) when absent.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = super::default_listen())]
    listen: SocketAddr,
    /// Activities to generate over the last 30 days.
    #[arg(long, default_value_t = 3000)]
    activities: usize,
    #[arg(long, value_enum, default_value_t = EngineKind::Component)]
    engine: EngineKind,
    /// Seed for the generated data, so two demos look alike.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

const DEPARTMENTS: &[(&str, &str, Option<&str>)] = &[
    ("dept-sales", "Sales", None),
    ("dept-sales-emea", "EMEA Sales", Some("dept-sales")),
    ("dept-sales-amer", "Americas Sales", Some("dept-sales")),
    ("dept-support", "Support", None),
    ("dept-support-t1", "Support Tier 1", Some("dept-support")),
    ("dept-support-t2", "Support Tier 2", Some("dept-support-t1")),
    ("dept-eng", "Engineering", None),
    ("dept-marketing", "Marketing", None),
];

const ROLES: &[(&str, &str, &[&str])] = &[
    (
        "role-sales-manager",
        "Sales Manager",
        &[
            "crm.leads.*",
            "crm.contacts.*",
            "crm.reports.read",
            "!crm.leads.delete",
        ],
    ),
    (
        "role-sales-rep",
        "Sales Rep",
        &[
            "crm.leads.create",
            "crm.leads.read",
            "crm.leads.update",
            "crm.contacts.read",
        ],
    ),
    (
        "role-support",
        "Support Agent",
        &["crm.tickets.*", "crm.contacts.read"],
    ),
    (
        "role-engineer",
        "Engineer",
        &["crm.integrations.*", "crm.reports.read"],
    ),
    (
        "role-marketing",
        "Marketer",
        &["crm.campaigns.*", "crm.contacts.read", "crm.reports.export"],
    ),
    ("role-admin", "Administrator", &["*"]),
];

const FIRST: &[&str] = &[
    "Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun",
];
const LAST: &[&str] = &["Novak", "Okafor", "Park", "Quinn", "Rossi"];

fn directory() -> DirectorySpec {
    let departments: Vec<Value> = DEPARTMENTS
        .iter()
        .map(|(id, name, parent)| json!({ "id": id, "name": name, "organizationId": "org-acme", "parentId": parent }))
        .collect();
    let roles: Vec<Value> = ROLES
        .iter()
        .map(|(id, name, perms)| json!({ "id": id, "name": name, "permissions": perms }))
        .collect();
    let users: Vec<Value> = (0..50)
        .map(|i| {
            let (dept, role) = match i % 10 {
                0 | 1 => ("dept-sales-emea", "role-sales-rep"),
                2 => ("dept-sales-amer", "role-sales-rep"),
                3 => ("dept-sales", "role-sales-manager"),
                4 | 5 => ("dept-support-t1", "role-support"),
                6 => ("dept-support-t2", "role-support"),
                7 => ("dept-eng", "role-engineer"),
                8 => ("dept-marketing", "role-marketing"),
                _ => if i == 9 { ("dept-eng", "role-admin") } else { ("dept-support", "role-support") },
            };
            let name = format!("{} {}", FIRST[i % FIRST.len()], LAST[i / FIRST.len()]);
            json!({ "id": format!("user-{:03}", i + 1), "name": name,
                    "email": format!("user{}@acme.example", i + 1), "departmentId": dept, "roles": [role] })
        })
        .collect();
    serde_json::from_value(json!({
        "organizations": [{ "id": "org-acme", "name": "Acme Corp" }],
        "departments": departments, "roles": roles, "users": users,
    }))
    .expect("the demo directory is valid")
}

fn policy() -> TenantPolicy {
    serde_json::from_value(json!({
        "timezone": "Europe/Berlin",
        "prices": { "default": "0.1", "prices": {
            "crm.leads.create": "2.5", "crm.leads.*": "0.5", "crm.reports.export": "10", "crm.tickets.*": "0.2" } },
        "redactKeys": ["password", "ssn"],
    }))
    .expect("the demo policy is valid")
}

const OPERATIONS: &[(&str, &str)] = &[
    ("crm.leads.create", "lead"),
    ("crm.leads.read", "lead"),
    ("crm.leads.update", "lead"),
    ("crm.leads.delete", "lead"),
    ("crm.contacts.read", "contact"),
    ("crm.tickets.update", "ticket"),
    ("crm.tickets.create", "ticket"),
    ("crm.reports.export", "report"),
    ("crm.campaigns.launch", "campaign"),
    ("crm.integrations.sync", "integration"),
];

fn activity(rng: &mut StdRng, n: usize, now_ms: i64) -> Value {
    let (op, entity) = *OPERATIONS.choose(rng).expect("not empty");
    let user = format!("user-{:03}", rng.random_range(1..=50));
    let at = now_ms - rng.random_range(0..30 * DAY_MS);
    let location = *["Berlin", "Paris", "New York", "Austin", "Lisbon"]
        .choose(rng)
        .expect("not empty");
    let auth = *["sso", "sso", "password", "api_key"]
        .choose(rng)
        .expect("not empty");
    json!({
        "id": format!("demo-{n:06}"),
        "userId": user,
        "operation": op,
        "outcome": if rng.random_ratio(1, 25) { "failed" } else { "success" },
        "entityType": entity,
        "entityId": format!("{entity}-{}", rng.random_range(1..500)),
        "sessionId": format!("sess-{}", rng.random_range(1..200)),
        "occurredAt": crm_core::Timestamp::from_millis(at).expect("within range"),
        "metadata": { "source": "demo", "channel": if rng.random_bool(0.7) { "web" } else { "mobile" } },
        "compliance": { "userAgent": "DemoCRM/1.0", "location": location, "authenticationMethod": auth },
    })
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => temp.path().to_owned(),
    };
    let db = dir.join("crm-demo.db");
    let fresh = !db.exists();
    eprintln!(
        "Starting the {:?} engine on {} ...",
        args.engine,
        db.display()
    );
    let running = server::start(&ServerConfig {
        db,
        listen: args.listen,
        engine: args.engine,
        client_ip_header: None,
    })
    .await?;
    let app = running.app.clone();
    if fresh {
        admin::create_tenant_in(
            &app.store,
            DEMO_TENANT,
            "Acme Corp (demo)",
            &policy(),
            &directory(),
            Credits::parse("100000")?,
        )
        .await?;
        let mut rng = StdRng::seed_from_u64(args.seed);
        let now_ms = crate::service::clock::now().millis();
        let bar = ProgressBar::new(args.activities as u64).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec})")
                .expect("valid template"),
        );
        bar.set_message("Recording demo activities");
        let mut n = 0;
        while n < args.activities {
            let size = DEMO_BATCH.min(args.activities - n);
            let batch: Vec<Value> = (n..n + size)
                .map(|i| activity(&mut rng, i, now_ms))
                .collect();
            let ip = format!("192.0.2.{}", rng.random_range(1..255));
            ingest::ingest(&app, DEMO_TENANT, &Submission::Batch(batch), Some(&ip)).await?;
            n += size;
            bar.set_position(n as u64);
        }
        bar.finish();
    }
    let key = admin::create_key_in(&app.store, DEMO_TENANT, &[Scope::Admin], Some("demo")).await?;
    let url = running.url();
    println!();
    println!("CRM activity engine demo is running at {url}");
    println!("API key (admin, tenant `{DEMO_TENANT}`): {key}");
    println!();
    println!("Try:");
    println!(
        "  curl -H 'Authorization: Bearer {key}' '{url}/v1/users/user-004/activities?limit=5'"
    );
    println!(
        "  curl -H 'Authorization: Bearer {key}' '{url}/v1/reports/departments/dept-sales?since=30d&groupBy=week'"
    );
    println!("  curl -H 'Authorization: Bearer {key}' '{url}/v1/credits/balance'");
    println!("  curl -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\");
    println!(
        "       -d '{{\"userId\":\"user-004\",\"permission\":\"crm.leads.delete\"}}' {url}/v1/permissions/check"
    );
    println!();
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        result = running.wait() => result?,
        () = super::shutdown_signal() => {},
    }
    drop(temp);
    Ok(())
}
