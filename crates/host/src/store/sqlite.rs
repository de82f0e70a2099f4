//! The embedded SQLite backend (rusqlite): WAL, `synchronous = FULL` (an acknowledged
//! activity survives power loss, not only a crash — defect 5), one writer thread and
//! read-only connections beside it.

use std::ops::ControlFlow;
use std::path::PathBuf;

use crm_store::{Dialect, Row, Statement, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, ToSql, params_from_iter};

use super::driver::{Conn, Connector, DbError, DbResult};

/// How long a connection waits on a lock before failing: only readers and
/// administrative commands of other processes wait (the writer is the one writer).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Prepared statements kept per connection: every distinct statement text of the
/// store fits, so hot statements are never re-parsed.
const STATEMENT_CACHE: usize = 128;

#[derive(Debug, Clone)]
pub struct SqliteConnector {
    pub path: PathBuf,
}

impl Connector for SqliteConnector {
    fn connect(&self) -> DbResult<Box<dyn Conn>> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(map_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(map_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(map_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(map_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Box::new(SqliteConn(conn)))
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }
}

struct SqliteConn(Connection);

struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Int(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Text(Some(t)) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Int(None) | Value::Text(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// `column`, reusing the text buffer `slot` already has.
fn refill(slot: &mut Value, v: ValueRef<'_>) -> DbResult<()> {
    match (slot, v) {
        (Value::Text(Some(s)), ValueRef::Text(t)) => {
            s.clear();
            s.push_str(utf8(t)?);
        }
        (slot, v) => *slot = column(v)?,
    }
    Ok(())
}

fn utf8(t: &[u8]) -> DbResult<&str> {
    std::str::from_utf8(t).map_err(|e| DbError::Other(format!("stored text is not UTF-8: {e}")))
}

fn column(v: ValueRef<'_>) -> DbResult<Value> {
    Ok(match v {
        ValueRef::Null => Value::Text(None),
        ValueRef::Integer(i) => Value::Int(Some(i)),
        ValueRef::Text(t) => Value::Text(Some(utf8(t)?.to_owned())),
        ValueRef::Real(_) | ValueRef::Blob(_) => {
            return Err(DbError::Other(
                "a column holds a type the schema never stores".to_owned(),
            ));
        }
    })
}

impl Conn for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn query(&mut self, st: &Statement) -> DbResult<Vec<Row>> {
        let mut stmt = self.0.prepare_cached(&st.sql).map_err(map_err)?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(params_from_iter(st.params.iter().map(Param)))
            .map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(map_err)? {
            let mut row = Vec::with_capacity(width);
            for i in 0..width {
                row.push(column(r.get_ref(i).map_err(map_err)?)?);
            }
            out.push(Row(row));
        }
        Ok(out)
    }

    fn for_each(
        &mut self,
        st: &Statement,
        f: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> DbResult<()> {
        let mut stmt = self.0.prepare_cached(&st.sql).map_err(map_err)?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(params_from_iter(st.params.iter().map(Param)))
            .map_err(map_err)?;
        let mut row = Row(vec![Value::Int(None); width]);
        while let Some(r) = rows.next().map_err(map_err)? {
            for (i, slot) in row.0.iter_mut().enumerate() {
                refill(slot, r.get_ref(i).map_err(map_err)?)?;
            }
            if f(&row).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn execute(&mut self, st: &Statement) -> DbResult<u64> {
        let mut stmt = self.0.prepare_cached(&st.sql).map_err(map_err)?;
        if stmt.readonly() || st.sql.contains("RETURNING") {
            // A statement that answers rows must be stepped through them.
            let mut rows = stmt
                .query(params_from_iter(st.params.iter().map(Param)))
                .map_err(map_err)?;
            let mut n = 0;
            while rows.next().map_err(map_err)?.is_some() {
                n += 1;
            }
            return Ok(n);
        }
        let n = stmt
            .execute(params_from_iter(st.params.iter().map(Param)))
            .map_err(map_err)?;
        Ok(n as u64)
    }

    fn batch(&mut self, sql: &str) -> DbResult<()> {
        self.0.execute_batch(sql).map_err(map_err)
    }

    fn in_transaction(&self) -> bool {
        !self.0.is_autocommit()
    }

    fn begin(&mut self) -> DbResult<()> {
        // IMMEDIATE: take the write lock now, so the group never fails half-way on it.
        self.batch("BEGIN IMMEDIATE")
    }
}

pub fn map_err(e: rusqlite::Error) -> DbError {
    let text = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbError::Busy(text),
        Some(ErrorCode::DiskFull) => DbError::Full(text),
        Some(ErrorCode::ConstraintViolation) => DbError::Constraint(text),
        _ => DbError::Other(text),
    }
}
