//! Rotation routes: a secret's rotation policy, `rotate` (steps 1–5), `rollback`, the runs and
//! the overdue report, and static database roles. Rotating and rolling back need
//! `secrets:rotate` on the secret, its policy `secrets:admin`; a static role's credentials are
//! read with `secrets:read` on `<environment>/static-roles/<name>`.

use actix_web::{HttpResponse, get, post, put, web};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::secrets::authorized_secret;
use super::{ApiError, AppState, JsonBody, JsonBodyOrEmpty, QueryParams};
use crate::audit::{AuditEvent, EventType};
use crate::auth::{Action, Caller, Resource};
use crate::dynamic::PasswordPolicyConfig;
use crate::rotation::{
    Actor, NewValue, PutRotationPolicy, PutStaticRole, RotateOptions, RotationPolicyView,
    StaticRoleView,
};
use crate::store::RotationRunRow;

/// One rotation run: where it stands and when its next step is due.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationRunView {
    id: Uuid,
    secret_id: Uuid,
    /// `manual` or `schedule`.
    trigger: String,
    /// RUNNING, COMPLETED, FAILED or ROLLED_BACK.
    state: String,
    /// The last step reached: create-pending, set-downstream, next, test, overlap, previous,
    /// disabled, destroyed.
    step: String,
    from_version: Option<i64>,
    to_version: Option<i64>,
    error: Option<String>,
    overlap_ends_at: Option<DateTime<Utc>>,
    disable_at: Option<DateTime<Utc>>,
    destroy_at: Option<DateTime<Utc>>,
    next_due_at: Option<DateTime<Utc>>,
    created_by: String,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<RotationRunRow> for RotationRunView {
    fn from(row: RotationRunRow) -> Self {
        Self {
            id: row.id,
            secret_id: row.secret_id,
            trigger: row.trigger_kind,
            state: row.state,
            step: row.step,
            from_version: row.from_version,
            to_version: row.to_version,
            error: row.error,
            overlap_ends_at: row.overlap_ends_at,
            disable_at: row.disable_at,
            destroy_at: row.destroy_at,
            next_due_at: row.next_due_at,
            created_by: row.created_by,
            created_at: row.created_at,
            finished_at: row.finished_at,
        }
    }
}

/// Set a secret's rotation policy: overlap and rollback windows, retention, cron schedule,
/// deadline, pause.
#[utoipa::path(
    tag = "rotation",
    params(("id" = Uuid, Path)),
    request_body = PutRotationPolicy,
    responses((status = 200, body = RotationPolicyView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[put(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}/rotation"
)]
pub async fn put_rotation_policy(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: JsonBody<PutRotationPolicy>,
) -> Result<HttpResponse, ApiError> {
    let secret = authorized_secret(&state, &caller, *id, Action::SecretsAdmin).await?;
    let view = state
        .rotation
        .put_policy(&Actor::caller(&caller), &secret, body.0)
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A secret's rotation policy (the defaults when none was set) and its next run and deadline.
#[utoipa::path(
    tag = "rotation",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RotationPolicyView), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}/rotation"
)]
pub async fn get_rotation_policy(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let secret = authorized_secret(&state, &caller, *id, Action::SecretsRotate).await?;
    Ok(HttpResponse::Ok().json(state.rotation.policy_view(&secret).await?))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StopAfter {
    /// Stop once `next` points at the new version, for canaries; continue with
    /// `POST /v1/rotations/{id}/promote`.
    Next,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateRequest {
    /// The new value; absent: generated (by `generate`, else the secret's policy).
    #[schema(value_type = Option<String>)]
    value: Option<SecretString>,
    generate: Option<PasswordPolicyConfig>,
    /// Refuse unless `current` is at this version.
    expected_current_version: Option<i64>,
    stop_after: Option<StopAfter>,
}

/// Rotate: steps 1–5 (new PENDING version, set downstream, `next`, test, promote `current`),
/// or 1–3 with `stopAfter: "next"`. A failure leaves `current` as it was.
#[utoipa::path(
    tag = "rotation",
    params(("id" = Uuid, Path)),
    request_body = RotateRequest,
    responses((status = 201, body = RotationRunView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 502, description = "a step failed downstream; current is unchanged", body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}/rotate"
)]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: JsonBodyOrEmpty<RotateRequest>,
) -> Result<HttpResponse, ApiError> {
    let secret = authorized_secret(&state, &caller, *id, Action::SecretsRotate).await?;
    let request = body.0;
    let value = match (request.value, request.generate) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "value",
                "value: send either a value or generate, not both",
            ));
        }
        (Some(value), None) => {
            if value.expose_secret().len() > state.secrets.max_value_bytes() {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the value is over the {}-byte limit",
                    state.secrets.max_value_bytes()
                )));
            }
            Some(NewValue::Given(value))
        }
        (None, Some(config)) => Some(NewValue::Generate(config)),
        (None, None) => None,
    };
    let run = state
        .rotation
        .rotate(
            &Actor::caller(&caller),
            &secret,
            RotateOptions {
                value,
                expected_current: request.expected_current_version,
                stop_at_next: request.stop_after.is_some(),
                scheduled: false,
            },
        )
        .await?;
    Ok(HttpResponse::Created().json(RotationRunView::from(run)))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackResponse {
    /// The version `current` points at again.
    current: i64,
}

