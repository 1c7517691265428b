//! Break-glass: time-bound emergency read grants. Opening one needs `secrets:read-break-glass`
//! on every resource it names (its conditions checked, the grant's ticket counting as the
//! request's ticket), a reason, a ticket and a duration. Reads under a grant are marked, counted
//! and alerted.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{Access, Action, Caller, Resource};
use crate::alerts::AlertSink;
use crate::api::ApiError;
use crate::audit::{AuditEvent, AuditLog, EventType, TransactionEvents};
use crate::policy::Glob;
use crate::store::{GrantRow, NewGrant, Store};

const MAX_DURATION_MINUTES: u32 = 12 * 60;

pub struct GrantRequest {
    pub resources: Vec<String>,
    pub reason: String,
    pub ticket_url: String,
    pub duration_minutes: u32,
}

/// An open grant.
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: Uuid,
    token_id: String,
    pub principal: String,
    pub resources: Vec<String>,
    pub reason: String,
    pub ticket_url: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Grant {
    fn from_row(row: GrantRow) -> Option<Self> {
        Some(Self {
            resources: serde_json::from_str(&row.resources).ok()?,
            id: row.id,
            token_id: row.token_id,
            principal: row.principal,
            reason: row.reason,
            ticket_url: row.ticket_url,
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }

    fn covers(&self, resource: &str) -> bool {
        self.resources
            .iter()
            .any(|r| Glob::new(r).matches(resource))
    }
}

pub struct BreakGlass {
    store: Store,
    alerts: AlertSink,
}

fn required(field: &'static str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_request(
            field,
            format!("{field}: required for break-glass access"),
        ));
    }
    if value.len() > max {
        return Err(ApiError::bad_request(
            field,
            format!("{field}: at most {max} characters"),
        ));
    }
    Ok(())
}

impl BreakGlass {
    pub fn new(store: Store, alerts: AlertSink) -> Self {
        Self { store, alerts }
    }

    /// Opens a grant for the caller.
    ///
    /// # Errors
    /// 400 for a missing reason, ticket or bad duration; 403 when a resource is not allowed.
    pub async fn open(
        &self,
        access: &Access,
        audit: &AuditLog,
        caller: &Caller,
        request: GrantRequest,
    ) -> Result<Grant, ApiError> {
        required("reason", &request.reason, 1024)?;
        required("ticketUrl", &request.ticket_url, 2048)?;
        if !(1..=MAX_DURATION_MINUTES).contains(&request.duration_minutes) {
            return Err(ApiError::bad_request(
                "durationMinutes",
                format!("durationMinutes: between 1 and {MAX_DURATION_MINUTES}"),
            ));
        }
        if request.resources.is_empty() || request.resources.len() > 64 {
            return Err(ApiError::bad_request(
                "resources",
                "resources: between 1 and 64 globs over environment/path",
            ));
        }
        let with_ticket = Caller {
            ticket: Some(request.ticket_url.clone()),
            ..caller.clone()
        };
        for (i, resource) in request.resources.iter().enumerate() {
            if !crate::policy::is_valid_resource_glob(resource) {
                return Err(ApiError::bad_request(
                    format!("resources[{i}]"),
                    format!("resources[{i}]: must be a glob over environment/path"),
                ));
            }
            access
                .authorize(
                    &with_ticket,
                    Action::SecretsReadBreakGlass,
                    &Resource::from_text(resource),
                )
                .await?;
        }
        let now = Utc::now();
        let expires_at = now + chrono::Duration::minutes(i64::from(request.duration_minutes));
        let id = Uuid::new_v4();
        let event = audit.in_transaction(
            AuditEvent::allow(caller, EventType::BreakGlassGrant)
                .detail("grantId", id.to_string())
                .detail("resources", request.resources.clone())
                .detail("reason", request.reason.clone())
                .detail("ticketUrl", request.ticket_url.clone())
                .detail("expiresAt", expires_at.to_rfc3339()),
        );
        let resources = serde_json::to_string(&request.resources)
            .map_err(|_| ApiError::Internal("grant encoding failed".into()))?;
        self.store
            .insert_grant(
                &NewGrant {
                    id,
                    token_id: &caller.token_id.to_string(),
                    tenant: caller.tenant.as_str(),
                    principal: &caller.principal,
                    resources: &resources,
                    reason: &request.reason,
                    ticket_url: &request.ticket_url,
                    now,
                    expires_at,
                },
                &event,
            )
            .await?;
        metrics::counter!("leasehold_break_glass_grants_total").increment(1);
        self.alerts.send(json!({
            "event": "BREAK_GLASS_GRANTED", "grantId": id, "tenant": caller.tenant.as_str(),
            "principal": caller.principal, "resources": request.resources,
            "reason": request.reason, "ticketUrl": request.ticket_url, "expiresAt": expires_at,
        }));
        Ok(Grant {
            id,
            token_id: caller.token_id.to_string(),
            principal: caller.principal.clone(),
            resources: request.resources,
            reason: request.reason,
            ticket_url: request.ticket_url,
            created_at: now,
            expires_at,
        })
    }

