//! Mass revocation jobs: preview a selector, accept a job (its row, fence and audit event commit
//! together), read its progress, lift its fence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use tokio::sync::Mutex;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{JobSignals, Selector};
use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::auth::Caller;
use crate::dynamic::{DynamicError, LeaseView};
use crate::store::{
    JOB_COMPLETED, JOB_RUNNING, JobLeaseCount, JournalEffect, PENDING, REVOKED, RevocationJobRow,
    Store, StoreError,
};

/// Live leases a selector matches, for one role on one backend.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchCount {
    pub role: String,
    pub backend: String,
    pub environment: String,
    pub count: i64,
}

/// What a job would take: counts and the first few leases.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub matched: i64,
    pub by_role: Vec<MatchCount>,
    pub sample: Vec<LeaseView>,
}

/// Failed revocations of a job on one backend.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendFailures {
    pub backend: String,
    pub failed: i64,
    pub last_error: Option<String>,
}

/// A job and its progress; the counts may be up to a second old while the job runs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub job_id: Uuid,
    /// `RUNNING`, `COMPLETED` (every lease revoked) or `FAILED` (what is left is IRREVOCABLE).
    pub state: String,
    pub selector: Selector,
    pub reason: String,
    pub ticket: String,
    pub requested_by: String,
    /// Live leases that matched when the job was accepted.
    pub total: i64,
    /// Leases this job revoked (including those the scheduler revoked on a retry).
    pub revoked: i64,
    /// Leases whose revocation by this job failed and that are still live (being retried, or
    /// IRREVOCABLE).
    pub failed: i64,
    /// Live leases the job still has to revoke, `failed` included.
    pub remaining: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Whether the fence still refuses matching issues and renewals, and until when.
    pub fenced: bool,
    pub fence_until: Option<DateTime<Utc>>,
    pub errors_by_backend: Vec<BackendFailures>,
}

pub struct StartJob {
    pub selector: Selector,
    pub reason: String,
    pub ticket: String,
    pub fence_for: Duration,
}

#[derive(Clone)]
pub struct RevocationService {
    store: Store,
    audit: AuditLog,
    /// Wakes this replica's job runner when a job is accepted; tells waiting requests when it
    /// finished one.
    signals: Arc<JobSignals>,
    /// Recent progress by job, with when it was computed and in which job state.
    progress: Arc<Mutex<HashMap<Uuid, Progress>>>,
}

/// How often a waiting request looks whether another replica finished its job.
const OTHER_REPLICAS: Duration = Duration::from_millis(250);

/// How long computed progress is shown before it is computed again.
const PROGRESS_FRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Progress {
    computed_at: Instant,
    /// The job's state when it was computed.
    state: String,
    revoked: i64,
    remaining: i64,
    errors_by_backend: Vec<BackendFailures>,
}

const SAMPLE: i64 = 10;

fn selector_of(job: &RevocationJobRow) -> Result<Selector, DynamicError> {
    Ok(Selector::from_stored(job.id, &job.selector)?)
}

/// What a job's leases show: how many it revoked, and its failures by backend.
pub(super) struct JobCounts {
    pub revoked: i64,
    pub failures: Vec<BackendFailures>,
}

impl JobCounts {
    pub(super) fn from_rows(rows: &[JobLeaseCount]) -> Self {
        let mut failures: Vec<BackendFailures> = Vec::new();
        // Intents the job handed to the scheduler are under way, not failed (`remaining` counts
        // them); a lease whose revocation failed is ACTIVE or IRREVOCABLE.
        for row in rows
            .iter()
            .filter(|r| r.state != REVOKED && r.state != PENDING)
        {
            match failures.iter_mut().find(|f| f.backend == row.backend) {
                Some(entry) => {
                    entry.failed += row.count;
                    if entry.last_error.is_none() {
                        entry.last_error.clone_from(&row.last_error);
                    }
                }
                None => failures.push(BackendFailures {
                    backend: row.backend.clone(),
                    failed: row.count,
                    last_error: row.last_error.clone(),
                }),
            }
        }
        Self {
            revoked: rows
                .iter()
                .filter(|r| r.state == REVOKED)
                .map(|r| r.count)
                .sum(),
            failures,
        }
    }

