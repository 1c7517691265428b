//! Rows of `leases`: every credential handed out, from intent (PENDING) to REVOKED.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::commit_with_event;
use super::claims::{
    LeaseClaim, bind_claim, claim_ends, claim_under_lock, claiming, release_claim, unclaimed,
};
use super::{BeginWrite, Store, StoreResult, on_pool};
use crate::audit::TransactionEvents;

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
    /// When the scheduler acts on this lease next: the intent's grace end, the expiry, or the
    /// next retry. `None` once it is REVOKED or IRREVOCABLE.
    pub due_at: Option<DateTime<Utc>>,
    /// Failed revocation attempts, and when the first of them happened.
    pub attempts: i32,
    pub failing_since: Option<DateTime<Utc>>,
}

impl LeaseRow {
    pub fn user(&self) -> LeaseUser<'_> {
        LeaseUser::of(&self.tenant, &self.backend, &self.role, &self.username)
    }
}

/// The columns of a lease that revoking its user needs: a revocation job reads only these.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeaseAccount {
    pub id: Uuid,
    pub tenant: String,
    pub backend: String,
    pub role: String,
    pub username: String,
    pub state: String,
}

pub(super) const ACCOUNT_COLUMNS: &str = "id, tenant, backend, role, username, state";

impl LeaseAccount {
    pub fn user(&self) -> LeaseUser<'_> {
        LeaseUser::of(&self.tenant, &self.backend, &self.role, &self.username)
    }
}

/// Where a lease's user lives, and its name: what dropping the user takes.
#[derive(Debug, Clone, Copy)]
pub struct LeaseUser<'a> {
    pub tenant: &'a str,
    pub backend: &'a str,
    pub role: &'a str,
    pub username: &'a str,
}

