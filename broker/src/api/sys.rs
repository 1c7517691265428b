//! System routes: health, metrics and the caller's own identity.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState};
use crate::auth::Caller;

#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentHealth {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` when every component is, `degraded` otherwise.
    status: &'static str,
    storage: ComponentHealth,
    kms: ComponentHealth,
    audit: ComponentHealth,
}

/// Storage, KMS and audit readiness, reported separately; 503 unless all are ready.
#[utoipa::path(
    tag = "sys",
    responses((status = 200, body = HealthResponse), (status = 503, body = HealthResponse))
)]
#[get("/v1/sys/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let (storage, kms) = tokio::join!(state.store.ping(), state.kms.check());
    let storage = ComponentHealth {
        ok: storage.is_ok(),
        detail: storage
            .err()
            .map(|_| format!("{} store unreachable", state.store.dialect())),
    };
    let kms = ComponentHealth {
        ok: kms.is_ok(),
        detail: kms
            .err()
            .map(|e| format!("{} provider: {e}", state.kms.provider())),
    };
    let audit_ok = state.audit.is_healthy();
    let audit = ComponentHealth {
        ok: audit_ok,
        detail: (!audit_ok).then(|| {
            "audit events are not being recorded: sensitive operations fail with 503".to_owned()
        }),
    };
    let healthy = storage.ok && kms.ok && audit.ok;
    let body = HealthResponse {
        status: if healthy { "ok" } else { "degraded" },
        storage,
        kms,
        audit,
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(tag = "sys", responses((status = 200, content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfResponse {
    principal: String,
    tenant: String,
    token_id: uuid::Uuid,
    admin: bool,
    mfa: bool,
    source_cluster: Option<String>,
}

/// The identity behind the presented token.
#[utoipa::path(
    tag = "auth",
    responses((status = 200, body = SelfResponse), (status = 401, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/auth/self")]
pub async fn whoami(caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SelfResponse {
        principal: caller.principal,
        tenant: caller.tenant.to_string(),
        token_id: caller.token_id,
        admin: caller.is_admin,
        mfa: caller.mfa,
        source_cluster: caller.source_cluster,
    }))
}
