//! `/v1/secrets`: static secrets.
//!
//! Routing: `/v1/secrets/{id}/…` routes match only when the first segment is a UUID; any other
//! first segment is an environment, read as `/v1/secrets/{environment}/{path…}`. Environment
//! names are at most 32 characters and UUIDs are 36, so the two can never be confused. The read route
//! is registered first of all; only the GET id routes it would shadow come before it.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{ApiError, AppState, JsonBody, QueryParams};
use crate::audit::{AuditEvent, EventType};
use crate::auth::{Action, Caller, RequestFacts, Resource, bearer, hash_token, refuse_token};
use crate::domain::{
    AliasName, Environment, OwnerTeam, RotationStrategy, SecretPath, VersionNumber, VersionStatus,
};
use crate::secrets::{
    CreateSecret, InitialStatus, NewVersionValue, SecretMetadata, VersionSelector,
};
use crate::store::{SecretRow, StatusChange};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSecretRequest {
    #[schema(value_type = String, example = "prod")]
    environment: Environment,
    #[schema(value_type = String, example = "payments/stripe-api-key")]
    path: SecretPath,
    #[schema(value_type = String, example = "payments")]
    owner_team: OwnerTeam,
    #[serde(default)]
    rotation_strategy: RotationStrategy,
    #[serde(default)]
    description: String,
}

