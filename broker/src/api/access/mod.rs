//! Identity and access routes: tokens, policies and groups, break-glass, Kubernetes login.
//!
//! Managing tokens, policies, groups and auth roles needs `policies:admin` on `*` (or an
//! administrator token); minting a token in another tenant needs an administrator token.

pub(super) mod break_glass;
pub(super) mod kubernetes;
pub(super) mod policies;
pub(super) mod tokens;

use super::{ApiError, AppState};
use crate::auth::{Action, Caller, Resource};

pub(super) fn parse<T>(parsed: Result<T, crate::domain::InvalidName>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::bad_request(e.field, e.to_string()))
}

/// Lets only an administrator token through; anyone else is refused (audited) with `message`.
pub(super) async fn admin_token_only(
    state: &AppState,
    caller: &Caller,
    reason: &str,
    message: &str,
) -> Result<(), ApiError> {
    if caller.is_admin {
        return Ok(());
    }
    Err(state
        .access
        .refuse(
            caller,
            Action::PoliciesAdmin,
            &Resource::tenant_wide(),
            reason,
            message.to_owned(),
        )
        .await)
}

pub(super) async fn require_admin(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    state
        .access
        .authorize(caller, Action::PoliciesAdmin, &Resource::tenant_wide())
        .await
}

pub(super) fn policy_name(name: &str) -> Result<&str, ApiError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(ApiError::bad_request(
            "name",
            "name: 1-64 characters of lowercase letters, digits, '-' and '_'",
        ))
    }
}
