//! Dynamic credentials: backends (plugin instances with a sealed admin login), roles (what a
//! lease creates) and leases (each credential handed out, from intent to revocation).
//!
//! - `backend_config` and `role_definition` own the validated shapes of `PUT` bodies;
//! - `registry` keeps one live plugin instance per backend, rebuilt when the backend changes;
//! - `backends`, `roles` and `leases` are the operations behind the HTTP API;
//! - `expiry` is the broker's side of the lease scheduler (`leasehold-scheduler`): it revokes
//!   leases at expiry and PENDING intents a crash or a failed issue left behind;
//! - `retention` removes revoked leases from the store once their retention has passed.
//!
//! Issuing writes the lease row as an intent before the plugin creates the user, so no user
//! ever exists on a target without a row that will revoke it.

mod backend_config;
mod backends;
mod error;
mod expiry;
mod leases;
mod registry;
mod retention;
mod role_definition;
mod roles;

pub use backend_config::{BackendConfig, ConnectionConfig, PutBackend};
pub use backends::{BackendService, BackendView};
pub use error::DynamicError;
pub use expiry::{ScheduledLeases, publish_lease_gauges};
pub use leases::{IssueRequest, IssuedLease, LeaseService, LeaseView, RenewedLease};
pub use registry::{PluginRegistry, password_binding};
pub use retention::purge_revoked_leases;
pub use role_definition::{PasswordPolicyConfig, PutRole, RoleDefinition};
pub use roles::{Role, RoleService, RoleView};

use crate::domain::InvalidName;

/// Default age after which a PENDING intent is abandoned (longer than any issue can take).
pub const INTENT_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// Backend and role names: 1–64 of `[a-z0-9_-]`, starting with a letter or digit.
///
/// # Errors
/// `Invalid` naming `field` and the valid form.
pub fn check_name(field: &'static str, name: &str) -> Result<(), DynamicError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(DynamicError::Invalid {
            field,
            message: format!(
                "{field}: 1-64 characters of lowercase letters, digits, '-' and '_', starting with a letter or digit"
            ),
        })
    }
}

impl From<InvalidName> for DynamicError {
    fn from(error: InvalidName) -> Self {
        Self::Invalid {
            field: error.field,
            message: error.to_string(),
        }
    }
}
