//! Every statement crm-store renders for PostgreSQL names its tenant, so that a
//! distributed PostgreSQL (Citus, `docs/distribution.md`) routes it to one shard: the
//! walk over every operation runs on a database whose server logs each statement, and
//! each logged statement must filter or insert by tenant — or be one of the few
//! cross-tenant statements listed below, each with why it may be.

use std::collections::BTreeSet;

use crm_host::engine::EngineKind;
use crm_host::store::Location;
use regex::Regex;

use crate::openapi::walk_every_operation;
use crate::support::TestServer;

/// Statements that are not about one tenant, by a fragment of their text, and why
/// (`docs/distribution.md` says how each runs distributed).
const CROSS_TENANT: &[(&str, &str)] = &[
    (
        "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = $1",
        "a credential names its tenant only once it is found: the lookup is by key hash",
    ),
    (
        "FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <=",
        "the webhook sender's wake-up: is anything due on any tenant",
    ),
    (
        "FROM credit_alerts a LEFT JOIN sink_cursors c",
        "a relay's scan for the tenants with alert events it has not delivered",
    ),
];

/// Statements of the server's own bookkeeping: transactions, the schema and its
/// migrations (whose files start with a comment) under their lock, the readiness probe.
fn is_bookkeeping(sql: &str) -> bool {
    if sql.starts_with("--") || sql.contains("schema_version") || sql.contains("pg_advisory") {
        return true;
    }
    let head = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        head.as_str(),
        "BEGIN"
            | "COMMIT"
            | "ROLLBACK"
            | "SAVEPOINT"
            | "RELEASE"
            | "SET"
            | "CREATE"
            | "ALTER"
            | "DROP"
            | "COMMENT"
            | "START"
            | "SHOW"
            | "LOCK"
    ) || sql == "SELECT 1"
}

/// The statements of a PostgreSQL server log, whitespace collapsed: `statement:` and
/// `execute <name>:` entries, continued on the lines that follow them.
fn logged_statements(log: &str) -> BTreeSet<String> {
    let entry = Regex::new(r"^\d{4}-\d\d-\d\d ").expect("regex");
    let statement = Regex::new(r"LOG:\s+(?:statement|execute [^:]+):\s(.*)$").expect("regex");
    let mut out = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        if entry.is_match(line) {
            if let Some(s) = current.take() {
                out.insert(s.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            current = statement.captures(line).map(|c| c[1].to_owned());
        } else if let Some(s) = current.as_mut() {
            s.push(' ');
            s.push_str(line);
        }
    }
    if let Some(s) = current {
        out.insert(s.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    out
}

/// Whether the statement filters, updates, deletes or inserts by its tenant.
fn names_its_tenant(sql: &str) -> bool {
    let by_tenant = Regex::new(r"(?i)\btenant_id\s*(=\s*\$\d|IN\s*\()").expect("regex");
    let tenant_row = Regex::new(r"(?i)\bFROM tenants\b.*\bWHERE\s+id\s*=\s*\$\d|\bUPDATE tenants\b.*\bWHERE\s+id\s*=\s*\$\d|INSERT INTO tenants\s*\(\s*id\b").expect("regex");
    let insert = Regex::new(r"(?i)^(INSERT INTO|COPY)\s+\w+\s*\(([^)]*)\)").expect("regex");
    by_tenant.is_match(sql)
        || tenant_row.is_match(sql)
        || insert
            .captures(sql)
            .is_some_and(|c| c[2].split(',').any(|col| col.trim() == "tenant_id"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_statement_on_postgres_routes_to_one_tenant() {
    let (url, log) = crm_testkit::postgres::logged_database();
    let s = TestServer::start_at_location(Location::Postgres(url), EngineKind::Native).await;
    walk_every_operation(&s).await;
    drop(s);
    let text = std::fs::read_to_string(&log).expect("the server's log");
    let statements = logged_statements(&text);
    assert!(
        statements
            .iter()
            .any(|s| s.starts_with("INSERT INTO activities")),
        "the log holds the walk's statements: {} read",
        statements.len()
    );
    let mut unrouted: Vec<&String> = statements
        .iter()
        .filter(|s| !is_bookkeeping(s) && !names_its_tenant(s))
        .filter(|s| {
            !CROSS_TENANT
                .iter()
                .any(|(fragment, _)| s.contains(fragment))
        })
        .collect();
    unrouted.dedup();
    assert!(
        unrouted.is_empty(),
        "statements that name no tenant:\n{}",
        unrouted
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Each allowance is still needed: a listed statement that no longer runs is dropped
    // from the list.
    for (fragment, why) in CROSS_TENANT {
        assert!(
            statements.iter().any(|s| s.contains(fragment)),
            "`{fragment}` ({why}) no longer runs: remove it from CROSS_TENANT"
        );
    }
}
