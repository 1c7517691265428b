//! The broker's side of the lease scheduler (`leasehold-scheduler`): claims and outcomes in the
//! store, revocation through the plugins, and what an operator must hear about — every batch is
//! audited as the broker's own doing (`LEASE_EXPIRE`) in the transaction that records it, and a
//! lease that exhausted its retry budget is audited there too (`LEASE_IRREVOCABLE`), then
//! counted and alerted.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use leasehold_scheduler::{Claimed, ClaimedBatch, LeaseStore, Outcome, Revoker};
use uuid::Uuid;

use super::LeaseService;
use crate::alerts::AlertSink;
use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::store::{LeaseClaim, LeaseOutcome, LeaseRow, LeaseUser, PENDING, Store, StoreError};

/// The store and audit trail as the scheduler sees them.
pub struct ScheduledLeases {
    store: Store,
    audit: AuditLog,
    alerts: AlertSink,
    intent_grace: chrono::Duration,
}

impl ScheduledLeases {
    /// `intent_grace` is how long an issue may take (`lease_intent_grace_seconds`): an intent
    /// revoked before it ends is dropped again then.
    pub fn new(store: Store, audit: AuditLog, alerts: AlertSink, intent_grace: Duration) -> Self {
        Self {
            store,
            audit,
            alerts,
            intent_grace: chrono::Duration::from_std(intent_grace).unwrap_or(chrono::Duration::MAX),
        }
    }

    /// For an intent claimed before its grace ended (a revocation made it due early, or a
    /// retry), the grace's end: its issue may still commit the user after this round's drop.
    /// Decided by the due time the lease was claimed at, so by when the drop started, not when
    /// it finished.
    fn grace_end(&self, lease: &LeaseRow) -> Option<DateTime<Utc>> {
        let end = lease.issued_at.checked_add_signed(self.intent_grace)?;
        (lease.state == PENDING && lease.due_at.is_some_and(|due| due < end)).then_some(end)
    }

    /// The batch's events: one `LEASE_EXPIRE` per tenant, and one `LEASE_IRREVOCABLE` per lease
    /// that spent its budget. They commit with the batch's record, so a round whose events
    /// cannot be recorded records nothing, and its leases are claimed and revoked again later.
    fn batch_events(&self, outcomes: &[(Claimed<LeaseRow>, Outcome)]) -> Vec<AuditEvent> {
        let mut by_tenant: BTreeMap<&str, (Vec<String>, Vec<String>, usize)> = BTreeMap::new();
        let mut irrevocable = Vec::new();
        for (claimed, outcome) in outcomes {
            // Dropped early, it is recorded when its grace ends and it is dropped for good.
            if matches!(outcome, Outcome::Revoked) && self.grace_end(&claimed.lease).is_some() {
                continue;
            }
            let entry = by_tenant.entry(&claimed.lease.tenant).or_default();
            match outcome {
                Outcome::Revoked if claimed.lease.state == PENDING => {
                    entry.1.push(claimed.id.to_string());
                }
                Outcome::Revoked => entry.0.push(claimed.id.to_string()),
                Outcome::Retry { .. } => entry.2 += 1,
                Outcome::Irrevocable { error } => {
                    entry.2 += 1;
                    irrevocable.push(irrevocable_event(&claimed.lease, error));
                }
            }
        }
        by_tenant
            .into_iter()
            .map(|(tenant, (expired, abandoned, failed))| {
                AuditEvent::system(tenant, EventType::LeaseExpire)
                    .detail("revoked", expired)
                    .detail("abandonedIntentsRevoked", abandoned)
                    .detail("failed", failed)
            })
            .chain(irrevocable)
            .collect()
    }

    /// Counts and alerts a lease recorded IRREVOCABLE (its event committed with the record).
    fn report_irrevocable(&self, lease: &LeaseRow, error: &str) {
        metrics::counter!("leasehold_leases_irrevocable_total", "backend" => lease.backend.clone())
            .increment(1);
        tracing::error!(lease = %lease.id, backend = %lease.backend, %error, "lease is IRREVOCABLE: its revocation budget is spent");
        self.alerts.send(serde_json::json!({
                "event": "LEASE_IRREVOCABLE",
                "tenant": lease.tenant,
                "leaseId": lease.id,
                "backend": lease.backend,
                "role": lease.role,
                "username": lease.username,
                "lastError": error,
                "action": "fix the target and POST /v1/leases/{id}/revoke to retry, or POST /v1/leases/{id}/force-revoke",
        }));
    }
}

