//! Cleanup of lease intents: a PENDING lease older than a grace period belongs to an issue that
//! crashed or failed half-way. Its user may or may not exist; revoking it drops the user if it
//! does (a missing user counts as revoked) and marks the lease REVOKED.
//!
//! Runs once at start and then periodically. The grace period must exceed the longest an issue
//! can take (connection wait plus statement timeout), so a live issue on another replica is
//! never cleaned up under its feet.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::LeaseService;
use crate::store::Store;

/// Default age after which a PENDING intent is considered abandoned.
pub const INTENT_GRACE: Duration = Duration::from_secs(120);
/// How often the cleanup looks (never less often than half the grace period).
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(30);
const BATCH: i64 = 500;

/// Revokes abandoned intents until `shutdown` resolves.
pub async fn run_intent_cleanup(
    store: Store,
    leases: Arc<LeaseService>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let interval = CLEANUP_INTERVAL
        .min(grace / 2)
        .max(Duration::from_millis(200));
    let work = async {
        loop {
            if let Err(error) = clean_once(&store, &leases, grace).await {
                tracing::warn!(%error, "lease intent cleanup failed; will retry");
            }
            tokio::time::sleep(interval).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown => {}
    }
}

async fn clean_once(
    store: &Store,
    leases: &LeaseService,
    grace: Duration,
) -> Result<(), crate::store::StoreError> {
    let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    loop {
        let stale = store.stale_lease_intents(cutoff, BATCH).await?;
        if stale.is_empty() {
            return Ok(());
        }
        let failures = leases.revoke_abandoned(&stale).await;
        tracing::info!(
            abandoned = stale.len(),
            failed = failures.len(),
            "revoked abandoned lease intents"
        );
        metrics::counter!("leasehold_lease_intents_cleaned_total")
            .increment((stale.len() - failures.len()) as u64);
        if !failures.is_empty() {
            // The failed ones keep their place; the next round retries them.
            return Ok(());
        }
    }
}
