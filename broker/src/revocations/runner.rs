//! Works RUNNING revocation jobs, on every replica at once.
//!
//! A pass walks the job's matching leases in id order, a batch at a time. On PostgreSQL each
//! batch is claimed (`store::LeaseClaim`) while its users are dropped, so replicas working the
//! same job, and the lease scheduler, take disjoint batches, and the batch of a replica that
//! dies is taken again once its claim's time is up; SQLite has a single broker. Two batches are
//! in flight at once, so the store never idles the targets. A lease whose revocation fails is
//! handed to the lease scheduler's retry policy, naming the job; the job finishes when nothing
//! matching it is live, or only IRREVOCABLE leases are.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use leasehold_scheduler::{Outcome, RetryPolicy, SchedulerConfig};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::jobs::JobCounts;
use super::{JobSignals, Selector};
use crate::alerts::AlertSink;
use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::dynamic::LeaseService;
use crate::store::{
    JOB_COMPLETED, JOB_FAILED, JobBatch, LeaseAccount, LeaseOutcome, LeaseSelector, LeaseUser,
    PENDING, RevocationJobRow, Store, StoreError,
};

/// Leases per batch: one store statement and a few plugin round trips each.
const BATCH: usize = 500;
/// Lease ids a pass reads at once; a larger job takes several passes.
const PASS: i64 = 100_000;
/// Batches in flight per job and replica.
const IN_FLIGHT: usize = 2;
/// How often a replica looks for jobs when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);

pub struct JobRunner {
    store: Store,
    leases: Arc<LeaseService>,
    audit: AuditLog,
    alerts: AlertSink,
    retry: RetryPolicy,
    signals: Arc<JobSignals>,
    /// Names this replica's claims, and how long they hold (the lease scheduler's).
    owner: String,
    claim_for: Duration,
}

impl JobRunner {
    pub fn new(
        store: Store,
        leases: Arc<LeaseService>,
        audit: AuditLog,
        alerts: AlertSink,
        scheduler: &SchedulerConfig,
        signals: Arc<JobSignals>,
    ) -> Self {
        Self {
            store,
            leases,
            audit,
            alerts,
            retry: scheduler.retry,
            signals,
            owner: scheduler.owner.clone(),
            claim_for: scheduler.claim_for,
        }
    }

