//! Revoked-lease retention: on every replica, at start and then every ten minutes (or every
//! retention period, when that is shorter), the leases revoked longer ago than
//! `revoked_lease_retention_seconds` leave the store in batches, each batch audited
//! (`LEASE_PURGE`, per tenant, with its count) in the transaction that deletes it. The table,
//! and every question asked of it, stays the size of the live leases and the retention window
//! instead of growing with every lease ever issued.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

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
        return;
    };
    loop {
        let purged = store
            .purge_revoked_leases(revoked_before, BATCH, |by_tenant| {
                audit.all_in_transaction(purge_events(by_tenant, revoked_before))
            })
            .await;
        match purged {
            Ok(count) => {
                metrics::counter!("leasehold_leases_purged_total").increment(count);
                if count < BATCH.unsigned_abs() {
                    return;
                }
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
