//! `crm-host bench ingest-parts`: what each part of the writer's per-activity work
//! costs. It runs the writer's own `record` (the code a `POST /v1/activities` runs)
//! batch by batch through a connection that times every statement by what it does to
//! which table; the rest of `record`'s time is sealing and planning (canonical JSON,
//! SHA-256, charging, the rollup fold, rendering SQL), and the rest of the write's
//! time is the commit. `--drop-index` runs it without one index, so `cargo xtask
//! bench` measures each index's share as the difference to a run with every index.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_store::{Dialect, Row, Statement};
use serde_json::json;

use super::bench::{Synthetic, bench_tenant};
use crate::store::{Conn, DbError, Heads, IngestItem, Location, record};

type DbResult<T> = Result<T, DbError>;

/// Time and statement count per part (`INSERT activities`, `SELECT tenants`, …).
#[derive(Debug, Default)]
struct Parts(BTreeMap<String, (Duration, u64)>);

impl Parts {
    fn add(&mut self, part: String, took: Duration) {
        let e = self.0.entry(part).or_default();
        e.0 += took;
        e.1 += 1;
    }
}

/// The part a statement is: its verb and the first table it names (a `FROM f(…)` is a
/// function, not a table, and is passed over). The words are read lazily: the table
/// comes early, and a multi-row insert's text runs to tens of kilobytes.
fn part_of(sql: &str) -> String {
    let mut words = sql.split_whitespace();
    let verb = words.next().unwrap_or("?").to_ascii_uppercase();
    let mut previous = verb.clone();
    let mut table = "?";
    for word in words {
        if matches!(previous.as_str(), "INTO" | "UPDATE" | "FROM")
            && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            table = word;
            break;
        }
        previous = word.to_ascii_uppercase();
    }
    format!("{verb} {table}")
}

/// The writer's connection, timing each statement into `parts`.
struct Timed<'a> {
    inner: &'a mut dyn Conn,
    parts: &'a mut Parts,
}

impl Timed<'_> {
    fn timed<T>(&mut self, st: &Statement, f: impl FnOnce(&mut dyn Conn) -> T) -> T {
        let started = Instant::now();
        let out = f(&mut *self.inner);
        let took = started.elapsed();
        self.parts.add(part_of(&st.sql), took);
        out
    }
}

impl Conn for Timed<'_> {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }
    fn query(&mut self, st: &Statement) -> DbResult<Vec<Row>> {
        self.timed(st, |c| c.query(st))
    }
    fn for_each(
        &mut self,
        st: &Statement,
        f: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> DbResult<()> {
        self.timed(st, |c| c.for_each(st, f))
    }
    fn execute(&mut self, st: &Statement) -> DbResult<u64> {
        self.timed(st, |c| c.execute(st))
    }
    fn batch(&mut self, sql: &str) -> DbResult<()> {
        self.inner.batch(sql)
    }
    fn begin(&mut self) -> DbResult<()> {
        self.inner.begin()
    }
    fn in_transaction(&self) -> bool {
        self.inner.in_transaction()
    }
}

#[derive(Debug, clap::Args)]
pub struct IngestPartsArgs {
    /// A new SQLite file or an empty PostgreSQL database.
    #[arg(long, value_parser = super::parse_location)]
    db: Location,
    #[arg(long, default_value_t = 100_000)]
    activities: usize,
    /// Activities per write, as a client's batch reaches the writer.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// An index to drop before the run (its cost is the difference to a full run).
    #[arg(long)]
    drop_index: Option<String>,
}

pub async fn run(args: IngestPartsArgs) -> anyhow::Result<()> {
    let (app, tenant) = bench_tenant(&args.db, "parts", 200).await?;
    if let Some(index) = &args.drop_index {
        anyhow::ensure!(
            index.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "`{index}` is not an index name"
        );
        let sql = format!("DROP INDEX {index}");
        app.store.write(None, move |c| Ok(c.batch(&sql)?)).await?;
    }
    // Enrichment runs before the writer, on the request's thread: made up front.
    let mut synthetic = Synthetic::new(200);
    let now = crate::service::clock::now();
    let items: Vec<IngestItem> = (0..args.activities)
        .map(|i| {
            // The last hour, as live traffic: one activity every few milliseconds.
            let at = now.millis() - 3_600_000 + (i as i64 * 3_600_000 / args.activities as i64);
            synthetic.item(&app, &tenant, now, at, format!("parts-{i}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let parts = Arc::new(Mutex::new(Parts::default()));
    let (mut recording, mut writing) = (Duration::ZERO, Duration::ZERO);
    let started = Instant::now();
    for chunk in items.chunks(args.batch) {
        let (tenant, chunk, parts) = (tenant.clone(), chunk.to_vec(), parts.clone());
        let tenant_id = tenant.id().to_owned();
        let write_started = Instant::now();
        let inside = app
            .store
            .write(Some(&tenant_id), move |c| {
                let record_started = Instant::now();
                let mut parts = parts.lock().map_err(|_| {
                    crate::error::HostError::internal(anyhow::anyhow!("parts lock poisoned"))
                })?;
                let mut timed = Timed {
                    inner: c,
                    parts: &mut parts,
                };
                record(&mut timed, &tenant, chunk, now.millis(), &mut Heads::new())?;
                Ok(record_started.elapsed())
            })
            .await?;
        recording += inside;
        writing += write_started.elapsed();
    }
    let seconds = started.elapsed().as_secs_f64();
    let parts = parts
        .lock()
        .map_err(|_| anyhow::anyhow!("parts lock poisoned"))?;
    let statements: Duration = parts.0.values().map(|(d, _)| *d).sum();
    let n = args.activities as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    let mut per_activity: serde_json::Map<String, serde_json::Value> = parts
        .0
        .iter()
        .map(|(part, (d, count))| (part.clone(), json!({ "us": us(*d), "statements": count })))
        .collect();
    per_activity.insert(
        "sealing and planning".into(),
        json!({ "us": us(recording.saturating_sub(statements)) }),
    );
    per_activity.insert(
        "commit and the writer's hand-off".into(),
        json!({ "us": us(writing.saturating_sub(recording)) }),
    );
    println!(
        "{}",
        json!({ "activities": args.activities, "batch": args.batch, "droppedIndex": args.drop_index,
                "seconds": seconds, "activitiesPerSec": n / seconds, "totalUs": us(started.elapsed()),
                "perActivity": per_activity })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::part_of;

    #[test]
    fn a_statement_is_its_verb_and_first_table() {
        assert_eq!(
            part_of("INSERT INTO activities (a, b) VALUES (?1, ?2)"),
            "INSERT activities"
        );
        assert_eq!(
            part_of("update tenants SET head_seq = ?2"),
            "UPDATE tenants"
        );
        assert_eq!(
            part_of(
                "SELECT found.* FROM unnest(ARRAY[$2]::text[]) AS wanted(id) CROSS JOIN LATERAL \
                 (SELECT id FROM activities WHERE tenant_id = $1) AS found"
            ),
            "SELECT activities"
        );
    }
}
