//! `/v1/backends`: configure the systems leases create users in. Needs `backends:admin` on
//! `backends/<name>`; the admin password is sealed at rest and never returned.

use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, AppState, JsonBody, QueryParams};
use crate::audit::{AuditEvent, EventType};
use crate::auth::{Action, Caller, Resource};
use crate::dynamic::{BackendView, PutBackend, check_name};

async fn authorize(state: &AppState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    check_name("name", name)?;
    state
        .access
        .authorize(caller, Action::BackendsAdmin, &Resource::backend(name))
        .await
}

fn event(caller: &Caller, event_type: EventType, name: &str) -> AuditEvent {
    AuditEvent::allow(caller, event_type).detail("backend", name)
}

/// Create or replace a backend.
#[utoipa::path(
    tag = "backends",
    params(("name" = String, Path)),
    request_body = PutBackend,
    responses((status = 200, body = BackendView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/backends/{name}")]
pub async fn put_backend(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: JsonBody<PutBackend>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &caller, &name).await?;
    let (config, password) = body.0.validate()?;
    let audit = state.audit.in_transaction(
        event(&caller, EventType::BackendWrite, &name)
            .detail("plugin", config.plugin.as_str())
            .detail("host", config.connection.host.as_str())
            .detail("passwordChanged", password.is_some()),
    );
    let view = state
        .backends
        .put(
            caller.tenant.as_str(),
            &name,
            config,
            password,
            &caller.principal,
            &audit,
        )
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackendList {
    backends: Vec<String>,
}

/// The tenant's backends, by name.
#[utoipa::path(
    tag = "backends",
    responses((status = 200, body = BackendList), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/backends")]
pub async fn list_backends(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    state
        .access
        .authorize(&caller, Action::BackendsAdmin, &Resource::backend("*"))
        .await?;
    Ok(HttpResponse::Ok().json(BackendList {
        backends: state.backends.list(caller.tenant.as_str()).await?,
    }))
}

/// A backend's configuration (never its password).
#[utoipa::path(
    tag = "backends",
    params(("name" = String, Path)),
    responses((status = 200, body = BackendView), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/backends/{name}")]
pub async fn get_backend(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &caller, &name).await?;
    Ok(HttpResponse::Ok().json(state.backends.get(caller.tenant.as_str(), &name).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Revoke the backend's live leases first instead of answering 409.
    #[serde(default)]
    revoke_leases: bool,
}

/// Delete a backend and its roles. With live leases: 409 naming them, unless `revokeLeases=true`.
#[utoipa::path(
    tag = "backends",
    params(("name" = String, Path), DeleteQuery),
    responses((status = 204), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/backends/{name}")]
pub async fn delete_backend(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    query: QueryParams<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &caller, &name).await?;
    let audit = state.audit.in_transaction(
        event(&caller, EventType::BackendDelete, &name).detail("revokeLeases", query.revoke_leases),
    );
    state
        .backends
        .delete(&caller, &name, query.revoke_leases, &state.leases, &audit)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResult {
    ok: bool,
}

/// Log in to the target with the stored admin credential.
#[utoipa::path(
    tag = "backends",
    params(("name" = String, Path)),
    responses((status = 200, body = VerifyResult), (status = 503, body = super::ErrorBody), (status = 502, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/backends/{name}/verify")]
pub async fn verify_backend(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &caller, &name).await?;
    state.backends.verify(caller.tenant.as_str(), &name).await?;
    Ok(HttpResponse::Ok().json(VerifyResult { ok: true }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateRootResult {
    generation: i64,
}

/// Replace the backend's admin password with a generated one that nobody knows.
#[utoipa::path(
    tag = "backends",
    params(("name" = String, Path)),
    responses((status = 200, body = RotateRootResult), (status = 503, body = super::ErrorBody), (status = 502, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/backends/{name}/rotate-root")]
pub async fn rotate_root(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, &caller, &name).await?;
    // An unknown backend is a 404 with nothing recorded; a known one is audited before its
    // target is told (the change reaches outside the store).
    state.backends.get(caller.tenant.as_str(), &name).await?;
    state
        .audit
        .record(event(&caller, EventType::BackendRotateRoot, &name))
        .await?;
    let generation = state
        .backends
        .rotate_root(caller.tenant.as_str(), &name)
        .await?;
    Ok(HttpResponse::Ok().json(RotateRootResult { generation }))
}
