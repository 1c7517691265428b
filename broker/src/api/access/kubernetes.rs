//! `/v1/auth/kubernetes`: auth roles and workload login with service-account JWTs.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, post, put, web};
use chrono::SubsecRound;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{ApiError, AppState, JsonBody};
use crate::audit::{AuditEvent, Decision, EventType};
use crate::auth::{Caller, KubernetesRole, MintRequest};
use crate::domain::Tenant;
use secrecy::ExposeSecret;

use super::{admin_token_only, policy_name, require_admin};

fn role_name(name: &str) -> Result<&str, ApiError> {
    policy_name(name).map_err(|_| {
        ApiError::bad_request(
            "name",
            "name: 1-64 characters of lowercase letters, digits, '-' and '_'",
        )
    })
}

/// Create or replace a Kubernetes auth role in the caller's tenant.
#[utoipa::path(
    tag = "auth",
    params(("name" = String, Path)),
    request_body = KubernetesRole,
    responses((status = 200, body = KubernetesRole), (status = 400, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/auth/kubernetes/roles/{name}")]
pub async fn put_kubernetes_role(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: JsonBody<KubernetesRole>,
) -> Result<HttpResponse, ApiError> {
    let name = role_name(&name)?.to_owned();
    require_admin(&state, &caller).await?;
    let role = body.0;
    role.validate()
        .map_err(|(field, message)| ApiError::bad_request(field, message))?;
    if role.jwks_file.is_some() {
        admin_token_only(
            &state,
            &caller,
            "jwksFile needs an administrator token",
            "jwksFile makes the broker read a file on its host: only an administrator token may set it; give the keys inline as jwks",
        )
        .await?;
    }
    let text = serde_json::to_string(&role)
        .map_err(|_| ApiError::Internal("role encoding failed".into()))?;
    let audit = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::AuthRoleChange)
            .detail("role", name.as_str())
            .detail("operation", "put")
            .detail("principal", role.principal.as_str())
            .detail("cluster", role.cluster.as_str()),
    );
    if !state
        .store
        .put_kubernetes_role(caller.tenant.as_str(), &name, &text, Utc::now(), &audit)
        .await?
    {
        return Err(ApiError::Secret(crate::secrets::SecretError::Conflict(
            format!("the auth role name {name} is taken by another tenant; choose another name"),
        )));
    }
    Ok(HttpResponse::Ok().json(role))
}

/// Delete a Kubernetes auth role.
#[utoipa::path(
    tag = "auth",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/auth/kubernetes/roles/{name}")]
pub async fn delete_kubernetes_role(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = role_name(&name)?;
    require_admin(&state, &caller).await?;
    let audit = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::AuthRoleChange)
            .detail("role", name)
            .detail("operation", "delete"),
    );
    if state
        .store
        .delete_kubernetes_role(caller.tenant.as_str(), name, &audit)
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("no auth role {name}")))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesLogin {
    role: String,
    /// The pod's service-account token.
    jwt: String,
}

/// No `Debug`: it holds a token's text.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    token: String,
    principal: String,
    tenant: String,
    source_cluster: String,
    expires_at: Option<DateTime<Utc>>,
}

/// Log in with a Kubernetes service-account JWT (no bearer token needed).
#[utoipa::path(
    tag = "auth",
    request_body = KubernetesLogin,
    responses((status = 200, body = LoginResponse), (status = 400, body = crate::api::ErrorBody), (status = 401, body = crate::api::ErrorBody))
)]
#[post("/v1/auth/kubernetes/login")]
pub async fn kubernetes_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBody<KubernetesLogin>,
) -> Result<HttpResponse, ApiError> {
    let login = body.0;
    let name = role_name(&login.role)
        .map_err(|_| ApiError::bad_request("role", "role: not a valid auth role name"))?;
    let login_event = |tenant: &str, principal: &str, decision: Decision| AuditEvent {
        event_type: EventType::Login.as_str().to_owned(),
        tenant_id: tenant.to_owned(),
        environment: None,
        path: None,
        version: None,
        principal: principal.to_owned(),
        source_ip: req.peer_addr().map(|a| a.ip().to_string()),
        request_id: req
            .extensions()
            .get::<crate::api::RequestId>()
            .map(|r| r.0.clone()),
        decision: decision.as_str().to_owned(),
        detail: serde_json::json!({"method": "kubernetes", "role": name}),
        created_at: Utc::now().trunc_subsecs(6),
    };
    let refuse = |tenant: &str, reason: String| {
        metrics::counter!("leasehold_login_failures_total", "method" => "kubernetes").increment(1);
        let event = login_event(tenant, &format!("kubernetes-role:{name}"), Decision::Deny)
            .detail("reason", reason.clone());
        (
            event,
            ApiError::Unauthorized(format!("login refused: {reason}")),
        )
    };
    let Some((tenant, document)) = state.store.find_kubernetes_role(name).await? else {
        let (event, error) = refuse("_unknown", format!("no auth role {name}"));
        // Refused either way; a failed audit write is counted and logged by the audit log.
        let _ = state.audit.record(event).await;
        return Err(error);
    };
    let role: KubernetesRole = serde_json::from_str(&document)
        .map_err(|_| ApiError::Internal("stored auth role is not valid JSON".into()))?;
    let ttl = role
        .validate()
        .map_err(|_| ApiError::Internal("stored auth role is invalid".into()))?;
    let workload = match role.verify(&login.jwt) {
        Ok(workload) => workload,
        Err(e) => {
            let (event, error) = refuse(&tenant, e.to_string());
            let _ = state.audit.record(event).await;
            return Err(error);
        }
    };
    let tenant = Tenant::parse(&tenant)
        .map_err(|_| ApiError::Internal("stored auth role has an invalid tenant".into()))?;
    let created_by = format!(
        "kubernetes:{}:{}/{}",
        role.cluster, workload.namespace, workload.service_account
    );
    let event = state.audit.in_transaction(
        login_event(tenant.as_str(), role.principal.as_str(), Decision::Allow)
            .detail("cluster", role.cluster.as_str())
            .detail("serviceAccount", created_by.as_str()),
    );
    let issued = state
        .tokens
        .mint(MintRequest {
            principal: role.principal.as_str(),
            tenant: &tenant,
            is_admin: false,
            mfa: false,
            source_cluster: Some(&role.cluster),
            created_by: &created_by,
            expires_at: Some(ttl.after(Utc::now())),
            text: None,
            audit: Some(event),
        })
        .await?;
    Ok(HttpResponse::Ok().json(LoginResponse {
        token: issued.token.expose_secret().to_owned(),
        principal: issued.principal,
        tenant: issued.tenant.to_string(),
        source_cluster: role.cluster,
        expires_at: issued.expires_at,
    }))
}