    /// Unexpired, unended grants of the tenant (of one principal when given).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn active(
        &self,
        caller: &Caller,
        principal: Option<&str>,
    ) -> Result<Vec<Grant>, ApiError> {
        let now = Utc::now();
        Ok(self
            .store
            .open_grants(caller.tenant.as_str(), principal)
            .await?
            .into_iter()
            .filter(|g| g.expires_at > now)
            .filter_map(Grant::from_row)
            .collect())
    }

    /// The grant a read of `resource` that policies denied may proceed under: an open grant of
    /// this very token that covers the resource, while policies still give the caller
    /// `secrets:read-break-glass` on that exact resource (the grant's ticket counting as the
    /// request's). A grant never reaches past a later deny, another token, or a removed policy.
    ///
    /// # Errors
    /// Storage errors, or a policy set that cannot be loaded.
    pub async fn authorize_read(
        &self,
        access: &Access,
        caller: &Caller,
        resource: &Resource,
    ) -> Result<Option<Grant>, ApiError> {
        let token_id = caller.token_id.to_string();
        let Some(grant) = self
            .active(caller, Some(&caller.principal))
            .await?
            .into_iter()
            .find(|g| g.token_id == token_id && g.covers(resource.as_str()))
        else {
            return Ok(None);
        };
        let with_ticket = Caller {
            ticket: Some(grant.ticket_url.clone()),
            ..caller.clone()
        };
        let decision = access
            .decide(&with_ticket, Action::SecretsReadBreakGlass, resource)
            .await?;
        Ok(decision.allowed.then_some(grant))
    }

    /// Records and alerts one read under `grant`.
    pub fn record_read(&self, caller: &Caller, grant: &Grant, resource: &Resource, version: i64) {
        metrics::counter!("leasehold_break_glass_reads_total").increment(1);
        tracing::warn!(grant = %grant.id, principal = %caller.principal, resource = resource.as_str(), "break-glass read");
        self.alerts.send(json!({
            "event": "BREAK_GLASS_READ", "grantId": grant.id, "tenant": caller.tenant.as_str(),
            "principal": caller.principal, "resource": resource.as_str(), "version": version,
            "reason": grant.reason, "ticketUrl": grant.ticket_url, "at": Utc::now(),
        }));
    }

    /// Ends a grant early, committing `audit`'s event with it.
    ///
    /// # Errors
    /// 404 when the tenant has no open grant with this id; storage and audit errors.
    pub async fn end(
        &self,
        caller: &Caller,
        id: Uuid,
        audit: &TransactionEvents,
    ) -> Result<(), ApiError> {
        if self
            .store
            .end_grant(caller.tenant.as_str(), id, Utc::now(), audit)
            .await?
        {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!(
                "no open break-glass grant {id}"
            )))
        }
    }

    /// The grant with this id, if it is open (for authorising who may end it).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn find(&self, caller: &Caller, id: Uuid) -> Result<Option<Grant>, ApiError> {
        Ok(self
            .active(caller, None)
            .await?
            .into_iter()
            .find(|g| g.id == id))
    }
}
