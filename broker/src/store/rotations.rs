//! Rows of `rotation_policies`, `rotation_runs` and `static_roles`.
//!
//! Due work is claimed by compare-and-swap, the same on both dialects: a run's claim is taken
//! only if it is free or expired (re-checked by the `UPDATE` itself, so two replicas never both
//! win), and a schedule fires only for the replica whose `UPDATE` still finds the `next_run_at`
//! it read.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::{change_with_event, commit_with_event};
use super::{BeginWrite, Store, StoreResult, on_pool};
use crate::audit::TransactionEvents;

pub const RUN_RUNNING: &str = "RUNNING";
pub const RUN_COMPLETED: &str = "COMPLETED";
pub const RUN_FAILED: &str = "FAILED";
pub const RUN_ROLLED_BACK: &str = "ROLLED_BACK";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RotationPolicyRow {
    pub secret_id: Uuid,
    pub tenant: String,
    pub overlap_seconds: i64,
    pub rollback_seconds: i64,
    pub retention_seconds: Option<i64>,
    pub schedule: Option<String>,
    pub deadline_seconds: Option<i64>,
    pub paused: bool,
    pub generate: Option<String>,
    pub static_role: Option<String>,
    pub webhook: Option<String>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub last_rotated_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RotationRunRow {
    pub id: Uuid,
    pub tenant: String,
    pub secret_id: Uuid,
    pub trigger_kind: String,
    pub state: String,
    pub step: String,
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
    pub error: Option<String>,
    pub overlap_ends_at: Option<DateTime<Utc>>,
    pub disable_at: Option<DateTime<Utc>>,
    pub destroy_at: Option<DateTime<Utc>>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A secret past its rotation deadline.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OverdueRow {
    pub secret_id: Uuid,
    pub environment: String,
    pub path: String,
    pub owner_team: String,
    pub deadline_at: DateTime<Utc>,
    pub last_rotated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaticRoleRow {
    pub tenant: String,
    pub name: String,
    pub backend: String,
    pub environment: String,
    pub usernames: String,
    pub secret_id: Uuid,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const POLICY_COLUMNS: &str = "secret_id, tenant, overlap_seconds, rollback_seconds, \
     retention_seconds, schedule, deadline_seconds, paused, generate, static_role, webhook, \
     next_run_at, deadline_at, last_rotated_at, updated_at";

const RUN_COLUMNS: &str = "id, tenant, secret_id, trigger_kind, state, step, from_version, \
     to_version, error, overlap_ends_at, disable_at, destroy_at, next_due_at, created_by, \
     created_at, updated_at, finished_at";

const STATIC_ROLE_COLUMNS: &str =
    "tenant, name, backend, environment, usernames, secret_id, created_by, created_at, updated_at";

/// The statement that creates or replaces the rotation policy `$row`, ready to execute.
macro_rules! upsert_rotation_policy {
    ($row:expr) => {
        sqlx::query(
            "INSERT INTO rotation_policies (secret_id, tenant, overlap_seconds, \
             rollback_seconds, retention_seconds, schedule, deadline_seconds, paused, \
             generate, static_role, webhook, next_run_at, deadline_at, last_rotated_at, \
             updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (secret_id) DO UPDATE SET overlap_seconds = excluded.overlap_seconds, \
             rollback_seconds = excluded.rollback_seconds, \
             retention_seconds = excluded.retention_seconds, schedule = excluded.schedule, \
             deadline_seconds = excluded.deadline_seconds, paused = excluded.paused, \
             generate = excluded.generate, static_role = excluded.static_role, \
             webhook = excluded.webhook, \
             next_run_at = excluded.next_run_at, deadline_at = excluded.deadline_at, \
             updated_at = excluded.updated_at",
        )
        .bind($row.secret_id)
        .bind(&$row.tenant)
        .bind($row.overlap_seconds)
        .bind($row.rollback_seconds)
        .bind($row.retention_seconds)
        .bind(&$row.schedule)
        .bind($row.deadline_seconds)
        .bind($row.paused)
        .bind(&$row.generate)
        .bind(&$row.static_role)
        .bind(&$row.webhook)
        .bind($row.next_run_at)
        .bind($row.deadline_at)
        .bind($row.last_rotated_at)
        .bind($row.updated_at)
    };
}

impl Store {
    /// Creates or replaces a secret's rotation policy, committing `audit`'s event with it.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn put_rotation_policy(
        &self,
        row: &RotationPolicyRow,
        audit: &TransactionEvents,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            change_with_event!(pool, upsert_rotation_policy!(row), audit);
        });
        Ok(())
    }

    /// # Errors
    /// Storage errors.
    pub async fn find_rotation_policy(
        &self,
        secret_id: Uuid,
    ) -> StoreResult<Option<RotationPolicyRow>> {
        let sql = format!("SELECT {POLICY_COLUMNS} FROM rotation_policies WHERE secret_id = $1");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RotationPolicyRow>(sqlx::AssertSqlSafe(sql))
                .bind(secret_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Records a completed rotation: the deadline starts again from `now`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn mark_rotated(
        &self,
        secret_id: Uuid,
        now: DateTime<Utc>,
        deadline_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE rotation_policies SET last_rotated_at = $2, deadline_at = $3 \
                 WHERE secret_id = $1",
            )
            .bind(secret_id)
            .bind(now)
            .bind(deadline_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Schedules whose next run is due and not paused.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn due_schedules(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<RotationPolicyRow>> {
        let sql = format!(
            "SELECT {POLICY_COLUMNS} FROM rotation_policies \
             WHERE next_run_at IS NOT NULL AND next_run_at <= $1 AND paused = $2 \
             ORDER BY next_run_at LIMIT $3"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RotationPolicyRow>(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(false)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Moves a schedule from `due` to `next`; true only for the one caller that still found
    /// `due` there, which then runs the rotation.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn advance_schedule(
        &self,
        secret_id: Uuid,
        due: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let changed = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE rotation_policies SET next_run_at = $3 \
                 WHERE secret_id = $1 AND next_run_at = $2 AND paused = $4",
            )
            .bind(secret_id)
            .bind(due)
            .bind(next)
            .bind(false)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// # Errors
    /// Storage errors.
    pub async fn overdue_rotations(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<OverdueRow>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, OverdueRow>(
                "SELECT p.secret_id, s.environment, s.path, s.owner_team, p.deadline_at, \
                        p.last_rotated_at \
                   FROM rotation_policies p JOIN secrets s ON s.id = p.secret_id \
                  WHERE p.tenant = $1 AND p.deadline_at IS NOT NULL AND p.deadline_at < $2 \
                  ORDER BY p.deadline_at LIMIT 1000",
            )
            .bind(tenant)
            .bind(now)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Secrets past their deadline in every tenant, for the gauge.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn count_overdue_rotations(&self, now: DateTime<Utc>) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM rotation_policies \
                 WHERE deadline_at IS NOT NULL AND deadline_at < $1",
            )
            .bind(now)
            .fetch_one(pool)
            .await?
        }))
    }

    /// # Errors
    /// Storage errors.
    pub async fn insert_rotation_run(&self, row: &RotationRunRow) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO rotation_runs (id, tenant, secret_id, trigger_kind, state, step, \
                 from_version, to_version, error, overlap_ends_at, disable_at, destroy_at, \
                 next_due_at, created_by, created_at, updated_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(row.id)
            .bind(&row.tenant)
            .bind(row.secret_id)
            .bind(&row.trigger_kind)
            .bind(&row.state)
            .bind(&row.step)
            .bind(row.from_version)
            .bind(row.to_version)
            .bind(&row.error)
            .bind(row.overlap_ends_at)
            .bind(row.disable_at)
            .bind(row.destroy_at)
            .bind(row.next_due_at)
            .bind(&row.created_by)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.finished_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Writes a run's progress and releases its claim, committed with `audit`'s event when
    /// there is one (a step, the run's end or failure).
    ///
    /// # Errors
    /// Storage errors, or `Audit` when the event could not be recorded: the run stays as it
    /// was, claimed until its claim lapses.
    pub async fn save_rotation_run(
        &self,
        row: &RotationRunRow,
        audit: Option<&TransactionEvents>,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE rotation_runs SET state = $2, step = $3, from_version = $4, \
                 to_version = $5, error = $6, overlap_ends_at = $7, disable_at = $8, \
                 destroy_at = $9, next_due_at = $10, updated_at = $11, finished_at = $12, \
                 claimed_by = NULL, claim_until = NULL WHERE id = $1",
            )
            .bind(row.id)
            .bind(&row.state)
            .bind(&row.step)
            .bind(row.from_version)
            .bind(row.to_version)
            .bind(&row.error)
            .bind(row.overlap_ends_at)
            .bind(row.disable_at)
            .bind(row.destroy_at)
            .bind(row.next_due_at)
            .bind(row.updated_at)
            .bind(row.finished_at)
            .execute(&mut *tx)
            .await?;
            commit_with_event!(tx, audit);
        });
        Ok(())
    }

    /// Claims the run whose next step is due soonest, if any is due and unclaimed (or its claim
    /// expired). A read finds the candidate first, so an idle poll never takes SQLite's write
    /// lock away from the audit writer.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn claim_due_run(
        &self,
        replica: &str,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
    ) -> StoreResult<Option<RotationRunRow>> {
        let due = "next_due_at IS NOT NULL AND next_due_at <= $1 \
                   AND (claim_until IS NULL OR claim_until < $1)";
        let find = format!("SELECT id FROM rotation_runs WHERE {due} ORDER BY next_due_at LIMIT 1");
        let claim = format!(
            "UPDATE rotation_runs SET claimed_by = $2, claim_until = $3 WHERE {due} AND id = $4 \
             RETURNING {RUN_COLUMNS}"
        );
        Ok(on_pool!(self, pool => {
            let candidate: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(find))
                .bind(now)
                .fetch_optional(pool)
                .await?;
            match candidate {
                // The `UPDATE` re-checks the claim, so two replicas never both win.
                Some(id) => sqlx::query_as::<_, RotationRunRow>(sqlx::AssertSqlSafe(claim))
                    .bind(now)
                    .bind(replica)
                    .bind(claim_until)
                    .bind(id)
                    .fetch_optional(pool)
                    .await?,
                None => None,
            }
        }))
    }

    /// # Errors
    /// Storage errors.
    pub async fn find_rotation_run(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> StoreResult<Option<RotationRunRow>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM rotation_runs WHERE tenant = $1 AND id = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RotationRunRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The newest runs of a tenant (of one secret when `secret_id` is given), newest first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn list_rotation_runs(
        &self,
        tenant: &str,
        secret_id: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<RotationRunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM rotation_runs WHERE tenant = $1 \
             AND ($2 IS NULL OR secret_id = $2) ORDER BY created_at DESC, id LIMIT $3"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RotationRunRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(secret_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// # Errors
    /// Storage errors.
    pub async fn running_rotation_runs(&self, secret_id: Uuid) -> StoreResult<Vec<RotationRunRow>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM rotation_runs WHERE secret_id = $1 AND state = $2 \
             ORDER BY created_at DESC"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RotationRunRow>(sqlx::AssertSqlSafe(sql))
                .bind(secret_id)
                .bind(RUN_RUNNING)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Creates a static role or updates its users, together with its secret's rotation
    /// `policy`, committing `audit`'s event with both.
    ///
    /// # Errors
    /// Storage errors, including a foreign-key violation for an unknown backend.
    pub async fn put_static_role(
        &self,
        row: &StaticRoleRow,
        policy: &RotationPolicyRow,
        audit: &TransactionEvents,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO static_roles (tenant, name, backend, environment, usernames, \
                 secret_id, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (tenant, name) DO UPDATE SET usernames = excluded.usernames, \
                 updated_at = excluded.updated_at",
            )
            .bind(&row.tenant)
            .bind(&row.name)
            .bind(&row.backend)
            .bind(&row.environment)
            .bind(&row.usernames)
            .bind(row.secret_id)
            .bind(&row.created_by)
            .bind(row.created_at)
            .bind(row.updated_at)
            .execute(&mut *tx)
            .await?;
            upsert_rotation_policy!(policy).execute(&mut *tx).await?;
            commit_with_event!(tx, Some(audit));
        });
        Ok(())
    }

    /// # Errors
    /// Storage errors.
    pub async fn find_static_role(
        &self,
        tenant: &str,
        name: &str,
    ) -> StoreResult<Option<StaticRoleRow>> {
        let sql = format!(
            "SELECT {STATIC_ROLE_COLUMNS} FROM static_roles WHERE tenant = $1 AND name = $2"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, StaticRoleRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(name)
                .fetch_optional(pool)
                .await?
        }))
    }
}
