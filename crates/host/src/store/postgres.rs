//! The PostgreSQL backend, for several stateless hosts sharing one database. Same
//! statements as SQLite (rendered with `$N`), same group-commit writer per process;
//! chain order and balance stay exact across processes because every write
//! transaction locks the tenant rows it appends to (`SELECT … FOR UPDATE`, always in
//! tenant-id order, so two hosts never deadlock on each other).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;

use crm_store::{Dialect, Row, Statement, Value};
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::driver::{Conn, Connector, DbError, DbResult};

#[derive(Clone)]
pub struct PostgresConnector {
    /// As configured (shown without its password).
    url: String,
    /// As handed to the driver: without the TLS parameters it does not know.
    driver_url: String,
    /// The TLS connector the URL asks for (`None`: plain), or why it cannot be made.
    tls: Result<Option<MakeRustlsConnect>, String>,
}

/// The URL's TLS wishes, taken out of it (the driver knows `sslmode` only as
/// `disable`/`prefer`/`require`, and `sslrootcert` not at all). `sslmode=require`,
/// `verify-ca` or `verify-full`, or naming a CA file with `sslrootcert`, asks for TLS
/// with the server's certificate verified against that file or the public roots —
/// stricter than libpq's `require`, which encrypts without verifying. Any other mode
/// connects without TLS.
fn split_tls(url: &str) -> (String, Option<Option<PathBuf>>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let (mut mode, mut ca, mut kept) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_owned()),
            Some(("sslrootcert", v)) => ca = Some(PathBuf::from(v)),
            _ => kept.push(pair.to_owned()),
        }
    }
    let wants_tls = ca.is_some()
        || matches!(
            mode.as_deref(),
            Some("require" | "verify-ca" | "verify-full")
        );
    kept.push(format!(
        "sslmode={}",
        if wants_tls { "require" } else { "disable" }
    ));
    (
        format!("{base}?{}", kept.join("&")),
        wants_tls.then_some(ca),
    )
}

impl std::fmt::Debug for PostgresConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl PostgresConnector {
    pub fn new(url: &str) -> PostgresConnector {
        let (driver_url, tls) = split_tls(url);
        let tls = tls
            .map(|ca| crate::tls::client_config(ca.as_deref()).map(MakeRustlsConnect::new))
            .transpose()
            .map_err(|e| format!("PostgreSQL TLS: {e:#}"));
        PostgresConnector {
            url: url.to_owned(),
            driver_url,
            tls,
        }
    }
}

impl Connector for PostgresConnector {
    fn connect(&self) -> DbResult<Box<dyn Conn>> {
        let client = match &self.tls {
            Ok(None) => Client::connect(&self.driver_url, NoTls),
            Ok(Some(tls)) => Client::connect(&self.driver_url, tls.clone()),
            Err(e) => return Err(DbError::Other(e.clone())),
        }
        .map_err(map_err)?;
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
    // With its causes: "error performing TLS handshake" alone does not say the
    // certificate was not trusted.
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
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
    fn tls_parameters_are_taken_out_of_the_url() {
        let plain = "postgres://crm@127.0.0.1:5432/crm";
        assert_eq!(split_tls(plain), (plain.to_owned(), None));
        assert_eq!(
            split_tls(
                "postgres://h/crm?application_name=x&sslmode=verify-full&sslrootcert=/ca.pem"
            ),
            (
                "postgres://h/crm?application_name=x&sslmode=require".to_owned(),
                Some(Some(PathBuf::from("/ca.pem")))
            )
        );
        assert_eq!(
            split_tls("postgres://h/crm?sslmode=require"),
            ("postgres://h/crm?sslmode=require".to_owned(), Some(None))
        );
        assert_eq!(
            split_tls("postgres://h/crm?sslmode=prefer"),
            ("postgres://h/crm?sslmode=disable".to_owned(), None)
        );
        let c = PostgresConnector::new("postgres://h/crm?sslrootcert=/nonexistent.pem");
        assert!(
            c.tls.is_err(),
            "a CA file that cannot be read is an error, not plain text"
        );
    }

    #[test]
    fn descriptions_never_show_the_password() {
        let c = PostgresConnector::new("postgres://crm:s3cret@127.0.0.1:5432/crm");
        assert_eq!(c.describe(), "postgres://crm@127.0.0.1:5432/crm");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