/// A secret's metadata (never a value).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretResponse {
    id: Uuid,
    tenant: String,
    environment: String,
    path: String,
    owner_team: String,
    description: String,
    rotation_strategy: String,
    latest_version: i64,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SecretRow> for SecretResponse {
    fn from(row: SecretRow) -> Self {
        Self {
            id: row.id,
            tenant: row.tenant,
            environment: row.environment,
            path: row.path,
            owner_team: row.owner_team,
            description: row.description,
            rotation_strategy: row.rotation_strategy,
            latest_version: row.latest_version,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionMetadata {
    version: i64,
    status: String,
    created_by: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    status_changed_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Aliases {
    current: Option<i64>,
    previous: Option<i64>,
    next: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretMetadataResponse {
    #[serde(flatten)]
    secret: SecretResponse,
    versions: Vec<VersionMetadata>,
    aliases: Aliases,
}

impl From<SecretMetadata> for SecretMetadataResponse {
    fn from(meta: SecretMetadata) -> Self {
        let alias = |name: &str| {
            meta.aliases
                .iter()
                .find(|a| a.alias == name)
                .map(|a| a.version)
        };
        let aliases = Aliases {
            current: alias("current"),
            previous: alias("previous"),
            next: alias("next"),
        };
        Self {
            aliases,
            versions: meta
                .versions
                .into_iter()
                .map(|v| VersionMetadata {
                    version: v.version,
                    status: v.status,
                    created_by: v.created_by,
                    created_at: v.created_at,
                    expires_at: v.expires_at,
                    status_changed_at: v.status_changed_at,
                })
                .collect(),
            secret: meta.secret.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretListResponse {
    secrets: Vec<SecretResponse>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only secrets of this environment.
    environment: Option<String>,
    /// Only secrets whose path starts with this prefix.
    path_prefix: Option<String>,
    /// The `nextCursor` of the previous page.
    after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSecretRequest {
    #[schema(value_type = Option<String>)]
    owner_team: Option<OwnerTeam>,
    description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NewVersionStatus {
    Pending,
    Current,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVersionRequest {
    /// The secret value (UTF-8 text, at most the configured limit, 64 KiB by default).
    #[schema(value_type = String, example = "sk_live_redacted")]
    value: SecretString,
    /// `PENDING` writes the version without moving any alias; `CURRENT` (the default) also
    /// moves `current` to it, and the old current becomes `previous`, atomically.
    status: Option<NewVersionStatus>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionCreatedResponse {
    secret_id: Uuid,
    version: i64,
    status: VersionStatus,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromoteRequest {
    version: VersionNumber,
    /// The version the alias points at now (compare-and-swap); omit or null when it is unset.
    expected_previous_version: Option<VersionNumber>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromoteResponse {
    secret_id: Uuid,
    alias: String,
    version: i64,
    previous_version: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatusResponse {
    secret_id: Uuid,
    version: i64,
    status: VersionStatus,
}

/// A secret value: exactly the seed's read shape.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretValueResponse<'a> {
    path: &'a str,
    version: i64,
    value: &'a str,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// `current` (the default), `previous` or `next`.
    alias: Option<String>,
    /// A version number; exclusive with `alias`.
    version: Option<VersionNumber>,
}

fn parse<T>(parsed: Result<T, crate::domain::InvalidName>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::bad_request(e.field, e.to_string()))
}

fn secret_resource(row: &SecretRow) -> Result<Resource, ApiError> {
    Ok(Resource::secret(
        &parse(Environment::parse(&row.environment))?,
        &parse(SecretPath::parse(&row.path))?,
    ))
}

/// Looks a secret up for an id route and checks the caller may do `action` on it.
pub(super) async fn authorized_secret(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    action: Action,
) -> Result<SecretRow, ApiError> {
    let row = state.secrets.metadata(&caller.tenant, id).await?.secret;
    state
        .access
        .authorize(caller, action, &secret_resource(&row)?)
        .await?;
    Ok(row)
}

/// Create a secret (metadata only; add its value with a version).
#[utoipa::path(
    tag = "secrets",
    request_body = CreateSecretRequest,
    responses(
        (status = 201, body = SecretResponse),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
        (status = 409, description = "a secret already exists at this path", body = super::ErrorBody),
        (status = 415, body = super::ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post("/v1/secrets")]
pub async fn create_secret(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<CreateSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    state
        .access
        .authorize(
            &caller,
            Action::SecretsWrite,
            &Resource::secret(&request.environment, &request.path),
        )
        .await?;
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::SecretCreate)
            .secret(&request.environment, &request.path)
            .detail("ownerTeam", request.owner_team.as_str()),
    );
    let row = state
        .secrets
        .create(
            &caller.tenant,
            &caller.principal,
            CreateSecret {
                environment: request.environment,
                path: request.path,
                owner_team: request.owner_team,
                description: request.description,
                rotation_strategy: request.rotation_strategy,
            },
            &event,
        )
        .await?;
    Ok(HttpResponse::Created().json(SecretResponse::from(row)))
}

/// List secrets (metadata only) that the caller may `secrets:list`, in environment and path order.
#[utoipa::path(
    tag = "secrets",
    params(ListQuery),
    responses((status = 200, body = SecretListResponse), (status = 400, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/secrets")]
pub async fn list_secrets(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let environment = query
        .environment
        .as_deref()
        .map(Environment::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("environment", e.to_string()))?;
    if let Some(prefix) = &query.path_prefix
        && (prefix.len() > 512 || prefix.contains(".."))
    {
        return Err(ApiError::bad_request(
            "pathPrefix",
            "pathPrefix: must be at most 512 bytes and must not contain '..'",
        ));
    }
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            "limit: must be between 1 and 1000",
        ));
    }
    let after = match query.after.as_deref() {
        None => None,
        Some(cursor) => Some(cursor.split_once('/').ok_or_else(|| {
            ApiError::bad_request("after", "after: pass the nextCursor of the previous page")
        })?),
    };
    let (rows, has_more) = state
        .secrets
        .list(
            &caller.tenant,
            environment.as_ref(),
            query.path_prefix.as_deref(),
            after,
            limit,
        )
        .await?;
    let next_cursor = has_more
        .then(|| rows.last().map(|r| format!("{}/{}", r.environment, r.path)))
        .flatten();
    // A listing shows only the secrets the caller may list; the cursor still advances over
    // the rest, so a page can be shorter than `limit`.
    let mut visible = Vec::with_capacity(rows.len());
    for row in rows {
        let resource = secret_resource(&row)?;
        if state
            .access
            .decide(&caller, Action::SecretsList, &resource)
            .await?
            .allowed
        {
            visible.push(SecretResponse::from(row));
        }
    }
    Ok(HttpResponse::Ok().json(SecretListResponse {
        secrets: visible,
        next_cursor,
    }))
}

/// A secret's metadata: versions (status, creator, times) and aliases, never values.
#[utoipa::path(
    tag = "secrets",
    path = "/v1/secrets/{id}",
    params(("id" = Uuid, Path, description = "secret id")),
    responses((status = 200, body = SecretMetadataResponse), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}"
)]
pub async fn secret_metadata(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let meta = state.secrets.metadata(&caller.tenant, *id).await?;
    state
        .access
        .authorize(
            &caller,
            Action::SecretsList,
            &secret_resource(&meta.secret)?,
        )
        .await?;
    Ok(HttpResponse::Ok().json(SecretMetadataResponse::from(meta)))
}

/// Edit a secret's owner team or description.
#[utoipa::path(
    tag = "secrets",
    path = "/v1/secrets/{id}",
    params(("id" = Uuid, Path, description = "secret id")),
    request_body = UpdateSecretRequest,
    responses((status = 200, body = SecretResponse), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[patch(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}"
)]
pub async fn update_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: JsonBody<UpdateSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    let secret = authorized_secret(&state, &caller, *id, Action::SecretsAdmin).await?;
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::SecretUpdate)
            .location(&secret.environment, &secret.path),
    );
    let request = body.0;
    let row = state
        .secrets
        .update(
            &caller.tenant,
            *id,
            request.owner_team.as_ref(),
            request.description.as_deref(),
            &event,
        )
        .await?;
    Ok(HttpResponse::Ok().json(SecretResponse::from(row)))
}

/// Add a version. Versions are immutable; numbers are monotonic per secret.
#[utoipa::path(
    tag = "secrets",
    path = "/v1/secrets/{id}/versions",
    params(("id" = Uuid, Path, description = "secret id")),
    request_body = CreateVersionRequest,
    responses(
        (status = 201, body = VersionCreatedResponse),
        (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 413, description = "value over the configured limit", body = super::ErrorBody),
        (status = 503, description = "storage or KMS unavailable", body = super::ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}/versions"
)]
pub async fn create_version(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    body: JsonBody<CreateVersionRequest>,
) -> Result<HttpResponse, ApiError> {
    let secret = authorized_secret(&state, &caller, *id, Action::SecretsWrite).await?;
    let request = body.0;
    let status = match request.status {
        Some(NewVersionStatus::Pending) => InitialStatus::Pending,
        Some(NewVersionStatus::Current) | None => InitialStatus::Current,
    };
    if status == InitialStatus::Current {
        // Making the new version current moves the `current` alias: that is rotating.
        state
            .access
            .authorize(
                &caller,
                Action::SecretsRotate,
                &Resource::from_text(&format!("{}/{}", secret.environment, secret.path)),
            )
            .await?;
    }
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::VersionCreate)
            .location(&secret.environment, &secret.path)
            .detail(
                "status",
                if status == InitialStatus::Current {
                    "CURRENT"
                } else {
                    "PENDING"
                },
            ),
    );
    let created = state
        .secrets
        .add_version(
            &caller.tenant,
            &caller.principal,
            *id,
            NewVersionValue {
                value: &request.value,
                status,
                expires_at: request.expires_at,
            },
            Some(event),
        )
        .await?;
    Ok(HttpResponse::Created().json(VersionCreatedResponse {
        secret_id: *id,
        version: created.version,
        status: created.status,
        created_at: created.created_at,
        expires_at: created.expires_at,
    }))
}

/// Point an alias (`current` or `next`) at a version, compare-and-swap on its present target.
#[utoipa::path(
    tag = "secrets",
    path = "/v1/secrets/{id}/aliases/{alias}",
    params(("id" = Uuid, Path, description = "secret id"), ("alias" = String, Path, description = "`current` or `next`")),
    request_body = PromoteRequest,
    responses(
        (status = 200, body = PromoteResponse),
        (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 409, description = "stale expectedPreviousVersion, or an unreadable target", body = super::ErrorBody)
    ),
    security(("bearer" = []))
)]
#[post(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}/aliases/{alias}"
)]
pub async fn promote_alias(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, String)>,
    body: JsonBody<PromoteRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, alias) = path.into_inner();
    let alias = parse(AliasName::parse(&alias))?;
    let secret = authorized_secret(&state, &caller, id, Action::SecretsRotate).await?;
    let request = body.0;
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, EventType::AliasPromote)
            .location(&secret.environment, &secret.path)
            .version(request.version)
            .detail("alias", alias.as_str())
            .detail("expectedPreviousVersion", request.expected_previous_version),
    );
    let previous = state
        .secrets
        .promote(
            &caller.tenant,
            id,
            alias,
            request.version,
            request.expected_previous_version,
            Some(&event),
        )
        .await?;
    Ok(HttpResponse::Ok().json(PromoteResponse {
        secret_id: id,
        alias: alias.to_string(),
        version: request.version,
        previous_version: previous,
    }))
}

