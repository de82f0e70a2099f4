//! `cargo xtask move-tenant`: moves a tenant's rows from its D1 shard to another,
//! through `wrangler d1 execute` (local or remote), and verifies the copy before the
//! tenant is switched and its old rows are removed:
//!
//! 1. **Freeze.** `tenant_shards.moving = 1` in the control database: every isolate
//!    that reads the placement refuses the tenant's requests (503, `Retry-After`) and
//!    retries its queued packets. Then wait out the isolates' placement cache, so
//!    none still writes to the old shard.
//! 2. **Copy** every table holding the tenant's rows (found by its `tenant_id`
//!    column; `tenants` by `id`), in pages in primary-key order, values as SQLite's
//!    `quote()` writes them so money and ids travel exactly. A copy left by an earlier
//!    attempt on the target is removed first.
//! 3. **Verify** on the target: every table holds as many of the tenant's rows as the
//!    source, the archived segments link up, and the hot chain verifies from its
//!    anchor to the recorded head (`crm_core::chain::Verifier`, the audit's own check).
//! 4. **Switch** the placement and clear `moving`; then remove the old rows.
//!
//! A failure before the switch leaves the tenant frozen on its old shard with its rows
//! intact (run the command again, or clear `moving` by hand); nothing is deleted
//! before the copy verified. Queue reservations and dead letters move with the tenant,
//! and packets still queued are written to the new shard when they are retried. R2
//! objects are shared by all shards and stay where they are. A webhook or upstream
//! delivery made from the old shard during the move may be made again from the new
//! one (delivery is at least once; every event carries its id).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Tables that are the control database's own, never a tenant's rows to move.
const CONTROL_TABLES: [&str; 3] = ["tenant_shards", "key_directory", "d1_migrations"];

/// Rows read per page (D1 answers stay far below their size cap).
const PAGE_ROWS: usize = 500;

/// SQL text per statement written to the target: D1 refuses statements over 100 KB.
const MAX_STATEMENT_BYTES: usize = 90_000;

/// The worker's placement cache (`crates/worker/src/shards.rs`, `CACHE_MS`) and a margin.
const DEFAULT_SETTLE: Duration = Duration::from_secs(65);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tenant to move.
    #[arg(long)]
    tenant: String,
    /// The shard to move it to (its D1 binding is `DB` for 0, `DB_n` otherwise).
    #[arg(long)]
    to: u32,
    /// wrangler.toml of the deployment.
    #[arg(long, default_value = "wrangler.toml")]
    config: PathBuf,
    /// Local state of `wrangler dev` (`--persist-to`); without it, the remote databases.
    #[arg(long)]
    persist_to: Option<PathBuf>,
    /// Seconds to wait after freezing, for every isolate's placement cache to expire
    /// (the worker caches placements 60 s, less with `PLACEMENT_CACHE_MS`).
    #[arg(long)]
    settle_seconds: Option<u64>,
}

/// How the command reaches D1.
struct Wrangler {
    bin: PathBuf,
    config: PathBuf,
    persist_to: Option<PathBuf>,
}

fn binding(shard: u32) -> String {
    match shard {
        0 => "DB".to_owned(),
        n => format!("DB_{n}"),
    }
}

