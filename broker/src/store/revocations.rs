//! Rows of `revocation_jobs` and the lease queries a mass revocation runs: how many leases a
//! selector matches, batches of them claimed for one replica, and a job's progress.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::change_with_event;
use super::claims::{LeaseClaim, bind_claim, claim_under_lock, claiming, release_claim, unclaimed};
use super::leases::{ACCOUNT_COLUMNS, COLUMNS, LeaseOutcome, expedite_intents, write_outcomes};
use super::{BeginWrite, LeaseAccount, LeaseRow, REVOKED, Store, StoreResult, on_pool};
use crate::audit::TransactionEvents;

pub const JOB_RUNNING: &str = "RUNNING";
pub const JOB_COMPLETED: &str = "COMPLETED";
pub const JOB_FAILED: &str = "FAILED";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevocationJobRow {
    pub id: Uuid,
    pub tenant: String,
    /// The selector as JSON, without the tenant (the column above).
    pub selector: String,
    pub reason: String,
    pub ticket: String,
    pub requested_by: String,
    pub state: String,
    pub total: i64,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub fence_until: Option<DateTime<Utc>>,
    pub failures_reported: i64,
}

const JOB_COLUMNS: &str = "id, tenant, selector, reason, ticket, requested_by, state, total, \
     created_at, finished_at, fence_until, failures_reported";

pub(super) const INSERT_JOB: &str = "INSERT INTO revocation_jobs (id, tenant, selector, reason, \
     ticket, requested_by, state, total, created_at, fence_until) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(super) const LIFT_FENCE: &str = "UPDATE revocation_jobs SET fence_until = NULL WHERE tenant = $1 AND id = $2 AND fence_until IS NOT NULL";

/// Which leases of a tenant a job takes: every given field must match.
#[derive(Debug, Clone, Default)]
pub struct LeaseSelector {
    pub role: Option<String>,
    pub backend: Option<String>,
    pub principal: Option<String>,
    pub environment: Option<String>,
    pub issued_after: Option<DateTime<Utc>>,
    pub issued_before: Option<DateTime<Utc>>,
    /// Inclusive id bounds (a lease-id prefix).
    pub id_range: Option<(Uuid, Uuid)>,
}

/// A selector as SQL: a run of `AND …` conditions whose placeholders start where the query's
/// own parameters end, and the values that fill them, in order.
struct SelectorSql {
    clause: String,
    binds: Vec<SelectorBind>,
}

enum SelectorBind {
    Text(String),
    Time(DateTime<Utc>),
    Id(Uuid),
}

impl LeaseSelector {
    fn sql(&self, first_placeholder: usize) -> SelectorSql {
        let mut clause = String::new();
        let mut binds = Vec::new();
        let mut condition = |sql: &str, bind: SelectorBind| {
            let n = first_placeholder + binds.len();
            clause.push_str(&sql.replace('?', &format!("${n}")));
            binds.push(bind);
        };
        let texts = [
            (" AND role = ?", &self.role),
            (" AND backend = ?", &self.backend),
            (" AND principal = ?", &self.principal),
            (" AND environment = ?", &self.environment),
        ];
        for (sql, value) in texts {
            if let Some(value) = value {
                condition(sql, SelectorBind::Text(value.clone()));
            }
        }
        if let Some(after) = self.issued_after {
            condition(" AND issued_at >= ?", SelectorBind::Time(after));
        }
        if let Some(before) = self.issued_before {
            condition(" AND issued_at < ?", SelectorBind::Time(before));
        }
        if let Some((low, high)) = self.id_range {
            condition(" AND id >= ?", SelectorBind::Id(low));
            condition(" AND id <= ?", SelectorBind::Id(high));
        }
        SelectorSql { clause, binds }
    }
}

/// Binds a selector's values, in order, onto a query of either dialect.
macro_rules! bind_selector {
    ($query:expr, $selector:expr) => {{
        let mut query = $query;
        for bind in &$selector.binds {
            query = match bind {
                SelectorBind::Text(text) => query.bind(text.clone()),
                SelectorBind::Time(time) => query.bind(*time),
                SelectorBind::Id(id) => query.bind(*id),
            };
        }
        query
    }};
}

/// Live leases a selector matches, by role, backend and environment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MatchGroup {
    pub role: String,
    pub backend: String,
    pub environment: String,
    pub count: i64,
}

/// The leases a job handled, by backend and state, with one of the errors of the failed ones.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobLeaseCount {
    pub backend: String,
    pub state: String,
    pub count: i64,
    pub last_error: Option<String>,
}

