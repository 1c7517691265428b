//! `/v1/auth/tokens`, `/v1/policies`, `/v1/groups` and `/v1/break-glass`: identity and access.
//!
//! Managing tokens, policies and groups needs `policies:admin` on `*` (or an administrator
//! token); minting a token in another tenant needs an administrator token.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::SubsecRound;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, AppState, JsonBody};
use crate::audit::{AuditEvent, Decision, EventType};
use crate::auth::{Action, Caller, GrantRequest, KubernetesRole, MintRequest, Resource};
use crate::domain::{Principal, Tenant, Ttl};
use crate::policy::{PolicyDocument, StatementRef, Subject};
use secrecy::ExposeSecret;

const DEFAULT_TOKEN_TTL: &str = "1h";

fn parse<T>(parsed: Result<T, crate::domain::InvalidName>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::bad_request(e.field, e.to_string()))
}

async fn require_admin(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    state
        .access
        .authorize(caller, Action::PoliciesAdmin, &Resource::tenant_wide())
        .await
}

fn policy_name(name: &str) -> Result<&str, ApiError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(ApiError::bad_request(
            "name",
            "name: 1-64 characters of lowercase letters, digits, '-' and '_'",
        ))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MintTokenRequest {
    #[schema(value_type = String, example = "service:prod:payments-api")]
    principal: Principal,
    /// e.g. `1h` (the default), `15m`, `7d`.
    ttl: Option<String>,
    /// Defaults to the caller's tenant; another tenant needs an administrator token.
    #[schema(value_type = Option<String>)]
    tenant: Option<Tenant>,
    /// Attests that the holder authenticated with a second factor (`mfa` conditions).
    #[serde(default)]
    mfa: bool,
}

/// No `Debug`: it holds a token's text.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MintTokenResponse {
    /// Shown once; only its hash is stored.
    token: String,
    id: Uuid,
    principal: String,
    tenant: String,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    id: Uuid,
    principal: String,
    tenant: String,
    admin: bool,
    mfa: bool,
    source_cluster: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

/// Mint a token for a principal.
#[utoipa::path(
    tag = "auth",
    request_body = MintTokenRequest,
    responses((status = 201, body = MintTokenResponse), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/auth/tokens")]
pub async fn mint_token(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<MintTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    require_admin(&state, &caller).await?;
    let tenant = request.tenant.unwrap_or_else(|| caller.tenant.clone());
    if tenant != caller.tenant && !caller.is_admin {
        return Err(ApiError::Forbidden(
            "only an administrator token may mint tokens in another tenant".into(),
        ));
    }
    let ttl = parse(Ttl::parse(
        "ttl",
        request.ttl.as_deref().unwrap_or(DEFAULT_TOKEN_TTL),
    ))?;
    let expires_at = ttl.after(Utc::now());
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::TokenMint)
                .detail("subject", request.principal.as_str())
                .detail("subjectTenant", tenant.as_str())
                .detail("expiresAt", expires_at.to_rfc3339())
                .detail("mfa", request.mfa),
        )
        .await?;
    let issued = state
        .tokens
        .mint(MintRequest {
            principal: request.principal.as_str(),
            tenant: &tenant,
            is_admin: false,
            mfa: request.mfa,
            source_cluster: None,
            created_by: &caller.principal,
            expires_at: Some(expires_at),
            text: None,
        })
        .await?;
    Ok(HttpResponse::Created().json(MintTokenResponse {
        token: issued.token.expose_secret().to_owned(),
        id: issued.id,
        principal: issued.principal,
        tenant: issued.tenant.to_string(),
        expires_at: issued.expires_at,
    }))
}

/// Look a token up by id (never its text).
#[utoipa::path(
    tag = "auth",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = TokenInfo), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/auth/tokens/{id}")]
pub async fn token_info(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if *id != caller.token_id {
        require_admin(&state, &caller).await?;
    }
    let row = state
        .store
        .find_token_by_id(caller.tenant.as_str(), *id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no token {id} in this tenant")))?;
    Ok(HttpResponse::Ok().json(TokenInfo {
        id: row.id,
        principal: row.principal,
        tenant: row.tenant,
        admin: row.is_admin,
        mfa: row.mfa,
        source_cluster: row.source_cluster,
        created_by: row.created_by,
        created_at: row.created_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
    }))
}

/// Revoke a token (any caller may revoke its own).
#[utoipa::path(
    tag = "auth",
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/auth/tokens/{id}/revoke")]
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if *id != caller.token_id {
        require_admin(&state, &caller).await?;
    }
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::TokenRevoke).detail("tokenId", id.to_string()),
        )
        .await?;
    if state
        .store
        .revoke_token(caller.tenant.as_str(), *id, Utc::now())
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!(
            "no unrevoked token {id} in this tenant"
        )))
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResponse {
    name: String,
    #[serde(flatten)]
    document: PolicyDocument,
    updated_by: String,
    updated_at: DateTime<Utc>,
}

