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

    /// The rows of each query, as JSON objects: one wrangler call for all of them
    /// (each call costs seconds).
    fn queries(&self, shard: u32, sql: &[String]) -> Result<Vec<Vec<Value>>> {
        if sql.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.run(shard, &["--command", &sql.join(";\n")])?;
        let results: Vec<Vec<Value>> = out
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|r| {
                        r.get("results")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        if results.len() != sql.len() {
            bail!(
                "wrangler answered {} results for {} queries",
                results.len(),
                sql.len()
            );
        }
        Ok(results)
    }

    /// The rows of one query.
    fn query(&self, shard: u32, sql: &str) -> Result<Vec<Value>> {
        Ok(self
            .queries(shard, &[sql.to_owned()])?
            .into_iter()
            .next()
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
    // Every table's columns, and its foreign keys, in one call.
    let user_tables = "m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_cf_%'";
    let found = w.queries(
        shard,
        &[
            format!(
                "SELECT m.name AS t, i.name AS c, i.pk AS pk FROM sqlite_master m JOIN pragma_table_info(m.name) i WHERE {user_tables} ORDER BY m.name, i.cid"
            ),
            format!(
                "SELECT m.name AS t, f.\"table\" AS parent FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f WHERE {user_tables}"
            ),
        ],
    )?;
    let (columns, keys) = (&found[0], &found[1]);
    let mut out: Vec<Table> = Vec::new();
    for row in columns {
        let name = string(row, "t")?;
        if CONTROL_TABLES.contains(&name.as_str()) {
            continue;
        }
        if out.last().is_none_or(|t| t.name != name) {
            out.push(Table {
                name: name.clone(),
                tenant_column: "",
                columns: Vec::new(),
                key: Vec::new(),
                parents: Vec::new(),
            });
        }
        let Some(table) = out.last_mut() else {
            continue;
        };
        let column = string(row, "c")?;
        let pk = row.get("pk").and_then(Value::as_i64).unwrap_or(0);
        if pk > 0 {
            // pragma_table_info numbers key columns from 1 in key order.
            let at = usize::try_from(pk - 1).unwrap_or(0);
            table.key.resize(table.key.len().max(at + 1), String::new());
            table.key[at].clone_from(&column);
        }
        table.columns.push(column);
    }
    out.retain_mut(|t| {
        t.tenant_column = if t.name == "tenants" {
            "id"
        } else if t.columns.iter().any(|c| c == "tenant_id") {
            "tenant_id"
        } else {
            return false;
        };
        if t.key.is_empty() {
            t.key.push("rowid".to_owned());
        }
        true
    });
    for fk in keys {
        let (child, parent) = (string(fk, "t")?, string(fk, "parent")?);
        if let Some(t) = out.iter_mut().find(|t| t.name == child)
            && parent != child
            && !t.parents.contains(&parent)
        {
            t.parents.push(parent);
        }
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

/// The tenant's rows in each table, in one call.
fn counts(w: &Wrangler, shard: u32, tables: &[Table], tenant: &str) -> Result<Vec<u64>> {
    let sql: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT COUNT(*) AS n FROM {} WHERE {}",
                ident(&t.name),
                t.of_tenant(tenant)
            )
        })
        .collect();
    w.queries(shard, &sql)?
        .iter()
        .map(|rows| rows.first().map_or(Ok(0), |r| int(r, "n")))
        .collect()
}

/// Where the copy of one table stands.
struct Cursor<'a> {
    table: &'a Table,
    /// The last key copied, as SQL literals; `None` before the first page.
    after: Option<Vec<String>>,
    done: bool,
    copied: u64,
}

impl Cursor<'_> {
    fn key_list(&self) -> String {
        let key: Vec<String> = self.table.key.iter().map(|k| ident(k)).collect();
        key.join(", ")
    }

    /// The next page, every value (and the key, as `k0`, `k1`, …) quoted by SQLite.
    fn page(&self, tenant: &str) -> String {
        let t = self.table;
        let mut select: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("quote({0}) AS {0}", ident(c)))
            .collect();
        select.extend(
            t.key
                .iter()
                .enumerate()
                .map(|(i, k)| format!("quote({}) AS k{i}", ident(k))),
        );
        let resume = self
            .after
            .as_ref()
            .map(|v| format!(" AND ({}) > ({})", self.key_list(), v.join(", ")))
            .unwrap_or_default();
        format!(
            "SELECT {} FROM {} WHERE {}{resume} ORDER BY {} LIMIT {PAGE_ROWS}",
            select.join(", "),
            ident(&t.name),
            t.of_tenant(tenant),
            self.key_list()
        )
    }

    /// Takes a page: the insert statements that write it.
    fn take(&mut self, rows: &[Value]) -> Result<Vec<String>> {
        let t = self.table;
        let literal = |row: &Value, name: &str| -> Result<String> {
            row.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("{}.{name} has no quoted value", t.name))
        };
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ",
            ident(&t.name),
            t.columns
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut statements = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let mut bytes = insert.len();
        for row in rows {
            let tuple = format!(
                "({})",
                t.columns
                    .iter()
                    .map(|c| literal(row, c))
                    .collect::<Result<Vec<_>>>()?
                    .join(", ")
            );
            if !values.is_empty() && bytes + tuple.len() > MAX_STATEMENT_BYTES {
                statements.push(format!("{insert}{};", values.join(", ")));
                values.clear();
                bytes = insert.len();
            }
            bytes += tuple.len() + 2;
            values.push(tuple);
        }
        if !values.is_empty() {
            statements.push(format!("{insert}{};", values.join(", ")));
        }
        self.copied += rows.len() as u64;
        self.done = rows.len() < PAGE_ROWS;
        if let Some(last) = rows.last() {
            self.after = Some(
                (0..t.key.len())
                    .map(|i| literal(last, &format!("k{i}")))
                    .collect::<Result<_>>()?,
            );
        }
        Ok(statements)
    }
}

