//! A small connection pool bounded by a semaphore: at most `max_open_connections` connections to
//! a target exist at once, whatever the load. Idle connections are reused; a connection that saw
//! an error is closed rather than returned, so a broken one never serves the next caller.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::PluginError;

/// How long a caller waits for one of the pool's connections before the target counts as busy.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens connections to one target.
pub(crate) trait Connect: Send + Sync {
    type Conn: Send;

    fn connect(&self) -> impl Future<Output = Result<Self::Conn, PluginError>> + Send;

    /// Whether an idle connection may be handed out again.
    fn is_usable(conn: &Self::Conn) -> bool;
}

pub(crate) struct Pool<C: Connect> {
    connector: C,
    idle: Mutex<Vec<C::Conn>>,
    permits: Semaphore,
    max: u32,
}

/// A connection on loan; it goes back to the pool when dropped, unless it was discarded.
pub(crate) struct Pooled<'a, C: Connect> {
    conn: Option<C::Conn>,
    pool: &'a Pool<C>,
    _permit: SemaphorePermit<'a>,
}

impl<C: Connect> Pooled<'_, C> {
    /// Closes this connection instead of returning it (after an error).
    pub(crate) fn discard(mut self) {
        self.conn = None;
    }
}

impl<C: Connect> Deref for Pooled<'_, C> {
    type Target = C::Conn;

    fn deref(&self) -> &C::Conn {
        // Present from construction until `drop` or `discard`, which consume the loan.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<C: Connect> DerefMut for Pooled<'_, C> {
    fn deref_mut(&mut self) -> &mut C::Conn {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<C: Connect> Drop for Pooled<'_, C> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && C::is_usable(&conn)
        {
            self.pool.idle_list().push(conn);
        }
    }
}

impl<C: Connect> Pool<C> {
    pub(crate) fn new(connector: C, max_open_connections: u32) -> Self {
        Self {
            connector,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_open_connections as usize),
            max: max_open_connections,
        }
    }

    pub(crate) fn connector(&self) -> &C {
        &self.connector
    }

    /// A connection, waiting for a free slot when all are in use.
    pub(crate) async fn get(&self) -> Result<Pooled<'_, C>, PluginError> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| {
                PluginError::unavailable(format!(
                    "all {} connections to the target stayed busy for {}s",
                    self.max,
                    ACQUIRE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|_| PluginError::unavailable("the backend is closed"))?;
        let reused = {
            let mut idle = self.idle_list();
            std::iter::from_fn(|| idle.pop()).find(C::is_usable)
        };
        let conn = match reused {
            Some(conn) => conn,
            None => self.connector.connect().await?,
        };
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            _permit: permit,
        })
    }

    /// Drops every idle connection (after the credentials changed).
    pub(crate) fn clear_idle(&self) {
        self.idle_list().clear();
    }

    /// Refuses new loans and drops idle connections.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.clear_idle();
    }

    fn idle_list(&self) -> MutexGuard<'_, Vec<C::Conn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
