//! Leases: issue (intent ‖ prepared user → committed user → audit → active), renew, revoke,
//! read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::future::join_all;
use leasehold_plugins::username::UsernameInputs;
use leasehold_plugins::{CreateUser, RenewUser, RevokeUser};
use secrecy::SecretString;
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{DynamicError, PluginRegistry, Role, RoleService};
use crate::audit::{AuditEvent, AuditLog, Decision, EventType};
use crate::auth::Caller;
use crate::domain::Ttl;
use crate::failpoint;
use crate::revocations::Fences;
use crate::store::{
    ACTIVE, IRREVOCABLE, JournalEffect, LeaseFilter, LeaseRow, LeaseUser, PENDING, REVOKED, Store,
};

/// What `GET /v1/leases/{id}` shows: never a password.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseView {
    pub lease_id: Uuid,
    pub role: String,
    pub backend: String,
    pub environment: String,
    pub principal: String,
    pub username: String,
    /// `PENDING`, `ACTIVE`, `REVOKED` or `IRREVOCABLE`.
    pub state: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub max_expires_at: DateTime<Utc>,
    pub renewable: bool,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why the last revocation attempt failed, while the lease is still live.
    pub last_error: Option<String>,
    /// Failed revocation attempts so far, and when the first of them happened (the retry
    /// budget counts from there).
    pub revocation_attempts: i32,
    pub failing_since: Option<DateTime<Utc>>,
}

impl From<LeaseRow> for LeaseView {
    fn from(row: LeaseRow) -> Self {
        Self {
            renewable: row.state == ACTIVE && row.expires_at < row.max_expires_at,
            lease_id: row.id,
            role: row.role,
            backend: row.backend,
            environment: row.environment,
            principal: row.principal,
            username: row.username,
            state: row.state,
            issued_at: row.issued_at,
            expires_at: row.expires_at,
            max_expires_at: row.max_expires_at,
            revoked_at: row.revoked_at,
            last_error: row.last_error,
            revocation_attempts: row.attempts,
            failing_since: row.failing_since,
        }
    }
}

/// A freshly issued credential. No `Debug`: it holds the password.
pub struct IssuedLease {
    pub lease: LeaseRow,
    pub password: SecretString,
    /// Set when the requested TTL was above the role's maximum and was capped.
    pub warning: Option<String>,
}

pub struct RenewedLease {
    pub lease: LeaseRow,
    pub warning: Option<String>,
}

pub struct IssueRequest {
    pub role: Role,
    pub ttl: Option<Ttl>,
}

pub struct LeaseService {
    store: Store,
    registry: Arc<PluginRegistry>,
    roles: Arc<RoleService>,
    audit: AuditLog,
    /// How long an intent may stay PENDING before the scheduler revokes it as abandoned.
    intent_grace: Duration,
    /// Wakes the scheduler when a lease is issued that expires before its next planned round.
    scheduler: Arc<Notify>,
    /// Mass revocations in progress: what they cover is neither issued nor renewed.
    fences: Fences,
}

/// Leases expiring sooner than this wake the scheduler (it otherwise looks every few seconds).
const WAKE_BELOW: Duration = Duration::from_secs(10);
/// How long deleting a backend waits for its last leases to be revoked.
const BACKEND_DRAIN: Duration = Duration::from_secs(30);

fn lease_event(caller: &Caller, event_type: EventType, lease: &LeaseRow) -> AuditEvent {
    AuditEvent::allow(caller, event_type)
        .location(&lease.environment, &format!("roles/{}", lease.role))
        .detail("leaseId", lease.id.to_string())
        .detail("backend", lease.backend.as_str())
        .detail("username", lease.username.as_str())
        .detail("expiresAt", lease.expires_at.to_rfc3339())
}

impl LeaseService {
    pub fn new(
        store: Store,
        registry: Arc<PluginRegistry>,
        roles: Arc<RoleService>,
        audit: AuditLog,
        intent_grace: Duration,
        scheduler: Arc<Notify>,
    ) -> Self {
        Self {
            fences: Fences::new(store.clone()),
            store,
            registry,
            roles,
            audit,
            intent_grace,
            scheduler,
        }
    }

