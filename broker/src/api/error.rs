//! The one place where errors become HTTP responses.
//!
//! Every error answers with the envelope `{"error": {"code", "message", "field"?}}`. 4xx messages
//! say what to fix; 5xx messages are generic, and the cause goes to the log only. No message ever
//! contains a secret value or a token.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::AuditError;
use crate::crypto::{EnvelopeError, KmsError};
use crate::dynamic::DynamicError;
use crate::rewrap::RewrapError;
use crate::rotation::RotationError;
use crate::secrets::SecretError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Dynamic(#[from] DynamicError),
    #[error(transparent)]
    Rewrap(#[from] RewrapError),
    #[error(transparent)]
    Rotation(#[from] RotationError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// The JSON error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `conflict`, `invalid_request`.
    pub code: &'static str,
    /// What went wrong and, for 4xx, how to fix it.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

fn store_status(error: &StoreError) -> (StatusCode, &'static str, &'static str) {
    match error {
        StoreError::Audit(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            AUDIT_UNAVAILABLE,
        ),
        StoreError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "storage unavailable; retry later",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the broker log for the request id",
        ),
    }
}

fn kms_status(error: &KmsError) -> (StatusCode, &'static str, &'static str) {
    match error {
        KmsError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "kms_unavailable",
            "KMS unavailable; retry later",
        ),
        KmsError::Rejected(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "kms_rejected",
            "the KMS refused the request (a disabled key or a missing permission); an operator must fix the KMS key or its policy, see the broker log",
        ),
        KmsError::UnknownKey(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "kms_key_missing",
            "the master key that wrapped this data key is held by no configured KMS provider",
        ),
        KmsError::Integrity => integrity_status(),
    }
}

fn integrity_status() -> (StatusCode, &'static str, &'static str) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "integrity_error",
        "the stored ciphertext failed its integrity check: it was altered or does not belong to this secret version",
    )
}

fn envelope_status(error: &EnvelopeError) -> (StatusCode, &'static str, &'static str) {
    match error {
        EnvelopeError::Kms(error) => kms_status(error),
        EnvelopeError::Integrity | EnvelopeError::UnknownFormat(_) => integrity_status(),
    }
}

fn secret_parts(error: &SecretError) -> (StatusCode, &'static str, String, Option<String>) {
    use SecretError as S;
    let simple = |status, code| (status, code, error.to_string(), None);
    match error {
        S::SecretNotFound(_) | S::AliasUnset(_) | S::VersionNotFound(_) => {
            simple(StatusCode::NOT_FOUND, "not_found")
        }
        S::VersionDisabled(_) => simple(StatusCode::NOT_FOUND, "version_disabled"),
        S::VersionDestroyed(_) => simple(StatusCode::GONE, "version_destroyed"),
        S::AlreadyExists(_) | S::Conflict(_) => simple(StatusCode::CONFLICT, "conflict"),
        S::Invalid { field, message } => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message.clone(),
            Some((*field).to_owned()),
        ),
        S::ValueTooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            error.to_string(),
            Some("value".to_owned()),
        ),
        S::Storage(e) => {
            let (status, code, message) = store_status(e);
            (status, code, message.to_owned(), None)
        }
        S::Envelope(e) => {
            let (status, code, message) = envelope_status(e);
            (status, code, message.to_owned(), None)
        }
    }
}

fn rotation_parts(error: &RotationError) -> (StatusCode, &'static str, String, Option<String>) {
    match error {
        RotationError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone(), None),
        RotationError::Invalid { field, message } => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message.clone(),
            Some((*field).to_owned()),
        ),
        RotationError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone(), None),
        RotationError::Failed { .. } => (
            StatusCode::BAD_GATEWAY,
            "rotation_failed",
            error.to_string(),
            None,
        ),
        RotationError::Secret(e) => secret_parts(e),
        RotationError::Dynamic(e) => dynamic_parts(e),
        RotationError::Storage(e) => {
            let (status, code, message) = store_status(e);
            (status, code, message.to_owned(), None)
        }
        RotationError::Audit(_) => audit_parts(),
    }
}

fn rewrap_parts(error: &RewrapError) -> (StatusCode, &'static str, String, Option<String>) {
    match error {
        RewrapError::Invalid(message) => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message.clone(),
            message.split_once(':').map(|(field, _)| field.to_owned()),
        ),
        RewrapError::BadCursor => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            error.to_string(),
            Some("after".to_owned()),
        ),
        RewrapError::Kms(e) => {
            let (status, code, message) = kms_status(e);
            (status, code, message.to_owned(), None)
        }
        RewrapError::Storage(e) => {
            let (status, code, message) = store_status(e);
            (status, code, message.to_owned(), None)
        }
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String, Option<String>) {
        let simple = |status, code, this: &Self| (status, code, this.to_string(), None);
        match self {
            Self::BadRequest { field, message } => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                message.clone(),
                field.clone(),
            ),
            Self::Unauthorized(_) => simple(StatusCode::UNAUTHORIZED, "unauthorized", self),
            Self::Forbidden(_) => simple(StatusCode::FORBIDDEN, "forbidden", self),
            Self::NotFound(_) => simple(StatusCode::NOT_FOUND, "not_found", self),
            Self::PayloadTooLarge(_) => {
                simple(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", self)
            }
            Self::UnsupportedMediaType(_) => simple(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                self,
            ),
            Self::Secret(error) => secret_parts(error),
            Self::Store(e) => {
                let (status, code, message) = store_status(e);
                (status, code, message.to_owned(), None)
            }
            Self::Dynamic(error) => dynamic_parts(error),
            Self::Rewrap(error) => rewrap_parts(error),
            Self::Rotation(error) => rotation_parts(error),
            Self::Audit(_) => audit_parts(),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the broker log for the request id".to_owned(),
                None,
            ),
        }
    }
}

