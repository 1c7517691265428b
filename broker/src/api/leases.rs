//! `/v1/leases`: issue, renew, revoke and read leases. Actions `leases:issue|renew|revoke|read`
//! on the role's resource `<environment>/roles/<role>`; a caller may always read its own leases.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ApiError, AppState, JsonBody, JsonBodyOrEmpty, QueryParams};
use crate::auth::{Action, Caller, Resource};
use crate::domain::{Environment, Ttl};
use crate::dynamic::{DynamicError, IssueRequest, LeaseView, check_name};
use crate::store::{ACTIVE, IRREVOCABLE, LeaseFilter, LeaseRow, PENDING, REVOKED};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueLeaseRequest {
    role: String,
    /// e.g. `15m`; default: the role's `defaultTtl`; above its `maxTtl`: capped, with a warning.
    ttl: Option<String>,
}

/// A new credential. No `Debug`: it holds the password, shown once and never stored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedLeaseResponse {
    lease_id: Uuid,
    role: String,
    username: String,
    password: String,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    max_expires_at: DateTime<Utc>,
    renewable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

fn parse_ttl(field: &'static str, text: Option<&str>) -> Result<Option<Ttl>, ApiError> {
    text.map(|t| Ttl::parse(field, t))
        .transpose()
        .map_err(|e| ApiError::from(DynamicError::from(e)))
}

