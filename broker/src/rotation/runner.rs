//! The background half of rotation, on every replica: cron schedules that are due start a
//! rotation (exactly one replica wins each due time), and runs whose next step is due (steps
//! 6–9, or a run interrupted by a crash) are claimed one at a time and carried forward.

use std::time::Duration;

use chrono::Utc;

use super::{
    Actor, Downstream, RotateOptions, RotationPolicy, RotationService, StaticCredential, step,
};
use crate::audit::TransactionEvents;
use crate::domain::{AliasName, Tenant};
use crate::secrets::SecretError;
use crate::store::{RUN_COMPLETED, RUN_FAILED, RotationRunRow, SecretRow, StatusChange};

/// How often due schedules and steps are looked for (two indexed queries).
const POLL: Duration = Duration::from_secs(1);
/// How long a claimed step is this replica's before another may take it over.
const CLAIM: Duration = Duration::from_secs(60);
/// A downstream retirement that failed is tried again this much later.
const RETRY: Duration = Duration::from_secs(30);
/// The overdue gauge is recomputed this often.
const GAUGE_EVERY: Duration = Duration::from_secs(15);
/// Steps one replica carries out per poll, so one busy replica never starves the others.
const STEPS_PER_POLL: usize = 100;

pub struct RotationRunner {
    service: RotationService,
    replica: String,
}

impl RotationRunner {
    pub fn new(service: RotationService, replica: String) -> Self {
        Self { service, replica }
    }

