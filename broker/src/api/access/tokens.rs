//! `/v1/auth/tokens`: minting, looking up and revoking bearer tokens.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::{ApiError, AppState, JsonBody};
use crate::audit::{AuditEvent, EventType};
use crate::auth::{Caller, MintRequest};
use crate::domain::{Principal, Tenant, Ttl};
use secrecy::ExposeSecret;

use super::{admin_token_only, parse, require_admin};

const DEFAULT_TOKEN_TTL: &str = "1h";

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
    responses((status = 201, body = MintTokenResponse), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody)),
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
    if tenant != caller.tenant {
        let reason = "only an administrator token may mint tokens in another tenant";
        admin_token_only(&state, &caller, reason, reason).await?;
    }
    let ttl = parse(Ttl::parse(
        "ttl",
        request.ttl.as_deref().unwrap_or(DEFAULT_TOKEN_TTL),
    ))?;
    let expires_at = ttl.after(Utc::now());
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::TokenMint)
            .detail("subject", request.principal.as_str())
            .detail("subjectTenant", tenant.as_str())
            .detail("expiresAt", expires_at.to_rfc3339())
            .detail("mfa", request.mfa),
    );
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
            audit: Some(event),
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
    responses((status = 200, body = TokenInfo), (status = 404, body = crate::api::ErrorBody)),
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
    responses((status = 204), (status = 404, body = crate::api::ErrorBody)),
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
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::TokenRevoke).detail("tokenId", id.to_string()),
    );
    if state
        .store
        .revoke_token(caller.tenant.as_str(), *id, Utc::now(), &event)
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!(
            "no unrevoked token {id} in this tenant"
        )))
    }
}
