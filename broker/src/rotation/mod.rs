//! Rotation as a workflow: the nine steps of an overlap rotation, each a visible step of a
//! durable run.
//!
//! `rotate` carries steps 1–5 in the request: (1) write version N+1 as PENDING, (2) set it
//! downstream (a static database role's user), (3) point `next` at it, (4) test it (log in
//! with it; for a plain secret, open it), (5) promote `current` from N with compare-and-swap. A
//! run stopped after step 3 for canaries continues with `promote`. Steps 6–9 are due times on
//! the run row that [`RotationRunner`] carries out on whichever replica claims them: (6) the
//! overlap window ends and (7) N is retired downstream (a webhook hears `finishSecret`) and
//! stays PREVIOUS, (8) after the
//! rollback window N is disabled, (9) after the retention N is destroyed. A failure before
//! promotion disables N+1 (its value may have reached the target, so it is never reused),
//! leaves `current` untouched, and is audited, counted and alerted on.

mod policy;
mod runner;
mod static_roles;
mod target;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

pub use policy::{PutRotationPolicy, RotationPolicy, RotationPolicyView, next_run};
pub use runner::RotationRunner;
pub use static_roles::{PutStaticRole, StaticCredentials, StaticRoleService, StaticRoleView};
pub use target::StaticCredential;

use crate::alerts::AlertSink;
use crate::audit::{AuditError, AuditEvent, AuditLog, EventType, TransactionEvents};
use crate::domain::{AliasName, Tenant, VersionNumber};
use crate::dynamic::{DynamicError, PasswordPolicyConfig, PluginRegistry};
use crate::secrets::{InitialStatus, NewVersionValue, SecretError, SecretService};
use crate::store::{
    RUN_COMPLETED, RUN_FAILED, RUN_ROLLED_BACK, RUN_RUNNING, RotationRunRow, SecretRow,
    StatusChange, Store, StoreError,
};
use leasehold_plugins::password::PasswordPolicy;
use target::Downstream;

/// The steps a run can stand at, in order.
pub mod step {
    pub const CREATE_PENDING: &str = "create-pending";
    pub const SET_DOWNSTREAM: &str = "set-downstream";
    pub const NEXT: &str = "next";
    pub const TEST: &str = "test";
    pub const OVERLAP: &str = "overlap";
    pub const PREVIOUS: &str = "previous";
    pub const DISABLED: &str = "disabled";
    pub const DESTROYED: &str = "destroyed";

    /// Steps a request is carrying out right now; a run left at one of them after
    /// [`super::STALLED`] was interrupted by a crash.
    pub fn in_progress(step: &str) -> bool {
        matches!(step, CREATE_PENDING | SET_DOWNSTREAM | TEST)
    }
}