    /// Polls until the task is aborted.
    pub async fn run(self) {
        let mut gauge_at: Option<tokio::time::Instant> = None;
        loop {
            self.poll().await;
            if gauge_at.is_none_or(|at| at.elapsed() >= GAUGE_EVERY) {
                self.publish_overdue().await;
                gauge_at = Some(tokio::time::Instant::now());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn publish_overdue(&self) {
        match self.service.store.count_overdue_rotations(Utc::now()).await {
            #[allow(clippy::cast_precision_loss)]
            Ok(count) => {
                metrics::gauge!("leasehold_secrets_past_rotation_deadline").set(count as f64)
            }
            Err(e) => tracing::warn!(error = %e, "could not count overdue rotations"),
        }
    }

    /// One pass: due schedules, then due steps. Returns how much it did.
    pub async fn poll(&self) -> usize {
        let mut done = 0;
        let now = Utc::now();
        match self.service.store.due_schedules(now, 50).await {
            Ok(due) => {
                for row in due {
                    let Some(due_at) = row.next_run_at else {
                        continue;
                    };
                    let next = row
                        .schedule
                        .as_deref()
                        .and_then(|s| super::next_run(s, now));
                    match self
                        .service
                        .store
                        .advance_schedule(row.secret_id, due_at, next)
                        .await
                    {
                        Ok(true) => {
                            done += 1;
                            self.scheduled_rotation(&row.tenant, row.secret_id).await;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "could not claim a due rotation schedule")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read due rotation schedules"),
        }
        for _ in 0..STEPS_PER_POLL {
            let now = Utc::now();
            let claim_until = super::policy::plus(now, CLAIM.as_secs());
            match self
                .service
                .store
                .claim_due_run(&self.replica, now, claim_until)
                .await
            {
                Ok(Some(run)) => {
                    done += 1;
                    if let Err(e) = self.advance(run).await {
                        tracing::warn!(error = %e, "a rotation step failed; it is retried");
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim a due rotation step");
                    break;
                }
            }
        }
        done
    }

    async fn scheduled_rotation(&self, tenant: &str, secret_id: uuid::Uuid) {
        let Ok(tenant) = Tenant::parse(tenant) else {
            return;
        };
        let secret = match self.service.secret(&tenant, secret_id).await {
            Ok(secret) => secret,
            Err(e) => {
                tracing::warn!(error = %e, "a scheduled rotation's secret is gone");
                return;
            }
        };
        let options = RotateOptions::generated(true);
        match self
            .service
            .rotate(&Actor::system(tenant.as_str()), &secret, options)
            .await
        {
            Ok(run) => {
                tracing::info!(run = %run.id, secret = %secret.path, "scheduled rotation done")
            }
            // Failures are audited, counted and alerted inside; a busy secret waits for the
            // next due time.
            Err(e) => {
                tracing::warn!(secret = %secret.path, error = %e, "scheduled rotation did not complete")
            }
        }
    }

    /// Carries one claimed run to its next step.
    async fn advance(&self, mut run: RotationRunRow) -> Result<(), super::RotationError> {
        let service = &self.service;
        let tenant = super::tenant_of_text(&run.tenant)?;
        let secret = service.secret(&tenant, run.secret_id).await?;
        let actor = Actor::system(&run.tenant);
        let policy = service.policy_of(&secret).await?;
        let now = Utc::now();

        if step::in_progress(&run.step) {
            // The broker stopped while a request carried steps 1–5.
            let aliases = service.store.list_aliases(secret.id).await?;
            let current = super::current_of(&aliases, AliasName::Current);
            if run.to_version.is_some() && current == run.to_version {
                let event = service
                    .audit
                    .in_transaction(super::promotion_event(&actor, &secret, &run));
                service
                    .promoted(&secret, run, &policy, now, Some(&event))
                    .await?;
            } else {
                let downstream = service.downstream(&policy, &secret).await?;
                service.restore_previous(&secret, &run, &downstream).await;
                let _ = service
                    .fail(
                        &actor,
                        &secret,
                        run,
                        "interrupted: the broker stopped during this step; the new version was disabled".into(),
                    )
                    .await;
            }
            return Ok(());
        }

        let Some(old) = run.from_version else {
            return self.finish(&actor, &secret, run, None).await;
        };
        match run.step.as_str() {
            step::OVERLAP => {
                // 6–7. The overlap is over: the old credential stops working downstream.
                if let Err(message) = self.retire(&secret, &policy, old).await {
                    if run.disable_at.is_some_and(|d| d > now) {
                        run.error = Some(message);
                        run.next_due_at = Some(super::policy::plus(now, RETRY.as_secs()));
                        run.updated_at = now;
                        service.store.save_rotation_run(&run, None).await?;
                        return Ok(());
                    }
                    return self.give_up(&actor, &secret, run, message).await;
                }
                run.error = None;
                self.step(&actor, &secret, run, step::PREVIOUS, |r| r.disable_at, None)
                    .await
            }
            step::PREVIOUS => {
                // 8. The rollback window is over.
                let disable = Some((old, StatusChange::Disable));
                match run.destroy_at {
                    Some(_) => {
                        self.step(
                            &actor,
                            &secret,
                            run,
                            step::DISABLED,
                            |r| r.destroy_at,
                            disable,
                        )
                        .await
                    }
                    None => {
                        run.step = step::DISABLED.to_owned();
                        self.finish(&actor, &secret, run, disable).await
                    }
                }
            }
            step::DISABLED => {
                // 9. Retention is over: shred it.
                run.step = step::DESTROYED.to_owned();
                self.finish(&actor, &secret, run, Some((old, StatusChange::Destroy)))
                    .await
            }
            _ => {
                run.next_due_at = None;
                service.store.save_rotation_run(&run, None).await?;
                Ok(())
            }
        }
    }

    async fn retire(
        &self,
        secret: &SecretRow,
        policy: &RotationPolicy,
        old: i64,
    ) -> Result<(), String> {
        let service = &self.service;
        let target = match service
            .downstream(policy, secret)
            .await
            .map_err(|e| e.to_string())?
        {
            Downstream::None => return Ok(()),
            Downstream::Webhook(hook) => {
                let aliases = service
                    .store
                    .list_aliases(secret.id)
                    .await
                    .map_err(|e| e.to_string())?;
                let current = super::current_of(&aliases, AliasName::Current).unwrap_or_default();
                return hook
                    .notify("finishSecret", secret, current, Some(old))
                    .await;
            }
            Downstream::StaticRole(target) => target,
        };
        let previous = match service.secrets.open_version(secret, old).await {
            Ok(value) => StaticCredential::parse(&value).map_err(|e| e.to_string())?,
            // Already disabled or destroyed by hand: nothing left to retire.
            Err(SecretError::VersionDisabled(_) | SecretError::VersionDestroyed(_)) => {
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        let aliases = service
            .store
            .list_aliases(secret.id)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(current) = super::current_of(&aliases, AliasName::Current) {
            let current = service
                .secrets
                .open_version(secret, current)
                .await
                .map_err(|e| e.to_string())?;
            if StaticCredential::parse(&current)
                .map_err(|e| e.to_string())?
                .username
                == previous.username
            {
                // Rolled back, or one user: the old user is the one in use.
                return Ok(());
            }
        }
        target.retire(&previous.username).await
    }

    /// Disables or destroys the old version, committed with `audit`'s event; answers whether
    /// it did. One that is current again (rolled back by hand) or already gone is left alone.
    async fn change(
        &self,
        secret: &SecretRow,
        version: i64,
        change: StatusChange,
        audit: &TransactionEvents,
    ) -> Result<bool, super::RotationError> {
        let tenant = super::tenant_of(secret)?;
        match self
            .service
            .secrets
            .change_status(&tenant, secret.id, version, change, Some(audit))
            .await
        {
            Ok(_) => Ok(true),
            Err(
                SecretError::VersionDestroyed(_)
                | SecretError::VersionNotFound(_)
                | SecretError::Conflict(_),
            ) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves the run to `next_step`, due at `due`, applying `change` to the old version.
    async fn step(
        &self,
        actor: &Actor,
        secret: &SecretRow,
        mut run: RotationRunRow,
        next_step: &'static str,
        due: impl Fn(&RotationRunRow) -> Option<chrono::DateTime<Utc>>,
        change: Option<(i64, StatusChange)>,
    ) -> Result<(), super::RotationError> {
        run.step = next_step.to_owned();
        run.next_due_at = due(&run);
        run.updated_at = Utc::now();
        self.save_step(actor, secret, &run, change).await
    }

    /// Completes the run, applying `change` to the old version.
    async fn finish(
        &self,
        actor: &Actor,
        secret: &SecretRow,
        mut run: RotationRunRow,
        change: Option<(i64, StatusChange)>,
    ) -> Result<(), super::RotationError> {
        let now = Utc::now();
        run.state = RUN_COMPLETED.to_owned();
        run.next_due_at = None;
        run.updated_at = now;
        run.finished_at = Some(now);
        self.save_step(actor, secret, &run, change).await
    }

    /// A promoted run whose old credential could not be retired before its rollback window
    /// ended: the new version stays current; the old credential may still log in, so on-call
    /// is told.
    async fn give_up(
        &self,
        actor: &Actor,
        secret: &SecretRow,
        mut run: RotationRunRow,
        message: String,
    ) -> Result<(), super::RotationError> {
        let now = Utc::now();
        run.state = RUN_FAILED.to_owned();
        run.error = Some(format!(
            "the old credential could not be retired: {message}"
        ));
        run.next_due_at = None;
        run.updated_at = now;
        run.finished_at = Some(now);
        let event = actor
            .event(crate::audit::EventType::RotationFailed, secret)
            .detail("run", run.id.to_string())
            .detail("step", step::OVERLAP)
            .detail("error", run.error.clone());
        self.service
            .store
            .save_rotation_run(&run, Some(&self.service.audit.in_transaction(event)))
            .await?;
        metrics::counter!("leasehold_rotations_total", "result" => "failure").increment(1);
        self.service.alerts.send(serde_json::json!({
            "event": "rotation_failed",
            "tenant": secret.tenant,
            "secret": format!("{}/{}", secret.environment, secret.path),
            "run": run.id,
            "step": step::OVERLAP,
            "error": run.error,
        }));
        Ok(())
    }

    /// Saves the run's new step (or end) with its `ROTATION_STEP` event. The old version's
    /// `change`, if any, commits with the event; when it found nothing to change, the run's row
    /// does. Unrecorded, nothing moves, and the step is taken again once its claim lapses.
    async fn save_step(
        &self,
        actor: &Actor,
        secret: &SecretRow,
        run: &RotationRunRow,
        change: Option<(i64, StatusChange)>,
    ) -> Result<(), super::RotationError> {
        let event = self.service.audit.in_transaction(
            actor
                .event(crate::audit::EventType::RotationStep, secret)
                .detail("run", run.id.to_string())
                .detail("step", run.step.as_str())
                .detail("fromVersion", run.from_version)
                .detail("state", run.state.as_str()),
        );
        let recorded = match change {
            Some((version, change)) => self.change(secret, version, change, &event).await?,
            None => false,
        };
        self.service
            .store
            .save_rotation_run(run, (!recorded).then_some(&event))
            .await?;
        Ok(())
    }
}