async fn change_status(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, VersionNumber)>,
    change: StatusChange,
) -> Result<HttpResponse, ApiError> {
    let (id, version) = path.into_inner();
    let action = match change {
        StatusChange::Destroy => Action::SecretsDestroy,
        StatusChange::Disable | StatusChange::Enable => Action::SecretsAdmin,
    };
    let secret = authorized_secret(&state, &caller, id, action).await?;
    let event_type = match change {
        StatusChange::Disable => EventType::VersionDisable,
        StatusChange::Enable => EventType::VersionEnable,
        StatusChange::Destroy => EventType::VersionDestroy,
    };
    let event = state.audit.in_transaction(
        AuditEvent::allow(&caller, event_type)
            .location(&secret.environment, &secret.path)
            .version(version),
    );
    let status = state
        .secrets
        .change_status(&caller.tenant, id, version, change, Some(&event))
        .await?;
    Ok(HttpResponse::Ok().json(VersionStatusResponse {
        secret_id: id,
        version,
        status,
    }))
}

/// Disable a version: it can no longer be read until enabled. The current version cannot be
/// disabled.
#[utoipa::path(
    tag = "secrets",
    path = "/v1/secrets/{id}/versions/{version}/disable",
    params(("id" = Uuid, Path), ("version" = i64, Path)),
    responses((status = 200, body = VersionStatusResponse), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 410, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}/versions/{version}/disable"
)]
pub async fn disable_version(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, VersionNumber)>,
) -> Result<HttpResponse, ApiError> {
    change_status(state, caller, path, StatusChange::Disable).await
}