    pub(super) fn failed(&self) -> i64 {
        self.failures.iter().map(|f| f.failed).sum()
    }
}

impl RevocationService {
    pub fn new(store: Store, audit: AuditLog, signals: Arc<JobSignals>) -> Self {
        Self {
            store,
            audit,
            signals,
            progress: Arc::default(),
        }
    }

    /// How many live leases of `tenant` the selector matches, by role, and a sample.
    ///
    /// # Errors
    /// `Invalid` for a malformed selector; storage errors.
    pub async fn preview(
        &self,
        tenant: &str,
        selector: &Selector,
    ) -> Result<Preview, DynamicError> {
        let filter = selector.to_store()?;
        // Two independent scans: a job's request waits for the longer, not for both.
        let (groups, sample) = tokio::try_join!(
            self.store.count_selected_leases(tenant, &filter),
            self.store.sample_selected_leases(tenant, &filter, SAMPLE),
        )?;
        Ok(Preview {
            matched: groups.iter().map(|g| g.count).sum(),
            by_role: groups
                .into_iter()
                .map(|g| MatchCount {
                    role: g.role,
                    backend: g.backend,
                    environment: g.environment,
                    count: g.count,
                })
                .collect(),
            sample: sample.into_iter().map(LeaseView::from).collect(),
        })
    }

    /// Accepts a job: its row, its fence and its audit event commit together, then the runner
    /// takes it. `matched` is the preview's count.
    ///
    /// # Errors
    /// `Audit` (nothing was accepted), storage errors.
    pub async fn start(
        &self,
        caller: &Caller,
        request: StartJob,
        matched: i64,
    ) -> Result<RevocationJobRow, DynamicError> {
        let now = Utc::now().trunc_subsecs(6);
        let selector = Selector {
            tenant: Some(caller.tenant.to_string()),
            ..request.selector
        };
        let fence_until =
            now + chrono::Duration::from_std(request.fence_for).unwrap_or(chrono::Duration::MAX);
        let job = RevocationJobRow {
            id: Uuid::now_v7(),
            tenant: caller.tenant.to_string(),
            selector: serde_json::to_string(&selector)
                .map_err(|e| StoreError::Corrupt(format!("selector: {e}")))?,
            reason: request.reason,
            ticket: request.ticket,
            requested_by: caller.principal.clone(),
            state: JOB_RUNNING.to_owned(),
            total: matched,
            created_at: now,
            finished_at: None,
            fence_until: Some(fence_until),
            failures_reported: 0,
        };
        let event = AuditEvent::allow(caller, EventType::RevocationRequest)
            .detail("jobId", job.id.to_string())
            .detail(
                "selector",
                serde_json::to_value(&selector).unwrap_or_default(),
            )
            .detail("reason", job.reason.as_str())
            .detail("ticket", job.ticket.as_str())
            .detail("matched", matched)
            .detail("fenceUntil", fence_until.to_rfc3339());
        self.audit
            .record_with(
                event,
                JournalEffect::InsertRevocationJob(Box::new(job.clone())),
            )
            .await?;
        metrics::counter!("leasehold_revocation_jobs_total").increment(1);
        self.signals.accepted.notify_one();
        Ok(job)
    }

    /// # Errors
    /// `NotFound` when the tenant has no such job.
    pub async fn find(&self, tenant: &str, id: Uuid) -> Result<RevocationJobRow, DynamicError> {
        self.store
            .revocation_job(tenant, id)
            .await?
            .ok_or_else(|| DynamicError::NotFound(format!("no revocation job {id}")))
    }

