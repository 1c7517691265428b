//! Claims on batches of leases, so that replicas never revoke the same lease at the same time:
//! the lease scheduler's rounds and the revocation jobs' batches both take one.
//!
//! On PostgreSQL a claim is one `lease_claims` row naming its batch's leases. A claimer holds
//! the claimers' advisory lock while one statement reads what no live claim names and writes its
//! own claim, so claimers take turns, each for one statement and its commit; a claim whose time
//! is up belongs to a replica that died mid-batch and is deleted by the next claimer. Recording
//! a batch's outcomes deletes its claim without that lock: the delete commits together with the
//! leases' new states, so a claimer sees either the claim or the recorded leases, never neither.
//! Every transaction stays short. On SQLite, which serves one broker and whose one
//! writer serialises claims anyway, whatever claim there is lives on the rows themselves (the
//! scheduler's `claimed_by`, `claim_expires_at`), and recording the outcomes clears it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use super::BeginWrite;

/// A store's claim on a batch of leases, until the batch's outcomes are recorded.
#[derive(Debug, Clone, Copy)]
pub enum LeaseClaim {
    /// On the rows, or none (SQLite).
    InRows,
    /// The `lease_claims` row naming the batch (PostgreSQL).
    Batch(Uuid),
}

/// The statement that claims, on PostgreSQL, the rows of `select`, whose parameters are `$1` to
/// `$params`; `select` filters with [`unclaimed`] for that same `params`. In one statement it
/// deletes the claims whose time is up, reads the batch, writes the claim naming it (none when
/// the batch is empty) and returns the batch's rows. Bind the `SELECT`'s own parameters, then
/// [`bind_claim`], and run it with [`claim_under_lock`].
pub(super) fn claiming(select: &str, params: usize) -> sqlx::AssertSqlSafe<String> {
    let (now, id, owner, ends) = (params + 1, params + 2, params + 3, params + 4);
    sqlx::AssertSqlSafe(format!(
        "WITH expired AS (DELETE FROM lease_claims WHERE expires_at <= ${now}), \
         picked AS ({select}), \
         taken AS (INSERT INTO lease_claims (id, owner, expires_at, lease_ids) \
           SELECT ${id}, ${owner}, ${ends}, array_agg(id) FROM picked HAVING count(*) > 0) \
         SELECT * FROM picked"
    ))
}

/// Leaves out the leases named by a claim still live at the [`claiming`] statement's `now`
/// (the statement cannot see its own delete of the claims whose time is up).
pub(super) fn unclaimed(params: usize) -> String {
    format!(
        "id NOT IN (SELECT unnest(lease_ids) FROM lease_claims WHERE expires_at > ${})",
        params + 1
    )
}

/// Binds a [`claiming`] statement's own parameters after the `SELECT`'s: a claim of `owner`
/// taken at `now` for `claim_for`. Returns the claim with the query.
pub(super) fn bind_claim<'q, R>(
    query: QueryAs<'q, Postgres, R, PgArguments>,
    owner: &str,
    now: DateTime<Utc>,
    claim_for: Duration,
) -> (QueryAs<'q, Postgres, R, PgArguments>, LeaseClaim) {
    let claim = Uuid::new_v4();
    let query = query
        .bind(now)
        .bind(claim)
        .bind(owner.to_owned())
        .bind(claim_ends(now, claim_for));
    (query, LeaseClaim::Batch(claim))
}

/// The advisory lock claimers take turns on (an arbitrary constant, "lh_claim" in ASCII).
const CLAIMERS_LOCK: i64 = 0x6c68_5f63_6c61_696d;

/// Runs a claim's statement while holding the claimers' advisory lock, so claimers take turns
/// and no two claim the same lease, and commits. The lock is held for that one statement and the
/// commit; transactions recording outcomes never take it, so claims and records do not wait for
/// each other.
pub(super) async fn claim_under_lock<R>(
    pool: &PgPool,
    query: QueryAs<'_, Postgres, R, PgArguments>,
) -> Result<Vec<R>, sqlx::Error>
where
    R: Send + Unpin + for<'r> sqlx::FromRow<'r, PgRow>,
{
    // A claim lost in a crash loses nothing: its leases are claimed again, and dropping a user
    // that is gone is success; so the claim need not wait for its WAL flush.
    let mut tx = pool.begin_write_unflushed().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CLAIMERS_LOCK)
        .execute(&mut *tx)
        .await?;
    let rows = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows)
}

/// When a claim taken at `now` for `claim_for` ends.
pub(super) fn claim_ends(now: DateTime<Utc>, claim_for: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(claim_for).unwrap_or(chrono::Duration::MAX)
}

/// Ends `$claim` inside the transaction `$tx` that records its batch's outcomes.
macro_rules! release_claim {
    ($tx:expr, $claim:expr) => {{
        if let $crate::store::LeaseClaim::Batch(claim) = $claim {
            sqlx::query("DELETE FROM lease_claims WHERE id = $1")
                .bind(claim)
                .execute($tx)
                .await?;
        }
    }};
}
pub(super) use release_claim;