/// Create or replace a policy. The whole document is validated first; nothing is half-applied.
#[utoipa::path(
    tag = "policies",
    params(("name" = String, Path)),
    request_body = PolicyDocument,
    responses((status = 200, body = PolicyResponse), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/policies/{name}")]
pub async fn put_policy(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: JsonBody<PolicyDocument>,
) -> Result<HttpResponse, ApiError> {
    let name = policy_name(&name)?.to_owned();
    require_admin(&state, &caller).await?;
    let document = body.0;
    document
        .compile()
        .map_err(|e| ApiError::bad_request(e.field.clone(), e.to_string()))?;
    let text = serde_json::to_string(&document)
        .map_err(|_| ApiError::Internal("policy encoding failed".into()))?;
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::PolicyChange)
                .detail("policy", name.as_str())
                .detail("operation", "put")
                .detail(
                    "document",
                    serde_json::to_value(&document).unwrap_or_default(),
                ),
        )
        .await?;
    let now = Utc::now();
    state
        .store
        .put_policy(caller.tenant.as_str(), &name, &text, &caller.principal, now)
        .await?;
    state.access.policies().invalidate(caller.tenant.as_str());
    Ok(HttpResponse::Ok().json(PolicyResponse {
        name,
        document,
        updated_by: caller.principal,
        updated_at: now,
    }))
}

async fn load_policy(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<PolicyResponse, ApiError> {
    let row = state
        .store
        .list_policies(caller.tenant.as_str())
        .await?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no policy {name}")))?;
    let document = serde_json::from_str(&row.document)
        .map_err(|_| ApiError::Internal("stored policy is not valid JSON".into()))?;
    Ok(PolicyResponse {
        name: row.name,
        document,
        updated_by: row.updated_by,
        updated_at: row.updated_at,
    })
}

/// Read a policy.
#[utoipa::path(
    tag = "policies",
    params(("name" = String, Path)),
    responses((status = 200, body = PolicyResponse), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/policies/{name}")]
pub async fn get_policy(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller).await?;
    Ok(HttpResponse::Ok().json(load_policy(&state, &caller, policy_name(&name)?).await?))
}

/// Delete a policy.
#[utoipa::path(
    tag = "policies",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/policies/{name}")]
pub async fn delete_policy(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = policy_name(&name)?;
    require_admin(&state, &caller).await?;
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::PolicyChange)
                .detail("policy", name)
                .detail("operation", "delete"),
        )
        .await?;
    if !state
        .store
        .delete_policy(caller.tenant.as_str(), name)
        .await?
    {
        return Err(ApiError::NotFound(format!("no policy {name}")));
    }
    state.access.policies().invalidate(caller.tenant.as_str());
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    policies: Vec<PolicyResponse>,
}