const AUDIT_UNAVAILABLE: &str = "audit unavailable: the operation was not performed because its audit event could not be recorded; retry later";

fn audit_parts() -> (StatusCode, &'static str, String, Option<String>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        AUDIT_UNAVAILABLE.to_owned(),
        None,
    )
}

fn dynamic_parts(error: &DynamicError) -> (StatusCode, &'static str, String, Option<String>) {
    use leasehold_plugins::ErrorKind;
    match error {
        DynamicError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone(), None),
        DynamicError::Invalid { field, message } => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            message.clone(),
            Some((*field).to_owned()),
        ),
        DynamicError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone(), None),
        DynamicError::Fenced { .. } => (StatusCode::FORBIDDEN, "fenced", error.to_string(), None),
        DynamicError::Backend { backend, error } => match error.kind {
            ErrorKind::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "backend_unavailable",
                format!(
                    "backend `{backend}` is unavailable ({}); retry later, and if it persists check the backend's host, port and admin login (POST /v1/backends/{backend}/verify)",
                    error.message
                ),
                None,
            ),
            ErrorKind::Rejected => (
                StatusCode::BAD_GATEWAY,
                "backend_rejected",
                format!(
                    "backend `{backend}` rejected a statement ({}); fix the role's statements or the backend's grants",
                    error.message
                ),
                None,
            ),
            ErrorKind::InvalidInput => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                error.message.clone(),
                None,
            ),
        },
        DynamicError::Storage(e) => {
            let (status, code, message) = store_status(e);
            (status, code, message.to_owned(), None)
        }
        DynamicError::Envelope(e) => {
            let (status, code, message) = envelope_status(e);
            (status, code, message.to_owned(), None)
        }
        DynamicError::Audit(_) => audit_parts(),
        DynamicError::Unrecorded => (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the lease's state could not be recorded durably; nothing was handed out, and a revocation is retried by the scheduler; retry later"
                .to_owned(),
            None,
        ),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, message, field) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %error_chain(self), code, "request failed");
        }
        HttpResponse::build(status).json(ErrorBody {
            error: ErrorDetail {
                code,
                message,
                field,
            },
        })
    }
}

/// The error and its sources, for the log.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AliasName;

    #[test]
    fn every_variant_has_its_status() {
        let io = || sqlx::Error::Io(std::io::Error::other("down"));
        let cases: Vec<(ApiError, u16)> = vec![
            (ApiError::bad_request("path", "bad"), 400),
            (ApiError::Unauthorized("x".into()), 401),
            (ApiError::Forbidden("x".into()), 403),
            (ApiError::NotFound("x".into()), 404),
            (ApiError::PayloadTooLarge("x".into()), 413),
            (ApiError::UnsupportedMediaType("x".into()), 415),
            (ApiError::Internal("x".into()), 500),
            (SecretError::SecretNotFound("x".into()).into(), 404),
            (SecretError::AliasUnset(AliasName::Next).into(), 404),
            (SecretError::VersionNotFound(3).into(), 404),
            (SecretError::VersionDisabled(3).into(), 404),
            (SecretError::VersionDestroyed(3).into(), 410),
            (SecretError::AlreadyExists("x".into()).into(), 409),
            (SecretError::Conflict("x".into()).into(), 409),
            (
                SecretError::Invalid {
                    field: "description",
                    message: "x".into(),
                }
                .into(),
                400,
            ),
            (SecretError::ValueTooLarge { size: 2, limit: 1 }.into(), 413),
            (SecretError::Storage(StoreError::from(io())).into(), 503),
            (
                SecretError::Storage(StoreError::Corrupt("x".into())).into(),
                500,
            ),
            (
                SecretError::Envelope(EnvelopeError::Kms(KmsError::Unavailable("x".into()))).into(),
                503,
            ),
            (SecretError::Envelope(EnvelopeError::Integrity).into(), 500),
            (ApiError::Store(StoreError::from(io())), 503),
            (ApiError::Audit(AuditError::Unavailable), 503),
            (
                SecretError::Storage(StoreError::Audit(AuditError::Unavailable)).into(),
                503,
            ),
            (
                SecretError::Envelope(EnvelopeError::Kms(KmsError::Rejected("x".into()))).into(),
                503,
            ),
            (
                SecretError::Envelope(EnvelopeError::Kms(KmsError::UnknownKey("x".into()))).into(),
                500,
            ),
            (RewrapError::Invalid("to: x".into()).into(), 400),
            (RewrapError::BadCursor.into(), 400),
            (
                RewrapError::Kms(KmsError::Unavailable("x".into())).into(),
                503,
            ),
            (RewrapError::Storage(StoreError::from(io())).into(), 503),
        ];
        for (error, status) in cases {
            assert_eq!(error.status_code().as_u16(), status, "case: {error:?}");
        }
    }

    #[test]
    fn server_errors_hide_their_cause() {
        let error = ApiError::Internal("connection string postgres://u:pw@h".into());
        let (_, _, message, _) = error.parts();
        assert!(!message.contains("pw"));
    }
}