impl<'a> LeaseUser<'a> {
    fn of(tenant: &'a str, backend: &'a str, role: &'a str, username: &'a str) -> Self {
        Self {
            tenant,
            backend,
            role,
            username,
        }
    }
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
pub const IRREVOCABLE: &str = "IRREVOCABLE";

/// Lease writes that go through the audit writer's group commit: one transaction (one fsync) for
/// every request waiting at that moment, and an activation or renewal commits exactly with its
/// event. Each reports whether it changed a row.
#[derive(Debug, Clone)]
pub enum JournalEffect {
    /// The intent of a lease (state PENDING), written before its user is created; not applied
    /// when the id exists already.
    /// Its `due_at` is the end of the intent's grace period.
    InsertLeaseIntent(Box<LeaseRow>),
    /// PENDING → ACTIVE; not applied when the intent is gone (cleaned up meanwhile).
    ActivateLease { id: Uuid, at: DateTime<Utc> },
    /// Moves an ACTIVE lease's expiry; not applied when it is not ACTIVE any more.
    ExtendLease {
        id: Uuid,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// A mass revocation job and its fence, committed with the event that requested it.
    InsertRevocationJob(Box<super::RevocationJobRow>),
    /// Lifts a job's fence; not applied when it was lifted already.
    LiftFence { tenant: String, job: Uuid },
}

pub(super) const INSERT_INTENT: &str = "INSERT INTO leases (id, tenant, environment, role, backend, \
     principal, username, state, issued_at, expires_at, max_expires_at, updated_at, due_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $9, $12) ON CONFLICT (id) DO NOTHING";
/// An active lease is due at its expiry. Only an intent nobody has started to revoke becomes
/// ACTIVE: not one a revocation asked for (`revocation_requested`, set by `expedite_intents`
/// whatever the clocks say), whose grace is over, that a revocation failed on, or that a job has
/// taken. Its issue then drops the user itself.
pub(super) const ACTIVATE: &str = "UPDATE leases SET state = $2, updated_at = $3, due_at = expires_at \
     WHERE id = $1 AND state = $4 AND NOT revocation_requested AND due_at > $3 AND attempts = 0 \
     AND last_error IS NULL AND revocation_job IS NULL";
/// A lease a revocation job has taken (even one whose revocation failed and is being retried)
/// is not extended.
pub(super) const EXTEND: &str = "UPDATE leases SET expires_at = $2, updated_at = $3, due_at = $2 \
     WHERE id = $1 AND state = $4 AND revocation_job IS NULL";

pub(super) const COLUMNS: &str = "id, tenant, environment, role, backend, principal, username, state, \
     issued_at, expires_at, max_expires_at, revoked_at, updated_at, last_error, due_at, attempts, \
     failing_since";

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
        let (sql, values) = list_sql(filter);
        Ok(on_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sql)).bind(tenant);
            for value in &values {
                query = query.bind(*value);
            }
            if let Some(after) = filter.after {
                query = query.bind(after);
            }
            query.bind(filter.limit).fetch_all(pool).await?
        }))
    }

    /// Marks leases REVOKED (their users are gone); returns how many changed state.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn mark_leases_revoked(&self, ids: &[Uuid], now: DateTime<Utc>) -> StoreResult<u64> {
        let mut changed = 0;
        for chunk in ids.chunks(500) {
            let sql = mark_revoked_sql(chunk.len());
            changed += on_pool!(self, pool => {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(REVOKED)
                    .bind(now)
                    .bind(None::<Uuid>);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(pool).await?.rows_affected()
            });
        }
        Ok(changed)
    }

    /// Flags the intents among `ids` (still PENDING) as `revocation_requested`, so their issues
    /// can no longer activate them, without moving their due time; answers the ids flagged.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn request_intent_revocation(
        &self,
        ids: &[Uuid],
    ) -> StoreResult<std::collections::HashSet<Uuid>> {
        let mut flagged = std::collections::HashSet::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 1)).collect();
            let sql = format!(
                "UPDATE leases SET revocation_requested = TRUE \
                 WHERE state = 'PENDING' AND id IN ({}) RETURNING id",
                placeholders.join(", ")
            );
            let found: Vec<Uuid> = on_pool!(self, pool => {
                let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(*id);
                }
                query.fetch_all(pool).await?
            });
            flagged.extend(found);
        }
        Ok(flagged)
    }

    /// Hands lease intents (PENDING leases, whose issue may still be under way) to the lease
    /// scheduler instead of dropping their users here: each is marked `revocation_requested`,
    /// so its issue can no longer activate it (see `ACTIVATE`), and becomes due `now`, naming
    /// `job` when given. The scheduler drops the user at once and again when the intent's grace
    /// ends (`LeaseOutcome::Recheck`), so a user its issue commits in between is dropped too; the
    /// issue, if it is still running, drops its user itself. Returns how many were still PENDING.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn expedite_intents(
        &self,
        ids: &[Uuid],
        job: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut changed = 0;
        for chunk in ids.chunks(500) {
            changed += on_pool!(self, pool => {
                let mut tx = pool.begin_write().await?;
                let changed = expedite_intents!(&mut *tx, chunk, job, now);
                tx.commit().await?;
                changed
            });
        }
        Ok(changed)
    }

    /// Records why a revocation failed; the lease stays live and the scheduler retries it at once
    /// (then with its backoff).
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
            sqlx::query("UPDATE leases SET last_error = $2, updated_at = $3, due_at = $3 WHERE id = $1 AND state <> 'REVOKED'")
                .bind(id)
                .bind(error)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Up to `limit` live (PENDING, ACTIVE or IRREVOCABLE) leases on a backend, or on a role when given.
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
             AND ($3 IS NULL OR role = $3) AND state IN ($4, $5, $6) ORDER BY id LIMIT $7"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(backend)
                .bind(role)
                .bind(PENDING)
                .bind(ACTIVE)
                .bind(IRREVOCABLE)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Claims up to `limit` live leases due at `now` that hold no live claim, oldest due first,
    /// for `claim_for` (see [`super::claims`]).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn claim_due_leases(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        claim_for: Duration,
        limit: i64,
    ) -> StoreResult<(LeaseClaim, Vec<LeaseRow>)> {
        match self {
            Store::Sqlite(pool) => {
                let mut tx = pool.begin_write().await?;
                let rows = sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sqlite_claim_due()))
                    .bind(now)
                    .bind(limit)
                    .bind(owner)
                    .bind(claim_ends(now, claim_for))
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok((LeaseClaim::InRows, rows))
            }
            Store::Postgres(pool) => {
                let select = format!(
                    "SELECT {COLUMNS} FROM leases WHERE {LIVE_AND_DUE} AND {} \
                     ORDER BY due_at LIMIT $2",
                    unclaimed(2)
                );
                let query = sqlx::query_as::<_, LeaseRow>(claiming(&select, 2))
                    .bind(now)
                    .bind(limit);
                let (query, claim) = bind_claim(query, owner, now, claim_for);
                Ok((claim, claim_under_lock(pool, query).await?))
            }
        }
    }

    /// When the next live lease is due.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn next_lease_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(NEXT_DUE)
            .fetch_optional(pool)
            .await?
            .flatten()
        }))
    }

    /// Records the outcome of a claimed batch and releases the claims, in one transaction that
    /// commits with the batch's `audit` events. The commit does not wait for its WAL flush: a
    /// record a crash loses, events and all, leaves leases that are revoked and recorded again.
    /// Waiting would hold the chain's head through each flush, one round after another.
    ///
    /// # Errors
    /// Storage errors, or `Audit` when the events could not be recorded; nothing is recorded
    /// then, and the claims end by themselves.
    pub async fn complete_claimed_leases(
        &self,
        claim: LeaseClaim,
        outcomes: &[LeaseOutcome<'_>],
        now: DateTime<Utc>,
        audit: &TransactionEvents,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write_unflushed().await?;
            write_outcomes!(&mut *tx, outcomes, now, None::<Uuid>);
            release_claim!(&mut *tx, claim);
            commit_with_event!(tx, Some(audit));
        });
        Ok(())
    }

    /// ACTIVE leases expiring before `until` (for the lease-count metrics).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn count_leases_expiring(&self, until: DateTime<Utc>) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(COUNT_DUE_BY)
            .bind(until)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Leases by state across tenants (for the lease-count metrics).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn count_leases_by_state(&self) -> StoreResult<Vec<(String, i64)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("SELECT state, COUNT(*) FROM leases WHERE state <> 'REVOKED' GROUP BY state")
                .fetch_all(pool)
                .await?
        }))
    }
}

