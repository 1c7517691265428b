//! `/v1/break-glass`: opening, listing and ending time-bound emergency grants.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::{ApiError, AppState, JsonBody};
use crate::audit::{AuditEvent, EventType};
use crate::auth::{Caller, GrantRequest};

use super::require_admin;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BreakGlassRequest {
    resources: Vec<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    ticket_url: String,
    duration_minutes: u32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantResponse {
    id: Uuid,
    principal: String,
    resources: Vec<String>,
    reason: String,
    ticket_url: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<crate::auth::Grant> for GrantResponse {
    fn from(g: crate::auth::Grant) -> Self {
        Self {
            id: g.id,
            principal: g.principal,
            resources: g.resources,
            reason: g.reason,
            ticket_url: g.ticket_url,
            created_at: g.created_at,
            expires_at: g.expires_at,
        }
    }
}

/// Open a time-bound break-glass grant (audited and alerted).
#[utoipa::path(
    tag = "break-glass",
    request_body = BreakGlassRequest,
    responses((status = 201, body = GrantResponse), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/break-glass")]
pub async fn open_break_glass(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<BreakGlassRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    let grant = state
        .break_glass
        .open(
            &state.access,
            &state.audit,
            &caller,
            GrantRequest {
                resources: request.resources,
                reason: request.reason,
                ticket_url: request.ticket_url,
                duration_minutes: request.duration_minutes,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(GrantResponse::from(grant)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantList {
    grants: Vec<GrantResponse>,
}

/// Active grants: all of the tenant's for `policies:admin`, otherwise the caller's own.
#[utoipa::path(tag = "break-glass", responses((status = 200, body = GrantList)), security(("bearer" = [])))]
#[get("/v1/break-glass")]
pub async fn list_break_glass(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let everyone = require_admin(&state, &caller).await.is_ok();
    let grants = state
        .break_glass
        .active(&caller, (!everyone).then_some(caller.principal.as_str()))
        .await?;
    Ok(HttpResponse::Ok().json(GrantList {
        grants: grants.into_iter().map(GrantResponse::from).collect(),
    }))
}

/// End a grant early (its holder, or `policies:admin`).
#[utoipa::path(
    tag = "break-glass",
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/break-glass/{id}/end")]
pub async fn end_break_glass(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let grant = state.break_glass.find(&caller, *id).await?;
    if grant
        .as_ref()
        .is_none_or(|g| g.principal != caller.principal)
    {
        require_admin(&state, &caller).await?;
    }
    let audit = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::BreakGlassEnd).detail("grantId", id.to_string()),
    );
    state.break_glass.end(&caller, *id, &audit).await?;
    Ok(HttpResponse::NoContent().finish())
}
