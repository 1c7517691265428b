//! The broker's own state in a relational store: SQLite (embedded default) or PostgreSQL
//! (production, shared by replicas).
//!
//! Both dialects run the same SQL text wherever the dialects agree (`$N` placeholders work in
//! both); the [`on_pool!`] macro expands one body once per pool type so the code is written once
//! and type-checked against each driver. Write transactions start with [`BeginWrite`], which on
//! SQLite takes the write lock up front (`BEGIN IMMEDIATE`) so read-then-write never fails on a
//! stale snapshot, and on PostgreSQL relies on row locks taken by the first `UPDATE`.

mod access;
mod audit;
mod backends;
mod claims;
mod envelopes;
mod lease_retention;
mod leases;
mod revocations;
mod roles;
mod rotations;
mod secrets;
mod sqlite_writer;
mod tokens;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, PgPool, SqlitePool, Transaction};

pub use access::{GrantRow, NewGrant, PolicyRow};
pub use audit::{
    AppendedBatch, AuditFilter, AuditRow, ChainHead, SummaryKind, SummaryRow, WriterConnection,
    chain_hash,
};
pub use backends::{BackendRow, BackendWrite, SealedPassword};
pub use claims::LeaseClaim;
pub use envelopes::{BackendEnvelope, BackendPassword, KeyUsage, Rewrap, VersionEnvelope};
pub use lease_retention::PurgedBatch;
pub use leases::{
    ACTIVE, IRREVOCABLE, JournalEffect, LeaseAccount, LeaseFilter, LeaseOutcome, LeaseRow,
    LeaseUser, PENDING, REVOKED,
};
pub use revocations::{
    JOB_COMPLETED, JOB_FAILED, JOB_RUNNING, JobBatch, JobLeaseCount, LeaseSelector, MatchGroup,
    RevocationJobRow,
};
pub use roles::RoleRow;
pub use rotations::{
    OverdueRow, RUN_COMPLETED, RUN_FAILED, RUN_ROLLED_BACK, RUN_RUNNING, RotationPolicyRow,
    RotationRunRow, StaticRoleRow,
};
pub use secrets::{
    AliasChange, AliasMove, AliasRow, NewSecret, NewVersion, ReadRow, SecretListPage, SecretRow,
    SecretUpdate, SelectedVersion, StatusChange, StatusChangeOutcome, VersionRow,
};
pub use tokens::{NewToken, TokenRow};

/// The connections that keep in-memory databases alive (see [`Store::connect`]).
static MEMORY_KEEPERS: std::sync::Mutex<Vec<SqliteConnection>> = std::sync::Mutex::new(Vec::new());

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Runs `$body` with `$pool` bound to whichever pool the store holds.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("storage error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("storage holds an unexpected value: {0}")]
    Corrupt(String),
    #[error("storage error: {0}")]
    Writer(#[source] rusqlite::Error),
    /// The operation's own event could not be recorded, so the operation was rolled back.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL: {0}; use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether the database rejected a write because of a unique constraint.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Writer(error)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Self::Unavailable(error),
            other => Self::Database(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A connection pool on one of the supported dialects.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Begins a write transaction in the way each dialect needs.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;

    /// A write transaction whose commit does not wait for its WAL flush, for records that a
    /// crash may lose because what they record is redone: claims (taken again) and the outcome
    /// of revocations (a user already gone counts as dropped). Any later commit that waits for its flush makes it
    /// durable too. On SQLite, whose writers take turns anyway, the same as `begin_write`.
    fn begin_write_unflushed(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }

    async fn begin_write_unflushed(
        &self,
    ) -> Result<Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_write().await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }

    async fn begin_write_unflushed(
        &self,
    ) -> Result<Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit TO OFF")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

impl Store {
    /// Connects to `url`: `sqlite://PATH`, `sqlite::memory:` or `postgres://…`.
    ///
    /// # Errors
    /// When the URL is not understood or the database cannot be reached.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            let in_memory = url.contains(":memory:");
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .journal_mode(if in_memory {
                    SqliteJournalMode::Memory
                } else {
                    SqliteJournalMode::Wal
                })
                // An answered write survives power loss, not only a process crash.
                .synchronous(SqliteSynchronous::Full);
            let pool = if in_memory {
                // An in-memory database lives as long as one connection to it is open. The pool
                // closes a connection whose query was cancelled (a client that went away, or an
                // extractor that failed beside the one holding it), so one connection outside
                // the pool keeps the database for the life of the process.
                let keeper = SqliteConnection::connect_with(&options).await?;
                MEMORY_KEEPERS
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(keeper);
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
            } else {
                SqlitePoolOptions::new().max_connections(max_connections)
            };
            Ok(Self::Sqlite(pool.connect_with(options).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?.application_name("leasehold");
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            Ok(Self::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    /// Applies every pending migration of this store's dialect.
    ///
    /// # Errors
    /// When a migration fails or the applied history disagrees with the embedded one.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Self::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Self::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Round-trips a trivial query; used by health checks.
    ///
    /// # Errors
    /// When the database does not answer.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub fn dialect(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }

    /// Resolves once [`Store::close`] was called (at once if it was already).
    pub fn close_event(&self) -> sqlx::pool::CloseEvent {
        on_pool!(self, pool => pool.close_event())
    }
}

/// Drops a password from a URL before it goes into an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://<redacted>@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The steps of SQLite's plan for `sql` on a store built by the migrations, with the
/// parameters `bind` gives it. SQLite keeps no statistics there, as in a store nobody ran
/// ANALYZE on, so the plan is the one the broker gets.
#[cfg(test)]
pub(crate) async fn sqlite_plan(
    sql: &str,
    bind: impl FnOnce(
        sqlx::query::QueryAs<
            '_,
            sqlx::Sqlite,
            (i64, i64, i64, String),
            sqlx::sqlite::SqliteArguments,
        >,
    ) -> sqlx::query::QueryAs<
        '_,
        sqlx::Sqlite,
        (i64, i64, i64, String),
        sqlx::sqlite::SqliteArguments,
    >,
) -> Vec<String> {
    let Store::Sqlite(pool) = Store::connect("sqlite::memory:", 1).await.expect("store") else {
        unreachable!("an SQLite URL gives an SQLite store")
    };
    Store::Sqlite(pool.clone())
        .migrate()
        .await
        .expect("migrations");
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let query = sqlx::query_as(sqlx::AssertSqlSafe(explain));
    let steps = bind(query).fetch_all(&pool).await.expect("plan");
    steps.into_iter().map(|(_, _, _, step)| step).collect()
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn credentials_never_reach_error_messages() {
        assert_eq!(
            redact_url("mysql://admin:hunter2@db:3306/x"),
            "mysql://<redacted>@db:3306/x"
        );
        assert_eq!(redact_url("nonsense"), "nonsense");
    }
}
