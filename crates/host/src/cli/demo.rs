//! `crm-host demo`: a working system in one command, on embedded SQLite — a demo
//! tenant with nested departments, ~50 users and roles, a month of activity, an API key.

use crm_core::duration::DAY_MS;
use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::Datelike;
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
use crate::service::ingest;
use crate::store::Location;
use crm_api::ingest::Submission;
use crm_store::keys::KeyScope;

const DEMO_TENANT: &str = "demo";
/// Activities are sent in batches of this size, like a busy CRM backend would.
const DEMO_BATCH: usize = 250;

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
    #[command(flatten)]
    fanout: super::config::FanoutArgs,
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

/// Job titles by role, so the directory reads like a real one.
fn title(role: &str) -> &'static str {
    match role {
        "role-sales-manager" => "Sales Manager",
        "role-sales-rep" => "Account Executive",
        "role-support" => "Support Agent",
        "role-engineer" => "Software Engineer",
        "role-marketing" => "Marketing Specialist",
        _ => "Administrator",
    }
}

/// The integration account: no mailbox, no title (directories have such accounts).
const SERVICE_ACCOUNT: &str = "svc-sync";

/// Department and role of demo user `i` (0-based): a sales-heavy company.
fn placement(i: usize) -> (&'static str, &'static str) {
    match i % 10 {
        0 | 1 => ("dept-sales-emea", "role-sales-rep"),
        2 => ("dept-sales-amer", "role-sales-rep"),
        3 => ("dept-sales", "role-sales-manager"),
        4 | 5 => ("dept-support-t1", "role-support"),
        6 => ("dept-support-t2", "role-support"),
        7 => ("dept-eng", "role-engineer"),
        8 => ("dept-marketing", "role-marketing"),
        _ if i == 9 => ("dept-eng", "role-admin"),
        _ => ("dept-support", "role-support"),
    }
}

fn directory() -> DirectorySpec {
    let departments: Vec<Value> = DEPARTMENTS
        .iter()
        .map(|(id, name, parent)| json!({ "id": id, "name": name, "organizationId": "org-acme", "parentId": parent }))
        .collect();
    let roles: Vec<Value> = ROLES
        .iter()
        .map(|(id, name, perms)| json!({ "id": id, "name": name, "permissions": perms }))
        .collect();
    let mut users: Vec<Value> = (0..DEMO_USERS)
        .map(|i| {
            let (dept, role) = placement(i);
            let name = format!("{} {}", FIRST[i % FIRST.len()], LAST[i / FIRST.len()]);
            json!({ "id": user_id(i), "name": name, "email": format!("user{}@acme.example", i + 1),
                    "title": title(role), "departmentId": dept, "roles": [role] })
        })
        .collect();
    users.push(
        json!({ "id": SERVICE_ACCOUNT, "name": "Contact sync (integration)",
                       "departmentId": "dept-eng", "roles": ["role-engineer"] }),
    );
    serde_json::from_value(json!({
        "organizations": [{ "id": "org-acme", "name": "Acme Corp" }],
        "departments": departments, "roles": roles, "users": users,
    }))
    .expect("the demo directory is valid")
}

const DEMO_USERS: usize = 50;

fn user_id(i: usize) -> String {
    format!("user-{:03}", i + 1)
}

fn policy() -> TenantPolicy {
    serde_json::from_value(json!({
        "timezone": DEMO_TIMEZONE,
        "prices": { "default": "0.1", "prices": {
            "crm.leads.create": "2.5", "crm.leads.*": "0.5", "crm.reports.export": "10", "crm.tickets.*": "0.2" } },
        "redactKeys": ["password", "ssn"],
    }))
    .expect("the demo policy is valid")
}

const DEMO_TIMEZONE: &str = "Europe/Berlin";

/// What a role's members do during a day: (operation, entity type, weight). Every entry
/// is allowed by the role, so denials come only from [`STRAY_OPERATIONS`].
fn workload(role: &str) -> &'static [(&'static str, &'static str, u32)] {
    match role {
        "role-sales-rep" => &[
            ("crm.leads.read", "lead", 40),
            ("crm.leads.update", "lead", 25),
            ("crm.leads.create", "lead", 15),
            ("crm.contacts.read", "contact", 20),
        ],
        "role-sales-manager" => &[
            ("crm.leads.read", "lead", 30),
            ("crm.leads.update", "lead", 10),
            ("crm.contacts.update", "contact", 10),
            ("crm.contacts.read", "contact", 20),
            ("crm.reports.read", "report", 25),
            ("crm.leads.create", "lead", 5),
        ],
        "role-support" => &[
            ("crm.tickets.update", "ticket", 45),
            ("crm.tickets.create", "ticket", 20),
            ("crm.tickets.close", "ticket", 15),
            ("crm.contacts.read", "contact", 20),
        ],
        "role-engineer" => &[
            ("crm.integrations.sync", "integration", 70),
            ("crm.reports.read", "report", 30),
        ],
        "role-marketing" => &[
            ("crm.campaigns.update", "campaign", 45),
            ("crm.campaigns.launch", "campaign", 10),
            ("crm.contacts.read", "contact", 35),
            ("crm.reports.export", "report", 10),
        ],
        _ => &[
            ("crm.reports.read", "report", 40),
            ("crm.reports.export", "report", 20),
            ("crm.leads.delete", "lead", 20),
            ("crm.integrations.sync", "integration", 20),
        ],
    }
}