    /// Works jobs until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            match self.store.running_revocation_jobs().await {
                Ok(jobs) => {
                    for job in jobs {
                        if let Err(error) = Arc::clone(&self).work(&job).await {
                            tracing::warn!(job = %job.id, %error, "revocation job pass failed; retrying");
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "could not list revocation jobs"),
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = self.signals.accepted.notified() => {}
            }
        }
    }

    /// Passes over the job until one finds nothing left to take, then settles it.
    async fn work(self: Arc<Self>, job: &RevocationJobRow) -> Result<(), StoreError> {
        let filter = Selector::from_stored(job.id, &job.selector)?
            .to_store()
            .map_err(|error| StoreError::Corrupt(format!("revocation job {}: {error}", job.id)))?;
        while Arc::clone(&self).pass(job, &filter).await? > 0 {}
        self.settle(job, &filter).await
    }

    /// One walk over the job's untaken leases, by primary key in batches; returns how many it
    /// took. Each replica starts at a random batch, so replicas working one job mostly take
    /// different leases rather than skipping each other's locked rows.
    async fn pass(
        self: Arc<Self>,
        job: &RevocationJobRow,
        filter: &LeaseSelector,
    ) -> Result<usize, StoreError> {
        let ids = self
            .store
            .untaken_job_leases(&job.tenant, filter, PASS)
            .await?;
        let mut batches: Vec<&[Uuid]> = ids.chunks(BATCH).collect();
        if !batches.is_empty() {
            let start = rand::random_range(0..batches.len());
            batches.rotate_left(start);
        }
        let mut taken = 0;
        let mut in_flight: JoinSet<Result<(), StoreError>> = JoinSet::new();
        let mut failure = None;
        for ids in batches {
            while in_flight.len() >= IN_FLIGHT {
                if let Some(Ok(Err(error))) = in_flight.join_next().await {
                    failure = Some(error);
                }
            }
            if failure.is_some() {
                break;
            }
            let batch = self
                .store
                .claim_job_batch(&self.owner, ids, Utc::now(), self.claim_for)
                .await?;
            if batch.leases.is_empty() {
                continue;
            }
            taken += batch.leases.len();
            in_flight.spawn(Arc::clone(&self).revoke_batch(job.id, batch));
        }
        while let Some(joined) = in_flight.join_next().await {
            if let Ok(Err(error)) = joined {
                failure = Some(error);
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(taken),
        }
    }

    async fn revoke_batch(self: Arc<Self>, job: Uuid, batch: JobBatch) -> Result<(), StoreError> {
        // An intent's issue may still be under way: its user may appear after any drop made
        // here. It is handed to the scheduler instead, which its issue can no longer race.
        let (intents, live): (Vec<&LeaseAccount>, Vec<&LeaseAccount>) = batch
            .leases
            .iter()
            .partition(|lease| lease.state == PENDING);
        let intents: Vec<Uuid> = intents.iter().map(|lease| lease.id).collect();
        let users: Vec<LeaseUser<'_>> = live.iter().map(|lease| lease.user()).collect();
        let dropping = std::time::Instant::now();
        let results: Vec<Result<(), String>> = self
            .leases
            .drop_users(&users)
            .await
            .into_iter()
            .map(|result| result.map_err(|error| error.to_string()))
            .collect();
        let drop_ms = dropping.elapsed().as_millis() as u64;
        let now = Utc::now();
        let outcomes: Vec<LeaseOutcome<'_>> = live
            .iter()
            .zip(results.iter())
            .map(|(lease, result)| match result {
                Ok(()) => LeaseOutcome::Revoked(lease.id),
                // An operator's job gives every lease a fresh retry budget, IRREVOCABLE ones too.
                Err(error) => match self.retry.after_failure(1, None, now, error.clone()) {
                    Outcome::Retry {
                        at, failing_since, ..
                    } => LeaseOutcome::Retry {
                        id: lease.id,
                        at,
                        failing_since,
                        error,
                    },
                    _ => LeaseOutcome::Irrevocable {
                        id: lease.id,
                        error,
                    },
                },
            })
            .collect();
        let failed = outcomes
            .iter()
            .filter(|o| !matches!(o, LeaseOutcome::Revoked(_)))
            .count();
        metrics::counter!("leasehold_revocation_job_leases_total", "result" => "revoked")
            .increment((outcomes.len() - failed) as u64);
        metrics::counter!("leasehold_revocation_job_leases_total", "result" => "failed")
            .increment(failed as u64);
        let recording = std::time::Instant::now();
        let store = self.store.clone();
        store
            .finish_job_batch(batch, job, &outcomes, &intents, now)
            .await?;
        if !intents.is_empty() {
            self.leases.wake_scheduler();
        }
        tracing::debug!(%job, drop_ms, record_ms = recording.elapsed().as_millis() as u64, "revocation batch recorded");
        Ok(())
    }

    /// Finishes the job when nothing matching it is live, or only leases it could not revoke
    /// within their budget are; reports new failures once. Each of the two commits with its
    /// event: a job is never finished, nor its failures counted as reported, without them.
    async fn settle(
        &self,
        job: &RevocationJobRow,
        filter: &LeaseSelector,
    ) -> Result<(), StoreError> {
        let (live, irrevocable) = self
            .store
            .remaining_selected_leases(&job.tenant, filter, job.id)
            .await?;
        // Failed leases are live ones: with none left there is nothing to report.
        let reported = match live {
            0 => None,
            _ => Some(self.report_new_failures(job).await?),
        };
        let state = match (live, irrevocable) {
            (0, _) => JOB_COMPLETED,
            (live, irrevocable) if live == irrevocable => JOB_FAILED,
            _ => return Ok(()),
        };
        let counts = match reported {
            Some(counts) => counts,
            None => JobCounts::from_rows(&self.store.job_lease_counts(job.id).await?),
        };
        let (revoked, failed) = (counts.revoked, counts.failed());
        let now = Utc::now().trunc_subsecs(6);
        let seconds = (now - job.created_at).num_milliseconds() as f64 / 1000.0;
        let event = AuditEvent::system(&job.tenant, EventType::RevocationComplete)
            .detail("jobId", job.id.to_string())
            .detail("state", state)
            .detail("total", job.total)
            .detail("revoked", revoked)
            .detail("failed", failed)
            .detail("seconds", seconds);
        if !self
            .store
            .finish_revocation_job(job.id, state, now, &self.audit.in_transaction(event))
            .await?
        {
            return Ok(());
        }
        metrics::histogram!("leasehold_revocation_job_duration_seconds").record(seconds);
        self.signals.finished.notify_waiters();
        tracing::info!(job = %job.id, state, revoked, failed, seconds, "revocation job finished");
        Ok(())
    }

    /// Audits and alerts the job's failed revocations once per new count; answers the counts.
    async fn report_new_failures(&self, job: &RevocationJobRow) -> Result<JobCounts, StoreError> {
        let counts = JobCounts::from_rows(&self.store.job_lease_counts(job.id).await?);
        let (revoked, failed_total) = (counts.revoked, counts.failed());
        if failed_total <= job.failures_reported {
            return Ok(counts);
        }
        let by_backend = serde_json::to_value(&counts.failures).unwrap_or_default();
        let event = AuditEvent::system(&job.tenant, EventType::RevocationFailures)
            .detail("jobId", job.id.to_string())
            .detail("failed", failed_total)
            .detail("revoked", revoked)
            .detail("byBackend", by_backend.clone());
        if self
            .store
            .report_job_failures(job.id, failed_total, &self.audit.in_transaction(event))
            .await?
        {
            tracing::warn!(job = %job.id, failed = failed_total, "revocation job has failed revocations; the scheduler retries them");
            self.alerts.send(serde_json::json!({
                "event": "REVOCATION_FAILURES",
                "tenant": job.tenant,
                "jobId": job.id,
                "failed": failed_total,
                "byBackend": by_backend,
                "action": "the scheduler retries them with backoff; GET /v1/revocations/{id} shows progress",
            }));
        }
        Ok(counts)
    }
}