/// Copies the tenant's rows of every table from `from` to `to`, a page of each
/// unfinished table per round (one read call and one write call a round; a table's
/// first page waits until the tables it refers to are complete); the rows copied per
/// table.
fn copy_all(w: &Wrangler, from: u32, to: u32, tables: &[Table], tenant: &str) -> Result<Vec<u64>> {
    let mut cursors: Vec<Cursor<'_>> = tables
        .iter()
        .map(|table| Cursor {
            table,
            after: None,
            done: false,
            copied: 0,
        })
        .collect();
    loop {
        // A table starts once every table it refers to is copied whole.
        let complete = |name: &String| cursors.iter().all(|c| &c.table.name != name || c.done);
        let open: Vec<usize> = (0..cursors.len())
            .filter(|&i| !cursors[i].done && cursors[i].table.parents.iter().all(complete))
            .collect();
        if open.is_empty() {
            if cursors.iter().any(|c| !c.done) {
                bail!("the tables' foreign keys form a cycle");
            }
            break;
        }
        let pages = w.queries(
            from,
            &open
                .iter()
                .map(|&i| cursors[i].page(tenant))
                .collect::<Vec<_>>(),
        )?;
        let mut statements = Vec::new();
        for (&i, rows) in open.iter().zip(&pages) {
            statements.extend(cursors[i].take(rows)?);
        }
        w.execute(to, &statements)?;
    }
    Ok(cursors.iter().map(|c| c.copied).collect())
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
    let found = w.queries(
        shard,
        &[
            format!("SELECT anchor_seq, anchor_hash, head_seq, head_hash FROM tenants WHERE id = {t}"),
            format!(
                "SELECT first_seq, last_seq, prev_hash, last_hash FROM archives WHERE tenant_id = {t}
                 AND last_seq > (SELECT anchor_seq FROM tenants WHERE id = {t}) ORDER BY first_seq"
            ),
        ],
    )?;
    let head = found[0]
        .first()
        .context("the tenant's row was not copied")?;
    let (mut seq, mut hash) = (int(head, "anchor_seq")?, string(head, "anchor_hash")?);
    for segment in &found[1] {
        let first = int(segment, "first_seq")?;
        // Retention may have moved the anchor into or past a segment's start.
        if first <= seq + 1 && (first != seq + 1 || string(segment, "prev_hash")? == hash) {
            seq = int(segment, "last_seq")?;
            hash = string(segment, "last_hash")?;
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
        .position(|tb| tb.name == "tenants")
        .map(|i| counts(&w, from, &source[i..=i], tenant))
        .transpose()?;
    if exists != Some(vec![1]) {
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
    // A copy left by an earlier attempt goes first; then the copy.
    w.execute(to, &delete_all(&source, tenant))?;
    let copied = copy_all(&w, from, to, &source, tenant)?;
    let was = counts(&w, from, &source, tenant)?;
    let now = counts(&w, to, &source, tenant)?;
    for (((table, n), was), now) in source.iter().zip(copied).zip(was).zip(now) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            name: "report_rollups".into(),
            tenant_column: "tenant_id",
            columns: vec!["tenant_id".into(), "period".into(), "body".into()],
            key: vec!["tenant_id".into(), "period".into()],
            parents: vec!["tenants".into()],
        }
    }

    #[test]
    fn pages_resume_after_the_last_key_and_statements_stay_under_d1s_size() {
        let t = table();
        let mut cursor = Cursor {
            table: &t,
            after: None,
            done: false,
            copied: 0,
        };
        let first = cursor.page("o'brien");
        assert!(first.contains("\"tenant_id\" = 'o''brien'"), "{first}");
        assert!(!first.contains(") > ("), "{first}");
        let big = "x".repeat(1_000);
        let rows: Vec<Value> = (0..PAGE_ROWS)
            .map(|i| {
                serde_json::json!({
                    "tenant_id": "'o''brien'", "period": i.to_string(), "body": format!("'{big}'"),
                    "k0": "'o''brien'", "k1": i.to_string(),
                })
            })
            .collect();
        let statements = cursor.take(&rows).expect("quoted rows");
        assert!(statements.len() > 1, "500 rows of 1 KB split");
        assert!(statements.iter().all(|s| s.len() <= MAX_STATEMENT_BYTES));
        assert_eq!(
            statements
                .iter()
                .map(|s| s.matches("'x").count())
                .sum::<usize>(),
            PAGE_ROWS
        );
        assert!(!cursor.done, "a full page may have more behind it");
        let next = cursor.page("o'brien");
        assert!(
            next.contains("(\"tenant_id\", \"period\") > ('o''brien', 499)"),
            "{next}"
        );
        cursor.take(&rows[..3]).expect("a short page");
        assert!(cursor.done);
        assert_eq!(cursor.copied, PAGE_ROWS as u64 + 3);
    }

    #[test]
    fn parents_come_before_children_and_cycles_are_refused() {
        let child = table();
        let parent = Table {
            name: "tenants".into(),
            tenant_column: "id",
            columns: vec!["id".into()],
            key: vec!["id".into()],
            parents: Vec::new(),
        };
        let ordered = in_dependency_order(vec![child, parent]).expect("no cycle");
        let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["tenants", "report_rollups"]);
        let mut a = table();
        a.parents = vec!["b".into()];
        let mut b = table();
        b.name = "b".into();
        b.parents = vec!["report_rollups".into()];
        assert!(in_dependency_order(vec![a, b]).is_err());
    }
}
