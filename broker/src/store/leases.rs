//! Rows of `leases`: every credential handed out, from intent (PENDING) to REVOKED.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreResult, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeaseRow {
    pub id: Uuid,
    pub tenant: String,
    pub environment: String,
    pub role: String,
    pub backend: String,
    pub principal: String,
    pub username: String,
    pub state: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub max_expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// Filters of `GET /v1/leases`; `None` matches everything.
#[derive(Debug, Default)]
pub struct LeaseFilter<'a> {
    pub role: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub state: Option<&'a str>,
    /// Only leases whose id sorts after this one (ids are time-ordered UUIDv7).
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub const PENDING: &str = "PENDING";
pub const ACTIVE: &str = "ACTIVE";
pub const REVOKED: &str = "REVOKED";

/// Lease writes that go through the audit writer's group commit: one transaction (one fsync) for
/// every request waiting at that moment, and an activation or renewal commits exactly with its
/// event. Each reports whether it changed a row.
#[derive(Debug, Clone)]
pub enum JournalEffect {
    /// The intent of a lease (state PENDING), written before its user is created; not applied
    /// when the id exists already.
    InsertLeaseIntent(Box<LeaseRow>),
    /// PENDING → ACTIVE; not applied when the intent is gone (cleaned up meanwhile).
    ActivateLease { id: Uuid, at: DateTime<Utc> },
    /// Moves an ACTIVE lease's expiry; not applied when it is not ACTIVE any more.
    ExtendLease {
        id: Uuid,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

pub(super) const INSERT_INTENT: &str = "INSERT INTO leases (id, tenant, environment, role, backend, \
     principal, username, state, issued_at, expires_at, max_expires_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $9) ON CONFLICT (id) DO NOTHING";
pub(super) const ACTIVATE: &str =
    "UPDATE leases SET state = $2, updated_at = $3 WHERE id = $1 AND state = $4";
pub(super) const EXTEND: &str =
    "UPDATE leases SET expires_at = $2, updated_at = $3 WHERE id = $1 AND state = $4";

const COLUMNS: &str = "id, tenant, environment, role, backend, principal, username, state, \
     issued_at, expires_at, max_expires_at, revoked_at, updated_at, last_error";

impl Store {
    /// # Errors
    /// Storage errors.
    pub async fn find_lease(&self, tenant: &str, id: Uuid) -> StoreResult<Option<LeaseRow>> {
        let sql = format!("SELECT {COLUMNS} FROM leases WHERE tenant = $1 AND id = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A page of a tenant's leases in issue order.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_leases(
        &self,
        tenant: &str,
        filter: &LeaseFilter<'_>,
    ) -> StoreResult<Vec<LeaseRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM leases WHERE tenant = $1 \
             AND ($2 IS NULL OR role = $2) AND ($3 IS NULL OR principal = $3) \
             AND ($4 IS NULL OR state = $4) AND ($5 IS NULL OR id > $5) \
             ORDER BY id LIMIT $6"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(filter.role)
                .bind(filter.principal)
                .bind(filter.state)
                .bind(filter.after)
                .bind(filter.limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Marks leases REVOKED (their users are gone); returns how many changed state.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn mark_leases_revoked(&self, ids: &[Uuid], now: DateTime<Utc>) -> StoreResult<u64> {
        let mut changed = 0;
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "UPDATE leases SET state = $1, revoked_at = $2, updated_at = $2, last_error = NULL \
                 WHERE state <> $1 AND id IN ({})",
                placeholders.join(", ")
            );
            changed += on_pool!(self, pool => {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(REVOKED).bind(now);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(pool).await?.rows_affected()
            });
        }
        Ok(changed)
    }

    /// Records why a revocation failed (the lease stays live, to be retried).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn record_lease_error(
        &self,
        id: Uuid,
        error: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE leases SET last_error = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(error)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// PENDING intents last touched before `cutoff`, oldest first: left by a crash or a failed
    /// issue, and to be revoked.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn stale_lease_intents(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<LeaseRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM leases WHERE state = $1 AND updated_at < $2 \
             ORDER BY updated_at LIMIT $3"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sql))
                .bind(PENDING)
                .bind(cutoff)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Up to `limit` live (PENDING or ACTIVE) leases on a backend, or on a role when given.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn live_leases(
        &self,
        tenant: &str,
        backend: &str,
        role: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<LeaseRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM leases WHERE tenant = $1 AND backend = $2 \
             AND ($3 IS NULL OR role = $3) AND state IN ($4, $5) ORDER BY id LIMIT $6"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(backend)
                .bind(role)
                .bind(PENDING)
                .bind(ACTIVE)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }
}
