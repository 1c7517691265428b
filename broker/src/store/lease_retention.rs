//! Removing revoked leases once their retention has passed, a batch at a time, each batch
//! committed with the `LEASE_PURGE` events that say how many rows left, per tenant. Leases a
//! mass revocation job revoked stay: they are that job's record (its counts are read from them).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::audit::commit_with_event;
use super::{BeginWrite, REVOKED, Store, StoreResult, on_pool};
use crate::audit::TransactionEvents;

/// Revoked leases of no job, revoked before `$3`, in id order after `$1`. Lease ids are
/// time-ordered (UUIDv7) and a lease is issued before it is revoked, so `id < $2` (the first id
/// of the cut-off's millisecond) holds for every such lease (a clock that ran ahead only delays
/// a purge: `revoked_at` decides) and lets the scan walk the primary key. A pass continues each
/// batch after the last id of the one before, so what it keeps there (live leases of long TTLs,
/// job records) is read once per pass.
const PURGEABLE: &str = "SELECT id, tenant FROM leases WHERE id > $1 AND id < $2 \
     AND state = $4 AND revocation_job IS NULL AND revoked_at < $3 ORDER BY id LIMIT $5";

/// What one batch of a purge did.
pub struct PurgedBatch {
    pub count: u64,
    /// Where the next batch of the same pass starts (exclusive).
    pub last_id: Uuid,
}

impl Store {
    /// Deletes up to `limit` leases revoked before `revoked_before` (and taken by no job) with
    /// ids above `after` (`Uuid::nil()` for a pass's first batch), in one transaction that
    /// commits with the events `audit` makes of the counts per tenant; answers how many left and
    /// the last id read. On PostgreSQL the rows are locked as they are read, and rows another
    /// replica is purging are skipped, so two replicas never count the same lease.
    ///
    /// # Errors
    /// Storage errors, or `Audit` when the events could not be recorded; nothing is deleted
    /// then.
    pub async fn purge_revoked_leases(
        &self,
        revoked_before: DateTime<Utc>,
        after: Uuid,
        limit: i64,
        audit: impl FnOnce(&BTreeMap<String, u64>) -> TransactionEvents,
    ) -> StoreResult<PurgedBatch> {
        let bound = first_id_of(revoked_before);
        let select = match self {
            Store::Sqlite(_) => PURGEABLE.to_owned(),
            Store::Postgres(_) => format!("{PURGEABLE} FOR UPDATE SKIP LOCKED"),
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<(Uuid, String)> = sqlx::query_as(sqlx::AssertSqlSafe(select))
                .bind(after)
                .bind(bound)
                .bind(revoked_before)
                .bind(REVOKED)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let Some(&(last_id, _)) = rows.last() else {
                return Ok(PurgedBatch { count: 0, last_id: after });
            };
            let mut by_tenant: BTreeMap<String, u64> = BTreeMap::new();
            for (_, tenant) in &rows {
                *by_tenant.entry(tenant.clone()).or_default() += 1;
            }
            for chunk in rows.chunks(500) {
                let mut delete = sqlx::QueryBuilder::new("DELETE FROM leases WHERE id IN (");
                let mut ids = delete.separated(", ");
                for (id, _) in chunk {
                    ids.push_bind(*id);
                }
                delete.push(")");
                delete.build().execute(&mut *tx).await?;
            }
            let events = audit(&by_tenant);
            commit_with_event!(tx, Some(&events));
            Ok(PurgedBatch { count: by_tenant.values().sum(), last_id })
        })
    }
}

/// The smallest UUIDv7 of the millisecond `at` falls in: every lease issued earlier has a
/// smaller id.
fn first_id_of(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::{PURGEABLE, first_id_of};
    use crate::store::sqlite_plan;

    #[test]
    fn the_bound_sorts_between_the_leases_issued_before_and_after_it() {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 7, 3, 0, 0)
            .single()
            .expect("time");
        let millis = u64::try_from(at.timestamp_millis()).expect("after 1970");
        let before = Uuid::new_v7(uuid::Timestamp::from_unix_time(
            millis / 1000 - 1,
            999_000_000,
            0,
            0,
        ));
        let same = Uuid::new_v7(uuid::Timestamp::from_unix_time(millis / 1000, 0, 0, 0));
        assert!(before < first_id_of(at));
        assert!(first_id_of(at) <= same);
    }

    /// The purge walks the primary key from its start, not a whole index of revoked leases.
    #[tokio::test]
    async fn the_purge_reads_the_primary_key_in_order() {
        let plan = sqlite_plan(PURGEABLE, |query| query).await;
        assert_eq!(
            plan,
            ["SEARCH leases USING INDEX sqlite_autoindex_leases_1 (id>? AND id<?)"],
            "{plan:?}"
        );
    }
}