/// Move `current` back to `previous` while it is still readable (inside the rollback window);
/// the version rolled back from is disabled.
#[utoipa::path(
    tag = "rotation",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RollbackResponse), (status = 403, body = super::ErrorBody), (status = 409, description = "no previous version, or its window closed", body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}/rollback"
)]
pub async fn rollback_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let secret = authorized_secret(&state, &caller, *id, Action::SecretsRotate).await?;
    let current = state
        .rotation
        .rollback(&Actor::caller(&caller), &secret)
        .await?;
    Ok(HttpResponse::Ok().json(RollbackResponse { current }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunsQuery {
    /// Only this secret's runs.
    secret_id: Option<Uuid>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<i64>,
}

/// Rotation runs of the tenant, newest first, with step, state and error.
#[utoipa::path(
    tag = "rotation",
    params(RunsQuery),
    responses((status = 200, body = Vec<RotationRunView>), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/rotations")]
pub async fn list_rotations(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<RunsQuery>,
) -> Result<HttpResponse, ApiError> {
    match query.secret_id {
        Some(id) => {
            authorized_secret(&state, &caller, id, Action::SecretsRotate).await?;
        }
        None => {
            state
                .access
                .authorize(&caller, Action::SecretsRotate, &Resource::tenant_wide())
                .await?;
        }
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let runs = state
        .rotation
        .store()
        .list_rotation_runs(caller.tenant.as_str(), query.secret_id, limit)
        .await?;
    let runs: Vec<RotationRunView> = runs.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(runs))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverdueView {
    secret_id: Uuid,
    environment: String,
    path: String,
    owner_team: String,
    deadline_at: DateTime<Utc>,
    last_rotated_at: Option<DateTime<Utc>>,
}

/// Secrets past their rotation deadline.
#[utoipa::path(
    tag = "rotation",
    responses((status = 200, body = Vec<OverdueView>), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/rotations/overdue")]
pub async fn overdue_rotations(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    state
        .access
        .authorize(&caller, Action::SecretsList, &Resource::tenant_wide())
        .await?;
    let rows = state
        .rotation
        .store()
        .overdue_rotations(caller.tenant.as_str(), Utc::now())
        .await?;
    let rows: Vec<OverdueView> = rows
        .into_iter()
        .map(|r| OverdueView {
            secret_id: r.secret_id,
            environment: r.environment,
            path: r.path,
            owner_team: r.owner_team,
            deadline_at: r.deadline_at,
            last_rotated_at: r.last_rotated_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}

/// One rotation run.
#[utoipa::path(
    tag = "rotation",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RotationRunView), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/rotations/{id}")]
pub async fn get_rotation(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let run = state.rotation.run(&caller.tenant, *id).await?;
    authorized_secret(&state, &caller, run.secret_id, Action::SecretsRotate).await?;
    Ok(HttpResponse::Ok().json(RotationRunView::from(run)))
}

/// Continue a run that stopped at `next`: test the new version and promote `current`.
#[utoipa::path(
    tag = "rotation",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = RotationRunView), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 502, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/rotations/{id}/promote")]
pub async fn promote_rotation(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let run = state.rotation.run(&caller.tenant, *id).await?;
    authorized_secret(&state, &caller, run.secret_id, Action::SecretsRotate).await?;
    let run = state
        .rotation
        .promote_run(&Actor::caller(&caller), &caller.tenant, *id)
        .await?;
    Ok(HttpResponse::Ok().json(RotationRunView::from(run)))
}

fn static_role_resource(environment: &str, name: &str) -> Resource {
    Resource::from_text(&format!("{environment}/static-roles/{name}"))
}

/// Looks a static role up and checks the caller may do `action` on its secret's resource.
async fn authorized_static_role(
    state: &AppState,
    caller: &Caller,
    name: &str,
    action: Action,
) -> Result<crate::store::StaticRoleRow, ApiError> {
    let role = state.static_roles.find(&caller.tenant, name).await?;
    state
        .access
        .authorize(
            caller,
            action,
            &static_role_resource(&role.environment, name),
        )
        .await?;
    Ok(role)
}

/// Create or update a static database role: existing users whose passwords the broker rotates.
/// Needs `backends:admin` on its backend and `secrets:admin` on
/// `<environment>/static-roles/<name>`. A new role gets a first password at once.
#[utoipa::path(
    tag = "rotation",
    params(("name" = String, Path)),
    request_body = PutStaticRole,
    responses((status = 200, body = StaticRoleView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 502, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/static-roles/{name}")]
pub async fn put_static_role(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: JsonBody<PutStaticRole>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    crate::dynamic::check_name("backend", &body.backend)?;
    crate::dynamic::check_name("name", &name)?;
    state
        .access
        .authorize(
            &caller,
            Action::BackendsAdmin,
            &Resource::backend(&body.backend),
        )
        .await?;
    state
        .access
        .authorize(
            &caller,
            Action::SecretsAdmin,
            &static_role_resource(&body.environment, &name),
        )
        .await?;
    let view = state
        .static_roles
        .put(&Actor::caller(&caller), &caller.tenant, &name, body)
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A static role: its users, backend and rotation policy (never a password).
#[utoipa::path(
    tag = "rotation",
    params(("name" = String, Path)),
    responses((status = 200, body = StaticRoleView), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/static-roles/{name}")]
pub async fn get_static_role(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorized_static_role(&state, &caller, &name, Action::SecretsRotate).await?;
    Ok(HttpResponse::Ok().json(state.static_roles.view(&caller.tenant, &name).await?))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticCredentialsResponse {
    username: String,
    password: String,
    version: i64,
}

/// The credential `current` points at (audited as a secret read).
#[utoipa::path(
    tag = "rotation",
    params(("name" = String, Path)),
    responses((status = 200, body = StaticCredentialsResponse), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 503, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/static-roles/{name}/credentials")]
pub async fn static_role_credentials(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let role = authorized_static_role(&state, &caller, &name, Action::SecretsRead).await?;
    let found = state
        .static_roles
        .credentials(&caller.tenant, &role)
        .await?;
    // No audit, no secret.
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::SecretRead)
                .location(&found.secret.environment, &found.secret.path)
                .version(found.version)
                .detail("staticRole", name.as_str()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(StaticCredentialsResponse {
        username: found.credential.username.clone(),
        password: found.credential.password.expose_secret().to_owned(),
        version: found.version,
    }))
}

/// Rotate a static role now (the same as rotating its secret).
#[utoipa::path(
    tag = "rotation",
    params(("name" = String, Path)),
    responses((status = 201, body = RotationRunView), (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 502, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/static-roles/{name}/rotate")]
pub async fn rotate_static_role(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let role = state.static_roles.find(&caller.tenant, &name).await?;
    let secret = authorized_secret(&state, &caller, role.secret_id, Action::SecretsRotate).await?;
    let run = state
        .rotation
        .rotate(
            &Actor::caller(&caller),
            &secret,
            RotateOptions::generated(false),
        )
        .await?;
    Ok(HttpResponse::Created().json(RotationRunView::from(run)))
}