/// List the tenant's policies.
#[utoipa::path(
    tag = "policies",
    responses((status = 200, body = PolicyList)),
    security(("bearer" = []))
)]
#[get("/v1/policies")]
pub async fn list_policies(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller).await?;
    let mut policies = Vec::new();
    for row in state.store.list_policies(caller.tenant.as_str()).await? {
        policies.push(PolicyResponse {
            document: serde_json::from_str(&row.document)
                .map_err(|_| ApiError::Internal("stored policy is not valid JSON".into()))?,
            name: row.name,
            updated_by: row.updated_by,
            updated_at: row.updated_at,
        });
    }
    Ok(HttpResponse::Ok().json(PolicyList { policies }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulationContext {
    #[serde(default)]
    mfa: bool,
    source_cluster: Option<String>,
    #[schema(value_type = Option<String>, example = "10.2.4.17")]
    source_ip: Option<std::net::IpAddr>,
    /// Whether the request would carry a ticket.
    #[serde(default)]
    ticket: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateRequest {
    #[schema(value_type = String)]
    principal: Principal,
    action: String,
    /// `environment/path`, or `*` for tenant-wide actions.
    resource: String,
    #[serde(default)]
    context: SimulationContext,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimulateResponse {
    /// `allow` or `deny`.
    decision: &'static str,
    allowed: bool,
    decided_by: Option<StatementRef>,
    reason: String,
}

/// Would principal P be allowed action A on resource R, and which statement decides?
#[utoipa::path(
    tag = "policies",
    request_body = SimulateRequest,
    responses((status = 200, body = SimulateResponse), (status = 400, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/policies/simulate")]
pub async fn simulate(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<SimulateRequest>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller).await?;
    let request = body.0;
    let action = crate::policy::Action::parse(&request.action).ok_or_else(|| {
        ApiError::bad_request("action", "action: unknown action name (e.g. secrets:read)")
    })?;
    if request.resource != "*" && !crate::policy::is_valid_resource_glob(&request.resource) {
        return Err(ApiError::bad_request(
            "resource",
            "resource: environment/path or *",
        ));
    }
    let subject = Subject {
        principal: request.principal.as_str(),
        mfa: request.context.mfa,
        source_cluster: request.context.source_cluster.as_deref(),
        source_ip: request.context.source_ip,
        has_ticket: request.context.ticket,
    };
    let decision = state
        .access
        .simulate(
            caller.tenant.as_str(),
            &subject,
            action,
            &Resource::from_text(&request.resource),
        )
        .await?;
    Ok(HttpResponse::Ok().json(SimulateResponse {
        decision: if decision.allowed { "allow" } else { "deny" },
        allowed: decision.allowed,
        decided_by: decision.decided_by,
        reason: decision.reason,
    }))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMembers {
    #[schema(value_type = Vec<String>)]
    members: Vec<Principal>,
}

/// Replace the members (users or services) of a group.
#[utoipa::path(
    tag = "policies",
    params(("name" = String, Path, description = "group name without the `group:` prefix")),
    request_body = GroupMembers,
    responses((status = 200, body = GroupMembers), (status = 400, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[put("/v1/groups/{name}")]
pub async fn put_group(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: JsonBody<GroupMembers>,
) -> Result<HttpResponse, ApiError> {
    let group = parse(Principal::parse(&format!("group:{name}")))?;
    require_admin(&state, &caller).await?;
    let members = body.0.members;
    if members.iter().any(Principal::is_group) {
        return Err(ApiError::bad_request(
            "members",
            "members: groups cannot contain groups",
        ));
    }
    let names: Vec<String> = members
        .iter()
        .map(|m| m.as_str().to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::GroupChange)
                .detail("group", group.as_str())
                .detail("members", names.clone()),
        )
        .await?;
    state
        .store
        .set_group_members(caller.tenant.as_str(), group.as_str(), &names)
        .await?;
    state.access.policies().invalidate(caller.tenant.as_str());
    Ok(HttpResponse::Ok().json(GroupMembers { members }))
}

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
    responses((status = 201, body = GrantResponse), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
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
    responses((status = 204), (status = 404, body = super::ErrorBody)),
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
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::BreakGlassEnd).detail("grantId", id.to_string()),
        )
        .await?;
    state.break_glass.end(&caller, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

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
    responses((status = 200, body = KubernetesRole), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
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
    if role.jwks_file.is_some() && !caller.is_admin {
        return Err(ApiError::Forbidden(
            "jwksFile makes the broker read a file on its host: only an administrator token may set it; give the keys inline as jwks".into(),
        ));
    }
    let text = serde_json::to_string(&role)
        .map_err(|_| ApiError::Internal("role encoding failed".into()))?;
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::AuthRoleChange)
                .detail("role", name.as_str())
                .detail("operation", "put")
                .detail("principal", role.principal.as_str())
                .detail("cluster", role.cluster.as_str()),
        )
        .await?;
    if !state
        .store
        .put_kubernetes_role(caller.tenant.as_str(), &name, &text, Utc::now())
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
    responses((status = 204), (status = 404, body = super::ErrorBody)),
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
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::AuthRoleChange)
                .detail("role", name)
                .detail("operation", "delete"),
        )
        .await?;
    if state
        .store
        .delete_kubernetes_role(caller.tenant.as_str(), name)
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
    responses((status = 200, body = LoginResponse), (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody))
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
            .get::<super::RequestId>()
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
    state
        .audit
        .record(
            login_event(tenant.as_str(), role.principal.as_str(), Decision::Allow)
                .detail("cluster", role.cluster.as_str())
                .detail("serviceAccount", created_by.as_str()),
        )
        .await?;
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
