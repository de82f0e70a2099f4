//! Storage of the on-prem host, on SQLite (embedded default) or PostgreSQL (several
//! hosts over one database). The SQL and the decisions live in `crm-store`, shared
//! with the worker; this module runs them: `driver.rs` is the whole backend
//! interface (a new backend implements `Conn` and `Connector`), `group_commit.rs` the
//! one writer per process, `pool.rs` the readers (keys recently
//! looked up are held in a `crm_store::key_cache`), and the files beside them the operations the service layer calls.

mod driver;
mod flows;
mod group_commit;
mod idempotency;
mod ingest;
mod keys;
mod migrate;
mod pool;
mod postgres;
mod sqlite;
mod tenants;

use std::path::PathBuf;
use std::sync::Arc;

use crm_store::Dialect;

pub use driver::{Conn, DbError};
pub use flows::{Build, Sink};
pub use ingest::{Heads, IngestItem, record};
pub use keys::{generate as generate_key, hash_key};
pub use tenants::random_secret;

use crate::error::{HostError, HostResult};
use driver::Connector;
use group_commit::Writer;
use pool::Pool;

/// Where the data lives: a SQLite file, or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else a SQLite file.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    pub(crate) fn connector(&self) -> Arc<dyn Connector> {
        match self {
            Location::Sqlite(path) => Arc::new(sqlite::SqliteConnector { path: path.clone() }),
            Location::Postgres(url) => Arc::new(postgres::PostgresConnector::new(url)),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.connector().describe())
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dialect: Dialect,
    reads: Pool,
    writer: Writer,
    /// `crm_store::key_cache`, shared by this process's threads.
    keys: std::sync::RwLock<crm_store::key_cache::KeyCache>,
}

impl Store {
    /// Opens (creating and migrating if needed) the database and starts the writer.
    pub fn open(location: &Location) -> anyhow::Result<Store> {
        let connector = location.connector();
        // On a plain thread: a blocking driver (PostgreSQL's client runs its own small
        // runtime) must not run on an async runtime's thread, where callers may be.
        let conn = std::thread::scope(|s| {
            s.spawn(|| -> Result<Box<dyn Conn>, DbError> {
                let mut conn = connector.connect()?;
                migrate::apply(conn.as_mut())?;
                Ok(conn)
            })
            .join()
        })
        .map_err(|_| anyhow::anyhow!("opening the store panicked"))??;
        let dialect = connector.dialect();
        let writer = Writer::start(connector.clone(), conn)?;
        Ok(Store {
            inner: Arc::new(Inner {
                dialect,
                reads: Pool::new(connector),
                writer,
                keys: std::sync::RwLock::default(),
            }),
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    pub fn writer_running(&self) -> bool {
        self.inner.writer.is_running()
    }

    /// Runs a read on a pooled connection off the async runtime.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> HostResult<T> + Send + 'static,
    ) -> HostResult<T> {
        let reads = self.inner.reads.clone();
        tokio::task::spawn_blocking(move || reads.with(f))
            .await
            .map_err(|e| HostError::internal(anyhow::anyhow!("read task: {e}")))?
    }

    /// A read for synchronous callers (CLI).
    pub fn read_blocking<T>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> HostResult<T>,
    ) -> HostResult<T> {
        self.inner.reads.with(f)
    }

    /// Runs `f` in the writer's transaction; `tenant` names the tenant row it changes.
    pub async fn write<T: Send + 'static>(
        &self,
        tenant: Option<&str>,
        f: impl FnOnce(&mut dyn Conn) -> HostResult<T> + Send + 'static,
    ) -> HostResult<T> {
        self.inner.writer.exec(tenant, f).await
    }

    /// Records enriched activities through the group-commit writer; answers after
    /// the commit, one `Stored` per item.
    pub async fn ingest(
        &self,
        tenant: Arc<crate::engine::Tenant>,
        items: Vec<IngestItem>,
        received_at: i64,
    ) -> HostResult<Vec<crm_store::ingest::Stored>> {
        self.inner.writer.ingest(tenant, items, received_at).await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> HostResult<()> {
        let d = self.dialect();
        self.read(move |c| {
            c.query(&d.stmt("SELECT 1", Vec::new()))?;
            Ok(())
        })
        .await
    }
}

impl From<DbError> for HostError {
    fn from(e: DbError) -> Self {
        use crm_api::storage::Failure;
        let (class, m) = match e {
            DbError::Busy(m) => (Failure::Busy, m),
            DbError::Full(m) => (Failure::Full, m),
            DbError::Constraint(m) => (Failure::Constraint, m),
            DbError::Other(m) => return HostError::internal(anyhow::anyhow!(m)),
        };
        tracing::warn!(error = %m, class = ?class, "the database refused");
        HostError::Api(class.answer())
    }
}

impl From<crm_store::StoreError> for HostError {
    fn from(e: crm_store::StoreError) -> Self {
        match e {
            crm_store::StoreError::Core(c) => HostError::Core(c),
            crm_store::StoreError::NotFound(m) => HostError::NotFound(m),
            other => HostError::internal(other),
        }
    }
}
