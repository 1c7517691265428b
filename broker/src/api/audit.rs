//! `/v1/audit`: querying and verifying the audit trail (`audit:read`). No route edits or deletes
//! an event.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, AppState, QueryParams};
use crate::audit::{AuditEvent, VerifyReport, verify_chain};
use crate::auth::{Action, Caller, Resource};
use crate::store::{AuditFilter, SummaryKind};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    principal: Option<String>,
    /// `environment/path` prefix, e.g. `prod/payments/`.
    path_prefix: Option<String>,
    /// e.g. `SECRET_READ`.
    event_type: Option<String>,
    /// `ALLOW` or `DENY`.
    decision: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    /// The `nextCursor` of the previous page.
    after: Option<i64>,
    /// 1 to 1000 (default 100).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    seq: i64,
    #[serde(flatten)]
    event: AuditEvent,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    events: Vec<AuditRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<i64>,
}

/// The caller tenant's audit events, oldest first.
#[utoipa::path(
    tag = "audit",
    params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/audit/events")]
pub async fn events(
    state: web::Data<AppState>,
    caller: Caller,
    query: QueryParams<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    state
        .access
        .authorize(&caller, Action::AuditRead, &Resource::tenant_wide())
        .await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit", "limit: between 1 and 1000"));
    }
    if let Some(decision) = query.decision.as_deref()
        && decision != "ALLOW"
        && decision != "DENY"
    {
        return Err(ApiError::bad_request("decision", "decision: ALLOW or DENY"));
    }
    let rows = state
        .store
        .query_audit(&AuditFilter {
            tenant: caller.tenant.as_str(),
            principal: query.principal.as_deref(),
            path_prefix: query.path_prefix.as_deref(),
            event_type: query.event_type.as_deref(),
            decision: query.decision.as_deref(),
            since: query.since,
            until: query.until,
            after_seq: query.after.unwrap_or(0),
            limit: limit + 1,
        })
        .await?;
    let has_more = rows.len() as i64 > limit;
    let mut events: Vec<AuditRecord> = rows
        .iter()
        .map(|row| AuditRecord {
            seq: row.seq,
            event: row.event(),
        })
        .collect();
    events.truncate(limit as usize);
    let next_cursor = has_more.then(|| events.last().map(|e| e.seq)).flatten();
    Ok(HttpResponse::Ok().json(EventPage {
        events,
        next_cursor,
    }))
}

/// Checks the whole hash chain and reports the first broken link.
#[utoipa::path(
    tag = "audit",
    responses((status = 200, body = VerifyReport), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/audit/verify")]
pub async fn verify(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    state
        .access
        .authorize(&caller, Action::AuditRead, &Resource::tenant_wide())
        .await?;
    Ok(HttpResponse::Ok().json(verify_chain(&state.store).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Start of the window (default: 30 days ago). For `stale-secrets`: secrets with no version
    /// created since this time, and every secret past its own rotation deadline.
    since: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryLine {
    /// A principal, `environment/path`, `principal environment/path`, or an owner team.
    subject: String,
    /// Events counted (for `stale-secrets`: the secret's latest version number).
    count: i64,
    last_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    kind: String,
    since: DateTime<Utc>,
    rows: Vec<SummaryLine>,
}

/// Summaries: `reads-by-principal`, `reads-by-secret`, `break-glass-reads`, `denied-reads`,
/// `rotations-by-team`, `stale-secrets`.
#[utoipa::path(
    tag = "audit",
    params(("kind" = String, Path), SummaryQuery),
    responses((status = 200, body = Summary), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/audit/summary/{kind}")]
pub async fn summary(
    state: web::Data<AppState>,
    caller: Caller,
    kind: web::Path<String>,
    query: QueryParams<SummaryQuery>,
) -> Result<HttpResponse, ApiError> {
    let parsed = SummaryKind::parse(&kind).ok_or_else(|| {
        ApiError::bad_request(
            "kind",
            format!("kind: one of {}", SummaryKind::NAMES.join(", ")),
        )
    })?;
    state
        .access
        .authorize(&caller, Action::AuditRead, &Resource::tenant_wide())
        .await?;
    let since = query
        .since
        .unwrap_or_else(|| Utc::now() - chrono::Duration::days(30));
    let rows = state
        .store
        .audit_summary(caller.tenant.as_str(), parsed, since)
        .await?;
    Ok(HttpResponse::Ok().json(Summary {
        kind: kind.into_inner(),
        since,
        rows: rows
            .into_iter()
            .map(|r| SummaryLine {
                subject: r.subject,
                count: r.count,
                last_at: r.last_at,
            })
            .collect(),
    }))
}
