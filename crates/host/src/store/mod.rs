//! SQLite storage: schema from the shared `migrations/`, a pool of read connections,
//! and one group-commit writer thread that owns every write.

pub mod activities;
pub mod keys;
mod migrations;
mod reads;
pub mod rollups;
pub mod tenants;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use crate::engine::SharedEngine;
use crate::error::{HostError, HostResult};

pub use keys::{ApiKeyRecord, Scope};
pub use reads::ReadPool;
pub use tenants::{TenantRow, require as tenant_row, update_snapshot};
pub use writer::{IngestItem, Stored, Writer, refused_for_credits};

/// How long a connection waits on a lock before failing: only readers wait (the
/// writer is the one writer), and WAL readers never block it.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    reads: ReadPool,
    writer: Writer,
}

impl Store {
    /// Opens (creating and migrating if needed) the database at `path` and starts the writer.
    pub fn open(path: &Path, engine: SharedEngine) -> anyhow::Result<Store> {
        let conn = connect(path)?;
        migrations::apply(&conn)?;
        let writer = Writer::start(conn, engine)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                reads: ReadPool::new(path.to_owned()),
                writer,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn writer(&self) -> &Writer {
        &self.inner.writer
    }

    /// Runs a read on a pooled connection off the async runtime.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> HostResult<T> + Send + 'static,
    ) -> HostResult<T> {
        let reads = self.inner.reads.clone();
        tokio::task::spawn_blocking(move || reads.with(f))
            .await
            .map_err(|e| HostError::internal(anyhow::anyhow!("read task: {e}")))?
    }

    /// A read for synchronous callers (CLI).
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Connection) -> HostResult<T>) -> HostResult<T> {
        self.inner.reads.with(f)
    }
}

/// Opens a connection with the pragmas every connection needs. `synchronous = FULL`:
/// an acknowledged activity survives power loss, not only a process crash (defect 5).
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}
