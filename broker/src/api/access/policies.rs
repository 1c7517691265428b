//! `/v1/policies` and `/v1/groups`: policy documents, the simulator and group membership.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{ApiError, AppState, JsonBody};
use crate::audit::{AuditEvent, EventType};
use crate::auth::{Caller, Resource};
use crate::domain::Principal;
use crate::policy::{PolicyDocument, StatementRef, Subject};

use super::{parse, policy_name, require_admin};

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
    responses((status = 200, body = PolicyResponse), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody)),
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
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::PolicyChange)
            .detail("policy", name.as_str())
            .detail("operation", "put")
            .detail(
                "document",
                serde_json::to_value(&document).unwrap_or_default(),
            ),
    );
    let now = Utc::now();
    state
        .store
        .put_policy(
            caller.tenant.as_str(),
            &name,
            &text,
            &caller.principal,
            now,
            &event,
        )
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
    responses((status = 200, body = PolicyResponse), (status = 404, body = crate::api::ErrorBody)),
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
    responses((status = 204), (status = 404, body = crate::api::ErrorBody)),
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
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::PolicyChange)
            .detail("policy", name)
            .detail("operation", "delete"),
    );
    if !state
        .store
        .delete_policy(caller.tenant.as_str(), name, &event)
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
    responses((status = 200, body = SimulateResponse), (status = 400, body = crate::api::ErrorBody)),
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
    responses((status = 200, body = GroupMembers), (status = 400, body = crate::api::ErrorBody)),
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
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::GroupChange)
            .detail("group", group.as_str())
            .detail("members", names.clone()),
    );
    state
        .store
        .set_group_members(caller.tenant.as_str(), group.as_str(), &names, &event)
        .await?;
    state.access.policies().invalidate(caller.tenant.as_str());
    Ok(HttpResponse::Ok().json(GroupMembers { members }))
}
