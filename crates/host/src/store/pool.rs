//! A pool of connections for reads, run on blocking threads. SQLite's WAL lets them
//! read while the writer commits; PostgreSQL serves them concurrently.

use std::sync::{Arc, Mutex};

use super::driver::{Conn, Connector, DbError};

/// Idle connections kept; more are opened under load and closed when returned past this.
const MAX_IDLE: usize = 16;

#[derive(Debug, Clone)]
pub struct Pool {
    connector: Arc<dyn Connector>,
    idle: Arc<Idle>,
}

#[derive(Debug, Default)]
struct Idle(Mutex<Vec<Box<dyn Conn>>>);

/// The PostgreSQL client runs its own small runtime, which must not be dropped on an
/// async runtime's thread; the last pool handle may well be dropped there.
impl Drop for Idle {
    fn drop(&mut self) {
        let conns = std::mem::take(self.0.get_mut().unwrap_or_else(|p| p.into_inner()));
        if !conns.is_empty() {
            std::thread::spawn(move || drop(conns));
        }
    }
}

impl std::fmt::Debug for dyn Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({:?})", self.dialect())
    }
}

impl Pool {
    pub fn new(connector: Arc<dyn Connector>) -> Pool {
        Pool {
            connector,
            idle: Arc::default(),
        }
    }

    /// Runs `f` on a pooled connection (blocking).
    pub fn with<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        let pooled = self.idle.0.lock().map_err(|_| poisoned())?.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connector.connect()?,
        };
        let result = f(conn.as_mut());
        if !conn.is_broken() {
            let mut idle = self.idle.0.lock().map_err(|_| poisoned())?;
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        result
    }
}

fn poisoned() -> DbError {
    DbError::Other("connection pool lock poisoned".to_owned())
}
