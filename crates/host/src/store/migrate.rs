//! Applies `crm_store::migrations` in order. SQLite tracks the version in
//! `PRAGMA user_version`; PostgreSQL in a `schema_version` table, under an advisory
//! lock so that hosts starting together migrate once.

use crm_store::{Dialect, Row, migrations};

use super::driver::{Conn, DbError, DbResult};

/// Arbitrary constant naming the migration lock among PostgreSQL advisory locks.
const PG_MIGRATION_LOCK: i64 = 0x00c7_0001;

pub fn apply(conn: &mut dyn Conn) -> DbResult<()> {
    match conn.dialect() {
        Dialect::Sqlite | Dialect::D1 => apply_sqlite(conn),
        Dialect::Postgres => apply_postgres(conn),
    }
}

fn scalar(conn: &mut dyn Conn, sql: &str) -> DbResult<i64> {
    let rows = conn.query(&crm_store::Statement {
        sql: sql.to_owned(),
        params: Vec::new(),
    })?;
    rows.first()
        .map(|r: &Row| r.int(0))
        .transpose()
        .map_err(|e| DbError::Other(e.to_string()))
        .map(Option::unwrap_or_default)
}

fn apply_sqlite(conn: &mut dyn Conn) -> DbResult<()> {
    let current = scalar(conn, "PRAGMA user_version")?;
    for m in migrations::pending(Dialect::Sqlite, current) {
        conn.begin()?;
        let step = conn
            .batch(m.sql)
            .and_then(|()| conn.batch(&format!("PRAGMA user_version = {}", m.version)));
        match step {
            Ok(()) => conn.batch("COMMIT")?,
            Err(e) => {
                conn.batch("ROLLBACK")?;
                return Err(e);
            }
        }
        tracing::info!(version = m.version, "applied migration");
    }
    Ok(())
}

fn apply_postgres(conn: &mut dyn Conn) -> DbResult<()> {
    conn.batch("BEGIN")?;
    let step = (|| {
        conn.batch(&format!(
            "SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})"
        ))?;
        conn.batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
        let current = scalar(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_version")?;
        for m in migrations::pending(Dialect::Postgres, current) {
            conn.batch(m.sql)?;
            conn.batch(&format!(
                "INSERT INTO schema_version (version) VALUES ({})",
                m.version
            ))?;
            tracing::info!(version = m.version, "applied migration");
        }
        Ok(())
    })();
    match step {
        Ok(()) => conn.batch("COMMIT"),
        Err(e) => {
            conn.batch("ROLLBACK")?;
            Err(e)
        }
    }
}
