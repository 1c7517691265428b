//! Access decisions: the one place that says yes or no.
//!
//! Administrator tokens (the dev root token, `operator init`) may do everything in their own
//! tenant. Every other caller is judged by its tenant's policies: explicit deny wins, a matching
//! allow allows, nothing matching denies. A tenant's policies never see another tenant's data,
//! because every store query is scoped to the caller's tenant as well.

use std::time::Instant;

use crate::api::ApiError;
use crate::audit::{AuditEvent, AuditLog, Decision, EventType};
use crate::domain::{Environment, SecretPath};
use crate::policy::{Action, PolicyCache, StatementRef, Subject};

use super::Caller;

/// What an action touches: `environment/path` for secrets, `*` for tenant-wide operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource(String);

impl Resource {
    pub fn secret(environment: &Environment, path: &SecretPath) -> Self {
        Self(format!("{environment}/{path}"))
    }

    /// The leases of a role: `environment/roles/name`.
    pub fn role(environment: &Environment, name: &str) -> Self {
        Self(format!("{environment}/roles/{name}"))
    }

    /// A backend: `backends/name`.
    pub fn backend(name: &str) -> Self {
        Self(format!("backends/{name}"))
    }

    pub fn tenant_wide() -> Self {
        Self("*".to_owned())
    }

    /// A resource given as text (simulator input), already validated by the caller.
    pub fn from_text(text: &str) -> Self {
        Self(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A decision and why it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    pub allowed: bool,
    pub decided_by: Option<StatementRef>,
    pub reason: String,
}

pub struct Access {
    policies: PolicyCache,
    audit: AuditLog,
}

impl Access {
    pub fn new(policies: PolicyCache, audit: AuditLog) -> Self {
        Self { policies, audit }
    }

    pub fn policies(&self) -> &PolicyCache {
        &self.policies
    }

    /// Decides without enforcing (also what the simulator answers).
    ///
    /// # Errors
    /// When the tenant's policies cannot be loaded: the caller must fail closed.
    pub async fn decide(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource,
    ) -> Result<AccessDecision, ApiError> {
        if caller.is_admin {
            return Ok(AccessDecision {
                allowed: true,
                decided_by: None,
                reason: "administrator token".into(),
            });
        }
        let started = Instant::now();
        let set = self.policies.get(caller.tenant.as_str()).await?;
        let decision = set.evaluate(&caller.subject(), action, resource.as_str());
        metrics::histogram!("leasehold_policy_decision_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let reason = match (&decision.decided_by, decision.allowed) {
            (Some(r), true) => format!("allowed by statement {} of policy {}", r.index, r.policy),
            (Some(r), false) => format!("denied by statement {} of policy {}", r.index, r.policy),
            (None, _) => "no statement allows it".to_owned(),
        };
        Ok(AccessDecision {
            allowed: decision.allowed,
            decided_by: decision.decided_by,
            reason,
        })
    }

    /// # Errors
    /// `Forbidden`, naming the action, the resource and what decided, when the caller may not.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource,
    ) -> Result<(), ApiError> {
        let decision = self.decide(caller, action, resource).await?;
        if decision.allowed {
            return Ok(());
        }
        let message = format!(
            "{} may not {} on {}: {}",
            caller.principal,
            action.as_str(),
            resource.as_str(),
            decision.reason
        );
        Err(self
            .refuse(caller, action, resource, &decision.reason, message)
            .await)
    }

    /// Refuses `action` on `resource` with a 403 saying `message`, counted and audited like
    /// every deny; `reason` goes into the event. [`Self::authorize`] refuses this way, and so do
    /// the rules that no policy can lift (another tenant's leases, an administrator-only option).
    pub async fn refuse(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource,
        reason: &str,
        message: String,
    ) -> ApiError {
        metrics::counter!("leasehold_access_denied_total", "action" => action.as_str())
            .increment(1);
        // Every deny is audited. The request is refused either way, so a failed audit write
        // cannot turn into access; the audit log counts and logs the failure.
        let event = AuditEvent::by(caller, EventType::AccessDenied, Decision::Deny)
            .detail("action", action.as_str())
            .detail("resource", resource.as_str())
            .detail("reason", reason);
        let event = match resource.as_str().split_once('/') {
            Some((environment, path)) => event.location(environment, path),
            None => event,
        };
        if self.audit.record(event).await.is_err() {
            tracing::error!(action = action.as_str(), "a deny could not be audited");
        }
        ApiError::Forbidden(message)
    }

    /// Simulates a decision for any principal of the caller's tenant.
    ///
    /// # Errors
    /// When the tenant's policies cannot be loaded.
    pub async fn simulate(
        &self,
        tenant: &str,
        subject: &Subject<'_>,
        action: Action,
        resource: &Resource,
    ) -> Result<AccessDecision, ApiError> {
        let set = self.policies.get(tenant).await?;
        let decision = set.evaluate(subject, action, resource.as_str());
        let reason = match (&decision.decided_by, decision.allowed) {
            (Some(r), true) => format!("allowed by statement {} of policy {}", r.index, r.policy),
            (Some(r), false) => format!("denied by statement {} of policy {}", r.index, r.policy),
            (None, _) => "no statement matched: denied by default".to_owned(),
        };
        Ok(AccessDecision {
            allowed: decision.allowed,
            decided_by: decision.decided_by,
            reason,
        })
    }
}
