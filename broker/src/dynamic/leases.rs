//! Leases: issue (intent → user → audit → active), renew, revoke, read.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use leasehold_plugins::username::UsernameInputs;
use leasehold_plugins::{CreateUser, RenewUser, RevokeUser};
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{DynamicError, PluginRegistry, Role, RoleService};
use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::auth::Caller;
use crate::domain::Ttl;
use crate::failpoint;
use crate::store::{ACTIVE, JournalEffect, LeaseFilter, LeaseRow, PENDING, REVOKED, Store};

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
    /// `PENDING`, `ACTIVE` or `REVOKED`.
    pub state: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub max_expires_at: DateTime<Utc>,
    pub renewable: bool,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why the last revocation attempt failed, while the lease is still live.
    pub last_error: Option<String>,
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
}

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
    ) -> Self {
        Self {
            store,
            registry,
            roles,
            audit,
        }
    }

    /// Issues a credential: the lease row is written as an intent first, then the user is
    /// created, then the event is recorded, then the lease becomes ACTIVE. A failure after the
    /// intent revokes the user (or leaves the intent for cleanup); no user is ever orphaned.
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
        };
        let written = self
            .audit
            .apply(JournalEffect::InsertLeaseIntent(Box::new(lease.clone())))
            .await
            .map_err(|_| DynamicError::Unrecorded)?;
        if !written {
            return Err(DynamicError::Conflict(
                "a lease with this id exists already; request a new lease".into(),
            ));
        }

        let password = role.definition.password_policy().generate();
        let created = backend
            .plugin
            .create(&CreateUser {
                username: lease.username.clone(),
                password: password.clone(),
                expires_at: lease.expires_at,
                statements: role.definition.creation_statements.clone(),
            })
            .await;
        if let Err(error) = created {
            // Part of the user may exist (a statement after CREATE failed): revoke it now.
            self.revoke_rows(std::slice::from_ref(&lease)).await;
            return Err(DynamicError::backend(&role.backend, error));
        }
        failpoint::hit("lease-after-create");

        // The event and the activation commit together, or neither does.
        let activated = self
            .audit
            .record_with(
                lease_event(caller, EventType::LeaseIssue, &lease),
                JournalEffect::ActivateLease {
                    id: lease.id,
                    at: Utc::now(),
                },
            )
            .await;
        match activated {
            Ok(true) => {}
            Ok(false) => {
                return Err(DynamicError::Conflict(
                    "the lease intent was cleaned up before it could be activated; request a new lease"
                        .into(),
                ));
            }
            Err(error) => {
                self.revoke_rows(std::slice::from_ref(&lease)).await;
                return Err(error.into());
            }
        }
        metrics::counter!("leasehold_leases_issued_total", "backend" => role.backend.clone())
            .increment(1);
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

    /// Revokes one lease now; revoking a REVOKED lease is a no-op.
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
        let failures = self.revoke_rows(std::slice::from_ref(&lease)).await;
        if let Some((_, error)) = failures.into_iter().next() {
            return Err(error);
        }
        self.store
            .find_lease(&lease.tenant, lease.id)
            .await?
            .ok_or_else(|| DynamicError::NotFound(format!("no lease {}", lease.id)))
    }

    /// Revokes every live lease on a backend (before the backend is deleted).
    ///
    /// # Errors
    /// The first failure; leases revoked before it stay revoked.
    pub async fn revoke_all_on_backend(
        &self,
        tenant: &str,
        backend: &str,
    ) -> Result<u64, DynamicError> {
        let mut revoked = 0;
        loop {
            let batch = self.store.live_leases(tenant, backend, None, 500).await?;
            if batch.is_empty() {
                return Ok(revoked);
            }
            let failures = self.revoke_rows(&batch).await;
            if let Some((_, error)) = failures.into_iter().next() {
                return Err(error);
            }
            revoked += batch.len() as u64;
        }
    }

    /// Revokes abandoned intents, audited as the broker's own doing. A tenant whose event
    /// cannot be recorded keeps its intents for the next round (no audit, no action).
    pub async fn revoke_abandoned(&self, rows: &[LeaseRow]) -> Vec<(Uuid, DynamicError)> {
        let mut by_tenant: HashMap<&str, Vec<LeaseRow>> = HashMap::new();
        for row in rows {
            by_tenant.entry(&row.tenant).or_default().push(row.clone());
        }
        let mut failures = Vec::new();
        for (tenant, leases) in by_tenant {
            let ids: Vec<String> = leases.iter().map(|l| l.id.to_string()).collect();
            let event = AuditEvent::system(tenant, EventType::LeaseRevoke)
                .detail("reason", "abandoned lease intent")
                .detail("leaseIds", ids);
            match self.audit.record(event).await {
                Ok(()) => failures.extend(self.revoke_rows(&leases).await),
                Err(error) => {
                    let error = DynamicError::from(error);
                    failures.extend(leases.iter().map(|l| (l.id, clone_error(&error))));
                }
            }
        }
        failures
    }

    /// Drops the users of `rows` through their backends' plugins, in one batch per backend,
    /// and marks those that succeeded REVOKED. Returns the failures; each is also recorded on
    /// its lease.
    pub async fn revoke_rows(&self, rows: &[LeaseRow]) -> Vec<(Uuid, DynamicError)> {
        let mut by_backend: HashMap<(&str, &str), Vec<&LeaseRow>> = HashMap::new();
        for row in rows {
            by_backend
                .entry((&row.tenant, &row.backend))
                .or_default()
                .push(row);
        }
        let mut failures = Vec::new();
        for ((tenant, backend_name), leases) in by_backend {
            let backend = match self.registry.get(tenant, backend_name).await {
                Ok(backend) => backend,
                Err(error) => {
                    failures.extend(leases.iter().map(|l| (l.id, clone_error(&error))));
                    continue;
                }
            };
            let mut statements: HashMap<&str, Vec<String>> = HashMap::new();
            let mut requests = Vec::with_capacity(leases.len());
            for lease in &leases {
                if !statements.contains_key(lease.role.as_str()) {
                    // A deleted role's leases revoke with the plugin's default statements.
                    let revocation = match self.roles.find(tenant, &lease.role).await {
                        Ok(role) => role.definition.revocation_statements,
                        Err(_) => backend.kind.default_statements(&[]).revocation,
                    };
                    statements.insert(&lease.role, revocation);
                }
                requests.push(RevokeUser {
                    username: lease.username.clone(),
                    statements: statements[lease.role.as_str()].clone(),
                });
            }
            let results = backend.plugin.revoke(&requests).await;
            let now = Utc::now();
            let mut revoked = Vec::new();
            for (lease, result) in leases.iter().zip(results) {
                match result {
                    Ok(()) => revoked.push(lease.id),
                    Err(error) => {
                        let error = DynamicError::backend(backend_name, error);
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
                    metrics::counter!("leasehold_leases_revoked_total", "backend" => backend_name.to_owned())
                        .increment(count);
                }
                Err(error) => {
                    // The users are gone; a later attempt drops them again (a no-op) and marks them.
                    tracing::error!(%error, "users revoked but their leases could not be marked");
                    let error = DynamicError::Storage(error);
                    failures.extend(revoked.iter().map(|id| (*id, clone_error(&error))));
                }
            }
        }
        failures
    }

    /// # Errors
    /// `NotFound`, storage errors.
    pub async fn find(&self, tenant: &str, id: Uuid) -> Result<LeaseRow, DynamicError> {
        self.store
            .find_lease(tenant, id)
            .await?
            .ok_or_else(|| DynamicError::NotFound(format!("no lease {id}")))
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

/// Errors are reported once per lease of a failed batch.
fn clone_error(error: &DynamicError) -> DynamicError {
    match error {
        DynamicError::Backend { backend, error } => DynamicError::backend(backend, error.clone()),
        DynamicError::NotFound(m) => DynamicError::NotFound(m.clone()),
        other => DynamicError::Backend {
            backend: String::new(),
            error: leasehold_plugins::PluginError::unavailable(other.to_string()),
        },
    }
}
