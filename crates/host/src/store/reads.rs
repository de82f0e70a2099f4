//! A small pool of read-only connections. WAL lets them read while the writer commits.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::error::{HostError, HostResult};

/// Idle connections kept; more are opened under load and closed when returned past this.
const MAX_IDLE_READERS: usize = 16;

#[derive(Debug, Clone)]
pub struct ReadPool {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl ReadPool {
    pub fn new(path: PathBuf) -> ReadPool {
        ReadPool {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> HostResult<T>) -> HostResult<T> {
        let pooled = self.idle.lock().map_err(|_| poisoned())?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(super::BUSY_TIMEOUT)?;
                c
            }
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().map_err(|_| poisoned())?;
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

fn poisoned() -> HostError {
    HostError::internal(anyhow::anyhow!("read pool lock poisoned"))
}
