//! Revoked-lease retention: on every replica, at start and then every ten minutes (or every
//! retention period, when that is shorter), the leases revoked longer ago than
//! `revoked_lease_retention_seconds` leave the store in batches, each batch audited
//! (`LEASE_PURGE`, per tenant, with its count) in the transaction that deletes it. The table
//! keeps the live leases, the revoked ones of the retention window and those a mass revocation
//! job revoked (its record), instead of every lease ever issued.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::store::Store;

/// Leases per transaction: short enough not to hold SQLite's write lock for long.
const BATCH: i64 = 500;

/// Runs the purge forever (the server aborts it at shutdown).
pub async fn purge_revoked_leases(store: Store, audit: AuditLog, retention: Duration) {
    let every = retention.clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        purge_now(&store, &audit, retention).await;
        tokio::time::sleep(every).await;
    }
}

/// Deletes every lease past its retention, a batch at a time, until none is left or the store
/// fails (then the next period tries again).
async fn purge_now(store: &Store, audit: &AuditLog, retention: Duration) {
    let Some(revoked_before) = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|retention| Utc::now().checked_sub_signed(retention))
    else {
        tracing::error!("revoked_lease_retention_seconds is out of range; nothing is purged");
        return;
    };
    let mut after = Uuid::nil();
    loop {
        let purged = store
            .purge_revoked_leases(revoked_before, after, BATCH, |by_tenant| {
                audit.all_in_transaction(purge_events(by_tenant, revoked_before))
            })
            .await;
        match purged {
            Ok(batch) => {
                metrics::counter!("leasehold_leases_purged_total").increment(batch.count);
                if batch.count < BATCH.unsigned_abs() {
                    return;
                }
                after = batch.last_id;
            }
            Err(error) => {
                tracing::warn!(%error, "could not purge revoked leases; the next period tries again");
                return;
            }
        }
        // Other writers get the store between two batches.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn purge_events(
    by_tenant: &BTreeMap<String, u64>,
    revoked_before: DateTime<Utc>,
) -> Vec<AuditEvent> {
    by_tenant
        .iter()
        .map(|(tenant, count)| {
            AuditEvent::system(tenant, EventType::LeasePurge)
                .detail("purged", *count)
                .detail(
                    "revokedBefore",
                    revoked_before.to_rfc3339_opts(SecondsFormat::Secs, true),
                )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use uuid::Uuid;

    use super::purge_now;
    use crate::audit::AuditLog;
    use crate::store::Store;

    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    /// A lease issued `days` ago, revoked then when `state` is REVOKED, by `job` when given.
    async fn insert(store: &Store, days: i64, state: &str, job: Option<Uuid>) {
        let Store::Sqlite(pool) = store else {
            unreachable!("the test store is SQLite")
        };
        let at = Utc::now() - chrono::Duration::days(days);
        let millis = u64::try_from(at.timestamp_millis()).expect("after 1970");
        let id = Uuid::new_v7(uuid::Timestamp::from_unix_time(
            millis / 1000,
            u32::try_from(millis % 1000).expect("millis") * 1_000_000,
            0,
            0,
        ));
        let revoked = (state == "REVOKED").then_some(at);
        sqlx::query(
            "INSERT INTO leases (id, tenant, environment, role, backend, principal, username, \
             state, issued_at, expires_at, max_expires_at, revoked_at, updated_at, revocation_job) \
             VALUES ($1, 'default', 'prod', 'app', 'db', 'service:prod:app', $2, $3, $4, $4, $4, $5, $4, $6)",
        )
        .bind(id)
        .bind(format!("user_{}", id.simple()))
        .bind(state)
        .bind(at)
        .bind(revoked)
        .bind(job)
        .execute(pool)
        .await
        .expect("insert");
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        let Store::Sqlite(pool) = store else {
            unreachable!("the test store is SQLite")
        };
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(pool)
            .await
            .expect("count")
    }

    /// 900 leases past their retention go, in two batches whose events add up; the live, the
    /// recently revoked and the job's leases between them stay.
    #[tokio::test]
    async fn a_pass_purges_every_expired_lease_and_keeps_the_rest() {
        let store = Store::connect("sqlite::memory:", 1).await.expect("store");
        store.migrate().await.expect("migrations");
        let job = Some(Uuid::now_v7());
        for i in 0..1500 {
            match i % 5 {
                0 => insert(&store, 8, "ACTIVE", None).await,
                1 => insert(&store, 8, "REVOKED", job).await,
                _ => insert(&store, 8, "REVOKED", None).await,
            }
        }
        insert(&store, 1, "REVOKED", None).await;
        let audit = AuditLog::start(store.clone(), Duration::from_secs(5), None).expect("audit");

        purge_now(&store, &audit, WEEK).await;

        assert_eq!(count(&store, "SELECT COUNT(*) FROM leases").await, 601);
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM leases WHERE state = 'REVOKED' AND revocation_job IS NULL"
            )
            .await,
            1
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM audit_events WHERE event_type = 'LEASE_PURGE'"
            )
            .await,
            2
        );
        assert_eq!(
            count(
                &store,
                "SELECT SUM(CAST(json_extract(detail, '$.purged') AS INTEGER)) FROM audit_events \
                 WHERE event_type = 'LEASE_PURGE'"
            )
            .await,
            900
        );
    }
}
