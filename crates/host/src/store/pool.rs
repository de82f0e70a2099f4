//! A pool of connections for reads, run on blocking threads. SQLite's WAL lets them
//! read while the writer commits; PostgreSQL serves them concurrently. The pool is
//! bounded: several hosts share one PostgreSQL (`max_connections` is 100 by default),
//! and a flood of reads must queue briefly and then be refused (503), not open a
//! connection each.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::driver::{Conn, Connector, DbError};

/// Idle connections kept; more are opened under load and closed when returned past this.
const MAX_IDLE: usize = 16;
/// Connections (idle and in use) one host holds for reads: with the writer's one, three
/// hosts stay well inside PostgreSQL's default 100.
pub const MAX_OPEN: usize = 24;
/// Longest a read waits for a connection before it is refused as busy (503 with
/// `Retry-After`).
const WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Pool {
    connector: Arc<dyn Connector>,
    idle: Arc<Idle>,
    slots: Arc<Slots>,
    max_open: usize,
}

#[derive(Debug, Default)]
struct Idle(Mutex<Vec<Box<dyn Conn>>>);

/// Connections in use or idle, counted against `max_open`.
#[derive(Debug, Default)]
struct Slots {
    open: Mutex<usize>,
    freed: Condvar,
}

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
        Pool::bounded(connector, MAX_OPEN)
    }

    fn bounded(connector: Arc<dyn Connector>, max_open: usize) -> Pool {
        Pool {
            connector,
            idle: Arc::default(),
            slots: Arc::default(),
            max_open,
        }
    }

    /// Runs `f` on a pooled connection (blocking); waits up to [`WAIT`] for one when all
    /// [`MAX_OPEN`] are in use, then answers busy.
    pub fn with<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Conn) -> Result<T, E>,
    ) -> Result<T, E> {
        let pooled = self.idle.0.lock().map_err(|_| poisoned())?.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                self.reserve()?;
                match self.connector.connect_reader() {
                    Ok(c) => c,
                    Err(e) => {
                        self.release();
                        return Err(e.into());
                    }
                }
            }
        };
        let result = f(conn.as_mut());
        let kept =
            !conn.is_broken() && self.idle.0.lock().map_err(|_| poisoned())?.len() < MAX_IDLE;
        if kept {
            self.idle.0.lock().map_err(|_| poisoned())?.push(conn);
        } else {
            drop(conn);
            self.release();
        }
        result
    }

    /// A place for one more open connection, waiting for one to close if all are used.
    fn reserve(&self) -> Result<(), DbError> {
        let open = self.slots.open.lock().map_err(|_| poisoned())?;
        let (mut open, waited) = self
            .slots
            .freed
            .wait_timeout_while(open, WAIT, |n| *n >= self.max_open)
            .map_err(|_| poisoned())?;
        if waited.timed_out() && *open >= self.max_open {
            return Err(DbError::Busy(format!(
                "all {} read connections are in use",
                self.max_open
            )));
        }
        *open += 1;
        Ok(())
    }

    fn release(&self) {
        if let Ok(mut open) = self.slots.open.lock() {
            *open = open.saturating_sub(1);
        }
        self.slots.freed.notify_one();
    }
}

fn poisoned() -> DbError {
    DbError::Other("connection pool lock poisoned".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Location;

    #[test]
    fn reads_past_the_bound_wait_then_are_refused_as_busy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let location = Location::Sqlite(dir.path().join("pool.db"));
        let pool = Pool::bounded(location.connector(), 2);
        // Create the file (and its WAL) once, so the holders only open it.
        pool.with(|_c| -> Result<(), DbError> { Ok(()) })
            .expect("the database opens");
        let (ready, holding) = std::sync::mpsc::channel::<()>();
        // Two readers hold both connections for longer than a third will wait.
        let holders: Vec<_> = (0..2)
            .map(|_| {
                let (pool, ready) = (pool.clone(), ready.clone());
                std::thread::spawn(move || {
                    pool.with(|_c| -> Result<(), DbError> {
                        ready.send(()).ok();
                        std::thread::sleep(WAIT + Duration::from_millis(800));
                        Ok(())
                    })
                })
            })
            .collect();
        drop(ready);
        for _ in 0..2 {
            // A holder that failed drops its sender: the wait ends instead of hanging.
            holding
                .recv_timeout(Duration::from_secs(20))
                .expect("a holder took its connection");
        }
        let started = std::time::Instant::now();
        let third = pool.with(|_c| -> Result<(), DbError> { Ok(()) });
        assert!(matches!(third, Err(DbError::Busy(_))), "{third:?}");
        assert!(started.elapsed() >= WAIT, "it waited before refusing");
        for h in holders {
            h.join().expect("holder").expect("read");
        }
        // Connections returned: reads go on.
        pool.with(|_c| -> Result<(), DbError> { Ok(()) })
            .expect("a free connection");
    }
}