/// Live leases of one tenant, as a condition. `$1` is the tenant.
const LIVE: &str = "tenant = $1 AND state IN ('PENDING', 'ACTIVE', 'IRREVOCABLE')";

/// A batch of leases one replica revokes for a job, under a claim (see [`super::claims`]), so
/// that other replicas, and the lease scheduler, leave it alone until it is finished or the
/// claim's time is up.
pub struct JobBatch {
    pub leases: Vec<LeaseAccount>,
    claim: LeaseClaim,
}

impl Store {
    /// The `FROM` of a query for the live leases a selector matches. SQLite plans without
    /// statistics (it has none unless ANALYZE runs), so it cannot know that live leases are a
    /// sliver of a table full of revoked history, and its planner counted a selector's matches
    /// by walking every lease the tenant ever had. On SQLite the query therefore names an
    /// index that reaches the live leases alone: each of these holds `tenant` and `state` after
    /// the selector's own equalities. A lease-id prefix reads the live leases too, not a
    /// primary-key range: a short prefix of a time-ordered id spans years of history.
    /// PostgreSQL keeps statistics and chooses for itself.
    fn live_leases_matching(&self, selector: &LeaseSelector) -> &'static str {
        match self {
            Store::Postgres(_) => "leases",
            Store::Sqlite(_) if selector.role.is_some() => "leases INDEXED BY leases_tenant_role",
            Store::Sqlite(_) if selector.principal.is_some() => {
                "leases INDEXED BY leases_tenant_principal"
            }
            Store::Sqlite(_) => "leases INDEXED BY leases_state",
        }
    }

    fn count_selected_sql(&self, selector: &LeaseSelector) -> (String, SelectorSql) {
        let from = self.live_leases_matching(selector);
        let selector = selector.sql(2);
        let sql = format!(
            "SELECT role, backend, environment, COUNT(*) AS count FROM {from} WHERE {LIVE}{} \
             GROUP BY role, backend, environment ORDER BY role, backend, environment",
            selector.clause
        );
        (sql, selector)
    }

    /// Live leases of `tenant` matching `selector`, grouped.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn count_selected_leases(
        &self,
        tenant: &str,
        selector: &LeaseSelector,
    ) -> StoreResult<Vec<MatchGroup>> {
        let (sql, selector) = self.count_selected_sql(selector);
        Ok(on_pool!(self, pool => {
            let query = sqlx::query_as::<_, MatchGroup>(sqlx::AssertSqlSafe(sql)).bind(tenant);
            bind_selector!(query, selector).fetch_all(pool).await?
        }))
    }

    /// The first `limit` live leases of `tenant` matching `selector`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn sample_selected_leases(
        &self,
        tenant: &str,
        selector: &LeaseSelector,
        limit: i64,
    ) -> StoreResult<Vec<LeaseRow>> {
        let from = self.live_leases_matching(selector);
        let selector = selector.sql(2);
        let sql = format!(
            "SELECT {COLUMNS} FROM {from} WHERE {LIVE}{} ORDER BY id LIMIT {limit}",
            selector.clause
        );
        Ok(on_pool!(self, pool => {
            let query = sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(sql)).bind(tenant);
            bind_selector!(query, selector).fetch_all(pool).await?
        }))
    }

    /// The ids of up to `limit` live leases of `tenant` matching `selector` that no job has
    /// taken yet, in id order: one scan per pass, then batches by primary key.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn untaken_job_leases(
        &self,
        tenant: &str,
        selector: &LeaseSelector,
        limit: i64,
    ) -> StoreResult<Vec<Uuid>> {
        let from = self.live_leases_matching(selector);
        let selector = selector.sql(2);
        let sql = format!(
            "SELECT id FROM {from} WHERE {LIVE} AND revocation_job IS NULL{} ORDER BY id LIMIT {limit}",
            selector.clause
        );
        Ok(on_pool!(self, pool => {
            let query = sqlx::query_scalar::<_, Uuid>(sqlx::AssertSqlSafe(sql)).bind(tenant);
            bind_selector!(query, selector).fetch_all(pool).await?
        }))
    }

    /// Takes the leases among `ids` that are still live, untaken by a job and unclaimed, under a
    /// claim of `owner` for `claim_for`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn claim_job_batch(
        &self,
        owner: &str,
        ids: &[Uuid],
        now: DateTime<Utc>,
        claim_for: Duration,
    ) -> StoreResult<JobBatch> {
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let select = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM leases WHERE id IN ({}) \
             AND state IN ('PENDING', 'ACTIVE', 'IRREVOCABLE') AND revocation_job IS NULL",
            placeholders.join(", ")
        );
        match self {
            Store::Sqlite(pool) => {
                let mut query = sqlx::query_as::<_, LeaseAccount>(sqlx::AssertSqlSafe(select));
                for id in ids {
                    query = query.bind(*id);
                }
                let leases = query.fetch_all(pool).await?;
                Ok(JobBatch {
                    leases,
                    claim: LeaseClaim::InRows,
                })
            }
            Store::Postgres(pool) => {
                let select = format!("{select} AND {}", unclaimed(ids.len()));
                let mut query = sqlx::query_as::<_, LeaseAccount>(claiming(&select, ids.len()));
                for id in ids {
                    query = query.bind(*id);
                }
                let (query, claim) = bind_claim(query, owner, now, claim_for);
                let leases = claim_under_lock(pool, query).await?;
                Ok(JobBatch { leases, claim })
            }
        }
    }

    /// Records what happened to a batch, naming `job` on every lease, hands its `intents`
    /// (leases that were PENDING) to the scheduler (`expedite_intents`), and releases it. The
    /// commit does not wait for its WAL flush: a record a crash loses leaves leases that a later
    /// pass takes again, and the job's finish, which does wait, makes every record before it
    /// durable.
    ///
    /// # Errors
    /// Storage errors; nothing is recorded then, and the leases are taken again by a later pass.
    pub async fn finish_job_batch(
        &self,
        batch: JobBatch,
        job: Uuid,
        outcomes: &[LeaseOutcome<'_>],
        intents: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write_unflushed().await?;
            write_outcomes!(&mut *tx, outcomes, now, Some(job));
            for chunk in intents.chunks(500) {
                expedite_intents!(&mut *tx, chunk, Some(job), now);
            }
            release_claim!(&mut *tx, batch.claim);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Live leases of `tenant` matching `selector`, and how many of
    /// them are IRREVOCABLE after a failed attempt by `job`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn remaining_selected_leases(
        &self,
        tenant: &str,
        selector: &LeaseSelector,
        job: Uuid,
    ) -> StoreResult<(i64, i64)> {
        let from = self.live_leases_matching(selector);
        let selector = selector.sql(2);
        let job_param = selector.binds.len() + 2;
        let sql = format!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'IRREVOCABLE' AND revocation_job = ${job_param} \
             THEN 1 ELSE 0 END), 0) FROM {from} WHERE {LIVE}{}",
            selector.clause
        );
        let (live, irrevocable): (i64, i64) = on_pool!(self, pool => {
            let query = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql)).bind(tenant);
            bind_selector!(query, selector).bind(job).fetch_one(pool).await?
        });
        Ok((live, irrevocable))
    }

    /// The leases `job` revoked or failed to revoke, by backend and state. The counts come from
    /// the index alone; the errors are read only for failed leases, which are few.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn job_lease_counts(&self, job: Uuid) -> StoreResult<Vec<JobLeaseCount>> {
        let mut counts = on_pool!(self, pool => {
            sqlx::query_as::<_, JobLeaseCount>(
                "SELECT backend, state, COUNT(*) AS count, CAST(NULL AS TEXT) AS last_error \
                 FROM leases WHERE revocation_job = $1 GROUP BY backend, state ORDER BY backend, state",
            )
            .bind(job)
            .fetch_all(pool)
            .await?
        });
        if counts.iter().all(|count| count.state == REVOKED) {
            return Ok(counts);
        }
        let errors: Vec<(String, String, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT backend, state, MAX(last_error) FROM leases \
                 WHERE revocation_job = $1 AND state <> 'REVOKED' GROUP BY backend, state",
            )
            .bind(job)
            .fetch_all(pool)
            .await?
        });
        for count in &mut counts {
            count.last_error = errors
                .iter()
                .find(|(backend, state, _)| *backend == count.backend && *state == count.state)
                .and_then(|(_, _, error)| error.clone());
        }
        Ok(counts)
    }

    /// # Errors
    /// Storage errors.
    pub async fn revocation_job(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> StoreResult<Option<RevocationJobRow>> {
        let sql =
            format!("SELECT {JOB_COLUMNS} FROM revocation_jobs WHERE tenant = $1 AND id = $2");
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RevocationJobRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A tenant's jobs, newest first, older than `before` when given.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn revocation_jobs(
        &self,
        tenant: &str,
        before: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<RevocationJobRow>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM revocation_jobs WHERE tenant = $1 AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RevocationJobRow>(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(before)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Every RUNNING job, of every tenant, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn running_revocation_jobs(&self) -> StoreResult<Vec<RevocationJobRow>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM revocation_jobs WHERE state = 'RUNNING' ORDER BY created_at"
        );
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, RevocationJobRow>(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?
        }))
    }

    /// The ids and selectors of a tenant's fences that hold at `now`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn active_fences(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<(Uuid, String)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, (Uuid, String)>(
                "SELECT id, selector FROM revocation_jobs WHERE tenant = $1 \
                 AND fence_until IS NOT NULL AND fence_until > $2 ORDER BY id",
            )
            .bind(tenant)
            .bind(now)
            .fetch_all(pool)
            .await?
        }))
    }

    /// RUNNING → `state`, committed with `audit`'s event; false (and no event) when another
    /// replica finished the job first.
    ///
    /// # Errors
    /// Storage errors, or `Audit` when the event could not be recorded: the job stays RUNNING.
    pub async fn finish_revocation_job(
        &self,
        id: Uuid,
        state: &str,
        now: DateTime<Utc>,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => change_with_event!(
            pool,
            sqlx::query(
                "UPDATE revocation_jobs SET state = $2, finished_at = $3 WHERE id = $1 AND state = 'RUNNING'",
            )
            .bind(id)
            .bind(state)
            .bind(now),
            audit
        )))
    }

    /// Moves the count of reported failures up to `failed`, committed with `audit`'s event;
    /// false (and no event) when it was there already (another replica reported them).
    ///
    /// # Errors
    /// Storage errors, or `Audit` when the event could not be recorded.
    pub async fn report_job_failures(
        &self,
        id: Uuid,
        failed: i64,
        audit: &TransactionEvents,
    ) -> StoreResult<bool> {
        Ok(on_pool!(self, pool => change_with_event!(
            pool,
            sqlx::query(
                "UPDATE revocation_jobs SET failures_reported = $2 WHERE id = $1 AND failures_reported < $2",
            )
            .bind(id)
            .bind(failed),
            audit
        )))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::{LeaseSelector, SelectorBind, Store};
    use crate::store::sqlite_plan;

    fn selector(field: &str) -> LeaseSelector {
        let text = Some("x".to_owned());
        match field {
            "role" => LeaseSelector {
                role: text,
                ..LeaseSelector::default()
            },
            "principal" => LeaseSelector {
                principal: text,
                ..LeaseSelector::default()
            },
            "role+principal" => LeaseSelector {
                role: text.clone(),
                principal: text,
                ..LeaseSelector::default()
            },
            "backend" => LeaseSelector {
                backend: text,
                ..LeaseSelector::default()
            },
            "environment" => LeaseSelector {
                environment: text,
                ..LeaseSelector::default()
            },
            "issued" => LeaseSelector {
                issued_after: Some(Utc::now()),
                issued_before: Some(Utc::now()),
                ..LeaseSelector::default()
            },
            "lease id" => LeaseSelector {
                id_range: Some((Uuid::nil(), Uuid::max())),
                ..LeaseSelector::default()
            },
            _ => LeaseSelector::default(),
        }
    }

    /// Without statistics SQLite counted a role's live leases by walking every lease the
    /// tenant ever had (`leases_backend_username (tenant=?)`); the count must reach live leases
    /// through an index that ends in `state`, whatever the selector.
    #[tokio::test]
    async fn a_selector_count_on_sqlite_reads_only_live_leases() {
        let sqlite =
            Store::Sqlite(sqlx::SqlitePool::connect_lazy("sqlite::memory:").expect("pool"));
        let expected = [
            (
                "role",
                "leases_tenant_role (tenant=? AND role=? AND state=?)",
            ),
            (
                "role+principal",
                "leases_tenant_role (tenant=? AND role=? AND state=?)",
            ),
            (
                "principal",
                "leases_tenant_principal (tenant=? AND principal=? AND state=?)",
            ),
            ("backend", "leases_state (tenant=? AND state=?)"),
            ("environment", "leases_state (tenant=? AND state=?)"),
            ("issued", "leases_state (tenant=? AND state=?)"),
            ("lease id", "leases_state (tenant=? AND state=?)"),
            ("nothing", "leases_state (tenant=? AND state=?)"),
        ];
        for (field, index) in expected {
            let (sql, binds) = sqlite.count_selected_sql(&selector(field));
            let plan =
                sqlite_plan(&sql, |query| bind_selector!(query.bind("default"), binds)).await;
            assert!(
                plan.iter()
                    .any(|step| step == &format!("SEARCH leases USING INDEX {index}")),
                "selector by {field}: {plan:?}"
            );
        }
    }
}