/// How long steps 1–5 may take before a run still at one of them counts as interrupted.
pub const STALLED: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("rotation {run} failed at step {step}: {message}; `current` is unchanged")]
    Failed {
        run: Uuid,
        step: &'static str,
        message: String,
    },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Dynamic(#[from] DynamicError),
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl RotationError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// Who acts: a caller (its audit facts are in `template`) or the broker's own scheduler.
#[derive(Clone)]
pub struct Actor {
    pub principal: String,
    template: AuditEvent,
}

impl Actor {
    pub fn caller(caller: &crate::auth::Caller) -> Self {
        Self {
            principal: caller.principal.clone(),
            template: AuditEvent::allow(caller, EventType::RotationStep),
        }
    }

    pub fn system(tenant: &str) -> Self {
        let template = AuditEvent::system(tenant, EventType::RotationStep);
        Self {
            principal: template.principal.clone(),
            template,
        }
    }

    fn event(&self, event_type: EventType, secret: &SecretRow) -> AuditEvent {
        self.event_at(event_type, &secret.environment, &secret.path)
    }

    fn event_at(&self, event_type: EventType, environment: &str, path: &str) -> AuditEvent {
        let mut event = self.template.clone();
        event.event_type = event_type.as_str().to_owned();
        event.location(environment, path)
    }
}

/// Where the new value comes from.
pub enum NewValue {
    Given(SecretString),
    Generate(PasswordPolicyConfig),
}

pub struct RotateOptions {
    pub value: Option<NewValue>,
    /// Refuse unless `current` is at this version.
    pub expected_current: Option<VersionNumber>,
    /// Stop after pointing `next` at the new version, for canaries.
    pub stop_at_next: bool,
    pub scheduled: bool,
}

impl RotateOptions {
    /// A rotation to a generated value by the secret's policy, with no conditions.
    pub fn generated(scheduled: bool) -> Self {
        Self {
            value: None,
            expected_current: None,
            stop_at_next: false,
            scheduled,
        }
    }
}

#[derive(Clone)]
pub struct RotationService {
    store: Store,
    secrets: SecretService,
    registry: Arc<PluginRegistry>,
    audit: AuditLog,
    alerts: AlertSink,
    /// Calls rotation webhooks (bounded, so a silent one fails its step).
    http: reqwest::Client,
}

fn current_of(aliases: &[crate::store::AliasRow], alias: AliasName) -> Option<VersionNumber> {
    aliases
        .iter()
        .find(|a| a.alias == alias.as_str())
        .map(|a| a.version)
}

impl RotationService {
    pub fn new(
        store: Store,
        secrets: SecretService,
        registry: Arc<PluginRegistry>,
        audit: AuditLog,
        alerts: AlertSink,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            store,
            secrets,
            registry,
            audit,
            alerts,
            http,
        }
    }

    async fn downstream(
        &self,
        policy: &RotationPolicy,
        secret: &SecretRow,
    ) -> Result<Downstream, RotationError> {
        Downstream::of(&self.store, &self.registry, &self.http, policy, secret).await
    }

    /// # Errors
    /// `NotFound` for a secret outside the tenant.
    pub async fn secret(&self, tenant: &Tenant, id: Uuid) -> Result<SecretRow, RotationError> {
        self.store
            .find_secret(tenant.as_str(), id)
            .await?
            .ok_or_else(|| RotationError::NotFound(format!("no secret {id}")))
    }

    async fn policy_of(&self, secret: &SecretRow) -> Result<RotationPolicy, RotationError> {
        match self.store.find_rotation_policy(secret.id).await? {
            Some(row) => RotationPolicy::from_row(&row),
            None => Ok(RotationPolicy::defaults()),
        }
    }

    /// Stores a policy; a static role's secret keeps its target.
    ///
    /// # Errors
    /// `Invalid` for a bad policy; storage and audit errors.
    pub async fn put_policy(
        &self,
        actor: &Actor,
        secret: &SecretRow,
        body: PutRotationPolicy,
    ) -> Result<RotationPolicyView, RotationError> {
        let old = self.store.find_rotation_policy(secret.id).await?;
        let static_role = old.as_ref().and_then(|o| o.static_role.clone());
        let policy = body.validate(static_role)?;
        let audit = self.audit.in_transaction(
            actor
                .event(EventType::RotationPolicyChange, secret)
                .detail("schedule", policy.schedule.clone())
                .detail("paused", policy.paused),
        );
        let now = Utc::now();
        let row = policy.to_row(
            secret.id,
            &secret.tenant,
            old.as_ref(),
            secret.created_at,
            now,
        );
        self.store.put_rotation_policy(&row, &audit).await?;
        RotationPolicyView::from_row(&row, now)
    }

    /// # Errors
    /// Storage errors.
    pub async fn policy_view(
        &self,
        secret: &SecretRow,
    ) -> Result<RotationPolicyView, RotationError> {
        let now = Utc::now();
        let row = match self.store.find_rotation_policy(secret.id).await? {
            Some(row) => row,
            None => RotationPolicy::defaults().to_row(
                secret.id,
                &secret.tenant,
                None,
                secret.created_at,
                now,
            ),
        };
        RotationPolicyView::from_row(&row, now)
    }

    /// Steps 1–5 (or 1–3 with `stop_at_next`).
    ///
    /// # Errors
    /// `Conflict` while another rotation of the secret is in progress or `current` moved;
    /// `Failed` when a step failed (the new version is disabled, `current` is unchanged).
    pub async fn rotate(
        &self,
        actor: &Actor,
        secret: &SecretRow,
        options: RotateOptions,
    ) -> Result<RotationRunRow, RotationError> {
        let policy = self.policy_of(secret).await?;
        let running = self.store.running_rotation_runs(secret.id).await?;
        if let Some(busy) = running
            .iter()
            .find(|r| step::in_progress(&r.step) || r.step == step::NEXT)
        {
            return Err(RotationError::Conflict(format!(
                "rotation {} of this secret is at step {}; promote it (POST /v1/rotations/{}/promote), roll it back, or wait for it",
                busy.id, busy.step, busy.id
            )));
        }
        let aliases = self.store.list_aliases(secret.id).await?;
        let current = current_of(&aliases, AliasName::Current);
        if let Some(expected) = options.expected_current
            && current != Some(expected)
        {
            return Err(RotationError::Conflict(format!(
                "`current` is at {}, not {expected}; read the secret's metadata and retry",
                current.map_or_else(|| "no version".to_owned(), |v| v.to_string())
            )));
        }
        let downstream = self.downstream(&policy, secret).await?;
        let value = match (&downstream, options.value) {
            (Downstream::None | Downstream::Webhook(_), Some(NewValue::Given(value))) => value,
            (Downstream::None | Downstream::Webhook(_), Some(NewValue::Generate(config))) => {
                generate(config)?
            }
            (Downstream::None | Downstream::Webhook(_), None) => generate(policy.generate)?,
            (Downstream::StaticRole(_), Some(NewValue::Given(_))) => {
                return Err(RotationError::invalid(
                    "value",
                    "value: a static role's password is generated by the broker; send {\"generate\": {…}} or an empty body",
                ));
            }
            (Downstream::StaticRole(target), generate_with) => {
                let config = match generate_with {
                    Some(NewValue::Generate(config)) => config,
                    _ => policy.generate,
                };
                let previous = match current {
                    Some(v) => Some(StaticCredential::parse(
                        &self.secrets.open_version(secret, v).await?,
                    )?),
                    None => None,
                };
                let username = target.next_user(previous.as_ref().map(|p| p.username.as_str()));
                StaticCredential {
                    username: username.to_owned(),
                    password: generate(config)?,
                }
                .to_value()
            }
        };

        let now = Utc::now();
        let mut run = RotationRunRow {
            id: Uuid::new_v4(),
            tenant: secret.tenant.clone(),
            secret_id: secret.id,
            trigger_kind: if options.scheduled {
                "schedule"
            } else {
                "manual"
            }
            .to_owned(),
            state: RUN_RUNNING.to_owned(),
            step: step::CREATE_PENDING.to_owned(),
            from_version: current,
            to_version: None,
            error: None,
            overlap_ends_at: None,
            disable_at: None,
            destroy_at: None,
            next_due_at: Some(policy::plus(now, STALLED.as_secs())),
            created_by: actor.principal.clone(),
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        self.audit
            .record(
                actor
                    .event(EventType::RotationStart, secret)
                    .detail("run", run.id.to_string())
                    .detail("fromVersion", current)
                    .detail("trigger", run.trigger_kind.as_str()),
            )
            .await?;
        self.store.insert_rotation_run(&run).await?;

        // 1. The new version, PENDING.
        let tenant = tenant_of(secret)?;
        let created = match self
            .secrets
            .add_version(
                &tenant,
                &actor.principal,
                secret.id,
                NewVersionValue {
                    value: &value,
                    status: InitialStatus::Pending,
                    expires_at: None,
                },
                None,
            )
            .await
        {
            Ok(created) => created,
            Err(e) => return Err(self.fail(actor, secret, run, e.to_string()).await),
        };
        run.to_version = Some(created.version);

        // 2. Downstream.
        self.advance_to(&mut run, step::SET_DOWNSTREAM).await?;
        let set = match &downstream {
            Downstream::None => Ok(()),
            Downstream::StaticRole(target) => target.set(&StaticCredential::parse(&value)?).await,
            Downstream::Webhook(hook) => {
                hook.notify("setSecret", secret, created.version, current)
                    .await
            }
        };
        if let Err(message) = set {
            return Err(self.fail(actor, secret, run, message).await);
        }

        // 3. `next`, for canaries.
        let next = current_of(&aliases, AliasName::Next);
        if let Err(e) = self
            .secrets
            .promote(
                &tenant,
                secret.id,
                AliasName::Next,
                created.version,
                next,
                None,
            )
            .await
        {
            return Err(self.fail(actor, secret, run, e.to_string()).await);
        }
        self.advance_to(&mut run, step::NEXT).await?;
        if options.stop_at_next {
            run.next_due_at = None;
            self.store.save_rotation_run(&run, None).await?;
            return Ok(run);
        }
        self.test_and_promote(actor, secret, run, &downstream, &policy)
            .await
    }

    /// Steps 4–5 of a run that stopped at `next`.
    ///
    /// # Errors
    /// `NotFound`, `Conflict` for a run not waiting at `next`, `Failed`.
    pub async fn promote_run(
        &self,
        actor: &Actor,
        tenant: &Tenant,
        run_id: Uuid,
    ) -> Result<RotationRunRow, RotationError> {
        let run = self.run(tenant, run_id).await?;
        if run.state != RUN_RUNNING || run.step != step::NEXT {
            return Err(RotationError::Conflict(format!(
                "rotation {run_id} is {} at step {}; only a run waiting at step next can be promoted",
                run.state, run.step
            )));
        }
        let secret = self.secret(tenant, run.secret_id).await?;
        let policy = self.policy_of(&secret).await?;
        let downstream = self.downstream(&policy, &secret).await?;
        self.test_and_promote(actor, &secret, run, &downstream, &policy)
            .await
    }

    async fn test_and_promote(
        &self,
        actor: &Actor,
        secret: &SecretRow,
        mut run: RotationRunRow,
        downstream: &Downstream,
        policy: &RotationPolicy,
    ) -> Result<RotationRunRow, RotationError> {
        let Some(version) = run.to_version else {
            return Err(self
                .fail(actor, secret, run, "the run has no new version".into())
                .await);
        };
        // 4. Test: the value opens, and a database user logs in with it.
        run.next_due_at = Some(policy::plus(Utc::now(), STALLED.as_secs()));
        self.advance_to(&mut run, step::TEST).await?;
        let value = match self.secrets.open_version(secret, version).await {
            Ok(value) => value,
            Err(e) => return Err(self.fail(actor, secret, run, e.to_string()).await),
        };
        let tested = match downstream {
            Downstream::None => Ok(()),
            Downstream::StaticRole(target) => match StaticCredential::parse(&value) {
                Ok(credential) => target.test(&credential).await,
                Err(e) => Err(e.to_string()),
            },
            Downstream::Webhook(hook) => {
                hook.notify("testSecret", secret, version, run.from_version)
                    .await
            }
        };
        if let Err(message) = tested {
            self.restore_previous(secret, &run, downstream).await;
            return Err(self.fail(actor, secret, run, message).await);
        }
        // 5. Promote `current`, only if it is still where the run started; the move commits
        // with the promotion's event.
        let tenant = tenant_of(secret)?;
        let event = self
            .audit
            .in_transaction(promotion_event(actor, secret, &run));
        if let Err(e) = self
            .secrets
            .promote(
                &tenant,
                secret.id,
                AliasName::Current,
                version,
                run.from_version,
                Some(&event),
            )
            .await
        {
            self.restore_previous(secret, &run, downstream).await;
            return Err(self.fail(actor, secret, run, e.to_string()).await);
        }
        self.promoted(secret, run, policy, Utc::now(), None).await
    }

    /// After a failure past step 2 with a single user, the user holds the new password while
    /// `current` holds the old: the old one is set back so the credential in use keeps working.
    async fn restore_previous(
        &self,
        secret: &SecretRow,
        run: &RotationRunRow,
        downstream: &Downstream,
    ) {
        let (Downstream::StaticRole(target), Some(previous)) = (downstream, run.from_version)
        else {
            return;
        };
        if target.alternates() {
            return;
        }
        let restored = match self.secrets.open_version(secret, previous).await {
            Ok(value) => match StaticCredential::parse(&value) {
                Ok(credential) => target.set(&credential).await,
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = restored {
            tracing::error!(run = %run.id, error = %error, "could not restore the previous credential downstream");
        }
    }

    /// Records a promotion: the windows of steps 6–9 start now. `audit` is the promotion's
    /// event when the move of `current` did not commit it (a run the runner finds promoted).
    async fn promoted(
        &self,
        secret: &SecretRow,
        mut run: RotationRunRow,
        policy: &RotationPolicy,
        now: DateTime<Utc>,
        audit: Option<&TransactionEvents>,
    ) -> Result<RotationRunRow, RotationError> {
        let overlap_ends = policy::plus(now, policy.overlap_seconds);
        let disable_at = policy::plus(overlap_ends, policy.rollback_seconds);
        run.overlap_ends_at = Some(overlap_ends);
        run.disable_at = Some(disable_at);
        run.destroy_at = policy
            .retention_seconds
            .map(|r| policy::plus(disable_at, r));
        run.step = step::OVERLAP.to_owned();
        run.updated_at = now;
        if run.from_version.is_some() {
            run.next_due_at = Some(overlap_ends);
        } else {
            // A first version has no predecessor to retire, disable or destroy.
            run.next_due_at = None;
            run.state = RUN_COMPLETED.to_owned();
            run.finished_at = Some(now);
        }
        self.store.save_rotation_run(&run, audit).await?;
        self.store
            .mark_rotated(
                secret.id,
                now,
                policy.deadline_seconds.map(|d| policy::plus(now, d)),
            )
            .await?;
        metrics::counter!("leasehold_rotations_total", "result" => "success").increment(1);
        Ok(run)
    }

    async fn advance_to(
        &self,
        run: &mut RotationRunRow,
        step: &'static str,
    ) -> Result<(), RotationError> {
        run.step = step.to_owned();
        run.updated_at = Utc::now();
        self.store.save_rotation_run(run, None).await?;
        Ok(())
    }

    /// Ends a run that failed before promotion: its new version is disabled (its value may
    /// have reached the target and is never reused), `current` stays, and the failure is
    /// audited, counted and alerted on.
    async fn fail(
        &self,
        actor: &Actor,
        secret: &SecretRow,
        mut run: RotationRunRow,
        message: String,
    ) -> RotationError {
        let step = static_step(&run.step);
        let event = self.audit.in_transaction(
            actor
                .event(EventType::RotationFailed, secret)
                .detail("run", run.id.to_string())
                .detail("step", step)
                .detail("error", message.as_str()),
        );
        // The new version is disabled with the failure's event; when there was nothing to
        // disable, the run's row carries the event.
        let mut recorded = false;
        if let (Some(version), Ok(tenant)) = (run.to_version, tenant_of(secret)) {
            match self
                .secrets
                .change_status(
                    &tenant,
                    secret.id,
                    version,
                    StatusChange::Disable,
                    Some(&event),
                )
                .await
            {
                Ok(_) => recorded = true,
                Err(SecretError::Storage(e @ StoreError::Audit(_))) => return e.into(),
                Err(e) => {
                    tracing::error!(run = %run.id, version, error = %e, "could not disable the version of a failed rotation");
                }
            }
        }
        let now = Utc::now();
        run.state = RUN_FAILED.to_owned();
        run.error = Some(message.clone());
        run.next_due_at = None;
        run.updated_at = now;
        run.finished_at = Some(now);
        // Unrecorded, the run stays at its step; left there past `STALLED` it counts as
        // interrupted, and the runner fails it again.
        if let Err(e) = self
            .store
            .save_rotation_run(&run, (!recorded).then_some(&event))
            .await
        {
            tracing::error!(run = %run.id, error = %e, "could not record a failed rotation");
            if !recorded {
                return e.into();
            }
        }
        metrics::counter!("leasehold_rotations_total", "result" => "failure").increment(1);
        self.alerts.send(serde_json::json!({
            "event": "rotation_failed",
            "tenant": secret.tenant,
            "secret": format!("{}/{}", secret.environment, secret.path),
            "run": run.id,
            "step": step,
            "error": message,
        }));
        tracing::warn!(run = %run.id, step, error = %message, "rotation failed; current is unchanged");
        RotationError::Failed {
            run: run.id,
            step,
            message,
        }
    }

    /// Moves `current` back to `previous` while it is still readable, restores its credential
    /// downstream (a static role's password, or a webhook told `rollbackSecret`), and disables
    /// the version rolled back from.
    ///
    /// # Errors
    /// `Conflict` when there is no previous version or its rollback window has closed.
    pub async fn rollback(
        &self,
        actor: &Actor,
        secret: &SecretRow,
    ) -> Result<VersionNumber, RotationError> {
        let aliases = self.store.list_aliases(secret.id).await?;
        let (Some(current), Some(previous)) = (
            current_of(&aliases, AliasName::Current),
            current_of(&aliases, AliasName::Previous),
        ) else {
            return Err(RotationError::Conflict(
                "there is no previous version to roll back to".into(),
            ));
        };
        let value = match self.secrets.open_version(secret, previous).await {
            Ok(value) => value,
            Err(SecretError::VersionDisabled(_) | SecretError::VersionDestroyed(_)) => {
                return Err(RotationError::Conflict(format!(
                    "the rollback window has closed: version {previous} is no longer readable; rotate to a new version instead"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let policy = self.policy_of(secret).await?;
        let downstream = self.downstream(&policy, secret).await?;
        // Audited before anything changes; then the target goes back, and only once it has
        // does `current` move.
        self.audit
            .record(
                actor
                    .event(EventType::RotationRollback, secret)
                    .version(previous)
                    .detail("fromVersion", current),
            )
            .await?;
        let restored = match downstream {
            Downstream::None => Ok(()),
            Downstream::StaticRole(target) => target.set(&StaticCredential::parse(&value)?).await,
            Downstream::Webhook(hook) => {
                hook.notify("rollbackSecret", secret, previous, Some(current))
                    .await
            }
        };
        restored.map_err(|message| RotationError::Failed {
            run: Uuid::nil(),
            step: "rollback",
            message,
        })?;
        let tenant = tenant_of(secret)?;
        let moved = async {
            self.secrets
                .promote(
                    &tenant,
                    secret.id,
                    AliasName::Current,
                    previous,
                    Some(current),
                    None,
                )
                .await?;
            self.secrets
                .change_status(&tenant, secret.id, current, StatusChange::Disable, None)
                .await
        };
        if let Err(error) = moved.await {
            // The target already went back to `previous`: say so loudly rather than leave the
            // two disagreeing in silence.
            tracing::error!(secret = %secret.id, %error, "rollback restored the target but could not move current");
            self.alerts.send(serde_json::json!({
                "event": "rollback_incomplete",
                "tenant": secret.tenant,
                "secret": format!("{}/{}", secret.environment, secret.path),
                "restoredVersion": previous,
                "fromVersion": current,
                "error": error.to_string(),
                "action": "the target uses the restored version: roll back again, or rotate to a new version",
            }));
            return Err(error.into());
        }
        let now = Utc::now();
        for mut run in self.store.running_rotation_runs(secret.id).await? {
            if run.to_version == Some(current) {
                run.state = RUN_ROLLED_BACK.to_owned();
                run.next_due_at = None;
                run.updated_at = now;
                run.finished_at = Some(now);
                self.store.save_rotation_run(&run, None).await?;
            }
        }
        metrics::counter!("leasehold_rotations_total", "result" => "rolled_back").increment(1);
        Ok(previous)
    }

    /// # Errors
    /// `NotFound`.
    pub async fn run(&self, tenant: &Tenant, id: Uuid) -> Result<RotationRunRow, RotationError> {
        self.store
            .find_rotation_run(tenant.as_str(), id)
            .await?
            .ok_or_else(|| RotationError::NotFound(format!("no rotation {id}")))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn tenant_of(secret: &SecretRow) -> Result<Tenant, RotationError> {
    tenant_of_text(&secret.tenant)
}

fn tenant_of_text(tenant: &str) -> Result<Tenant, RotationError> {
    Tenant::parse(tenant).map_err(|_| {
        RotationError::Storage(StoreError::Corrupt(format!(
            "a stored row has an invalid tenant {tenant:?}"
        )))
    })
}

fn generate(config: PasswordPolicyConfig) -> Result<SecretString, RotationError> {
    PasswordPolicy::new(config.length, config.symbols)
        .map(|policy| policy.generate())
        .map_err(|e| RotationError::invalid("generate", e.message))
}

/// A run's promotion (step 5), recorded with whatever commits it.
fn promotion_event(actor: &Actor, secret: &SecretRow, run: &RotationRunRow) -> AuditEvent {
    actor
        .event(EventType::RotationStep, secret)
        .detail("run", run.id.to_string())
        .detail("step", "promoted")
        .version(run.to_version.unwrap_or_default())
        .detail("fromVersion", run.from_version)
}

/// The `'static` name of a stored step, for errors and metrics.
fn static_step(stored: &str) -> &'static str {
    [
        step::CREATE_PENDING,
        step::SET_DOWNSTREAM,
        step::NEXT,
        step::TEST,
        step::OVERLAP,
        step::PREVIOUS,
        step::DISABLED,
        step::DESTROYED,
    ]
    .into_iter()
    .find(|s| *s == stored)
    .unwrap_or("unknown")
}
