//! Claims on batches of leases, so that replicas never revoke the same lease at the same time:
//! the lease scheduler's rounds and the revocation jobs' batches both take one.
//!
//! On PostgreSQL a claim is one `lease_claims` row naming its batch's leases. A claimer holds
//! the table's lock while it reads what no claim names and writes its own, so claimers take
//! turns; a claim whose time is up belongs to a replica that died mid-batch and is deleted by the
//! next claimer. Every transaction stays short. On SQLite, which serves one broker and whose one
//! writer serialises claims anyway, whatever claim there is lives on the rows themselves (the
//! scheduler's `claimed_by`, `claim_expires_at`), and recording the outcomes clears it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A store's claim on a batch of leases, until the batch's outcomes are recorded.
#[derive(Debug, Clone, Copy)]
pub enum LeaseClaim {
    /// On the rows, or none (SQLite).
    InRows,
    /// The `lease_claims` row naming the batch (PostgreSQL).
    Batch(Uuid),
}

/// Leaves out the leases a live claim names; valid inside a transaction from [`begin_claim`].
pub(super) const UNCLAIMED: &str = "id NOT IN (SELECT unnest(lease_ids) FROM lease_claims)";

/// Opens a claim on PostgreSQL: the transaction holds the claim table's lock, and the claims
/// whose time is up at `now` are gone. Read the batch with [`UNCLAIMED`], then [`commit_claim`].
pub(super) async fn begin_claim(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // A claim lost in a crash loses nothing: its leases are claimed again, and dropping a user
    // that is gone is success; so the claim need not wait for its WAL flush.
    sqlx::raw_sql("SET LOCAL synchronous_commit TO OFF; LOCK TABLE lease_claims IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM lease_claims WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// When a claim taken at `now` for `claim_for` ends.
pub(super) fn claim_ends(now: DateTime<Utc>, claim_for: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(claim_for).unwrap_or(chrono::Duration::MAX)
}

/// Names `ids` in a claim of `owner` taken at `now` for `claim_for`, and commits.
pub(super) async fn commit_claim(
    mut tx: Transaction<'static, Postgres>,
    owner: &str,
    now: DateTime<Utc>,
    claim_for: Duration,
    ids: Vec<Uuid>,
) -> Result<LeaseClaim, sqlx::Error> {
    let claim = Uuid::new_v4();
    if !ids.is_empty() {
        sqlx::query(
            "INSERT INTO lease_claims (id, owner, expires_at, lease_ids) VALUES ($1, $2, $3, $4)",
        )
        .bind(claim)
        .bind(owner)
        .bind(claim_ends(now, claim_for))
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(LeaseClaim::Batch(claim))
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