/// Operations people try outside their role now and then (refused, as they should be).
const STRAY_OPERATIONS: &[(&str, &str)] = &[
    ("crm.leads.delete", "lead"),
    ("crm.reports.export", "report"),
    ("crm.integrations.configure", "integration"),
];
/// One attempt in this many is outside the user's role (a denial).
const STRAY_ONE_IN: u32 = 30;
/// One allowed operation in this many fails downstream (`failed`).
const FAILED_ONE_IN: u32 = 40;

/// Local office hours and their relative traffic: a morning ramp, a lunch dip, a quiet
/// evening.
const HOURS: &[(u32, u32)] = &[
    (7, 2),
    (8, 6),
    (9, 10),
    (10, 12),
    (11, 12),
    (12, 6),
    (13, 8),
    (14, 12),
    (15, 11),
    (16, 10),
    (17, 6),
    (18, 3),
    (19, 1),
    (20, 1),
];
/// One weekend activity for this many weekday ones.
const WEEKEND_ONE_IN: u32 = 12;

/// A moment in the last 30 days with a working-week rhythm in the demo's timezone.
fn working_moment(rng: &mut StdRng, now_ms: i64) -> i64 {
    let tz = crm_core::report::ReportTz::parse(DEMO_TIMEZONE).expect("a known zone");
    let today = tz
        .local(crm_core::Timestamp::from_millis(now_ms).expect("now is in range"))
        .date();
    loop {
        let date = today - chrono::Days::new(rng.random_range(0..30));
        let weekend = matches!(date.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
        if weekend && !rng.random_ratio(1, WEEKEND_ONE_IN) {
            continue;
        }
        let (hour, _) = *HOURS
            .choose_weighted(rng, |h| h.1)
            .expect("weights are positive");
        let local = date
            .and_hms_opt(hour, rng.random_range(0..60), rng.random_range(0..60))
            .expect("valid time of day");
        let Some(at) = tz.instant(local) else {
            continue;
        };
        let ms = at.millis() + rng.random_range(0..1000);
        if ms <= now_ms {
            return ms;
        }
    }
}

fn activity(rng: &mut StdRng, n: usize, now_ms: i64) -> Value {
    // The integration account syncs around the clock; people work office hours.
    let service = rng.random_ratio(1, 20);
    let (user, role, at) = if service {
        let at = now_ms - rng.random_range(0..30 * DAY_MS);
        (SERVICE_ACCOUNT.to_owned(), "role-engineer", at)
    } else {
        let i = rng.random_range(0..DEMO_USERS);
        (user_id(i), placement(i).1, working_moment(rng, now_ms))
    };
    let (op, entity) = if service {
        ("crm.integrations.sync", "integration")
    } else if rng.random_ratio(1, STRAY_ONE_IN) {
        *STRAY_OPERATIONS.choose(rng).expect("not empty")
    } else {
        let (op, entity, _) = *workload(role)
            .choose_weighted(rng, |w| w.2)
            .expect("weights are positive");
        (op, entity)
    };
    let location = *["Berlin", "Berlin", "Paris", "New York", "Austin", "Lisbon"]
        .choose(rng)
        .expect("not empty");
    let auth = if service {
        "api_key"
    } else {
        *["sso", "sso", "sso", "password"]
            .choose(rng)
            .expect("not empty")
    };
    json!({
        "id": format!("demo-{n:06}"),
        "userId": user,
        "operation": op,
        "outcome": if rng.random_ratio(1, FAILED_ONE_IN) { "failed" } else { "success" },
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
    let mut config = ServerConfig::new(Location::Sqlite(db), args.listen);
    config.engine = args.engine;
    config.fanout = args.fanout.into_config();
    config.checkpoint_key = Some(dir.join("checkpoint.key"));
    if config.fanout.upstream_url.is_some() && !config.fanout.spool_dir.is_absolute() {
        config.fanout.spool_dir = dir.join("spool");
    }
    let redis = config.fanout.redis_url.clone();
    let running = server::start(&config).await?;
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
            let tenant = app.tenants.get(DEMO_TENANT, None).await?;
            ingest::ingest(&app, &tenant, &Submission::Batch(batch), Some(&ip), None).await?;
            n += size;
            bar.set_position(n as u64);
        }
        bar.finish();
    }
    let key =
        admin::create_key_in(&app.store, DEMO_TENANT, &[KeyScope::Admin], Some("demo")).await?;
    let url = running.url();
    let token = crate::service::tokens::issue(
        &app,
        DEMO_TENANT,
        crm_core::viewer_token::TokenScope::Tenant,
        crm_core::viewer_token::MAX_TTL_MS,
    )
    .await?
    .token;
    println!();
    println!("CRM activity engine demo is running at {url}");
    println!("Dashboard (read-only viewer link, valid 24 h): {url}/#token={token}");
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
    if let Some(redis) = redis {
        println!("Activities stream to Redis; watch them arrive with:");
        println!("  crm-host tail --redis-url {redis} --tenant {DEMO_TENANT}");
        println!();
    }
    println!("Press Ctrl-C to stop.");
    tokio::select! {
        result = running.wait() => result?,
        () = super::shutdown_signal() => {},
    }
    drop(temp);
    Ok(())
}