/// A page of a tenant's leases, with a condition for each filter given and none for the others,
/// so that an index on what is given serves it (`state` alone: `leases_state`; a role:
/// `leases_tenant_role`): SQLite plans a statement once, whatever values are bound, and a
/// condition such as `($2 IS NULL OR role = $2)` left it only the tenant's whole history to
/// read. Answers the SQL and the filter values to bind after the tenant, in order; then `after`
/// when given, then the limit.
fn list_sql<'a>(filter: &LeaseFilter<'a>) -> (String, Vec<&'a str>) {
    let mut conditions = vec!["tenant = $1".to_owned()];
    let mut values = Vec::new();
    for (column, value) in [
        ("role", filter.role),
        ("principal", filter.principal),
        ("state", filter.state),
    ] {
        if let Some(value) = value {
            values.push(value);
            conditions.push(format!("{column} = ${}", values.len() + 1));
        }
    }
    let mut next = values.len() + 2;
    if filter.after.is_some() {
        conditions.push(format!("id > ${next}"));
        next += 1;
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM leases WHERE {} ORDER BY id LIMIT ${next}",
        conditions.join(" AND ")
    );
    (sql, values)
}

// The scheduler's questions reach live leases through the partial index `leases_due`, whose
// predicate their literal state list matches; a test reads their plans back on SQLite.

/// Live leases due at `$1`.
const LIVE_AND_DUE: &str = "state IN ('PENDING', 'ACTIVE') AND due_at <= $1";
const NEXT_DUE: &str =
    "SELECT due_at FROM leases WHERE state IN ('PENDING', 'ACTIVE') ORDER BY due_at LIMIT 1";