/// Issue a credential for a role: a fresh user on the role's backend.
#[utoipa::path(
    tag = "leases",
    request_body = IssueLeaseRequest,
    responses((status = 201, body = IssuedLeaseResponse), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 503, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/leases")]
pub async fn issue_lease(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<IssueLeaseRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    check_name("role", &request.role)?;
    let ttl = parse_ttl("ttl", request.ttl.as_deref())?;
    let role = state
        .roles
        .find(caller.tenant.as_str(), &request.role)
        .await?;
    state
        .access
        .authorize(&caller, Action::LeasesIssue, &role.resource())
        .await?;
    let issued = state
        .leases
        .issue(&caller, IssueRequest { role, ttl })
        .await?;
    let lease = issued.lease;
    Ok(HttpResponse::Created().json(IssuedLeaseResponse {
        renewable: lease.expires_at < lease.max_expires_at,
        lease_id: lease.id,
        role: lease.role,
        username: lease.username,
        password: issued.password.expose_secret().to_owned(),
        issued_at: lease.issued_at,
        expires_at: lease.expires_at,
        max_expires_at: lease.max_expires_at,
        warning: issued.warning,
    }))
}

/// The lease `id` of the caller's tenant, authorized for `action` on its role's resource (or,
/// for reads, owned by the caller).
async fn lease_for(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    action: Action,
) -> Result<LeaseRow, ApiError> {
    let lease = state.leases.find(caller.tenant.as_str(), id).await?;
    if action == Action::LeasesRead && lease.principal == caller.principal {
        return Ok(lease);
    }
    let environment = Environment::parse(&lease.environment).map_err(DynamicError::from)?;
    state
        .access
        .authorize(caller, action, &Resource::role(&environment, &lease.role))
        .await?;
    Ok(lease)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenewLeaseRequest {
    /// e.g. `15m`; default: the role's `defaultTtl`. The expiry never passes `maxExpiresAt`.
    increment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenewedLeaseResponse {
    #[serde(flatten)]
    lease: LeaseView,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

/// Extend a lease; the new expiry is pushed to the target (PostgreSQL `VALID UNTIL`).
#[utoipa::path(
    tag = "leases",
    params(("id" = Uuid, Path)),
    request_body = RenewLeaseRequest,
    responses((status = 200, body = RenewedLeaseResponse), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/leases/{id}/renew")]
pub async fn renew_lease(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: JsonBodyOrEmpty<RenewLeaseRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    let increment = parse_ttl("increment", request.increment.as_deref())?;
    let lease = lease_for(&state, &caller, *id, Action::LeasesRenew).await?;
    let role = state
        .roles
        .find(caller.tenant.as_str(), &lease.role)
        .await?;
    let renewed = state.leases.renew(&caller, lease, &role, increment).await?;
    Ok(HttpResponse::Ok().json(RenewedLeaseResponse {
        lease: renewed.lease.into(),
        warning: renewed.warning,
    }))
}

/// Revoke a lease now: its user is dropped. Revoking a revoked lease is a no-op.
#[utoipa::path(
    tag = "leases",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = LeaseView), (status = 404, body = super::ErrorBody), (status = 503, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/leases/{id}/revoke")]
pub async fn revoke_lease(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let lease = lease_for(&state, &caller, *id, Action::LeasesRevoke).await?;
    let revoked = state.leases.revoke(&caller, lease).await?;
    Ok(HttpResponse::Ok().json(LeaseView::from(revoked)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForceRevokeRequest {
    /// Why the lease may be marked revoked without its user being dropped (audited).
    reason: String,
}

/// Mark a lease REVOKED without dropping its user — for a lease whose revocation failed
/// (IRREVOCABLE, or still being retried) and whose user an operator removed by hand, or whose
/// target is gone for good; any other lease answers 409 (revoke it instead). Needs
/// `leases:revoke`; audited.
#[utoipa::path(
    tag = "leases",
    params(("id" = Uuid, Path)),
    request_body = ForceRevokeRequest,
    responses((status = 200, body = LeaseView), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/leases/{id}/force-revoke")]
pub async fn force_revoke_lease(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: JsonBody<ForceRevokeRequest>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.0.reason.trim().to_owned();
    if reason.is_empty() || reason.len() > 1024 {
        return Err(ApiError::bad_request(
            "reason",
            "reason: say in 1-1024 characters why the user may be considered gone",
        ));
    }
    let lease = lease_for(&state, &caller, *id, Action::LeasesRevoke).await?;
    let revoked = state.leases.force_revoke(&caller, lease, &reason).await?;
    Ok(HttpResponse::Ok().json(LeaseView::from(revoked)))
}

/// A lease (never its password).
#[utoipa::path(
    tag = "leases",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = LeaseView), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/leases/{id}")]
pub async fn get_lease(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let lease = lease_for(&state, &caller, *id, Action::LeasesRead).await?;
    Ok(HttpResponse::Ok().json(LeaseView::from(lease)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeaseQuery {
    role: Option<String>,
    principal: Option<String>,
    /// `pending`, `active`, `revoked` or `irrevocable`.
    state: Option<String>,
    /// The `nextCursor` of the previous page.
    after: Option<Uuid>,
    /// 1 to 1000 (default 100).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeasePage {
    leases: Vec<LeaseView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Uuid>,
}

/// Leases in issue order, never with passwords. Listing only one's own leases
/// (`principal=<self>`) needs nothing; otherwise `leases:read` on the role's resource (with
/// `role=`) or on `*`.
#[utoipa::path(
    tag = "leases",
    params(LeaseQuery),
    responses((status = 200, body = LeasePage), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/leases")]
pub async fn list_leases(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<LeaseQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    let wanted_state = match query.state.as_deref() {
        None => None,
        Some("pending") => Some(PENDING),
        Some("active") => Some(ACTIVE),
        Some("revoked") => Some(REVOKED),
        Some("irrevocable") => Some(IRREVOCABLE),
        Some(_) => {
            return Err(ApiError::bad_request(
                "state",
                "state must be pending, active, revoked or irrevocable",
            ));
        }
    };
    let own = query.principal.as_deref() == Some(caller.principal.as_str());
    if !own {
        let resource = match &query.role {
            Some(role) => {
                check_name("role", role)?;
                state
                    .roles
                    .find(caller.tenant.as_str(), role)
                    .await?
                    .resource()
            }
            None => Resource::tenant_wide(),
        };
        state
            .access
            .authorize(&caller, Action::LeasesRead, &resource)
            .await?;
    }
    let rows = state
        .leases
        .list(
            caller.tenant.as_str(),
            &LeaseFilter {
                role: query.role.as_deref(),
                principal: query.principal.as_deref(),
                state: wanted_state,
                after: query.after,
                limit: limit + 1,
            },
        )
        .await?;
    let has_more = rows.len() as i64 > limit;
    let leases: Vec<LeaseView> = rows
        .into_iter()
        .take(limit as usize)
        .map(LeaseView::from)
        .collect();
    let next_cursor = has_more
        .then(|| leases.last().map(|l| l.lease_id))
        .flatten();
    Ok(HttpResponse::Ok().json(LeasePage {
        leases,
        next_cursor,
    }))
}