    /// Issues a credential: the lease row is written as an intent while the plugin prepares
    /// the user, the user is committed once the intent is durable, then the event is recorded
    /// and the lease becomes ACTIVE. A failure after the intent revokes the user (or leaves the
    /// intent for cleanup); no user is ever orphaned.
    ///
    /// # Errors
    /// `Backend` when the target refuses or is down, `Audit` when the event cannot be recorded,
    /// storage and KMS errors.
    pub async fn issue(
        &self,
        caller: &Caller,
        request: IssueRequest,
    ) -> Result<IssuedLease, DynamicError> {
        let role = request.role;
        let backend = self
            .registry
            .get(caller.tenant.as_str(), &role.backend)
            .await?;
        let now = Utc::now().trunc_subsecs(6);
        let requested = request.ttl.unwrap_or(role.default_ttl);
        let (ttl, warning) = if requested > role.max_ttl {
            (
                role.max_ttl,
                Some(format!(
                    "the requested ttl ({}s) is above the role's maxTtl ({}s); the lease was capped at maxTtl",
                    requested.seconds(),
                    role.max_ttl.seconds()
                )),
            )
        } else {
            (requested, None)
        };
        let username = role.definition.username_template()?.generate(
            UsernameInputs {
                role: &role.name,
                principal: &caller.principal,
                unix_time: now.timestamp(),
            },
            backend.kind.max_username_len(),
        );
        let lease = LeaseRow {
            id: Uuid::now_v7(),
            tenant: caller.tenant.to_string(),
            environment: role.environment.to_string(),
            role: role.name.clone(),
            backend: role.backend.clone(),
            principal: caller.principal.clone(),
            username,
            state: PENDING.to_owned(),
            issued_at: now,
            expires_at: ttl.after(now),
            max_expires_at: role.max_ttl.after(now),
            revoked_at: None,
            updated_at: now,
            last_error: None,
            due_at: Some(
                now + chrono::Duration::from_std(self.intent_grace)
                    .unwrap_or(chrono::Duration::MAX),
            ),
            attempts: 0,
            failing_since: None,
        };
        // A fenced request usually stops here, before it leaves any trace but its refusal.
        if let Err(error) = self.fences.check(&lease).await {
            self.audit_refusal(caller, EventType::LeaseIssue, &lease, &error)
                .await;
            return Err(error);
        }
        // The intent commits while the plugin prepares the user (hashes its password and, on
        // PostgreSQL, runs the statements in a transaction it leaves open); the user comes to
        // exist only at the commit after the intent is durable.
        let password = role.definition.password_policy().generate();
        let creation = CreateUser {
            username: lease.username.clone(),
            password: password.clone(),
            expires_at: lease.expires_at,
            statements: role.definition.creation_statements.clone(),
        };
        let ((written, fenced), prepared) = tokio::join!(
            async {
                let written = self
                    .audit
                    .apply(JournalEffect::InsertLeaseIntent(Box::new(lease.clone())))
                    .await;
                // Checked again once the intent is durable, while the plugin is still at work:
                // a mass revocation accepted meanwhile either shows its fence now or finds the
                // intent when it walks its leases.
                let fenced = match written {
                    Ok(true) => self.fences.check(&lease).await.err(),
                    _ => None,
                };
                (written, fenced)
            },
            backend.plugin.prepare(&creation)
        );
        // Returning drops an uncommitted preparation, which leaves nothing on the target.
        if !written.map_err(|_| DynamicError::Unrecorded)? {
            return Err(DynamicError::Conflict(
                "a lease with this id exists already; request a new lease".into(),
            ));
        }
        if let Some(error) = fenced {
            drop(prepared);
            self.revoke_rows(std::slice::from_ref(&lease)).await;
            self.audit_refusal(caller, EventType::LeaseIssue, &lease, &error)
                .await;
            return Err(error);
        }
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                self.revoke_rows(std::slice::from_ref(&lease)).await;
                return Err(DynamicError::backend(&role.backend, error));
            }
        };
        // With the intent durable, the user commits, and only then does the lease become
        // ACTIVE with its event, so an ACTIVE lease always has its user. A revocation that meets
        // the intent before that flags it (`Store::expedite_intents`) instead of dropping
        // anything: the activation below then fails and this issue drops the user itself. A
        // crash between the two leaves a PENDING intent that the scheduler revokes.
        let created = prepared.commit().await;
        failpoint::hit("lease-after-create");
        let activated = if created.is_ok() {
            self.audit
                .record_with(
                    lease_event(caller, EventType::LeaseIssue, &lease),
                    JournalEffect::ActivateLease {
                        id: lease.id,
                        at: Utc::now(),
                    },
                )
                .await
        } else {
            Ok(false)
        };
        if let Err(error) = created {
            // Part of the user may exist (MySQL commits statement by statement): revoke it now.
            self.revoke_rows(std::slice::from_ref(&lease)).await;
            return Err(DynamicError::backend(&role.backend, error));
        }
        match activated {
            Ok(true) => {}
            Ok(false) => {
                self.revoke_rows(std::slice::from_ref(&lease)).await;
                return Err(DynamicError::Conflict(
                    "the lease was revoked or its intent cleaned up before it could be activated; request a new lease"
                        .into(),
                ));
            }
            Err(error) => {
                // Unknown outcome: the activation may still commit after its wait timed out.
                // The issue is undone like any revocation, audited first (its `LEASE_ISSUE` may
                // have made it in): the user is dropped and the lease marked REVOKED whatever
                // it became. If that event cannot be recorded either, the user is dropped all
                // the same, and the lease is left to the scheduler to record with its event:
                // flagged, an intent can no longer be activated and is due at once.
                if self.audit_undone_issue(caller, &lease).await {
                    self.revoke_rows(std::slice::from_ref(&lease)).await;
                } else {
                    self.drop_users(&[lease.user()]).await;
                    if let Err(handing) = self.hand_intents_to_scheduler(&[lease.id]).await {
                        tracing::error!(lease = %lease.id, error = %handing, "an undone issue could not be handed to the scheduler; it is revoked when its grace ends");
                    }
                }
                return Err(error.into());
            }
        }
        metrics::counter!("leasehold_leases_issued_total", "backend" => role.backend.clone())
            .increment(1);
        if ttl.seconds() < WAKE_BELOW.as_secs() {
            self.scheduler.notify_one();
        }
        Ok(IssuedLease {
            lease: LeaseRow {
                state: ACTIVE.to_owned(),
                ..lease
            },
            password,
            warning,
        })
    }

    /// Extends an ACTIVE lease by `increment` (default: the role's default TTL), capped at its
    /// maximum, and pushes the new expiry to the target first.
    ///
    /// # Errors
    /// `NotFound`, `Conflict` for a lease that is not ACTIVE, `Backend`, `Audit`.
    pub async fn renew(
        &self,
        caller: &Caller,
        lease: LeaseRow,
        role: &Role,
        increment: Option<Ttl>,
    ) -> Result<RenewedLease, DynamicError> {
        if lease.state != ACTIVE {
            return Err(DynamicError::Conflict(format!(
                "lease {} is {}; only an ACTIVE lease can be renewed",
                lease.id, lease.state
            )));
        }
        if let Err(error) = self.fences.check(&lease).await {
            self.audit_refusal(caller, EventType::LeaseRenew, &lease, &error)
                .await;
            return Err(error);
        }
        let now = Utc::now().trunc_subsecs(6);
        let wanted = increment.unwrap_or(role.default_ttl).after(now);
        let (expires_at, warning) = if wanted > lease.max_expires_at {
            (
                lease.max_expires_at,
                Some("the increment reaches past the lease's maxExpiresAt; the lease was capped there".to_owned()),
            )
        } else {
            (wanted, None)
        };
        let backend = self.registry.get(&lease.tenant, &lease.backend).await?;
        backend
            .plugin
            .renew(&RenewUser {
                username: lease.username.clone(),
                expires_at,
                statements: role.definition.renew_statements.clone(),
            })
            .await
            .map_err(|e| DynamicError::backend(&lease.backend, e))?;
        let renewed = LeaseRow {
            expires_at,
            updated_at: now,
            ..lease
        };
        let extended = self
            .audit
            .record_with(
                lease_event(caller, EventType::LeaseRenew, &renewed),
                JournalEffect::ExtendLease {
                    id: renewed.id,
                    expires_at,
                    at: now,
                },
            )
            .await?;
        if !extended {
            return Err(DynamicError::Conflict(format!(
                "lease {} was revoked while it was being renewed",
                renewed.id
            )));
        }
        Ok(RenewedLease {
            lease: renewed,
            warning,
        })
    }

    /// Audits the revocation that undoes an issue whose activation's outcome became unknown
    /// (the caller saw an error); answers whether the event was recorded.
    async fn audit_undone_issue(&self, caller: &Caller, lease: &LeaseRow) -> bool {
        let event = lease_event(caller, EventType::LeaseRevoke, lease).detail(
            "reason",
            "the issue failed after its user was created; the issue was undone",
        );
        let recorded = self.audit.record(event).await.is_ok();
        if !recorded {
            tracing::error!(lease = %lease.id, "an undone issue could not be audited; the scheduler records its revocation");
        }
        recorded
    }

    /// Every refusal is audited; the request is refused whether or not the event is recorded.
    async fn audit_refusal(
        &self,
        caller: &Caller,
        event_type: EventType,
        lease: &LeaseRow,
        error: &DynamicError,
    ) {
        let event = AuditEvent::by(caller, event_type, Decision::Deny)
            .location(&lease.environment, &format!("roles/{}", lease.role))
            .detail("leaseId", lease.id.to_string())
            .detail("reason", error.to_string());
        if self.audit.record(event).await.is_err() {
            tracing::error!(lease = %lease.id, "a fenced request could not be audited");
        }
    }

    /// Revokes one lease now (an IRREVOCABLE one is tried again); revoking a REVOKED lease is a
    /// no-op. An intent (PENDING: its issue may still be creating the user) is handed to the
    /// scheduler instead (`Store::expedite_intents`), and answered as it stands.
    ///
    /// # Errors
    /// `Audit` before anything happens; `Backend` when the target refuses or is down (the lease
    /// stays live, with the error recorded).
    pub async fn revoke(&self, caller: &Caller, lease: LeaseRow) -> Result<LeaseRow, DynamicError> {
        if lease.state == REVOKED {
            return Ok(lease);
        }
        self.audit
            .record(lease_event(caller, EventType::LeaseRevoke, &lease))
            .await?;
        let mut lease = lease;
        if lease.state == PENDING {
            if self.hand_intents_to_scheduler(&[lease.id]).await? > 0 {
                return self.find(&lease.tenant, lease.id).await;
            }
            // Activated meanwhile (so its user exists) or revoked.
            lease = self.find(&lease.tenant, lease.id).await?;
            if lease.state == REVOKED {
                return Ok(lease);
            }
        }
        let failures = self.revoke_rows(std::slice::from_ref(&lease)).await;
        if let Some((_, error)) = failures.into_iter().next() {
            return Err(error);
        }
        self.find(&lease.tenant, lease.id).await
    }

    /// Wakes this replica's lease scheduler: leases have just come due.
    pub fn wake_scheduler(&self) {
        self.scheduler.notify_one();
    }

    /// Hands the intents among `ids` to the scheduler (`Store::expedite_intents`) and wakes
    /// it; answers how many were still intents.
    async fn hand_intents_to_scheduler(&self, ids: &[Uuid]) -> Result<u64, DynamicError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let handed = self.store.expedite_intents(ids, None, Utc::now()).await?;
        self.wake_scheduler();
        Ok(handed)
    }

    /// Marks a lease REVOKED without touching its target: the operator asserts the user is gone
    /// (or accepts that it is not). Only for a lease whose revocation has failed: IRREVOCABLE,
    /// or live with failed attempts that the scheduler is still retrying. A lease nothing has
    /// failed to revoke is revoked properly instead, so that no user outlives its lease unseen.
    ///
    /// # Errors
    /// `Conflict` for a lease that is already REVOKED, or whose revocation never failed;
    /// `Audit` before anything changes.
    pub async fn force_revoke(
        &self,
        caller: &Caller,
        lease: LeaseRow,
        reason: &str,
    ) -> Result<LeaseRow, DynamicError> {
        if lease.state == REVOKED {
            return Err(DynamicError::Conflict(format!(
                "lease {} is already revoked",
                lease.id
            )));
        }
        if lease.state != IRREVOCABLE && lease.attempts == 0 && lease.last_error.is_none() {
            return Err(DynamicError::Conflict(format!(
                "lease {} is {} and no revocation of it has failed: revoke it (POST /v1/leases/{}/revoke), which drops its user; force-revoke is for a lease whose target cannot",
                lease.id, lease.state, lease.id
            )));
        }
        self.audit
            .record(
                lease_event(caller, EventType::LeaseForceRevoke, &lease)
                    .detail("reason", reason)
                    .detail("previousState", lease.state.as_str())
                    .detail("lastError", lease.last_error.clone().unwrap_or_default()),
            )
            .await?;
        self.store
            .mark_leases_revoked(&[lease.id], Utc::now())
            .await?;
        self.find(&lease.tenant, lease.id).await
    }

    /// Revokes every live lease on a backend (before the backend is deleted), 500 at a time,
    /// each audited once as `caller`'s `LEASE_REVOKE` before its user is dropped. Intents are
    /// handed to the scheduler (see [`LeaseService::revoke`]) and waited for.
    ///
    /// # Errors
    /// `Audit` before a batch's users are dropped; `Conflict` when leases are still live after
    /// [`BACKEND_DRAIN`] (issues keep coming, or intents wait for a target that is down);
    /// otherwise the first failure. Leases revoked before it stay revoked.
    pub async fn revoke_all_on_backend(
        &self,
        caller: &Caller,
        backend: &str,
    ) -> Result<u64, DynamicError> {
        let deadline = tokio::time::Instant::now() + BACKEND_DRAIN;
        let mut audited = std::collections::HashSet::new();
        let mut expedited = std::collections::HashSet::new();
        let mut revoked = 0;
        loop {
            let batch = self
                .store
                .live_leases(caller.tenant.as_str(), backend, None, 500)
                .await?;
            if batch.is_empty() {
                return Ok(revoked);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(DynamicError::Conflict(format!(
                    "backend `{backend}` still has live leases: being issued, waiting for their target, or intents whose issue stopped, which are revoked when their grace period (lease_intent_grace_seconds) ends; retry the delete then"
                )));
            }
            // Recorded together, so the writer commits them as one group.
            let events = batch
                .iter()
                .filter(|lease| audited.insert(lease.id))
                .map(|lease| {
                    self.audit.record(
                        lease_event(caller, EventType::LeaseRevoke, lease)
                            .detail("reason", "its backend is being deleted"),
                    )
                });
            join_all(events)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, _>>()?;
            let (intents, live): (Vec<LeaseRow>, Vec<LeaseRow>) =
                batch.into_iter().partition(|lease| lease.state == PENDING);
            // Each intent is handed over once; the scheduler's own backoff applies after that.
            let handed: Vec<Uuid> = intents
                .iter()
                .map(|lease| lease.id)
                .filter(|id| expedited.insert(*id))
                .collect();
            self.hand_intents_to_scheduler(&handed).await?;
            let failures = self.revoke_rows(&live).await;
            if let Some((_, error)) = failures.into_iter().next() {
                return Err(error);
            }
            revoked += live.len() as u64;
            if live.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Drops `users` on their targets — one plugin batch per backend, backends in parallel
    /// (each bounded by its own pool) — without touching the lease rows. One result per user,
    /// in order.
    pub async fn drop_users(&self, users: &[LeaseUser<'_>]) -> Vec<Result<(), DynamicError>> {
        let mut by_backend: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (index, user) in users.iter().enumerate() {
            by_backend
                .entry((user.tenant, user.backend))
                .or_default()
                .push(index);
        }
        let batches = by_backend
            .into_iter()
            .map(|((tenant, backend), indexes)| async move {
                let on_backend: Vec<&LeaseUser<'_>> = indexes.iter().map(|&i| &users[i]).collect();
                let results = self.drop_on_backend(tenant, backend, &on_backend).await;
                indexes.into_iter().zip(results).collect::<Vec<_>>()
            });
        let mut results: Vec<Option<Result<(), DynamicError>>> =
            users.iter().map(|_| None).collect();
        for (index, result) in join_all(batches).await.into_iter().flatten() {
            results[index] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(DynamicError::NotFound("no result".into()))))
            .collect()
    }

    async fn drop_on_backend(
        &self,
        tenant: &str,
        backend_name: &str,
        users: &[&LeaseUser<'_>],
    ) -> Vec<Result<(), DynamicError>> {
        let backend = match self.registry.get(tenant, backend_name).await {
            Ok(backend) => backend,
            Err(error) => {
                return users
                    .iter()
                    .map(|_| Err(clone_error(&error, backend_name)))
                    .collect();
            }
        };
        let mut statements: HashMap<&str, Vec<String>> = HashMap::new();
        let mut requests = Vec::with_capacity(users.len());
        for user in users {
            if !statements.contains_key(user.role) {
                // A deleted role's leases revoke with the plugin's default statements.
                let revocation = match self.roles.find(tenant, user.role).await {
                    Ok(role) => role.definition.revocation_statements,
                    Err(_) => backend.kind.default_statements(&[]).revocation,
                };
                statements.insert(user.role, revocation);
            }
            requests.push(RevokeUser {
                username: user.username.to_owned(),
                statements: statements[user.role].clone(),
            });
        }
        let started = std::time::Instant::now();
        let results = backend.plugin.revoke(&requests).await;
        metrics::histogram!("leasehold_revocation_duration_seconds", "backend" => backend_name.to_owned())
            .record(started.elapsed().as_secs_f64());
        results
            .into_iter()
            .map(|r| {
                r.map_err(|e| {
                    metrics::counter!("leasehold_revocation_failures_total", "backend" => backend_name.to_owned())
                        .increment(1);
                    DynamicError::backend(backend_name, e)
                })
            })
            .collect()
    }

    /// Drops the users of `rows` and marks those that succeeded REVOKED. Returns the failures;
    /// each is recorded on its lease, which the scheduler then retries.
    pub async fn revoke_rows(&self, rows: &[LeaseRow]) -> Vec<(Uuid, DynamicError)> {
        let users: Vec<LeaseUser<'_>> = rows.iter().map(LeaseRow::user).collect();
        let results = self.drop_users(&users).await;
        let now = Utc::now();
        let mut revoked = Vec::new();
        let mut failures = Vec::new();
        for (lease, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => revoked.push(lease.id),
                Err(error) => {
                    if let Err(store_error) = self
                        .store
                        .record_lease_error(lease.id, &error.to_string(), now)
                        .await
                    {
                        tracing::error!(lease = %lease.id, error = %store_error, "could not record a revocation failure");
                    }
                    failures.push((lease.id, error));
                }
            }
        }
        match self.store.mark_leases_revoked(&revoked, now).await {
            Ok(count) => {
                metrics::counter!("leasehold_leases_revoked_total").increment(count);
            }
            Err(error) => {
                // The users are gone; the scheduler drops them again (a no-op) and marks them.
                tracing::error!(%error, "users revoked but their leases could not be marked");
                failures.extend(revoked.iter().map(|id| (*id, DynamicError::Unrecorded)));
            }
        }
        failures
    }

    /// # Errors
    /// `NotFound`, storage errors.
    pub async fn find(&self, tenant: &str, id: Uuid) -> Result<LeaseRow, DynamicError> {
        self.store.find_lease(tenant, id).await?.ok_or_else(|| {
            DynamicError::NotFound(format!(
                "no lease {id} in this tenant (a revoked lease leaves the store once \
                     revoked_lease_retention_seconds have passed; GET /v1/audit/events keeps \
                     its history)"
            ))
        })
    }

    /// # Errors
    /// Storage errors.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &LeaseFilter<'_>,
    ) -> Result<Vec<LeaseRow>, DynamicError> {
        Ok(self.store.list_leases(tenant, filter).await?)
    }
}

/// One error of a whole backend batch, reported once per lease of it.
fn clone_error(error: &DynamicError, backend: &str) -> DynamicError {
    match error {
        DynamicError::Backend { backend, error } => DynamicError::backend(backend, error.clone()),
        DynamicError::NotFound(m) => DynamicError::NotFound(m.clone()),
        // Storage or KMS trouble while loading the backend: worth retrying later.
        other => DynamicError::backend(
            backend,
            leasehold_plugins::PluginError::unavailable(format!(
                "could not load the backend: {other}"
            )),
        ),
    }
}
