//! Why a dynamic-credentials operation failed; `api::error` maps each variant to HTTP.

use leasehold_plugins::PluginError;

use crate::audit::AuditError;
use crate::crypto::EnvelopeError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DynamicError {
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    /// A mass revocation's fence covers the lease being issued or renewed.
    #[error(
        "refused: mass revocation {job} fences every lease matching its selector; wait until the fence is lifted (DELETE /v1/revocations/{job}/fence) or expires"
    )]
    Fenced { job: uuid::Uuid },
    /// The target database refused or could not be reached; the message is scrubbed of secrets.
    #[error("backend `{backend}`: {error}")]
    Backend { backend: String, error: PluginError },
    /// A lease's state could not be made durable (its intent before creation, or its
    /// revocation after the user was dropped).
    #[error("the lease could not be recorded durably")]
    Unrecorded,
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl DynamicError {
    pub fn backend(backend: &str, error: PluginError) -> Self {
        Self::Backend {
            backend: backend.to_owned(),
            error,
        }
    }
}