/// `value` as an SQL string literal.
fn text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `name` as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Wrangler {
    fn run(&self, shard: u32, what: &[&str]) -> Result<Value> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["d1", "execute", &binding(shard), "--config"])
            .arg(&self.config)
            .arg("--json");
        match &self.persist_to {
            Some(dir) => cmd.arg("--local").arg("--persist-to").arg(dir),
            None => cmd.arg("--remote"),
        };
        cmd.args(what)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("NO_UPDATE_NOTIFIER", "1");
        let out = cmd.output().context("running wrangler")?;
        if !out.status.success() {
            bail!(
                "wrangler d1 execute on shard {shard} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).context("wrangler's JSON output")
    }

    /// The rows of one query, as JSON objects.
    fn query(&self, shard: u32, sql: &str) -> Result<Vec<Value>> {
        let out = self.run(shard, &["--command", sql])?;
        Ok(out
            .get(0)
            .and_then(|r| r.get("results"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Runs statements from a file (one wrangler call however many there are).
    fn execute(&self, shard: u32, statements: &[String]) -> Result<()> {
        if statements.is_empty() {
            return Ok(());
        }
        let file = std::env::temp_dir().join(format!("crm-move-{}.sql", std::process::id()));
        std::fs::write(&file, statements.join("\n"))?;
        let result = self.run(shard, &["--file", &file.to_string_lossy()]);
        let _ = std::fs::remove_file(&file);
        result.map(drop)
    }
}

/// A table holding tenants' rows: its tenant column and columns, primary key first.
struct Table {
    name: String,
    tenant_column: &'static str,
    columns: Vec<String>,
    key: Vec<String>,
    /// Tables its foreign keys refer to: copied before it, emptied after it.
    parents: Vec<String>,
}

impl Table {
    fn of_tenant(&self, tenant: &str) -> String {
        format!("{} = {}", ident(self.tenant_column), text(tenant))
    }
}

fn tables(w: &Wrangler, shard: u32) -> Result<Vec<Table>> {
    let names = w.query(
        shard,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name",
    )?;
    let mut out = Vec::new();
    for row in names {
        let Some(name) = row.get("name").and_then(Value::as_str) else {
            continue;
        };
        if CONTROL_TABLES.contains(&name) {
            continue;
        }
        let info = w.query(shard, &format!("PRAGMA table_info({})", ident(name)))?;
        let mut columns = Vec::new();
        let mut key: Vec<(i64, String)> = Vec::new();
        for c in &info {
            let column = c.get("name").and_then(Value::as_str).unwrap_or_default();
            columns.push(column.to_owned());
            let pk = c.get("pk").and_then(Value::as_i64).unwrap_or(0);
            if pk > 0 {
                key.push((pk, column.to_owned()));
            }
        }
        key.sort();
        let tenant_column = if name == "tenants" {
            "id"
        } else if columns.iter().any(|c| c == "tenant_id") {
            "tenant_id"
        } else {
            continue;
        };
        let key: Vec<String> = if key.is_empty() {
            vec!["rowid".to_owned()]
        } else {
            key.into_iter().map(|(_, c)| c).collect()
        };
        let mut parents: Vec<String> = w
            .query(shard, &format!("PRAGMA foreign_key_list({})", ident(name)))?
            .iter()
            .filter_map(|fk| fk.get("table").and_then(Value::as_str))
            .filter(|p| *p != name)
            .map(str::to_owned)
            .collect();
        parents.sort();
        parents.dedup();
        out.push(Table {
            name: name.to_owned(),
            tenant_column,
            columns,
            key,
            parents,
        });
    }
    in_dependency_order(out)
}

/// Parents before children, so the copy never breaks a foreign key.
fn in_dependency_order(mut pending: Vec<Table>) -> Result<Vec<Table>> {
    let mut ordered: Vec<Table> = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            t.parents.iter().all(|p| {
                ordered.iter().any(|o| &o.name == p) || !pending.iter().any(|q| &q.name == p)
            })
        });
        let Some(i) = ready else {
            bail!("the tables' foreign keys form a cycle");
        };
        ordered.push(pending.remove(i));
    }
    Ok(ordered)
}

fn count(w: &Wrangler, shard: u32, table: &Table, tenant: &str) -> Result<u64> {
    let rows = w.query(
        shard,
        &format!(
            "SELECT COUNT(*) AS n FROM {} WHERE {}",
            ident(&table.name),
            table.of_tenant(tenant)
        ),
    )?;
    rows.first()
        .and_then(|r| r.get("n"))
        .and_then(Value::as_u64)
        .context("a count")
}

/// Copies the tenant's rows of `table` from `from` to `to`; the number copied.
fn copy(w: &Wrangler, from: u32, to: u32, table: &Table, tenant: &str) -> Result<u64> {
    let quoted = |c: &str| format!("quote({}) AS {}", ident(c), ident(c));
    let mut select: Vec<String> = table.columns.iter().map(|c| quoted(c)).collect();
    let key_aliases: Vec<String> = (0..table.key.len()).map(|i| format!("k{i}")).collect();
    for (k, alias) in table.key.iter().zip(&key_aliases) {
        select.push(format!("quote({}) AS {alias}", ident(k)));
    }
    let key_list = table
        .key
        .iter()
        .map(|k| ident(k))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!(
        "INSERT INTO {} ({}) VALUES ",
        ident(&table.name),
        table
            .columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut after: Option<Vec<String>> = None;
    let mut copied = 0;
    loop {
        let resume = after
            .as_ref()
            .map(|v| format!(" AND ({key_list}) > ({})", v.join(", ")))
            .unwrap_or_default();
        let rows = w.query(
            from,
            &format!(
                "SELECT {} FROM {} WHERE {}{resume} ORDER BY {key_list} LIMIT {PAGE_ROWS}",
                select.join(", "),
                ident(&table.name),
                table.of_tenant(tenant)
            ),
        )?;
        let literal = |row: &Value, name: &str| -> Result<String> {
            row.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("{}.{name} has no quoted value", table.name))
        };
        let mut statements = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let mut bytes = 0;
        for row in &rows {
            let tuple = format!(
                "({})",
                table
                    .columns
                    .iter()
                    .map(|c| literal(row, c))
                    .collect::<Result<Vec<_>>>()?
                    .join(", ")
            );
            if !values.is_empty() && bytes + tuple.len() + insert.len() > MAX_STATEMENT_BYTES {
                statements.push(format!("{insert}{};", values.join(", ")));
                values.clear();
                bytes = 0;
            }
            bytes += tuple.len() + 2;
            values.push(tuple);
        }
        if !values.is_empty() {
            statements.push(format!("{insert}{};", values.join(", ")));
        }
        w.execute(to, &statements)?;
        copied += rows.len() as u64;
        let Some(last) = rows.last() else {
            break;
        };
        after = Some(
            key_aliases
                .iter()
                .map(|a| literal(last, a))
                .collect::<Result<_>>()?,
        );
        if rows.len() < PAGE_ROWS {
            break;
        }
    }
    Ok(copied)
}

fn int(row: &Value, name: &str) -> Result<u64> {
    row.get(name)
        .and_then(Value::as_u64)
        .with_context(|| format!("`{name}` is not a number"))
}

fn string(row: &Value, name: &str) -> Result<String> {
    row.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("`{name}` is not text"))
}