/// Enable a disabled version again.
#[utoipa::path(
    tag = "secrets",
    path = "/v1/secrets/{id}/versions/{version}/enable",
    params(("id" = Uuid, Path), ("version" = i64, Path)),
    responses((status = 200, body = VersionStatusResponse), (status = 404, body = super::ErrorBody), (status = 410, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}/versions/{version}/enable"
)]
pub async fn enable_version(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, VersionNumber)>,
) -> Result<HttpResponse, ApiError> {
    change_status(state, caller, path, StatusChange::Enable).await
}

/// Destroy a version: its ciphertext and wrapped data key are deleted from the row for good.
#[utoipa::path(
    tag = "secrets",
    path = "/v1/secrets/{id}/versions/{version}/destroy",
    params(("id" = Uuid, Path), ("version" = i64, Path)),
    responses((status = 200, body = VersionStatusResponse), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody), (status = 410, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post(
    "/v1/secrets/{id:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}}/versions/{version}/destroy"
)]
pub async fn destroy_version(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, VersionNumber)>,
) -> Result<HttpResponse, ApiError> {
    change_status(state, caller, path, StatusChange::Destroy).await
}

/// Read a secret value by alias (default `current`) or version number.
#[utoipa::path(
    tag = "secrets",
    path = "/v1/secrets/{environment}/{path}",
    params(
        ("environment" = String, Path, description = "e.g. `prod`"),
        ("path" = String, Path, description = "the secret's path, slashes included, e.g. `payments/stripe-api-key`"),
        ReadQuery
    ),
    responses(
        (status = 200, body = SecretValueResponse),
        (status = 400, body = super::ErrorBody),
        (status = 404, description = "no such secret, alias unset, no such version, or version disabled", body = super::ErrorBody),
        (status = 410, description = "version destroyed", body = super::ErrorBody),
        (status = 503, description = "storage or KMS unavailable", body = super::ErrorBody)
    ),
    security(("bearer" = []))
)]
#[get("/v1/secrets/{environment}/{path:.*}")]
pub async fn read_secret(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: QueryParams<ReadQuery>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    // The hottest route resolves its token and its version in one round trip to the store;
    // nothing is decrypted until the caller is authenticated and authorised.
    let token = Zeroizing::new(bearer(&req)?);
    let (environment, secret_path) = path.into_inner();
    let environment = parse(Environment::parse(&environment))?;
    let secret_path = parse(SecretPath::parse(&secret_path))?;
    let selector = match (query.alias.as_deref(), query.version) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "alias",
                "pass either alias or version, not both",
            ));
        }
        (Some(alias), None) => VersionSelector::Alias(parse(AliasName::parse(alias))?),
        (None, Some(version)) => VersionSelector::Number(version),
        (None, None) => VersionSelector::Alias(AliasName::Current),
    };
    let row = state
        .secrets
        .fetch_for_read(&hash_token(&token), &environment, &secret_path, selector)
        .await?;
    let facts = RequestFacts::of(&req);
    let Some(row) = row else {
        return Err(refuse_token(&state, None, state.token_hmac.of(&token), &facts).await);
    };
    let caller = Caller::authenticate(&state, Some(row.token), &token, facts).await?;
    let resource = Resource::secret(&environment, &secret_path);
    let break_glass = match state
        .access
        .authorize(&caller, Action::SecretsRead, &resource)
        .await
    {
        Ok(()) => None,
        Err(denied @ ApiError::Forbidden(_)) => Some(
            state
                .break_glass
                .authorize_read(&state.access, &caller, &resource)
                .await?
                .ok_or(denied)?,
        ),
        Err(other) => return Err(other),
    };
    let revealed = state
        .secrets
        .reveal(
            &caller.tenant,
            &environment,
            &secret_path,
            selector,
            row.selected,
        )
        .await?;
    // No audit, no secret: the value leaves only after its event is durable.
    let event = match &break_glass {
        None => AuditEvent::allow(&caller, EventType::SecretRead),
        Some(grant) => AuditEvent::allow(&caller, EventType::BreakGlassRead)
            .detail("grantId", grant.id.to_string())
            .detail("reason", grant.reason.clone())
            .detail("ticketUrl", grant.ticket_url.clone()),
    };
    state
        .audit
        .record(
            event
                .secret(&environment, &secret_path)
                .version(revealed.version),
        )
        .await?;
    if let Some(grant) = &break_glass {
        state
            .break_glass
            .record_read(&caller, grant, &resource, revealed.version);
    }
    let body = serde_json::to_vec(&SecretValueResponse {
        path: revealed.path.as_str(),
        version: revealed.version,
        value: revealed.value.expose_secret(),
        expires_at: revealed.expires_at,
    })
    .map_err(|_| ApiError::Internal("response encoding failed".into()))?;
    metrics::histogram!("leasehold_secret_read_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"));
    if let Some(grant) = break_glass {
        response.insert_header(("X-Leasehold-Break-Glass", grant.id.to_string()));
    }
    Ok(response.body(body))
}