const COUNT_DUE_BY: &str =
    "SELECT COUNT(*) FROM leases WHERE state IN ('PENDING', 'ACTIVE') AND due_at <= $1";

/// SQLite's claim of due leases: one statement, since its writers take turns anyway.
fn sqlite_claim_due() -> String {
    format!(
        "UPDATE leases SET claimed_by = $3, claim_expires_at = $4 WHERE id IN ( \
           SELECT id FROM leases WHERE {LIVE_AND_DUE} \
           AND (claim_expires_at IS NULL OR claim_expires_at < $1) \
           ORDER BY due_at LIMIT $2) RETURNING {COLUMNS}"
    )
}

/// Marks leases revoked: `$1` REVOKED, `$2` now, `$3` the job that revoked them (or NULL to
/// keep the one they carry), then the ids.
pub(super) fn mark_revoked_sql(count: usize) -> String {
    let placeholders: Vec<String> = (0..count).map(|i| format!("${}", i + 4)).collect();
    format!(
        "UPDATE leases SET state = $1, revoked_at = $2, updated_at = $2, last_error = NULL, \
         due_at = NULL, claimed_by = NULL, claim_expires_at = NULL, \
         revocation_job = COALESCE($3, revocation_job) \
         WHERE state <> $1 AND id IN ({})",
        placeholders.join(", ")
    )
}

/// Makes the PENDING leases among `$ids` (a slice of at most 500) due at `$now`, naming `$job`
/// (an `Option<Uuid>`) when given, in the transaction `$tx`; evaluates to how many changed.
macro_rules! expedite_intents {
    ($tx:expr, $ids:expr, $job:expr, $now:expr) => {{
        let placeholders: Vec<String> = (0..$ids.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "UPDATE leases SET due_at = $1, updated_at = $1, revocation_requested = TRUE, \
             revocation_job = COALESCE($2, revocation_job) \
             WHERE state = 'PENDING' AND id IN ({})",
            placeholders.join(", ")
        );
        let job: Option<uuid::Uuid> = $job;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind($now).bind(job);
        for id in $ids {
            query = query.bind(*id);
        }
        query.execute($tx).await?.rows_affected()
    }};
}
pub(super) use expedite_intents;

/// A failed revocation waits for its retry. A lease an operator's job took out of IRREVOCABLE
/// is live again, with a fresh budget.
pub(super) const RETRY: &str = "UPDATE leases SET attempts = attempts + 1, failing_since = $2, due_at = $3, \
     last_error = $4, updated_at = $5, claimed_by = NULL, claim_expires_at = NULL, \
     state = CASE WHEN state = 'IRREVOCABLE' THEN 'ACTIVE' ELSE state END, \
     revocation_job = COALESCE($6, revocation_job) WHERE id = $1 AND state <> 'REVOKED'";

/// An intent dropped early comes due again at the end of its grace.
pub(super) const RECHECK: &str = "UPDATE leases SET due_at = $2, updated_at = $3, claimed_by = NULL, \
     claim_expires_at = NULL WHERE id = $1 AND state = 'PENDING'";

pub(super) const GIVE_UP: &str = "UPDATE leases SET state = 'IRREVOCABLE', attempts = attempts + 1, \
     last_error = $2, updated_at = $3, due_at = NULL, claimed_by = NULL, claim_expires_at = NULL, \
     revocation_job = COALESCE($4, revocation_job) WHERE id = $1 AND state <> 'REVOKED'";