/// Verifies the tenant's chain as the target shard holds it: archived segments linked
/// one to the next, then every hot record from there to the recorded head.
fn verify_chain(w: &Wrangler, shard: u32, tenant: &str) -> Result<u64> {
    let t = text(tenant);
    let head = w.query(
        shard,
        &format!("SELECT anchor_seq, anchor_hash, head_seq, head_hash FROM tenants WHERE id = {t}"),
    )?;
    let head = head.first().context("the tenant's row was not copied")?;
    let (mut seq, mut hash) = (int(head, "anchor_seq")?, string(head, "anchor_hash")?);
    for segment in w.query(
        shard,
        &format!(
            "SELECT first_seq, last_seq, prev_hash, last_hash FROM archives WHERE tenant_id = {t} AND last_seq > {seq} ORDER BY first_seq"
        ),
    )? {
        let first = int(&segment, "first_seq")?;
        // Retention may have moved the anchor into or past a segment's start.
        if first <= seq + 1 && (first != seq + 1 || string(&segment, "prev_hash")? == hash) {
            seq = int(&segment, "last_seq")?;
            hash = string(&segment, "last_hash")?;
        } else {
            bail!("archived segment from seq {first} does not follow seq {seq}");
        }
    }
    let mut verifier = crm_core::chain::Verifier::new(seq, &hash);
    loop {
        let rows = w.query(
            shard,
            &format!(
                "SELECT seq, body FROM activities WHERE tenant_id = {t} AND seq > {seq} ORDER BY seq LIMIT {PAGE_ROWS}"
            ),
        )?;
        for row in &rows {
            let a: crm_core::Activity = serde_json::from_str(&string(row, "body")?)
                .context("a stored record that is not an activity")?;
            verifier
                .push(&a)
                .map_err(|b| anyhow::anyhow!("seq {}: {}", b.seq, b.reason))?;
            seq = a.seq;
        }
        if rows.len() < PAGE_ROWS {
            break;
        }
    }
    verifier
        .finish(int(head, "head_seq")?, &string(head, "head_hash")?)
        .map_err(|b| anyhow::anyhow!("seq {}: {}", b.seq, b.reason))?;
    Ok(verifier.verified())
}