fn irrevocable_event(lease: &LeaseRow, error: &str) -> AuditEvent {
    AuditEvent::system(&lease.tenant, EventType::LeaseIrrevocable)
        .location(&lease.environment, &format!("roles/{}", lease.role))
        .detail("leaseId", lease.id.to_string())
        .detail("backend", lease.backend.as_str())
        .detail("username", lease.username.as_str())
        .detail("lastError", error)
}

#[async_trait]
impl LeaseStore for ScheduledLeases {
    type Lease = LeaseRow;
    type Claim = LeaseClaim;
    type Error = StoreError;

    async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        claim_for: Duration,
        limit: u32,
    ) -> Result<ClaimedBatch<LeaseClaim, LeaseRow>, StoreError> {
        let (claim, mut rows) = self
            .store
            .claim_due_leases(owner, now, claim_for, i64::from(limit))
            .await?;
        // An intent is flagged before its user is dropped, so that an issue still under way can
        // no longer activate it; one its issue activated meanwhile has its user and is left
        // alone (it is due at its expiry now).
        let intents: Vec<Uuid> = rows
            .iter()
            .filter(|row| row.state == PENDING)
            .map(|row| row.id)
            .collect();
        if !intents.is_empty() {
            let flagged = self.store.request_intent_revocation(&intents).await?;
            rows.retain(|row| row.state != PENDING || flagged.contains(&row.id));
        }
        let leases = rows
            .into_iter()
            .map(|row| Claimed {
                id: row.id,
                attempts: u32::try_from(row.attempts).unwrap_or(0),
                failing_since: row.failing_since,
                lease: row,
            })
            .collect();
        Ok(ClaimedBatch { claim, leases })
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.store.next_lease_due().await
    }

    async fn complete(
        &self,
        claim: LeaseClaim,
        outcomes: &[(Claimed<LeaseRow>, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let rows: Vec<LeaseOutcome<'_>> = outcomes
            .iter()
            .map(|(claimed, outcome)| match outcome {
                Outcome::Revoked => match self.grace_end(&claimed.lease) {
                    Some(at) => LeaseOutcome::Recheck { id: claimed.id, at },
                    None => LeaseOutcome::Revoked(claimed.id),
                },
                Outcome::Retry {
                    at,
                    failing_since,
                    error,
                } => LeaseOutcome::Retry {
                    id: claimed.id,
                    at: *at,
                    failing_since: *failing_since,
                    error,
                },
                Outcome::Irrevocable { error } => LeaseOutcome::Irrevocable {
                    id: claimed.id,
                    error,
                },
            })
            .collect();
        let audit = self.audit.all_in_transaction(self.batch_events(outcomes));
        self.store
            .complete_claimed_leases(claim, &rows, now, &audit)
            .await?;
        for (claimed, outcome) in outcomes {
            if let Outcome::Irrevocable { error } = outcome {
                self.report_irrevocable(&claimed.lease, error);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Revoker<LeaseRow> for LeaseService {
    async fn revoke(&self, leases: &[&LeaseRow]) -> Vec<Result<(), String>> {
        let users: Vec<LeaseUser<'_>> = leases.iter().map(|lease| lease.user()).collect();
        self.drop_users(&users)
            .await
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }
}

/// The lease-count gauges, refreshed every `every`.
pub async fn publish_lease_gauges(store: Store, every: Duration) {
    loop {
        match store.count_leases_by_state().await {
            Ok(counts) => {
                for state in ["PENDING", "ACTIVE", "IRREVOCABLE"] {
                    let count = counts
                        .iter()
                        .find(|(s, _)| s == state)
                        .map_or(0, |(_, c)| *c);
                    metrics::gauge!("leasehold_leases", "state" => state).set(count as f64);
                }
            }
            Err(error) => tracing::warn!(%error, "could not count leases"),
        }
        match store
            .count_leases_expiring(Utc::now() + chrono::Duration::minutes(1))
            .await
        {
            Ok(count) => {
                metrics::gauge!("leasehold_leases_due_within_minute").set(count as f64);
            }
            Err(error) => tracing::warn!(%error, "could not count leases due soon"),
        }
        tokio::time::sleep(every).await;
    }
}
