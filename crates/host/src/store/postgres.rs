//! The PostgreSQL backend, for several stateless hosts sharing one database. Same
//! statements as SQLite (rendered with `$N`), same group-commit writer per process;
//! chain order and balance stay exact across processes because every write
//! transaction locks the tenant rows it appends to (`SELECT … FOR UPDATE`, always in
//! tenant-id order, so two hosts never deadlock on each other).

use std::collections::HashMap;
use std::ops::ControlFlow;

use crm_store::{Dialect, Row, Statement, Value};
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};

use super::driver::{Conn, Connector, DbError, DbResult};

#[derive(Clone)]
pub struct PostgresConnector {
    url: String,
}

impl std::fmt::Debug for PostgresConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl PostgresConnector {
    pub fn new(url: &str) -> PostgresConnector {
        PostgresConnector {
            url: url.to_owned(),
        }
    }
}

impl Connector for PostgresConnector {
    fn connect(&self) -> DbResult<Box<dyn Conn>> {
        let client = Client::connect(&self.url, NoTls).map_err(map_err)?;
        Ok(Box::new(PgConn {
            client,
            prepared: HashMap::new(),
        }))
    }

    fn connect_reader(&self) -> DbResult<Box<dyn Conn>> {
        let mut conn = self.connect()?;
        conn.batch(&format!(
            "SET statement_timeout = {READ_STATEMENT_TIMEOUT_MS}"
        ))?;
        Ok(conn)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    /// The URL without its password.
    fn describe(&self) -> String {
        match (self.url.find("://"), self.url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let user_part = &self.url[scheme + 3..at];
                let user = user_part.split(':').next().unwrap_or_default();
                format!("{}{user}@{}", &self.url[..scheme + 3], &self.url[at + 1..])
            }
            _ => self.url.clone(),
        }
    }
}

struct PgConn {
    client: Client,
    /// Statements prepared on this connection, by SQL text: a hot statement costs one
    /// round trip, not a parse and a describe every time.
    prepared: HashMap<String, postgres::Statement>,
}

/// Longest one statement of the read pool may run (issue 26.2): a report or export read
/// past it is cancelled by the server (503 with `Retry-After`) instead of holding one of
/// the pool's few connections — and the database's shared ones — for minutes. D1 allows
/// a query 30 s; the same bound here.
const READ_STATEMENT_TIMEOUT_MS: u32 = 30_000;

/// Prepared statements kept per connection before the cache is reset.
const PREPARED_CACHE: usize = 256;

impl PgConn {
    fn prepare(&mut self, sql: &str) -> DbResult<postgres::Statement> {
        if let Some(st) = self.prepared.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(sql).map_err(map_err)?;
        if self.prepared.len() >= PREPARED_CACHE {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_owned(), st.clone());
        Ok(st)
    }
}

fn params(values: &[Value]) -> Vec<Box<dyn ToSql + Sync>> {
    values
        .iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                Value::Int(i) => Box::new(*i),
                Value::Text(t) => Box::new(t.clone()),
            }
        })
        .collect()
}

fn column(row: &postgres::Row, i: usize) -> DbResult<Value> {
    let ty = row.columns()[i].type_();
    let bad = |e: postgres::Error| DbError::Other(format!("column {i}: {e}"));
    Ok(if *ty == Type::INT8 {
        Value::Int(row.try_get::<_, Option<i64>>(i).map_err(bad)?)
    } else if *ty == Type::INT4 {
        Value::Int(
            row.try_get::<_, Option<i32>>(i)
                .map_err(bad)?
                .map(i64::from),
        )
    } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME {
        Value::Text(row.try_get::<_, Option<String>>(i).map_err(bad)?)
    } else {
        return Err(DbError::Other(format!(
            "column {i} has type {ty}, which the schema never uses"
        )));
    })
}

impl Conn for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn query(&mut self, st: &Statement) -> DbResult<Vec<Row>> {
        let prepared = self.prepare(&st.sql)?;
        let owned = params(&st.params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(AsRef::as_ref).collect();
        let rows = self.client.query(&prepared, &refs).map_err(map_err)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| column(r, i))
                    .collect::<DbResult<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }

    /// Rows as the server sends them (`query_raw`), never the whole result in memory:
    /// a report over a long window folds millions of rows.
    fn for_each(
        &mut self,
        st: &Statement,
        f: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> DbResult<()> {
        let prepared = self.prepare(&st.sql)?;
        let owned = params(&st.params);
        let mut rows = self
            .client
            .query_raw(&prepared, owned.iter().map(AsRef::as_ref))
            .map_err(map_err)?;
        while let Some(r) = rows.next().map_err(map_err)? {
            let row = (0..r.len())
                .map(|i| column(&r, i))
                .collect::<DbResult<Vec<_>>>()
                .map(Row)?;
            if f(&row).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn execute(&mut self, st: &Statement) -> DbResult<u64> {
        let prepared = self.prepare(&st.sql)?;
        let owned = params(&st.params);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(AsRef::as_ref).collect();
        self.client.execute(&prepared, &refs).map_err(map_err)
    }

    fn batch(&mut self, sql: &str) -> DbResult<()> {
        self.client.batch_execute(sql).map_err(map_err)
    }

    fn begin(&mut self) -> DbResult<()> {
        self.batch("BEGIN")
    }

    /// PostgreSQL never ends a transaction on its own: a failed statement aborts it
    /// until the savepoint is rolled back, which the writer does.
    fn in_transaction(&self) -> bool {
        !self.client.is_closed()
    }

    fn is_broken(&self) -> bool {
        self.client.is_closed()
    }
}

pub fn map_err(e: postgres::Error) -> DbError {
    let text = e.to_string();
    if e.is_closed() {
        return DbError::Busy(text);
    }
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::LOCK_NOT_AVAILABLE
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::TOO_MANY_CONNECTIONS
                // A read cut off by the pool's statement timeout.
                || *c == SqlState::QUERY_CANCELED =>
        {
            DbError::Busy(text)
        }
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => {
            DbError::Full(text)
        }
        Some(c)
            if *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::CHECK_VIOLATION
                || *c == SqlState::NOT_NULL_VIOLATION
                || *c == SqlState::FOREIGN_KEY_VIOLATION =>
        {
            DbError::Constraint(text)
        }
        // No code and not closed: the connection failed (refused, reset, timed out).
        None => DbError::Busy(text),
        Some(_) => DbError::Other(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_never_show_the_password() {
        let c = PostgresConnector::new("postgres://crm:s3cret@127.0.0.1:5432/crm");
        assert_eq!(c.describe(), "postgres://crm@127.0.0.1:5432/crm");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
