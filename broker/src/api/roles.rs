//! `/v1/roles`: what a lease on a backend creates. Needs `roles:admin` on
//! `<environment>/roles/<name>`.

use actix_web::{HttpResponse, delete, get, put, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, JsonBody};
use crate::audit::{AuditEvent, EventType};
use crate::auth::{Action, Caller, Resource};
use crate::domain::Environment;
use crate::dynamic::{DynamicError, PutRole, RoleView, check_name};

/// Create or replace a role; omitted statements get the plugin's defaults.
#[utoipa::path(
    tag = "roles",
    params(("name" = String, Path)),
    request_body = PutRole,
    responses((status = 200, body = RoleView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/roles/{name}")]
pub async fn put_role(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: JsonBody<PutRole>,
) -> Result<HttpResponse, ApiError> {
    let tenant = caller.tenant.as_str();
    check_name("name", &name)?;
    let environment = Environment::parse(&body.0.environment).map_err(DynamicError::from)?;
    state
        .access
        .authorize(
            &caller,
            Action::RolesAdmin,
            &Resource::role(&environment, &name),
        )
        .await?;
    let role = state.roles.validate(tenant, &name, body.0).await?;
    // Moving a role to another environment needs the right on the old one as well.
    if let Ok(existing) = state.roles.find(tenant, &name).await
        && existing.environment != role.environment
    {
        state
            .access
            .authorize(&caller, Action::RolesAdmin, &existing.resource())
            .await?;
    }
    let audit = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::RoleWrite)
            .location(role.environment.as_str(), &format!("roles/{name}"))
            .detail("backend", role.backend.as_str()),
    );
    let view = state
        .roles
        .put(tenant, &name, role, &caller.principal, &audit)
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    roles: Vec<String>,
}

/// The tenant's roles, by name.
#[utoipa::path(
    tag = "roles",
    responses((status = 200, body = RoleList), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/roles")]
pub async fn list_roles(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    state
        .access
        .authorize(&caller, Action::RolesAdmin, &Resource::tenant_wide())
        .await?;
    Ok(HttpResponse::Ok().json(RoleList {
        roles: state.roles.list(caller.tenant.as_str()).await?,
    }))
}

/// A role with every default filled in, and the policy resource its leases use.
#[utoipa::path(
    tag = "roles",
    params(("name" = String, Path)),
    responses((status = 200, body = RoleView), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/roles/{name}")]
pub async fn get_role(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_name("name", &name)?;
    let role = state.roles.find(caller.tenant.as_str(), &name).await?;
    state
        .access
        .authorize(&caller, Action::RolesAdmin, &role.resource())
        .await?;
    Ok(HttpResponse::Ok().json(state.roles.view(caller.tenant.as_str(), &name).await?))
}

/// Delete a role; refused with 409 while it has live leases.
#[utoipa::path(
    tag = "roles",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/roles/{name}")]
pub async fn delete_role(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_name("name", &name)?;
    let role = state.roles.find(caller.tenant.as_str(), &name).await?;
    state
        .access
        .authorize(&caller, Action::RolesAdmin, &role.resource())
        .await?;
    let audit = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::RoleDelete)
            .location(role.environment.as_str(), &format!("roles/{name}")),
    );
    state
        .roles
        .delete(caller.tenant.as_str(), &name, &audit)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
