//! Audit events: what happened, to what, by whom, allowed or denied. Never a value, never a
//! token: a token appears only as the id of its row.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::domain::{Environment, SecretPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    SecretRead,
    SecretCreate,
    SecretUpdate,
    VersionCreate,
    AliasPromote,
    VersionDisable,
    VersionEnable,
    VersionDestroy,
    SecretList,
    BreakGlassGrant,
    BreakGlassRead,
    BreakGlassEnd,
    PolicyChange,
    GroupChange,
    TokenMint,
    TokenRevoke,
    AuthRoleChange,
    Login,
    AccessDenied,
    BackendWrite,
    BackendDelete,
    BackendRotateRoot,
    RoleWrite,
    RoleDelete,
    LeaseIssue,
    LeaseRenew,
    LeaseRevoke,
    LeaseExpire,
    LeaseIrrevocable,
    LeaseForceRevoke,
    LeasePurge,
    RevocationRequest,
    RevocationComplete,
    RevocationFailures,
    RevocationFenceLift,
    KmsRewrap,
    RotationPolicyChange,
    RotationStart,
    RotationStep,
    RotationFailed,
    RotationRollback,
    StaticRoleWrite,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretRead => "SECRET_READ",
            Self::SecretCreate => "SECRET_CREATE",
            Self::SecretUpdate => "SECRET_UPDATE",
            Self::VersionCreate => "VERSION_CREATE",
            Self::AliasPromote => "ALIAS_PROMOTE",
            Self::VersionDisable => "VERSION_DISABLE",
            Self::VersionEnable => "VERSION_ENABLE",
            Self::VersionDestroy => "VERSION_DESTROY",
            Self::SecretList => "SECRET_LIST",
            Self::BreakGlassGrant => "BREAK_GLASS_GRANT",
            Self::BreakGlassRead => "BREAK_GLASS_READ",
            Self::BreakGlassEnd => "BREAK_GLASS_END",
            Self::PolicyChange => "POLICY_CHANGE",
            Self::GroupChange => "GROUP_CHANGE",
            Self::TokenMint => "TOKEN_MINT",
            Self::TokenRevoke => "TOKEN_REVOKE",
            Self::AuthRoleChange => "AUTH_ROLE_CHANGE",
            Self::Login => "LOGIN",
            Self::AccessDenied => "ACCESS_DENIED",
            Self::BackendWrite => "BACKEND_WRITE",
            Self::BackendDelete => "BACKEND_DELETE",
            Self::BackendRotateRoot => "BACKEND_ROTATE_ROOT",
            Self::RoleWrite => "ROLE_WRITE",
            Self::RoleDelete => "ROLE_DELETE",
            Self::LeaseIssue => "LEASE_ISSUE",
            Self::LeaseRenew => "LEASE_RENEW",
            Self::LeaseRevoke => "LEASE_REVOKE",
            Self::LeaseExpire => "LEASE_EXPIRE",
            Self::LeaseIrrevocable => "LEASE_IRREVOCABLE",
            Self::LeaseForceRevoke => "LEASE_FORCE_REVOKE",
            Self::LeasePurge => "LEASE_PURGE",
            Self::RevocationRequest => "REVOCATION_REQUEST",
            Self::RevocationComplete => "REVOCATION_COMPLETE",
            Self::RevocationFailures => "REVOCATION_FAILURES",
            Self::RevocationFenceLift => "REVOCATION_FENCE_LIFT",
            Self::KmsRewrap => "KMS_REWRAP",
            Self::RotationPolicyChange => "ROTATION_POLICY_CHANGE",
            Self::RotationStart => "ROTATION_START",
            Self::RotationStep => "ROTATION_STEP",
            Self::RotationFailed => "ROTATION_FAILED",
            Self::RotationRollback => "ROTATION_ROLLBACK",
            Self::StaticRoleWrite => "STATIC_ROLE_WRITE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "ALLOW",
            Self::Deny => "DENY",
        }
    }
}

/// One event, shaped like the seed's example plus a free-form `detail` (reason, ticket, action,
/// grant id…). Field order is the canonical order the hash chain covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub event_type: String,
    pub tenant_id: String,
    pub environment: Option<String>,
    pub path: Option<String>,
    pub version: Option<i64>,
    pub principal: String,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub decision: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl AuditEvent {
    /// An event for `caller`, with the facts of its request.
    pub fn by(caller: &Caller, event_type: EventType, decision: Decision) -> Self {
        Self {
            event_type: event_type.as_str().to_owned(),
            tenant_id: caller.tenant.to_string(),
            environment: None,
            path: None,
            version: None,
            principal: caller.principal.clone(),
            source_ip: caller.source_ip.map(|ip| ip.to_string()),
            request_id: caller.request_id.clone(),
            decision: decision.as_str().to_owned(),
            // The token appears only as its HMAC (see `TokenHmac`).
            detail: serde_json::json!({"tokenHmac": caller.token_hmac}),
            // Microseconds: what PostgreSQL stores, so the hashed form survives the round trip.
            created_at: Utc::now().trunc_subsecs(6),
        }
    }

    /// An event of the broker's own doing (e.g. cleaning up abandoned lease intents).
    pub fn system(tenant: &str, event_type: EventType) -> Self {
        Self {
            event_type: event_type.as_str().to_owned(),
            tenant_id: tenant.to_owned(),
            environment: None,
            path: None,
            version: None,
            principal: "system:leasehold".to_owned(),
            source_ip: None,
            request_id: None,
            decision: Decision::Allow.as_str().to_owned(),
            detail: serde_json::json!({}),
            created_at: Utc::now().trunc_subsecs(6),
        }
    }

    pub fn allow(caller: &Caller, event_type: EventType) -> Self {
        Self::by(caller, event_type, Decision::Allow)
    }

    pub fn secret(mut self, environment: &Environment, path: &SecretPath) -> Self {
        self.environment = Some(environment.to_string());
        self.path = Some(path.to_string());
        self
    }

    pub fn location(mut self, environment: &str, path: &str) -> Self {
        self.environment = Some(environment.to_owned());
        self.path = Some(path.to_owned());
        self
    }

    pub fn version(mut self, version: i64) -> Self {
        self.version = Some(version);
        self
    }

    /// Adds `key: value` to `detail`. Callers never pass a secret value or a token.
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        if let Some(map) = self.detail.as_object_mut() {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    /// The bytes the hash chain covers: the sequence number, then the event's canonical JSON.
    pub fn canonical(&self, seq: i64) -> Vec<u8> {
        let mut bytes = seq.to_be_bytes().to_vec();
        bytes.extend(serde_json::to_vec(self).unwrap_or_default());
        bytes
    }
}
