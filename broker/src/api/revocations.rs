//! `/v1/revocations`: emergency mass revocation. Action `leases:revoke-mass` on the selector's
//! scope (`<environment>/roles/<role>`, `*` for what it leaves open) and on every role it
//! matches.

use std::collections::BTreeSet;

use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ApiError, AppState, JsonBody, QueryParams};
use crate::auth::{Action, Caller, Resource};
use crate::domain::Ttl;
use crate::dynamic::DynamicError;
use crate::revocations::{JobView, MatchCount, Preview, Selector, StartJob};
use crate::store::RevocationJobRow;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevocationRequest {
    selector: Selector,
    /// Why, for the audit trail (required).
    reason: String,
    /// The incident or change ticket (required).
    ticket: String,
    /// Only count what would be revoked; change nothing.
    #[serde(default)]
    dry_run: bool,
    /// How long the fence holds, e.g. `4h`; default: the server's `revocation_fence_seconds`.
    fence_ttl: Option<String>,
}

/// The answer to a real run (202) or a dry run (200).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationAccepted {
    /// Absent for a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<Uuid>,
    dry_run: bool,
    matched: i64,
    by_role: Vec<MatchCount>,
    #[schema(value_type = Vec<Object>)]
    sample: Vec<crate::dynamic::LeaseView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fence_until: Option<chrono::DateTime<chrono::Utc>>,
}

const MAX_TEXT: usize = 1024;

fn required_text(field: &'static str, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() || text.len() > MAX_TEXT || text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            field,
            format!("{field}: required, 1-{MAX_TEXT} characters without control characters"),
        ));
    }
    Ok(())
}

/// The policy resource a selector covers; a named role closes the environment to its own.
async fn scope_of(state: &AppState, caller: &Caller, selector: &Selector) -> String {
    let role_environment = match (&selector.environment, &selector.role) {
        (None, Some(role)) => state
            .roles
            .find(caller.tenant.as_str(), role)
            .await
            .ok()
            .map(|role| role.environment.to_string()),
        _ => None,
    };
    selector.scope(role_environment.as_deref())
}

/// The caller may `leases:revoke-mass` on the selector's scope and on every role it matched.
async fn authorize_selector(
    state: &AppState,
    caller: &Caller,
    selector: &Selector,
    preview: &Preview,
) -> Result<(), ApiError> {
    let mut resources = BTreeSet::from([scope_of(state, caller, selector).await]);
    resources.extend(
        preview
            .by_role
            .iter()
            .map(|g| format!("{}/roles/{}", g.environment, g.role)),
    );
    for resource in resources {
        state
            .access
            .authorize(
                caller,
                Action::LeasesRevokeMass,
                &Resource::from_text(&resource),
            )
            .await?;
    }
    Ok(())
}