/// Statements removing the tenant's rows from every table, children first.
fn delete_all(tables: &[Table], tenant: &str) -> Vec<String> {
    tables
        .iter()
        .rev()
        .map(|tb| {
            format!(
                "DELETE FROM {} WHERE {};",
                ident(&tb.name),
                tb.of_tenant(tenant)
            )
        })
        .collect()
}

pub fn run(root: &Path, args: &Args) -> Result<()> {
    let w = Wrangler {
        bin: root.join("tests/worker/node_modules/.bin/wrangler"),
        config: args.config.clone(),
        persist_to: args.persist_to.clone(),
    };
    if !w.bin.exists() {
        bail!("wrangler is not installed: run `cargo xtask prereqs` first");
    }
    let tenant = args.tenant.as_str();
    let t = text(tenant);
    let placed = w.query(
        0,
        &format!("SELECT shard, moving FROM tenant_shards WHERE tenant_id = {t}"),
    )?;
    let from = match placed.first() {
        Some(row) => u32::try_from(int(row, "shard")?).context("a shard number")?,
        None => 0,
    };
    let to = args.to;
    if from == to {
        bail!("tenant {tenant} is on shard {to} already");
    }
    let source = tables(&w, from)?;
    let exists = source
        .iter()
        .find(|tb| tb.name == "tenants")
        .map(|tb| count(&w, from, tb, tenant))
        .transpose()?;
    if exists != Some(1) {
        bail!("shard {from} holds no tenant {tenant}");
    }
    eprintln!("xtask: freezing {tenant} on shard {from}");
    w.execute(
        0,
        &[format!(
            "INSERT INTO tenant_shards (tenant_id, shard, moving) VALUES ({t}, {from}, 1) ON CONFLICT (tenant_id) DO UPDATE SET moving = 1;"
        )],
    )?;
    let settle = args
        .settle_seconds
        .map_or(DEFAULT_SETTLE, Duration::from_secs);
    eprintln!("xtask: waiting {settle:?} for cached placements to expire");
    std::thread::sleep(settle);
    // A copy left by an earlier attempt goes first; then the copy, table by table.
    w.execute(to, &delete_all(&source, tenant))?;
    for table in &source {
        let n = copy(&w, from, to, table, tenant)?;
        let (was, now) = (
            count(&w, from, table, tenant)?,
            count(&w, to, table, tenant)?,
        );
        if was != now || n != was {
            bail!(
                "{}: {was} rows on shard {from}, {n} copied, {now} on shard {to}; the tenant stays frozen on shard {from}",
                table.name
            );
        }
        if n > 0 {
            eprintln!("xtask: {}: {n} rows", table.name);
        }
    }
    let verified = verify_chain(&w, to, tenant).with_context(|| {
        format!("the copy on shard {to} does not verify; the tenant stays frozen on shard {from}")
    })?;
    eprintln!("xtask: the chain on shard {to} verifies ({verified} hot records)");
    w.execute(
        0,
        &[format!(
            "UPDATE tenant_shards SET shard = {to}, moving = 0 WHERE tenant_id = {t};"
        )],
    )?;
    // Nothing reads the old rows once the placement names the new shard (isolates
    // that still cache "moving" refuse until they read it again).
    w.execute(from, &delete_all(&source, tenant))?;
    eprintln!("xtask: {tenant} moved from shard {from} to shard {to}");
    Ok(())
}