/// Writes the outcomes of a batch of revocations inside the transaction `$tx`, naming `$job`
/// (an `Option<Uuid>`) on each lease when given; the claims are released.
macro_rules! write_outcomes {
    ($tx:expr, $outcomes:expr, $now:expr, $job:expr) => {{
        use $crate::store::leases::{GIVE_UP, LeaseOutcome, RECHECK, RETRY, mark_revoked_sql};
        let job: Option<uuid::Uuid> = $job;
        let revoked: Vec<uuid::Uuid> = $outcomes
            .iter()
            .filter_map(|o| match o {
                LeaseOutcome::Revoked(id) => Some(*id),
                _ => None,
            })
            .collect();
        // The common case, revoked leases, in one statement per 500.
        for chunk in revoked.chunks(500) {
            let sql = mark_revoked_sql(chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind($crate::store::REVOKED)
                .bind($now)
                .bind(job);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute($tx).await?;
        }
        for outcome in $outcomes {
            match outcome {
                LeaseOutcome::Revoked(_) => {}
                LeaseOutcome::Recheck { id, at } => {
                    sqlx::query(RECHECK)
                        .bind(*id)
                        .bind(*at)
                        .bind($now)
                        .execute($tx)
                        .await?;
                }
                LeaseOutcome::Retry {
                    id,
                    at,
                    failing_since,
                    error,
                } => {
                    sqlx::query(RETRY)
                        .bind(*id)
                        .bind(*failing_since)
                        .bind(*at)
                        .bind(*error)
                        .bind($now)
                        .bind(job)
                        .execute($tx)
                        .await?;
                }
                LeaseOutcome::Irrevocable { id, error } => {
                    sqlx::query(GIVE_UP)
                        .bind(*id)
                        .bind(*error)
                        .bind($now)
                        .bind(job)
                        .execute($tx)
                        .await?;
                }
            }
        }
    }};
}
pub(super) use write_outcomes;

/// What happened to one claimed lease.
#[derive(Debug)]
pub enum LeaseOutcome<'a> {
    Revoked(Uuid),
    /// An intent whose user was dropped before its grace ended: its issue may still commit
    /// the user, so it stays PENDING and is dropped again at `at`, the grace's end.
    Recheck {
        id: Uuid,
        at: DateTime<Utc>,
    },
    Retry {
        id: Uuid,
        at: DateTime<Utc>,
        failing_since: DateTime<Utc>,
        error: &'a str,
    },
    Irrevocable {
        id: Uuid,
        error: &'a str,
    },
}

#[cfg(test)]
mod tests {
    use super::{COUNT_DUE_BY, LeaseFilter, NEXT_DUE, list_sql, sqlite_claim_due};
    use crate::store::sqlite_plan;

    /// A listing by state or role reads that state's or role's leases, not the tenant's whole
    /// history.
    #[tokio::test]
    async fn a_listing_reads_the_index_of_what_it_filters_on() {
        let filter = |role, principal, state| LeaseFilter {
            role,
            principal,
            state,
            after: Some(uuid::Uuid::nil()),
            limit: 100,
        };
        let expected = [
            (
                filter(None, None, Some("IRREVOCABLE")),
                "leases_state (tenant=? AND state=?)",
            ),
            (
                filter(Some("app"), None, None),
                "leases_tenant_role (tenant=? AND role=?)",
            ),
            (
                filter(Some("app"), None, Some("ACTIVE")),
                "leases_tenant_role (tenant=? AND role=? AND state=?)",
            ),
            (
                filter(None, Some("service:prod:app"), None),
                "leases_tenant_principal (tenant=? AND principal=?)",
            ),
        ];
        for (filter, index) in expected {
            let (sql, _) = list_sql(&filter);
            let plan = sqlite_plan(&sql, |query| query).await;
            assert!(
                plan.iter()
                    .any(|step| step == &format!("SEARCH leases USING INDEX {index}")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// An index that leads with `state` once made SQLite sort every live lease to find the
    /// next one due; these must keep reading `leases_due` in due order.
    #[tokio::test]
    async fn the_scheduler_reads_due_leases_through_their_partial_index() {
        for sql in [
            NEXT_DUE.to_owned(),
            COUNT_DUE_BY.to_owned(),
            sqlite_claim_due(),
        ] {
            let plan = sqlite_plan(&sql, |query| query).await;
            assert!(
                plan.iter()
                    .any(|step| step.contains("USING INDEX leases_due")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
    }
}