    /// The job once it is no longer RUNNING, or as it stands when `wait` is over. A job this
    /// replica finishes answers at once; one another replica finishes, within
    /// [`OTHER_REPLICAS`].
    ///
    /// # Errors
    /// `NotFound` when the tenant has no such job; storage errors.
    pub async fn wait_until_finished(
        &self,
        tenant: &str,
        id: Uuid,
        wait: Duration,
    ) -> Result<RevocationJobRow, DynamicError> {
        let deadline = Instant::now() + wait;
        loop {
            // Registered before the job is read, so a finish in between is not missed.
            let finished = self.signals.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            let job = self.find(tenant, id).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if job.state != JOB_RUNNING || left.is_zero() {
                return Ok(job);
            }
            tokio::select! {
                () = finished => {}
                () = tokio::time::sleep(left.min(OTHER_REPLICAS)) => {}
            }
        }
    }

    /// A page of a tenant's jobs, newest first, older than `before` when given.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn page(
        &self,
        tenant: &str,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<RevocationJobRow>, DynamicError> {
        Ok(self.store.revocation_jobs(tenant, before, limit).await?)
    }

    /// The selector a job was accepted with.
    ///
    /// # Errors
    /// A stored selector that cannot be read.
    pub fn selector(&self, job: &RevocationJobRow) -> Result<Selector, DynamicError> {
        selector_of(job)
    }

    /// A job with its progress.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn view(&self, job: RevocationJobRow) -> Result<JobView, DynamicError> {
        let selector = selector_of(&job)?;
        let progress = self.progress(&job, &selector).await?;
        let now = Utc::now();
        Ok(JobView {
            job_id: job.id,
            state: job.state,
            selector,
            reason: job.reason,
            ticket: job.ticket,
            requested_by: job.requested_by,
            total: job.total,
            revoked: progress.revoked,
            failed: progress.errors_by_backend.iter().map(|e| e.failed).sum(),
            remaining: progress.remaining,
            started_at: job.created_at,
            finished_at: job.finished_at,
            fenced: job.fence_until.is_some_and(|until| until > now),
            fence_until: job.fence_until,
            errors_by_backend: progress.errors_by_backend,
        })
    }

    /// A job's counts. They cost a scan of the job's leases, so while the job's state stays
    /// the same they are computed at most once per [`PROGRESS_FRESH`] per replica, however
    /// often clients poll.
    async fn progress(
        &self,
        job: &RevocationJobRow,
        selector: &Selector,
    ) -> Result<Progress, DynamicError> {
        if let Some(progress) = self.progress.lock().await.get(&job.id)
            && progress.state == job.state
            && progress.computed_at.elapsed() < PROGRESS_FRESH
        {
            return Ok(progress.clone());
        }
        let counts = JobCounts::from_rows(&self.store.job_lease_counts(job.id).await?);
        let remaining = if job.state == JOB_RUNNING {
            self.store
                .remaining_selected_leases(&job.tenant, &selector.to_store()?, job.id)
                .await?
                .0
        } else if job.state == JOB_COMPLETED {
            0
        } else {
            counts.failed()
        };
        let progress = Progress {
            computed_at: Instant::now(),
            state: job.state.clone(),
            revoked: counts.revoked,
            remaining,
            errors_by_backend: counts.failures,
        };
        let mut cache = self.progress.lock().await;
        cache.retain(|_, cached| cached.computed_at.elapsed() < PROGRESS_FRESH);
        cache.insert(job.id, progress.clone());
        Ok(progress)
    }

    /// Lifts a job's fence: matching leases may be issued and renewed again. The job itself
    /// goes on.
    ///
    /// # Errors
    /// `Conflict` when the fence was lifted already; `Audit` (nothing changed).
    pub async fn lift_fence(
        &self,
        caller: &Caller,
        job: &RevocationJobRow,
    ) -> Result<(), DynamicError> {
        let already = || {
            DynamicError::Conflict(format!(
                "the fence of revocation job {} was lifted already",
                job.id
            ))
        };
        if job.fence_until.is_none() {
            return Err(already());
        }
        let event = AuditEvent::allow(caller, EventType::RevocationFenceLift)
            .detail("jobId", job.id.to_string());
        let lifted = self
            .audit
            .record_with(
                event,
                JournalEffect::LiftFence {
                    tenant: job.tenant.clone(),
                    job: job.id,
                },
            )
            .await?;
        if lifted { Ok(()) } else { Err(already()) }
    }
}