/// Revoke every lease that matches a selector, or (`dryRun`) count them. A real run answers 202
/// at once: the job is durable, every replica works it, and from this moment its fence refuses
/// new matching issues and renewals with 403.
#[utoipa::path(
    tag = "revocations",
    request_body = RevocationRequest,
    responses((status = 202, body = RevocationAccepted), (status = 200, body = RevocationAccepted), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 503, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/revocations")]
pub async fn start_revocation(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<RevocationRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.0;
    request.selector.validate()?;
    if let Some(tenant) = &request.selector.tenant
        && tenant != caller.tenant.as_str()
    {
        let message = format!(
            "selector.tenant `{tenant}` is not your tenant `{}`; tenants never see each other's leases",
            caller.tenant
        );
        return Err(state
            .access
            .refuse(
                &caller,
                Action::LeasesRevokeMass,
                &Resource::tenant_wide(),
                "the selector names another tenant",
                message,
            )
            .await);
    }
    required_text("reason", &request.reason)?;
    required_text("ticket", &request.ticket)?;
    let fence_for = match request.fence_ttl.as_deref() {
        Some(text) => std::time::Duration::from_secs(
            Ttl::parse("fenceTtl", text)
                .map_err(DynamicError::from)?
                .seconds(),
        ),
        None => state.revocation_fence,
    };
    let preview = state
        .revocations
        .preview(caller.tenant.as_str(), &request.selector)
        .await?;
    authorize_selector(&state, &caller, &request.selector, &preview).await?;
    if request.dry_run {
        return Ok(HttpResponse::Ok().json(RevocationAccepted {
            job_id: None,
            dry_run: true,
            matched: preview.matched,
            by_role: preview.by_role,
            sample: preview.sample,
            fence_until: None,
        }));
    }
    let job = state
        .revocations
        .start(
            &caller,
            StartJob {
                selector: request.selector,
                reason: request.reason,
                ticket: request.ticket,
                fence_for,
            },
            preview.matched,
        )
        .await?;
    Ok(HttpResponse::Accepted().json(RevocationAccepted {
        job_id: Some(job.id),
        dry_run: false,
        matched: preview.matched,
        by_role: preview.by_role,
        sample: preview.sample,
        fence_until: job.fence_until,
    }))
}

/// The job `id` of the caller's tenant, if the caller may `leases:revoke-mass` on its scope.
async fn job_for(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<RevocationJobRow, ApiError> {
    let job = state.revocations.find(caller.tenant.as_str(), id).await?;
    let selector = state.revocations.selector(&job)?;
    let scope = scope_of(state, caller, &selector).await;
    state
        .access
        .authorize(
            caller,
            Action::LeasesRevokeMass,
            &Resource::from_text(&scope),
        )
        .await?;
    Ok(job)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Answer once the job is no longer RUNNING, or after this long at most (`1s` to `60s`),
    /// e.g. `30s`; without it the answer is immediate.
    wait: Option<String>,
}

/// The longest a request may wait for a job to finish.
const MAX_WAIT_SECONDS: u64 = 60;

/// A job's state and progress: total, revoked, failed, remaining, errors by backend.
#[utoipa::path(
    tag = "revocations",
    params(("id" = Uuid, Path, description = "job id"), JobQuery),
    responses((status = 200, body = JobView), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/revocations/{id}")]
pub async fn get_revocation(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: QueryParams<JobQuery>,
) -> Result<HttpResponse, ApiError> {
    let wait = query
        .wait
        .as_deref()
        .map(|text| match Ttl::parse("wait", text) {
            Ok(ttl) if ttl.seconds() <= MAX_WAIT_SECONDS => Ok(ttl.seconds()),
            _ => Err(ApiError::bad_request(
                "wait",
                format!("wait: a duration from 1s to {MAX_WAIT_SECONDS}s, e.g. 30s"),
            )),
        })
        .transpose()?;
    let mut job = job_for(&state, &caller, id.into_inner()).await?;
    if let Some(seconds) = wait {
        job = state
            .revocations
            .wait_until_finished(&job.tenant, job.id, std::time::Duration::from_secs(seconds))
            .await?;
    }
    Ok(HttpResponse::Ok().json(state.revocations.view(job).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevocationQuery {
    /// The `nextCursor` of the previous page (jobs come newest first).
    before: Option<Uuid>,
    /// 1 to 100 (default 20).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevocationPage {
    jobs: Vec<JobView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Uuid>,
}

/// The tenant's jobs, newest first; only those whose scope the caller may `leases:revoke-mass`.
#[utoipa::path(
    tag = "revocations",
    params(RevocationQuery),
    responses((status = 200, body = RevocationPage), (status = 400, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/revocations")]
pub async fn list_revocations(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<RevocationQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("limit", "limit: 1 to 100"));
    }
    let jobs = state
        .revocations
        .page(caller.tenant.as_str(), query.before, limit)
        .await?;
    let next_cursor = (jobs.len() as i64 == limit)
        .then(|| jobs.last().map(|j| j.id))
        .flatten();
    let mut views = Vec::new();
    for job in jobs {
        let selector = state.revocations.selector(&job)?;
        let scope = scope_of(&state, &caller, &selector).await;
        let decision = state
            .access
            .decide(
                &caller,
                Action::LeasesRevokeMass,
                &Resource::from_text(&scope),
            )
            .await?;
        if decision.allowed {
            views.push(state.revocations.view(job).await?);
        }
    }
    Ok(HttpResponse::Ok().json(RevocationPage {
        jobs: views,
        next_cursor,
    }))
}

/// Lift a job's fence: matching leases may be issued and renewed again. The job goes on.
#[utoipa::path(
    tag = "revocations",
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[delete("/v1/revocations/{id}/fence")]
pub async fn lift_fence(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = job_for(&state, &caller, id.into_inner()).await?;
    state.revocations.lift_fence(&caller, &job).await?;
    let job = state
        .revocations
        .find(caller.tenant.as_str(), job.id)
        .await?;
    Ok(HttpResponse::Ok().json(state.revocations.view(job).await?))
}
