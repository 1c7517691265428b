//! `/v1/sys/kms`: where the stored data keys stand, and re-wrapping them under the active master
//! key. Both span every tenant, so both need an administrator token.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, AppState, JsonBody};
use crate::audit::{AuditEvent, Decision, EventType};
use crate::auth::Caller;
use crate::rewrap::{Cursor, FailedRow};

/// KMS administration reaches every tenant's data keys: only an administrator token may.
async fn require_operator(state: &AppState, caller: &Caller, action: &str) -> Result<(), ApiError> {
    if caller.is_admin {
        return Ok(());
    }
    metrics::counter!("leasehold_access_denied_total", "action" => "kms:admin").increment(1);
    let event = AuditEvent::by(caller, EventType::AccessDenied, Decision::Deny)
        .detail("action", "kms:admin")
        .detail("operation", action)
        .detail("reason", "not an administrator token");
    // The request is refused either way; the audit log counts a failed write itself.
    let _ = state.audit.record(event).await;
    Err(ApiError::Forbidden(format!(
        "{action} reaches every tenant's data keys: it needs an administrator token (`leasehold operator init`)"
    )))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUsageView {
    /// A master key id: `local-N` of the local key ring, or an AWS KMS key ARN.
    key_id: String,
    /// Stored data keys (secret versions, backend passwords) wrapped under it.
    rows: i64,
    /// Whether a configured provider holds this key; `false` means those rows cannot be read.
    held: bool,
    active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KmsStatusView {
    /// The provider that wraps new data keys.
    provider: &'static str,
    /// The active master key as configured (an AWS alias stays an alias).
    active_key: String,
    /// The id data keys wrapped under it carry; absent while the KMS cannot be reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    active_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kms_error: Option<String>,
    keys: Vec<KeyUsageView>,
    /// Stored data keys not yet wrapped under the active key: `leasehold kms rewrap` moves them.
    not_under_active_key: i64,
}

/// Which master keys wrap the stored data keys, and how many each.
#[utoipa::path(
    tag = "sys",
    responses((status = 200, body = KmsStatusView), (status = 403, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[get("/v1/sys/kms")]
pub async fn kms_status(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    require_operator(&state, &caller, "KMS status").await?;
    let status = state.rewrap.status().await?;
    let active_id = status.active_key_id.as_ref().ok().cloned();
    let is_active =
        |key_id: &str| key_id == status.active_key || active_id.as_deref() == Some(key_id);
    let keys: Vec<KeyUsageView> = status
        .keys
        .iter()
        .map(|(usage, held)| KeyUsageView {
            key_id: usage.key_id.clone(),
            rows: usage.row_count,
            held: *held,
            active: is_active(&usage.key_id),
        })
        .collect();
    let not_under_active_key = keys.iter().filter(|k| !k.active).map(|k| k.rows).sum();
    Ok(HttpResponse::Ok().json(KmsStatusView {
        provider: status.provider,
        active_key: status.active_key.clone(),
        kms_error: status.active_key_id.as_ref().err().map(ToString::to_string),
        active_key_id: active_id,
        keys,
        not_under_active_key,
    }))
}

fn default_batch_size() -> usize {
    200
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewrapRequest {
    /// The target master key: the active one, as configured or as its ARN.
    to: String,
    /// Data keys to re-wrap in this call (1–1000, default 200).
    #[serde(default = "default_batch_size")]
    batch_size: usize,
    /// The `next` of the previous batch; absent to start (or resume) from the beginning.
    after: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RewrapBatchView {
    target_key_id: String,
    rewrapped: u64,
    /// Rows that changed while the batch ran (destroyed, rotated, or re-wrapped by another run).
    skipped: u64,
    failed: Vec<FailedRow>,
    /// Pass as `after` for the next batch; absent once every table was walked.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// Stored data keys not under the target after this batch.
    remaining: i64,
}

/// Re-wraps one batch of stored data keys under the active master key, without touching any
/// ciphertext. Call again with `after` = `next` until `next` is absent; a run that was
/// interrupted resumes by starting again.
#[utoipa::path(
    tag = "sys",
    request_body = RewrapRequest,
    responses((status = 200, body = RewrapBatchView), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody), (status = 503, body = super::ErrorBody)),
    security(("bearer" = []))
)]
#[post("/v1/sys/kms/rewrap")]
pub async fn rewrap(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<RewrapRequest>,
) -> Result<HttpResponse, ApiError> {
    require_operator(&state, &caller, "re-wrapping data keys").await?;
    let request = body.0;
    let from = match &request.after {
        Some(text) => Cursor::decode(text)?,
        None => Cursor::start(),
    };
    state
        .audit
        .record(
            AuditEvent::allow(&caller, EventType::KmsRewrap)
                .detail("to", request.to.as_str())
                .detail("batchSize", request.batch_size)
                .detail("resumed", request.after.is_some()),
        )
        .await?;
    let outcome = state
        .rewrap
        .batch(&request.to, from, request.batch_size)
        .await?;
    tracing::info!(
        target_key = %outcome.target_key_id,
        rewrapped = outcome.rewrapped,
        skipped = outcome.skipped,
        failed = outcome.failed.len(),
        remaining = outcome.remaining,
        "re-wrapped a batch of data keys"
    );
    Ok(HttpResponse::Ok().json(RewrapBatchView {
        target_key_id: outcome.target_key_id,
        rewrapped: outcome.rewrapped,
        skipped: outcome.skipped,
        failed: outcome.failed,
        next: outcome.next.as_ref().map(Cursor::encode),
        remaining: outcome.remaining,
    }))
}
