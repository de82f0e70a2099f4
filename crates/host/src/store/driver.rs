//! What a database driver gives the store: run a `crm_store::Statement`, get `Row`s
//! back, run plain SQL (transactions, migrations). One implementation per backend
//! (`sqlite.rs`, `postgres.rs`); everything above this trait is written once.

use crm_store::{Dialect, Row, Statement};
use std::ops::ControlFlow;

/// How a driver failure reaches the client.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Another writer holds a lock or the server is restarting; retrying later works.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// No space left for the write; nothing was written.
    #[error("the database is out of space: {0}")]
    Full(String),
    /// A key or check constraint refused the write (a conflict the caller may explain).
    #[error("a constraint refused the write: {0}")]
    Constraint(String),
    /// Anything else: a bug or a broken environment.
    #[error("database error: {0}")]
    Other(String),
}

pub type DbResult<T> = Result<T, DbError>;

/// One open connection.
pub trait Conn: Send {
    fn dialect(&self) -> Dialect;
    fn query(&mut self, st: &Statement) -> DbResult<Vec<Row>>;
    /// Hands the rows to `f` one at a time until it breaks, without keeping them (a
    /// report folds tens of thousands). Drivers that can reuse one row's buffers do.
    fn for_each(
        &mut self,
        st: &Statement,
        f: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> DbResult<()> {
        for row in self.query(st)? {
            if f(&row).is_break() {
                break;
            }
        }
        Ok(())
    }
    /// Runs a statement, answering the number of rows it changed.
    fn execute(&mut self, st: &Statement) -> DbResult<u64>;
    /// Runs SQL without parameters (several statements allowed).
    fn batch(&mut self, sql: &str) -> DbResult<()>;
    /// Starts the write transaction of a group commit.
    fn begin(&mut self) -> DbResult<()>;
    /// Whether a transaction is open (false once the database rolled it back itself).
    fn in_transaction(&self) -> bool;
    /// True once the connection is unusable (server gone); the pool drops it.
    fn is_broken(&self) -> bool {
        false
    }
}

impl dyn Conn + '_ {
    /// At most one row.
    pub fn query_opt(&mut self, st: &Statement) -> DbResult<Option<Row>> {
        Ok(self.query(st)?.into_iter().next())
    }

    /// Runs every statement in order.
    pub fn execute_all(&mut self, statements: &[Statement]) -> DbResult<()> {
        for st in statements {
            self.execute(st)?;
        }
        Ok(())
    }
}

/// Opens connections of one database.
pub trait Connector: Send + Sync + std::fmt::Debug {
    fn connect(&self) -> DbResult<Box<dyn Conn>>;
    /// A connection for the read pool: where the database can, every statement on it
    /// is cut off after a bound, so no request's read holds a connection for long.
    fn connect_reader(&self) -> DbResult<Box<dyn Conn>> {
        self.connect()
    }
    fn dialect(&self) -> Dialect;
    /// Where the data lives, for logs (no password).
    fn describe(&self) -> String;
}
