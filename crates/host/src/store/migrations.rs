//! Applies the shared `migrations/*.sql` in order, tracked by `PRAGMA user_version`.
//! D1 applies the same files with `wrangler d1 migrations apply`.

use rusqlite::Connection;

/// (version, SQL), in order. Append only: an applied migration never changes.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../../../migrations/0001_init.sql"))];

pub fn apply(conn: &Connection) -> anyhow::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}
